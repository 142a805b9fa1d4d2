"""Checks what a bundle cannot check itself, before anything is deployed.

databricks.yml runs it as its postinit script with the resolved names of the selected target. It stops the
command with a message that names the variable to set when a name is too long or malformed, when a preview
has no pull request number, or when staging does not name the preview identity its project grants. Apps
names: lowercase letters, digits and hyphens, at most 30 characters; Lakebase project ids: at most 63
(databricks/cli bundle/schema/jsonschema.json, postgres_projects.project_id).
"""

import argparse
import re
import sys

APP_NAME = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")
APP_NAME_MAX = 30
LAKEBASE_ID = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?")
LAKEBASE_ID_MAX = 63
PR_NUMBER = re.compile(r"[1-9][0-9]{0,13}")

# the variable a person sets to fix a name, per target
FIX = {
    "dev": "dev_name, a short name of yours (--var dev_name=jdoe, or .databricks/bundle/dev/variable-overrides.json)",
    "preview": "pr_number (--var pr_number=<the pull request number>)",
}
FIX_DEFAULT = "app_name in this target's variables in databricks.yml"


def problems(
    target: str, app_name: str, lakebase_project: str = "", pr_number: str = "", preview_identity: str | None = None
) -> list[str]:
    """Everything wrong with the names a target resolved to; empty when all is well."""
    fix = FIX.get(target, FIX_DEFAULT)
    found = []
    if target == "staging" and preview_identity is not None and not preview_identity.strip():
        found.append(
            "target staging grants its project to the preview identity, which is not set: set preview_identity "
            "(its application id) in targets.staging.variables in databricks.yml"
        )
    if target == "preview" and not PR_NUMBER.fullmatch(pr_number):
        found.append(f"target preview needs the pull request number, got {pr_number!r}: set {FIX['preview']}")
    if len(app_name) > APP_NAME_MAX:
        found.append(
            f"app name {app_name!r} has {len(app_name)} characters, Databricks Apps allow {APP_NAME_MAX}: set {fix}"
        )
    elif not APP_NAME.fullmatch(app_name):
        found.append(f"app name {app_name!r} is not lowercase letters, digits and inner hyphens: set {fix}")
    if lakebase_project and (len(lakebase_project) > LAKEBASE_ID_MAX or not LAKEBASE_ID.fullmatch(lakebase_project)):
        found.append(
            f"Lakebase project id {lakebase_project!r} must be 1-{LAKEBASE_ID_MAX} lowercase letters, digits and "
            f"hyphens: set {fix if target == 'dev' else 'lakebase_project'}"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--app-name", required=True)
    parser.add_argument("--lakebase-project", default="")
    parser.add_argument("--pr-number", default="")
    parser.add_argument("--preview-identity", default=None)  # passed where staging grants its project to it
    args = parser.parse_args(argv)
    found = problems(args.target, args.app_name, args.lakebase_project, args.pr_number, args.preview_identity)
    for problem in found:
        print(f"databricks.yml, target {args.target}: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
