"""Loaded by cookiecutter from `_extensions` in cookiecutter.json (its "local extensions" feature).

Cookiecutter 2.6 compiles an answer as a Jinja template: prompt.py `prompt_for_config` hands each value,
the template's default or the answer that replaced it (`--no-input key=value`, extra context, a user
config, cruft's `.cruft.json`), to `render_variable`, which calls `env.from_string(raw)` (prompt.py
lines 232-236). That happens before any hook runs, so `{{ cycler.__init__.__globals__.os.system(...) }}`
in an answer would run as the user rendering. This extension is in every environment cookiecutter makes
from the context (utils.py `create_env_with_context`; prompt.py line 293, generate.py line 351,
hooks.py line 122) and Jinja passes every source through `Extension.preprocess` before compiling it
(jinja2 environment.py `_tokenize`). There it refuses any source that holds template syntax and is not
one of the template's own: the strings of cookiecutter.json, the names of the template's files and
directories, the hook scripts, and files read through cookiecutter's loader (generate.py line 233). No
answer can hold template syntax anyway: every free-text rule in hooks/pre_gen_project.py refuses braces.

It also checks the project directory's name where cookiecutter renders it, before it creates it
(generate.py `render_and_create_dir`, lines 275-295: rendered, joined to the output directory, made with
parents): one plain name inside the output directory, so `__project_dir` from extra context or a replay
file (`../x`, `/x`, `a/../..`, NUL, 300 characters) never reaches the file system.

A refusal prints `ERROR:` lines on stderr, as the pre-generation hook does, and raises `AnswerRefused`, a
`FailedHookException`, which cookiecutter's command line reports in one line (cli.py lines 235-247). It
happens before anything is written: answers are compiled (main.py line 164) before the replay file is saved
(line 181) and the directory made, and the directory check comes before `mkdir`.

Not covered, because nothing of the template runs first: extra context that sets `_extensions` itself (a
caller's own code, or `cruft create --extra-context`), the modules a replay file's `_extensions` names
(imported as cookiecutter builds its environment), and `cruft update` from a `.cruft.json` whose commit
predates this extension (cruft renders that old commit). A replay file that turns the extension off is
refused by hooks/pre_gen_project.py, after cookiecutter has made the (empty) directory it names.

Last, refusals read without a traceback: cookiecutter logs a refusing hook with `logger.exception` and
cruft's command line (typer) prints uncaught exceptions as a traceback; both read like a crash.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

from cookiecutter.exceptions import FailedHookException
from jinja2 import Environment, TemplateSyntaxError
from jinja2.ext import Extension
from jinja2.runtime import Context
from jinja2.utils import pass_context

ROOT = Path(__file__).resolve().parent  # the template being rendered: cookiecutter and cruft import from it
# hooks/pre_gen_project.py's project_slug rule, or the throwaway name cookiecutter.json's __project_dir picks
# for a slug that breaks it (so the hook, not this check, explains which rule; the directory is removed).
PROJECT_DIR = re.compile(r"[a-z][a-z0-9_]{0,39}|refused-[a-z]{12}")
_STARTED_IN: list[str] = []  # the working directory cookiecutter started the render from, for the last hook


class AnswerRefused(FailedHookException):
    """An answer that would run as a template, or a project directory outside the output directory."""

    def __init__(self, error: str) -> None:
        print(f"ERROR: {error}", file=sys.stderr)
        super().__init__(
            "Stopping generation because lakebase_app_extension refused an answer (see the ERROR line above)"
        )
        self.error = error


def _has_template_syntax(environment: Environment, source: str) -> bool:
    """True unless Jinja's own lexer, with this environment's delimiters, reads the source as plain text."""
    try:
        return any(token != "data" for _, token, _ in environment.lex(source))
    except TemplateSyntaxError:  # an unclosed '{{' is syntax too
        return True


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (key, *_strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _question() -> str | None:
    """The question cookiecutter is rendering, read from prompt.py `prompt_for_config`'s loop variable."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "prompt_for_config" and isinstance(frame.f_locals.get("key"), str):
            return frame.f_locals["key"]
        frame = frame.f_back
    return None


def _template_root() -> Path:
    """The template being rendered. cookiecutter appends the template's directory to sys.path (main.py
    `_patch_import_path_for_repo`), so a process that already imported this module from one checkout renders
    another checkout (an older commit, say) with this copy: read the template's own sources from the directory
    cookiecutter is rendering (main.py `cookiecutter`'s and generate.py `generate_files`' `repo_dir`, cruft's
    `inner_dir`), not from where this file lies."""
    frame = sys._getframe()
    while frame is not None:
        for name in ("repo_dir", "inner_dir"):
            value = frame.f_locals.get(name)
            if isinstance(value, (str, os.PathLike)) and (Path(value) / "cookiecutter.json").is_file():
                return Path(value).resolve()
        frame = frame.f_back
    return ROOT


