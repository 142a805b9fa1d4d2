"""Loaded by cookiecutter from `_extensions` in cookiecutter.json (its "local extensions" feature).

A refused answer is explained by the pre-generation hook's own message (hooks/pre_gen_project.py).
Cookiecutter then logs the hook's failure with `logger.exception`, i.e. with a Python traceback of
its own internals after that message, which reads like a crash. This filter keeps cookiecutter's
one-line notice and drops only that traceback; every other log record is untouched.
"""

import logging

from jinja2.ext import Extension


class _NoTracebackForRefusals(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Stopping generation because"):
            record.exc_info = None
            record.exc_text = None
            record.msg = "Stopping generation because %s refused the answers (see the ERROR lines above)"
        return True


_FILTER = _NoTracebackForRefusals()
_HOOK_LOGGER = logging.getLogger("cookiecutter.hooks")
if _FILTER not in _HOOK_LOGGER.filters:
    _HOOK_LOGGER.addFilter(_FILTER)


class RefusalsWithoutTraceback(Extension):
    """Adds nothing to Jinja; importing this module installs the logging filter above."""
