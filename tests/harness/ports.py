"""The one free_port of the template's tests, harness and benchmarks (the rendered project's local/run.py keeps its
own: a rendered project cannot import the template's tests/)."""

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
