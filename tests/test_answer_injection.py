"""No answer, replay file or .cruft.json runs code or writes outside the output directory.

Each payload below writes a marker file when Jinja compiles it (test_every_payload_is_live proves it with the
environment cookiecutter makes without this template's extension). They go to every free-text question
through cookiecutter's Python API (one process, cheap refusals), and through the real `cookiecutter` and
`cruft` commands for a representative few: as `--no-input key=value`, typed at the prompts, in a replay file,
in cruft's extra context and in an edited `.cruft.json` before `cruft update`.
"""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.environment import StrictEnvironment
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from cruft import create as cruft_create

from lakebase_app_extension import PROJECT_DIR
from tests.support.template import CONFIG, ROOT, free_text_questions, isolated_config, render_cli, run_cookiecutter

GIT = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "-c", "init.defaultBranch=main"]
MARKER = "PWNED"
PAYLOADS = {
    "attribute walk": "{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}x",
    "attr filter": "{{{{ cycler|attr('__init__')|attr('__globals__')|attr('get')('os')|attr('system')('touch {marker}') }}}}",
    "globals by string": "{{{{ cycler.__init__['__glo' ~ 'bals__']['os'].system('touch {marker}') }}}}",
    "lipsum": "{{{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}}}",
    "namespace": "{{{{ namespace.__init__.__globals__.os.system('touch {marker}') }}}}",
    "joiner": "{{{{ joiner.__init__.__globals__.os.system('touch {marker}') }}}}",
    "self": "{{{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch {marker}') }}}}",
    "filters": "{{{{ cycler.__init__.__globals__.os.system('touch {marker}') | string | trim }}}}",
    "set statement": "{{% set x = cycler.__init__.__globals__.os.system('touch {marker}') %}}",
    "if statement": "{{%- if cycler.__init__.__globals__.os.system('touch {marker}') -%}}{{%- endif %}}",
    "for statement": "{{% for m in [cycler.__init__.__globals__.os] %}}{{{{ m.system('touch {marker}') }}}}{{% endfor %}}",
    "comment first": "{{# a note #}}{{{{ cycler.__init__.__globals__.os.system('touch {marker}') }}}}",
    "whitespace control": "{{{{- cycler.__init__.__globals__.os.system('touch {marker}') -}}}}",
    "builtins import": "{{{{ cycler.__init__.__globals__.__builtins__.__import__('os').system('touch {marker}') }}}}",
}
# Refused as well, though not live in a plain environment: an undefined global, syntax without code, a typo.
INERT_SYNTAX = {
    "request global": "{{ request.application.__globals__.__builtins__.__import__('os').popen('id').read() }}",
    "raw block": "{% raw %}plain{% endraw %}",
    "comment only": "{# nothing #}",
    "unclosed": "{{ 7 * 7",
    "arithmetic": "{{ 7 * 7 }}",
}
QUESTIONS = free_text_questions()


def payload(why: str, marker: Path) -> str:
    return PAYLOADS[why].format(marker=marker)


def nothing_but(tmp_path: Path, *kept: Path) -> None:
    """Nothing under tmp_path but what the test made, no marker anywhere it could land."""
    made = {p for p in tmp_path.rglob("*") if not any(p == k or k in p.parents for k in kept)}
    assert not made, f"left behind: {sorted(map(str, made))}"
    assert not list(tmp_path.rglob(MARKER)) and not (ROOT / MARKER).exists(), "an answer ran as code"


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A working directory, an output directory (not made), a cookiecutter config with its own replay dir."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    config = isolated_config(tmp_path / "config")
    return {"cwd": cwd, "out": tmp_path / "out", "config": config, "marker": tmp_path / MARKER}


