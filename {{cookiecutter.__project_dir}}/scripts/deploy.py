{%- set autoscaling = cookiecutter.__flavour == "autoscaling" -%}
"""Deploy a target in the order that keeps its app working, as you and as CI (.github/workflows/deploy.yml):

    python3 scripts/deploy.py deploy <target>   databricks bundle deploy, then the migrations as the owner role,
                                                then databricks bundle run: the new code starts only on a database
                                                that is at its revision
    python3 scripts/deploy.py migrate <target>  only the migrations, after a deploy
{%- if autoscaling %}
    python3 scripts/deploy.py rehearse          before prod: the new migrations on a short-lived branch of prod's
                                                project, then this code's own database check; prod is not touched
{%- endif %}

It logs in to Lakebase as whoever runs it: the Databricks CLI mints the credential with its own authentication
(your profile, or CI's GitHub OIDC), `python -m database.migrate upgrade` then runs `SET ROLE <owner>` and grants
the app's service principal what it needs (app/database/migrate.py). Run it from the project root, in an
environment with app/requirements.txt installed. The target's variables come from the bundle
(BUNDLE_VAR_pr_number for a preview).
"""

from __future__ import annotations

import argparse
import json
import os
{%- if autoscaling %}
import re
{%- endif %}
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP_KEY = "{{ cookiecutter.project_slug }}"
SUMMARY = os.environ.get("GITHUB_STEP_SUMMARY")


def say(line: str) -> None:
    print(f"deploy.py: {line}", flush=True)