class _Own:
    """The template's own sources: read from disk per environment, so that cruft update, which renders two
    commits of one checkout in one process (cruft update.py, `repo.head.reset`), sees the commit at hand."""

    def __init__(self, root: Path) -> None:
        self.sources = set(_strings(json.loads((root / "cookiecutter.json").read_text(encoding="utf-8"))))
        (self.project_dir,) = [p for p in root.iterdir() if p.is_dir() and "cookiecutter" in p.name and "{" in p.name]
        self.paths = {self.project_dir.name}
        for path in self.project_dir.rglob("*"):
            relative = path.relative_to(self.project_dir)
            self.paths.update({str(relative), *relative.parts})
        self.sources |= self.paths
        hooks = root / "hooks"
        self.sources |= {hook.read_text(encoding="utf-8") for hook in hooks.iterdir() if hook.is_file()}


class RefusalsWithoutTraceback(Extension):
    """Answers stay text, the project directory stays inside the output directory, refusals read cleanly.

    (Its name is older than the first two; a cruft update imports the module once, from the older commit.)
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["lakebase_app_project_dir"] = _project_dir
        # The hooks read these: their absence means this extension did not check the answers.
        environment.globals["lakebase_app_guard"] = True
        environment.globals["lakebase_app_started_in"] = lambda: _STARTED_IN[-1] if _STARTED_IN else None

    @cached_property
    def _own(self) -> _Own:
        return _Own(_template_root())

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is not None or not _has_template_syntax(self.environment, source):
            return source  # a template file through cookiecutter's loader, or plain text
        own = self._own
        if source == own.project_dir.name:  # generate.py render_and_create_dir: check the rendered name
            return "{% filter lakebase_app_project_dir %}" + source + "{% endfilter %}"
        if source in own.sources or self._is_own_path(source):
            return source
        question = _question()
        shown = f"{question}={source!r}" if question else f"the template source {source!r}"
        raise AnswerRefused(
            f"{shown} is invalid: it holds template syntax ('{{{{', '{{%' or '{{#'), which cookiecutter would run "
            "as code before any check; an answer is plain text (for example 'Collects team feedback'). "
            "Nothing was written."
        )

    def _is_own_path(self, source: str) -> bool:
        """generate.py lines 423-426 render `project_dir/<template directory>`: a plain prefix, an own path."""
        for path in self._own.paths:
            prefix = source.removesuffix(path)
            if prefix != source and prefix.endswith(os.sep) and not _has_template_syntax(self.environment, prefix):
                return True
        return False


@pass_context
def _project_dir(context: Context, name: str) -> str:
    output_dir = context.get("cookiecutter", {}).get("_output_dir")  # main.py sets it; cruft renders in a tmp dir
    if isinstance(output_dir, str) and _has_template_syntax(context.environment, output_dir):
        raise AnswerRefused(
            f"the output directory {output_dir!r} is refused: it holds template syntax, which cookiecutter "
            "would render as a template with every path inside it. Nothing was written."
        )
    if not PROJECT_DIR.fullmatch(name):
        raise AnswerRefused(
            f"__project_dir={name!r} is refused: the project directory must be one name inside the output "
            "directory (a lowercase letter, then up to 39 lowercase letters, digits or '_'), so that nothing is "
            "written outside it. It comes from project_slug: answer that instead. Nothing was written."
        )
    if isinstance(output_dir, str) and Path(output_dir, name).is_symlink():  # -f would write through it
        raise AnswerRefused(
            f"__project_dir={name!r} is refused: {Path(output_dir, name)} is a symbolic link, and the project "
            "is written only into a directory of its own. Nothing was written."
        )
    _STARTED_IN[:] = [os.getcwd()]  # still the caller's: generate.py enters the template only after this
    return name


class _NoTracebackForRefusals(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Stopping generation because"):
            record.exc_info = None
            record.exc_text = None
            record.msg = "Stopping generation because %s refused the answers (see the ERROR lines above)"
        return True


def _refusal_without_traceback(previous: Any) -> Any:
    """For cruft's command line: a refusal ends with its ERROR lines and this notice, exit status 1."""

    def hook(kind: type[BaseException], error: BaseException, traceback: Any) -> None:
        if isinstance(error, FailedHookException):
            print(error, file=sys.stderr)
        else:
            previous(kind, error, traceback)

    hook.lakebase_app = True  # type: ignore[attr-defined]
    return hook


_FILTER = _NoTracebackForRefusals()
_HOOK_LOGGER = logging.getLogger("cookiecutter.hooks")
if _FILTER not in _HOOK_LOGGER.filters:
    _HOOK_LOGGER.addFilter(_FILTER)
if not getattr(sys.excepthook, "lakebase_app", False):
    sys.excepthook = _refusal_without_traceback(sys.excepthook)
