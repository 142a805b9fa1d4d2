"""What .github/workflows/deploy.yml asks about pull-request previews, with the Databricks CLI and GitHub's gh.

    python3 scripts/previews.py room      before a preview deploy: stop, saying so, when staging's project has no
                                          room for one more branch
    python3 scripts/previews.py url       after it: the preview's URL (for the log and the run summary)
    python3 scripts/previews.py orphans   the nightly sweep: `numbers=[...]`, the previews to destroy
    python3 scripts/previews.py gone      after a destroy: stop, saying what is left, unless the preview's app is
                                          gone (or being deleted) and its branch too

A preview is app `<prefix>-pr-<N>` with branch `pr-<N>` of staging's project (databricks.yml, target preview).
It is an orphan when its pull request is not open, when its app outlives its branch, or when its branch expires
within SWEEP_AHEAD: the branch's ttl counts from its creation and a push does not renew it, so the sweep takes the
whole preview (app included) first, and the next push builds it again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

# docs.databricks.com, Lakebase "Manage projects", Project limits: at most 500 branches per project
BRANCHES_PER_PROJECT = 500
SWEEP_AHEAD = timedelta(hours=36)  # the sweep runs daily: a preview never outlives its branch


def run_json(*command: str, hint: str = "") -> Any:
    """A command's JSON output (the CLI's list commands print a JSON array with -o json)."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} failed: {done.stderr.strip()}{hint}")
    return json.loads(done.stdout or "null")


def list_branches(project: str, hint: str = "") -> list[dict[str, Any]]:
    return run_json("databricks", "postgres", "list-branches", project, "-o", "json", hint=hint) or []