def cli(*args: str) -> Any:
    """A Databricks CLI command's JSON output; stops with its error."""
    command = [os.environ.get("DATABRICKS_CLI", "databricks"), *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"databricks {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return json.loads(done.stdout or "null")


def bundle(*args: str) -> None:
    """A bundle command, its output shown as it runs."""
    say("databricks bundle " + " ".join(args))
    done = subprocess.run([os.environ.get("DATABRICKS_CLI", "databricks"), "bundle", *args], cwd=ROOT, check=False)
    if done.returncode != 0:
        sys.exit(done.returncode)


def resolved(target: str) -> dict[str, Any]:
    return cli("bundle", "validate", "-t", target, "-o", "json")


def the_app(config: dict[str, Any]) -> dict[str, Any]:
    return config["resources"]["apps"][APP_KEY]


def owner_role(config: dict[str, Any]) -> str | None:
    """The Postgres role the bundle declares to own the deployment's database (databricks.yml postgres_roles)."""
    role = (config["resources"].get("postgres_roles") or {}).get("owner")
    return role.get("postgres_role") if role else os.environ.get("DB_OWNER_ROLE")


def app_role(config: dict[str, Any]) -> str:
    """The app's service principal: its Postgres role name, which the migrations grant DML to."""
    app = cli("apps", "get", the_app(config)["name"], "-o", "json")
    return app["service_principal_client_id"]
{%- if autoscaling %}


REFERENCE = re.compile(r"\$\{resources\.(postgres_\w+)\.(\w+)\.name\}")
CHILD = {"postgres_branches": "branches", "postgres_databases": "databases", "postgres_roles": "roles"}


def name_of(config: dict[str, Any], value: str) -> str:
    """A Lakebase object's resource name, where `bundle validate` leaves a `${resources.<type>.<key>.name}` that
    only a deploy resolves: projects/<project_id>, then <parent>/branches/<branch_id> and so on (the names the
    Lakebase API gives, docs "Projects API")."""
    found = REFERENCE.fullmatch(value)
    if not found:
        return value
    kind, key = found[1], found[2]
    resource = config["resources"][kind][key]
    if kind == "postgres_projects":
        return f"projects/{resource['project_id']}"
    singular = CHILD[kind].removesuffix("es") if kind == "postgres_branches" else CHILD[kind].removesuffix("s")
    return f"{name_of(config, resource['parent'])}/{CHILD[kind]}/{resource[singular + '_id']}"


def postgres_resource(config: dict[str, Any]) -> dict[str, str]:
    """The app's `postgres` resource, its branch and database as resource names."""
    (resource,) = [r["postgres"] for r in the_app(config).get("resources") or [] if "postgres" in r]
    return {key: name_of(config, resource[key]) for key in ("branch", "database")}


def database_of(config: dict[str, Any], branch: str | None = None) -> tuple[str, str, str]:
    """(endpoint name, host, PostgreSQL database name) of the app's database, on `branch` if given (a branch of
    the same project holds a copy of the same database: Lakebase docs, "Branches")."""
    resource = postgres_resource(config)
    branch = branch or resource["branch"]
    database_id = resource["database"].rsplit("/", 1)[-1]
    listed = cli("postgres", "list-databases", branch, "-o", "json") or []
    names = [d["status"]["postgres_database"] for d in listed if d["name"].rsplit("/", 1)[-1] == database_id]
    if not names:
        sys.exit(f"no database {database_id} on {branch}: deploy first")
    endpoints = cli("postgres", "list-endpoints", branch, "-o", "json") or []
    writable = [e for e in endpoints if (e.get("status") or {}).get("endpoint_type") == "ENDPOINT_TYPE_READ_WRITE"]
    if not writable:
        sys.exit(f"{branch} has no read-write endpoint")
    return writable[0]["name"], writable[0]["status"]["hosts"]["host"], names[0]


def credential(endpoint: str) -> str:
    return cli("postgres", "generate-database-credential", endpoint, "-o", "json")["token"]
{%- else %}


def database_of(config: dict[str, Any]) -> tuple[str, str, str]:
    """(instance name, host, PostgreSQL database name) of the app's database."""
    (resource,) = [r["database"] for r in the_app(config).get("resources") or [] if "database" in r]
    instance = cli("database", "get-database-instance", resource["instance_name"], "-o", "json")
    return resource["instance_name"], instance["read_write_dns"], resource["database_name"]


def credential(instance: str) -> str:
    request = {"instance_names": [instance], "request_id": str(uuid.uuid4())}
    return cli("database", "generate-database-credential", "--json", json.dumps(request), "-o", "json")["token"]
{%- endif %}


def migrate(config: dict[str, Any], *args: str, branch: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m database.migrate <args>` from app/, logged in as whoever runs this."""
    where, host, database = database_of(config{{ ", branch" if autoscaling }})
    env = {
        **os.environ,
        "PGHOST": host,
        "PGDATABASE": database,
        "PGUSER": cli("current-user", "me", "-o", "json")["userName"],
        "PGPASSWORD": credential(where),
        "PGAPPNAME": "deploy.py",
    }
    env.setdefault("PGSSLMODE", "require")
    say(f"python -m database.migrate {' '.join(args)}  (database {database} on {where}, as {env['PGUSER']})")
    return subprocess.run(
        [sys.executable, "-m", "database.migrate", *args], cwd=ROOT / "app", env=env, capture_output=True, text=True
    )


def upgrade(config: dict[str, Any], branch: str | None = None) -> subprocess.CompletedProcess[str]:
    owner = owner_role(config)
    args = ["upgrade", "--app-role", app_role(config), *(["--owner-role", owner] if owner else [])]
    return migrate(config, *args, branch=branch)


def shown(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done


def deploy(target: str) -> int:
    bundle("deploy", "-t", target)
    if shown(upgrade(resolved(target))).returncode != 0:
        sys.exit(f"the migrations failed on {target}: the new code was not started (the app still runs the old)")
    bundle("run", APP_KEY, "-t", target)
    return 0
{%- if autoscaling %}


def rehearse() -> int:
    """The new migrations on a copy of prod's data: a branch of prod's project, created and deleted here."""
    config = resolved("prod")
    resource = postgres_resource(config)
    project, source = resource["branch"].rsplit("/branches/", 1)[0], resource["branch"]
    if not any(p["name"] == project for p in cli("postgres", "list-projects", "-o", "json") or []):
        say(f"{project} does not exist yet: nothing to rehearse on (the first deploy creates it)")
        return 0
    run = re.sub(r"[^a-z0-9-]", "-", os.environ.get("GITHUB_RUN_ID", uuid.uuid4().hex[:12]).lower())
    branch_id = f"rehearsal-{run}"[:63]
    branch = f"{project}/branches/{branch_id}"
    within_the_hour = {"source_branch": source, "ttl": "3600s"}  # gone within the hour even if the delete fails
    spec = {"spec": within_the_hour}
    say(f"branching {source} as {branch}")
    cli("postgres", "create-branch", project, branch_id, "--json", json.dumps(spec), "-o", "json")
    try:
        done = shown(upgrade(config, branch=branch))
        if done.returncode == 0:
            done = shown(migrate(config, "check", branch=branch))  # this code's own check: at its revision
        ok = done.returncode == 0
        report(ok, branch, done)
        return 0 if ok else 1
    finally:
        say(f"deleting {branch}")
        cli("postgres", "delete-branch", branch, "-o", "json")


def report(ok: bool, branch: str, done: subprocess.CompletedProcess[str]) -> None:
    """The outcome in the run summary; on a failure the migration's error (its log, never a row's data)."""
    if not SUMMARY:
        return
    with open(SUMMARY, "a", encoding="utf-8") as summary:
        if ok:
            summary.write(f"### Prod rehearsal: the migrations ran on {branch} and the database check passed\n")
            return
        errors = [line for line in (done.stdout + done.stderr).splitlines() if "ERROR" in line or "failed" in line]
        summary.write(f"### Prod rehearsal FAILED on {branch}: prod was not deployed\n\n```\n")
        summary.write("\n".join(errors[-20:]) or done.stderr[-2000:])
        summary.write("\n```\n")
{%- endif %}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("deploy", "migrate"):
        commands.add_parser(name).add_argument("target")
{%- if autoscaling %}
    commands.add_parser("rehearse")
{%- endif %}
    args = parser.parse_args(argv)
    if args.command == "deploy":
        return deploy(args.target)
    if args.command == "migrate":
        return shown(upgrade(resolved(args.target))).returncode
{%- if autoscaling %}
    return rehearse()
{%- else %}
    return 2
{%- endif %}


if __name__ == "__main__":
    sys.exit(main())
