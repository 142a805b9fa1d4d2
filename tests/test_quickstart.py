"""The README's quick start works as written on a machine whose Python forbids system-wide pip installs.

The "system" Python here is a venv made `--without-pip` with `PIP_REQUIRE_VIRTUALENV=1` set, so a
`python3 -m pip install cookiecutter` line fails as it does on Debian 12 / Ubuntu 24.04 (PEP 668); nothing else
is on PATH but /usr/bin and /bin (no uv, no pipx: stock Debian has neither).
"""

import os
import re
import subprocess
import venv
from pathlib import Path

import pytest

from tests.support.template import ROOT
from tests.support.waiting import HANG_GUARD


def quickstart_blocks() -> list[list[str]]:
    """The commands of each ```bash block under "## Quick start", in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quick start") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [[ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")] for block in blocks]


def with_arguments(line: str, arguments: str) -> str:
    """The line with ``arguments`` appended to its command, before a trailing ``  # comment``."""
    command, _, comment = line.partition("  # ")
    return f"{command} {arguments}" + (f"  # {comment}" if comment else "")


@pytest.fixture(scope="module")
def clean_machine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("quickstart")
    system = base / "system-python"
    venv.EnvBuilder(with_pip=False).create(system)  # a python3 that cannot pip install anything
    on_path = base / "bin"
    on_path.mkdir()  # what a user installed themselves: nothing
    home = base / "home"
    home.mkdir()
    env = {
        "PATH": f"{on_path}:{system / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "PIP_REQUIRE_VIRTUALENV": "1",
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "LANG": "C.UTF-8",
    }
    # A PyPI reached through a proxy whose CA is in the system store (pip.conf names it); a laptop needs neither.
    for name in ("SSL_CERT_FILE", "PIP_CONFIG_FILE"):
        if name in os.environ:
            env[name] = os.environ[name]
    if Path("/etc/ssl/certs/ca-certificates.crt").exists():
        env.setdefault("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
    return base, env


def test_the_old_pip_line_fails_here(clean_machine: tuple[Path, dict[str, str]]) -> None:
    base, env = clean_machine
    old = subprocess.run(
        ["bash", "-c", 'python3 -m pip install --quiet "cookiecutter>=2.6,<3"'],
        capture_output=True,
        text=True,
        env=env,
        cwd=base,
        timeout=HANG_GUARD,
    )
    assert old.returncode != 0, "this environment must forbid system pip installs"
    which = subprocess.run(["bash", "-c", "command -v python3"], capture_output=True, text=True, env=env).stdout
    assert which.strip() == str(base / "system-python" / "bin" / "python3")


def test_quick_start_renders_the_project_its_next_lines_use(clean_machine: tuple[Path, dict[str, str]]) -> None:
    render_block, in_project = quickstart_blocks()
    assert len(render_block) == 1, f"one render line, not {render_block}"
    base, env = clean_machine
    out = base / "out"
    line = render_block[0].replace("gh:org/lakebase-app", str(ROOT))
    assert str(ROOT) in line, line
    line = with_arguments(line, f"--no-input -o {out}")  # Enter at every question
    result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, cwd=base, timeout=HANG_GUARD)
    assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
    assert not list((base / "system-python").rglob("cookiecutter")), "cookiecutter went into the system Python"
    # The next lines: cd into what Enter everywhere renders, its run-local.sh, its bundle's dev target and app key.
    assert in_project[0].startswith("cd "), in_project
    project = out / in_project[0].removeprefix("cd ").strip()
    bundle = (project / "databricks.yml").read_text()
    for command in in_project[1:]:
        words = command.partition("  #")[0].split()
        if words[0] == "./run-local.sh":
            assert (project / "run-local.sh").stat().st_mode & 0o100, "run-local.sh is executable"
        else:
            assert words[:3] in (["databricks", "bundle", "deploy"], ["databricks", "bundle", "run"]), command
            assert "-t" in words and f"\n  {words[words.index('-t') + 1]}:" in bundle, f"no such target: {command}"
            if words[2] == "run":
                assert f"\n    {words[3]}:\n      name: ${{var.app_name}}" in bundle, f"no app {words[3]}: {command}"