def preview_bundle(pr_number: str) -> dict[str, Any]:
    """The preview target as the CLI resolves it for a pull request number."""
    env = {**os.environ, "BUNDLE_VAR_pr_number": pr_number}
    done = subprocess.run(
        ["databricks", "bundle", "validate", "-t", "preview", "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"databricks bundle validate -t preview failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def project_of(bundle: dict[str, Any]) -> str:
    return bundle["resources"]["postgres_branches"]["lakebase"]["parent"]


def app_of(bundle: dict[str, Any]) -> str:
    (app,) = bundle["resources"]["apps"].values()
    return app["name"]


def room(pr_number: str) -> int:
    bundle = preview_bundle(pr_number)
    project = project_of(bundle)
    first = f"\nPreviews branch from staging's project {project}: push to main once to deploy staging first."
    branches = list_branches(project, hint=first)
    mine = f"{project}/branches/pr-{pr_number}"
    if any(b.get("name") == mine for b in branches) or len(branches) < BRANCHES_PER_PROJECT:
        return 0
    print(
        f"::error::No preview for pull request #{pr_number}: Lakebase project {project} already holds "
        f"{len(branches)} branches, and a project holds at most {BRANCHES_PER_PROJECT} (Lakebase docs, Manage "
        "projects, Project limits). Close pull requests you no longer need (their previews are destroyed) or run "
        "the deploy workflow by hand to sweep previews of closed pull requests.",
        file=sys.stderr,
    )
    return 1


def url(pr_number: str) -> int:
    app = run_json("databricks", "apps", "get", app_of(preview_bundle(pr_number)), "-o", "json")
    print(f"Preview of pull request #{pr_number}: {app.get('url') or '(no URL yet)'}")
    return 0


def found(*command: str) -> dict[str, Any] | None:
    """A `get` command's JSON, or None when the object does not exist."""
    done = subprocess.run([*command, "-o", "json"], capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return json.loads(done.stdout)
    if re.search(r"not found|does not exist|NOT_FOUND|RESOURCE_DOES_NOT_EXIST", done.stderr):
        return None
    sys.exit(f"{' '.join(command[:3])} failed: {done.stderr.strip()}")


def gone(pr_number: str) -> int:
    """`bundle destroy` ignores a permission error on a delete and forgets the object (databricks/cli
    bundle/direct/apply.go, Delete), so it can exit 0 with the preview still there: look."""
    bundle = preview_bundle(pr_number)
    left = []
    app = found("databricks", "apps", "get", app_of(bundle))
    if app is not None and (app.get("compute_status") or {}).get("state") != "DELETING":
        left.append(f"app {app_of(bundle)}")
    branch = f"{project_of(bundle)}/branches/pr-{pr_number}"
    if found("databricks", "postgres", "get-branch", branch) is not None:
        left.append(f"branch {branch}")
    if not left:
        return 0
    print(
        f"::error::The preview of pull request #{pr_number} was destroyed but {' and '.join(left)} still "
        "exist: the preview identity could not delete them (it needs CAN_MANAGE on the app and CAN_USE on staging's "
        "project; the CLI forgets an object it may not delete). Delete them by hand or give the rights back.",
        file=sys.stderr,
    )
    return 1


PR_NUMBER = re.compile(r"[1-9][0-9]*")  # a pull request's number, as it ends a preview's app and branch names


def number_after(prefix: str, name: str) -> str | None:
    """N when ``name`` is ``<prefix>N``, else None (another app or branch)."""
    number = name.removeprefix(prefix)
    return number if name.startswith(prefix) and PR_NUMBER.fullmatch(number) else None


def open_pull_requests() -> set[str]:
    repository = os.environ["GITHUB_REPOSITORY"]
    listed = run_json(
        "gh", "pr", "list", "--repo", repository, "--state", "open", "--limit", "1000", "--json", "number"
    )
    return {str(pr["number"]) for pr in listed}


def preview_apps(prefix: str) -> set[str]:
    """The numbers of the pull requests whose preview app exists. An app being deleted stays listed, in compute
    state DELETING, for a while (the cloud's DELETE lifecycle, as databricks/cli libs/testserver/apps.go
    AppsDelete models it): it is no orphan, its destroy already ran."""
    numbers = set()
    for app in run_json("databricks", "apps", "list", "-o", "json") or []:
        number = number_after(prefix, app.get("name", ""))
        if number and (app.get("compute_status") or {}).get("state") != "DELETING":
            numbers.add(number)
    return numbers


def preview_branches(project: str) -> dict[str, datetime | None]:
    """The numbers of the pull requests whose preview branch exists, and when each branch expires (None: never)."""
    expiry = {}
    for branch in list_branches(project):
        number = number_after("pr-", branch.get("branch_id") or branch["name"].rsplit("/", 1)[-1])
        if number:
            expires = (branch.get("status") or {}).get("expire_time")
            expiry[number] = datetime.fromisoformat(expires) if expires else None
    return expiry


def orphans(now: datetime) -> int:
    bundle = preview_bundle("1")  # the preview of pull request 1: every preview's names differ only by the number
    apps = preview_apps(prefix=app_of(bundle).removesuffix("1"))
    expiry = preview_branches(project_of(bundle))
    is_open = open_pull_requests()
    why = {}
    for number in sorted(apps | set(expiry), key=int):
        if number not in is_open:
            why[number] = "its pull request is not open"
        elif number not in expiry:
            why[number] = "its app outlived its branch"
        elif expiry[number] is not None and expiry[number] - now < SWEEP_AHEAD:
            why[number] = f"its branch expires at {expiry[number].isoformat()}"
    for number, reason in why.items():
        print(f"preview of pull request #{number}: {reason}", file=sys.stderr)
    print("numbers=" + json.dumps([int(n) for n in why]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", choices=["room", "url", "orphans", "gone"])
    args = parser.parse_args(argv)
    if args.question == "orphans":
        return orphans(datetime.now(UTC))
    pr_number = os.environ.get("BUNDLE_VAR_pr_number", "")
    if not pr_number:
        sys.exit("BUNDLE_VAR_pr_number is not set: the workflow sets it to the pull request's number")
    return {"room": room, "url": url, "gone": gone}[args.question](pr_number)


if __name__ == "__main__":
    sys.exit(main())