def test_every_payload_is_live(tmp_path: Path) -> None:
    """Without the extension (cookiecutter's environment as it is), each payload writes its marker."""
    env = StrictEnvironment(context={"cookiecutter": {}})
    for why in PAYLOADS:
        marker = tmp_path / why.replace(" ", "_")
        env.from_string(payload(why, marker)).render(cookiecutter={})
        assert marker.exists(), f"{why}: not a live payload"


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_payload_in_any_free_text_answer_is_refused_before_it_runs(
    question: str, sandbox: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    for why, attempt in [*((w, payload(w, sandbox["marker"])) for w in PAYLOADS), *INERT_SYNTAX.items()]:
        with pytest.raises(FailedHookException):
            cookiecutter(
                str(ROOT),
                no_input=True,
                output_dir=str(sandbox["out"]),
                extra_context={question: attempt},
                config_file=str(sandbox["config"]),
            )
        err = capfd.readouterr().err
        assert f"ERROR: {question}={attempt!r}" in err and "template syntax" in err, f"{why}: {err}"
        assert "Traceback" not in err, err
        nothing_but(tmp_path, sandbox["cwd"], sandbox["config"].parent)


PROJECT_DIR_TRICKS = {
    "parent": "..",
    "escape": "../escaped_dir",
    "absolute": "/tmp/lakebase-app-escaped",
    "down and up": "a/../..",
    "nested": "x/y",
    "dot": ".",
    "empty": "",
    "home": "~",
    "variable": "$HOME",
    "backslash": "a\\b",
    "NUL": "a\x00b",
    "leading dash": "-rf",
    "300 characters": "x" * 300,
    "slug then up": "lakebase_app/../../x",
    "template syntax": "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
}


def test_a_project_directory_outside_the_output_directory_is_refused_before_it_is_made(
    sandbox: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    for why, trick in PROJECT_DIR_TRICKS.items():
        trick = trick.replace("MARKER", str(sandbox["marker"]))
        with pytest.raises(FailedHookException):
            cookiecutter(
                str(ROOT),
                no_input=True,
                output_dir=str(sandbox["out"]),
                extra_context={"__project_dir": trick},
                config_file=str(sandbox["config"]),
            )
        err = capfd.readouterr().err
        assert "ERROR: " in err and ("__project_dir=" in err or "template syntax" in err), f"{why}: {err}"
        assert not Path("/tmp/lakebase-app-escaped").exists()
        # cookiecutter saves the answers to its replay dir before it makes the directory (main.py)
        nothing_but(tmp_path, sandbox["cwd"], sandbox["config"].parent)


def test_an_output_directory_with_template_syntax_is_refused_before_anything_is_made(
    sandbox: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """cookiecutter renders every path below the project directory as a template (generate.py lines 423-426)."""
    out = tmp_path / ("out" + payload("attribute walk", sandbox["marker"]))
    with pytest.raises(FailedHookException):
        cookiecutter(str(ROOT), no_input=True, output_dir=str(out), config_file=str(sandbox["config"]))
    assert "ERROR: the output directory" in capfd.readouterr().err
    assert not out.exists()
    nothing_but(tmp_path, sandbox["cwd"], sandbox["config"].parent)


def test_a_symbolic_link_named_like_the_project_is_refused(sandbox: dict[str, Path], tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    sandbox["out"].mkdir()
    (sandbox["out"] / "lakebase_app").symlink_to(victim)
    with pytest.raises(FailedHookException):
        cookiecutter(str(ROOT), no_input=True, output_dir=str(sandbox["out"]), overwrite_if_exists=True)
    assert not any(victim.iterdir()), "the project was written through the link"


def test_the_extension_and_the_hooks_agree_on_the_project_directory() -> None:
    hook = (ROOT / "hooks" / "pre_gen_project.py").read_text()
    assert f'PROJECT_DIR = r"{PROJECT_DIR.pattern}"' in hook
    assert f'r"{PROJECT_DIR.pattern.split("|")[0]}",' in hook  # the project_slug rule
    env = StrictEnvironment(context={"cookiecutter": CONFIG})
    for slug in ["team_feedback", "..", "a/b", "x" * 41]:
        assert PROJECT_DIR.fullmatch(
            env.from_string(CONFIG["__project_dir"]).render(cookiecutter={"project_slug": slug})
        )


def test_plain_text_answers_with_quotes_percent_and_unicode_render(tmp_path: Path) -> None:
    """Only template syntax is refused here; the hook's rules decide the rest (its description has no braces)."""
    description = "Café ünïcode: 100% of #feedback, (beta) & co. it's fine"
    project = Path(
        cookiecutter(str(ROOT), no_input=True, output_dir=str(tmp_path), extra_context={"description": description})
    )
    assert json.loads((project / ".cookiecutter.json").read_text())["cookiecutter"]["description"] == description


# -- the real command line -------------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["description", "schema_name", "max_instances"])
def test_command_line_answer_with_a_payload_is_refused_without_a_traceback(question: str, tmp_path: Path) -> None:
    marker, out = tmp_path / MARKER, tmp_path / "out"
    result = render_cli(out, f"{question}={payload('attribute walk', marker)}", cwd=tmp_path)
    assert result.returncode == 1
    assert f"ERROR: {question}=" in result.stderr and "run as code" in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not marker.exists() and not out.exists()
    assert {p.name for p in tmp_path.iterdir()} == set()


def test_payloads_typed_at_the_prompts_stay_text_and_are_refused(tmp_path: Path) -> None:
    """A typed answer is not compiled by cookiecutter; the hook refuses it by its rules, naming each question."""
    marker = tmp_path / MARKER
    questions = [key for key, value in CONFIG.items() if not key.startswith("_")]
    typed = {q: payload("attribute walk", marker) for q in QUESTIONS}
    result = run_cookiecutter(
        tmp_path, "-o", str(tmp_path / "out"), stdin="".join(typed.get(q, "") + "\n" for q in questions)
    )
    assert result.returncode == 1, result.stdout + result.stderr
    for question in QUESTIONS:
        assert f"ERROR: {question}=" in result.stderr, result.stderr
    assert not marker.exists() and not any((tmp_path / "out").iterdir())  # cookiecutter makes -o; it stays empty


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The answers a real render recorded in its .cookiecutter.json."""
    project = Path(cookiecutter(str(ROOT), no_input=True, output_dir=str(tmp_path_factory.mktemp("recorded"))))
    return json.loads((project / ".cookiecutter.json").read_text())


def _replay_file(tmp_path: Path, recorded: dict[str, Any], **changes: Any) -> Path:
    """The recorded answers, changed as a pull request could change them."""
    path = tmp_path / "answers.json"
    path.write_text(json.dumps({"cookiecutter": {**recorded["cookiecutter"], **changes}}))
    return path


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_replayed_payload_is_never_compiled(question: str, tmp_path: Path, recorded: dict[str, Any]) -> None:
    marker, out = tmp_path / MARKER, tmp_path / "out"
    replay = _replay_file(tmp_path, recorded, **{question: payload("attribute walk", marker)})
    with pytest.raises(FailedHookException):
        cookiecutter(str(ROOT), replay=str(replay), output_dir=str(out), config_file=str(isolated_config(tmp_path)))
    assert not marker.exists() and not any(out.iterdir())  # the project directory went with the refusal


@pytest.mark.parametrize(
    "trick", ["../escaped_dir", "a/../..", "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}"]
)
@pytest.mark.parametrize("extensions", ["kept", "removed"])
def test_a_replayed_project_directory_never_leaves_the_output_directory(
    tmp_path: Path, trick: str, extensions: str, recorded: dict[str, Any]
) -> None:
    """Removed: the replay turns the extension off; cookiecutter makes the directory, then the hook refuses.
    'a/../..' names the directory holding the output directory: cookiecutter would delete it on that refusal."""
    marker = tmp_path / MARKER
    changes: dict[str, Any] = {"__project_dir": trick.replace("MARKER", str(marker))}
    if extensions == "removed":
        changes["_extensions"] = []
    replay = _replay_file(tmp_path, recorded, **changes)
    home = tmp_path / "home"
    (home / "out").mkdir(parents=True)
    (home / "keep.txt").write_text("someone's file\n")
    result = run_cookiecutter(home, "--replay-file", str(replay), "-o", "out")
    assert result.returncode != 0, result.stdout + result.stderr
    assert "ERROR: " in result.stderr and "__project_dir=" in result.stderr, result.stderr
    assert (home / "keep.txt").read_text() == "someone's file\n", "cookiecutter deleted a directory it did not make"
    assert not marker.exists() and not (tmp_path / "escaped_dir").exists()
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    if extensions == "kept":
        assert left == ["keep.txt", "out"]
    else:  # cookiecutter made the directory (with parents) before anything of the template ran: only empty dirs
        assert [p for p in home.rglob("*") if not p.is_dir()] == [home / "keep.txt"], left


# -- cruft ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("question", QUESTIONS)
def test_cruft_create_refuses_a_payload(question: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    marker, out = tmp_path / MARKER, tmp_path / "out"
    out.mkdir()
    with pytest.raises(FailedHookException):
        cruft_create(str(ROOT), output_dir=out, extra_context={question: payload("lipsum", marker)}, no_input=True)
    assert f"ERROR: {question}=" in capfd.readouterr().err
    assert not marker.exists() and not any(out.iterdir())


def git(cwd: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("question", ["description", "project_slug"])
def test_cruft_update_refuses_a_payload_in_cruft_json(question: str, tmp_path: Path) -> None:
    """A pull request edits .cruft.json; whoever runs `cruft update` next renders it. Nothing runs or changes."""
    template = tmp_path / "template"
    git(tmp_path, "clone", "-q", str(ROOT), str(template))
    cruft = [sys.executable, "-m", "cruft"]
    subprocess.run([*cruft, "create", str(template), "--no-input"], cwd=tmp_path, check=True, capture_output=True)
    project = tmp_path / "lakebase_app"
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "rendered")
    (template / "{{cookiecutter.__project_dir}}" / "NOTES.md").write_text("A later template commit.\n")
    git(template, "add", "-A")
    git(template, "commit", "-qm", "a template change for cruft update to bring")

    marker = tmp_path / MARKER
    state = json.loads((project / ".cruft.json").read_text())
    state["context"]["cookiecutter"][question] = payload("namespace", marker)
    (project / ".cruft.json").write_text(json.dumps(state, indent=2))
    git(project, "commit", "-qam", "a pull request")
    before = git(project, "rev-parse", "HEAD")

    update = subprocess.run([*cruft, "update", "--skip-apply-ask"], cwd=project, capture_output=True, text=True)
    assert update.returncode == 1, update.stdout + update.stderr
    assert f"ERROR: {question}=" in update.stderr and "run as code" in update.stderr, update.stderr
    assert "Traceback" not in update.stderr and "│" not in update.stderr, update.stderr  # no (rich) traceback
    assert not marker.exists()
    assert git(project, "status", "--porcelain") == "" and git(project, "rev-parse", "HEAD") == before
    assert not (project / "NOTES.md").exists()
    diff = subprocess.run([*cruft, "diff"], cwd=project, capture_output=True, text=True)
    assert diff.returncode == 1 and f"ERROR: {question}=" in diff.stderr, diff.stdout + diff.stderr
    assert not marker.exists() and git(project, "status", "--porcelain") == ""


# -- the message after rendering ------------------------------------------------------------------------------


def test_the_command_says_where_the_project_is_and_what_to_run(tmp_path: Path) -> None:
    result = render_cli(Path("out"), "project_name=Team Board", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Created out/team_board " in result.stdout, result.stdout
    assert "cd out/team_board && ./run-local.sh" in result.stdout
    assert "out/team_board/README.md" in result.stdout
    assert (tmp_path / "out" / "team_board" / "run-local.sh").is_file()
    assert (tmp_path / "out" / "team_board" / "README.md").is_file()

    elsewhere = tmp_path / "elsewhere"
    result = render_cli(elsewhere, cwd=tmp_path / "out")
    assert re.search(rf"cd {re.escape(str(elsewhere))}/lakebase_app && \./run-local\.sh", result.stdout), result.stdout
