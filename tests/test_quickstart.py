"""The README's quick start works as written where system-wide pip installs are forbidden (PEP 668 systems).

The "system" Python here is a venv made `--without-pip` with `PIP_REQUIRE_VIRTUALENV=1` set, so the old
`python3 -m pip install cookiecutter` line fails as it does on Debian 12 / Ubuntu 24.04. uv and pipx come from
PyPI into a directory of their own (as `pipx install uv` / `apt install pipx` would put them on PATH); nothing
else is on PATH but /usr/bin and /bin.
"""

import os
import re
import subprocess
import venv
from pathlib import Path

import pytest

from tests.support.template import ROOT
from tests.support.waiting import HANG_GUARD


def quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quick start") : readme.index("### Prerequisites")]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def clean_machine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    base = tmp_path_factory.mktemp("quickstart")
    system = base / "system-python"
    venv.EnvBuilder(with_pip=False).create(system)  # a python3 that cannot pip install anything
    tools = base / "tools"
    venv.EnvBuilder(with_pip=True).create(tools)
    subprocess.run(
        [str(tools / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "uv", "pipx"],
        check=True,
        timeout=HANG_GUARD,
    )
    on_path = base / "bin"
    on_path.mkdir()
    for tool in ("uv", "uvx", "pipx"):
        (on_path / tool).symlink_to(tools / "bin" / tool)
    home = base / "home"
    home.mkdir()
    env = {
        "PATH": f"{on_path}:{system / 'bin'}:/usr/bin:/bin",
        "HOME": str(home),
        "PIP_REQUIRE_VIRTUALENV": "1",
        "UV_PYTHON_DOWNLOADS": "never",  # use the machine's python, as on a laptop
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "PIPX_HOME": str(home / ".local" / "pipx"),
        "LANG": "C.UTF-8",
    }
    # This machine reaches PyPI through a proxy whose CA is in the system store (pip.conf names it for pip);
    # uv trusts its own bundle unless told, a laptop needs neither.
    for name in ("SSL_CERT_FILE", "UV_NATIVE_TLS"):
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


@pytest.mark.parametrize("number", range(3))
def test_quick_start_line_renders_a_project(clean_machine: tuple[Path, dict[str, str]], number: int) -> None:
    commands = quickstart_commands()
    assert len(commands) == 3, commands
    base, env = clean_machine
    out = base / f"out{number}"
    line = commands[number].replace("gh:org/lakebase-app", str(ROOT))
    assert str(ROOT) in line, line
    line += f" --no-input -o {out} 'project_name=Quick {number}'"
    result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, cwd=base, timeout=HANG_GUARD)
    assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
    project = out / f"quick_{number}"
    assert (project / "databricks.yml").is_file() and (project / "run-local.sh").is_file()
    assert not list((base / "system-python").rglob("cookiecutter")), "cookiecutter went into the system Python"
