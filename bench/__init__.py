"""Benchmarks of the rendered apps against real PostgreSQL (TLS + scram) and the workspace stub.

Run from the repository root as modules: ``.venv/bin/python -m bench.load`` (every table, docs/benchmark.md),
``-m bench.startup``, ``-m bench.local_start``, ``-m bench.render_matrix``.
"""
