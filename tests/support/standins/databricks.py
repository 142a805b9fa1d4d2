"""Stand-in `databricks` CLI: the behaviours the rendered workflows depend on, each from its source.

State lives in $STANDIN_WORKSPACE/workspace.json (the workspace: principals, objects, trash, remote deployment
states); every call is appended to $STANDIN_WORKSPACE/calls.jsonl with the identity it ran as.

A1 Auth: DATABRICKS_AUTH_TYPE=github-oidc exchanges the job's OIDC token for a workspace token of the service
   principal DATABRICKS_CLIENT_ID; the exchange succeeds only when one of that principal's federation policies
   names the token's subject (docs.databricks.com dev-tools/auth/provider-github, "Configure a federation policy").
A2 Configuration: the bundle is resolved by tests/support/bundle_resolver.py (each rule cites its CLI file), as the
   current user, with --var, BUNDLE_VAR_* and .databricks/bundle/<target>/variable-overrides.json; the postinit
   script runs with `bash -ec` in the bundle root (bundle/phases/initialize.go, bundle/scripts/scripts.go).
A3 Local state is .databricks/bundle/<target>/resources.json in the bundle root, keyed by target only
   (bundle/bundle.go GetLocalStateDir); remote state lives under workspace.root_path. Deploy and destroy read both;
   two states of different lineage fail with "lineage mismatch in state files" (bundle/statemgmt/state_pull.go
   validateStates; acceptance/bundle/destroy/lineage-mismatch-after-redeploy).
A4 Destroy deletes what the state holds and the remote root (bundle/deploy/files/delete.go) and leaves the local
   state; with no remote state it says "No active deployment found to destroy!" and succeeds.
A5 lifecycle.prevent_destroy on a resource makes destroy fail (bundle/phases/plan.go checkForPreventDestroy).
A6 Projects and branches are soft-deleted unless purge_on_delete is true (bundle/direct/dresources/postgres_project.go,
   postgres_branch.go DoDelete; bundle/schema/jsonschema.json purge_on_delete). Whether an id in the trash can be
   created again is NOT documented: this stand-in takes the cautious answer and refuses it (ALREADY_EXISTS).
A7 Creating an object whose id exists fails with ALREADY_EXISTS unless replace_existing (libs/testserver/postgres.go);
   a branch needs its project (404) and CAN MANAGE on it (docs: Lakebase "Manage branches"); listing branches needs
   CAN USE or CAN MANAGE. The creator of a project holds CAN MANAGE. A branch with ttl expires at creation + ttl
   (jsonschema.json postgres_branches.ttl); each new branch comes with its primary read-write endpoint
   (acceptance/bundle/resources/postgres_endpoints/replace_existing).
A8 `-o json` list commands print a JSON array (libs/cmdio/render.go RenderIterator).
A9 The deployment lock is off in development mode unless bundle.deployment.lock.enabled is true
   (bundle/config/mutator/resourcemutator/apply_target_mode.go): recorded per call as `lock`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support import bundle_resolver as br

WORKSPACE = Path(os.environ["STANDIN_WORKSPACE"])
STATE_FILE = WORKSPACE / "workspace.json"
BRANCH_LIMIT = 500  # docs: Lakebase "Manage projects", Project limits


class Refused(Exception):
    """The CLI (or the API behind it) refuses: message on stderr, exit 1."""


def load() -> dict[str, Any]:
    return json.loads(STATE_FILE.read_text())


def save(world: dict[str, Any]) -> None:
    STATE_FILE.write_text(json.dumps(world, indent=1, sort_keys=True))


def now(world: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(world.get("now") or datetime.now(UTC).isoformat())


def who_am_i(world: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A1: the service principal this process acts as."""
    if os.environ.get("DATABRICKS_AUTH_TYPE") != "github-oidc":
        raise Refused(f"unsupported auth type {os.environ.get('DATABRICKS_AUTH_TYPE')!r}")
    client_id = os.environ.get("DATABRICKS_CLIENT_ID", "")
    token = os.environ.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
    if not token.startswith("subject="):
        raise Refused("github-oidc: no OIDC token in this job (permissions: id-token: write)")
    principal = world["principals"].get(client_id)
    if principal is None:
        raise Refused(f"github-oidc: no service principal with client id {client_id!r}")
    if token.removeprefix("subject=") not in principal["trusts"]:
        raise Refused(
            f"github-oidc: no federation policy of {client_id} trusts subject {token.removeprefix('subject=')}"
        )
    return client_id, principal


def record(entry: dict[str, Any]) -> None:
    with (WORKSPACE / "calls.jsonl").open("a") as log:
        log.write(json.dumps(entry) + "\n")


# ------------------------------------------------------------------------------------------------ bundle
def resolved(argv: list[str], principal: dict[str, Any]) -> br.Deployment:
    target = argv[argv.index("-t") + 1]
    variables = dict(v.split("=", 1) for i, v in enumerate(argv) if i and argv[i - 1] == "--var")
    overrides = Path.cwd() / ".databricks" / "bundle" / target / "variable-overrides.json"
    user = br.User(principal["user_name"], principal.get("display_name", ""))
    try:
        deployment = br.resolve(
            br.load(Path.cwd() / "databricks.yml"),
            target,
            user,
            variables=variables,
            environ=dict(os.environ),
            overrides_file=json.loads(overrides.read_text()) if overrides.exists() else None,
        )
    except br.BundleError as error:
        raise Refused(f"Error: {error}") from error
    script = deployment.script("postinit")
    if script:  # A2
        done = subprocess.run(["bash", "-ec", script], capture_output=True, text=True, check=False)
        sys.stderr.write(done.stderr)
        if done.returncode != 0:
            raise Refused(f"Error: failed to execute script: exit status {done.returncode}")
    return deployment


def local_state_path(deployment: br.Deployment) -> Path:
    return Path.cwd() / ".databricks" / "bundle" / deployment.target / "resources.json"  # A3


def pulled_state(world: dict[str, Any], deployment: br.Deployment) -> dict[str, Any] | None:
    """A3: the newest of local and remote state, after the lineage check."""
    remote = world["remote_states"].get(deployment.config["workspace"]["root_path"])
    path = local_state_path(deployment)
    local = json.loads(path.read_text()) if path.exists() else None
    if remote and local and remote["lineage"] != local["lineage"]:
        raise Refused("Error: lineage mismatch in state files")
    candidates = [s for s in (remote, local) if s]
    if not candidates:
        return None
    newest = max(candidates, key=lambda s: s["serial"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(newest))  # pulled into the local state dir (state_pull.go)
    return newest


def deploy(world: dict[str, Any], deployment: br.Deployment, client_id: str) -> None:
    state = pulled_state(world, deployment) or {"lineage": str(uuid.uuid4()), "serial": 0, "objects": {}}
    mine = set(state["objects"])
    order = sorted(deployment.resources, key=lambda k: _depth(deployment, k))
    for key in order:
        kind, _ = key
        name = deployment.identities[key]
        spec = deployment.resources[key]
        obj_id = f"{kind}:{name}"
        if not (obj_id in mine and obj_id in world["objects"]):
            create(world, kind, name, spec, client_id)
        world["objects"][obj_id]["spec"] = spec
        # the state keeps what destroy will need, purge_on_delete included (postgres_branch.go, DoDelete)
        state["objects"][obj_id] = {"purge": bool(spec.get("purge_on_delete")), "spec": spec}
    state["serial"] += 1
    world["remote_states"][deployment.config["workspace"]["root_path"]] = state
    path = local_state_path(deployment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state))


def _depth(deployment: br.Deployment, key: tuple[str, str]) -> int:
    parents = [p for c, p in deployment.edges if c == key]
    return 1 + max((_depth(deployment, p) for p in parents), default=0)


def create(world: dict[str, Any], kind: str, name: str, spec: dict[str, Any], client_id: str) -> None:
    """A6, A7."""
    obj_id = f"{kind}:{name}"
    if obj_id in world["trash"]:
        raise Refused(f"Error: ALREADY_EXISTS: {name} is soft-deleted and its id is still taken")
    if obj_id in world["objects"]:
        if spec.get("replace_existing"):
            world["objects"][obj_id]["spec"] = spec
            return
        raise Refused(f"Error: ALREADY_EXISTS: {name}")
    entry: dict[str, Any] = {"spec": spec, "creator": client_id}
    if kind == "postgres_branches":
        project = name.split("/branches/")[0]
        if f"postgres_projects:{project}" not in world["objects"]:
            raise Refused(f"Error: NOT_FOUND: project {project}")
        if not can(world, project, client_id, "CAN_MANAGE"):
            raise Refused(f"Error: PERMISSION_DENIED: creating a branch needs CAN MANAGE on {project}")
        if sum(o.startswith(f"postgres_branches:{project}/") for o in world["objects"]) >= BRANCH_LIMIT:
            raise Refused(f"Error: RESOURCE_EXHAUSTED: {project}")
        if spec.get("ttl"):
            entry["expire_time"] = (now(world) + timedelta(seconds=int(spec["ttl"].rstrip("s")))).isoformat()
        world["objects"][f"postgres_endpoints:{name}/endpoints/primary"] = {"spec": {"endpoint_type": "RW"}}
    if kind == "postgres_projects":
        world["objects"][f"postgres_branches:{name}/branches/production"] = {"spec": {}, "creator": client_id}
        world["objects"][f"postgres_endpoints:{name}/branches/production/endpoints/primary"] = {"spec": {}}
    if kind == "apps":
        entry["url"] = f"https://{name}-1234.aws.databricksapps.com"
    world["objects"][obj_id] = entry


def can(world: dict[str, Any], project: str, client_id: str, level: str) -> bool:
    obj = world["objects"].get(f"postgres_projects:{project}") or {}
    if obj.get("creator") == client_id:
        return True
    granted = {(p["level"], p.get("service_principal_name")) for p in obj.get("spec", {}).get("permissions") or []}
    user = world["principals"][client_id]["user_name"]
    return (level, user) in granted or ("CAN_MANAGE", user) in granted


def destroy(world: dict[str, Any], deployment: br.Deployment) -> None:
    root = deployment.config["workspace"]["root_path"]
    state = pulled_state(world, deployment)
    if state is None or root not in world["remote_states"]:
        print("No active deployment found to destroy!")  # A4
        return
    for key, spec in deployment.resources.items():  # A5
        if (spec.get("lifecycle") or {}).get("prevent_destroy") is True:
            raise Refused(f"Error: resource {key[0]}.{key[1]} has lifecycle.prevent_destroy set")
    me = world["principals"][os.environ["DATABRICKS_CLIENT_ID"]]["user_name"]
    for obj_id in state["objects"]:  # deleting an app needs CAN_MANAGE on it (Apps docs, permission levels)
        app = world["objects"].get(obj_id) if obj_id.startswith("apps:") else None
        grants = {
            (p["level"], p.get("service_principal_name")) for p in (app or {}).get("spec", {}).get("permissions", [])
        }
        if app and grants and ("CAN_MANAGE", me) not in grants:
            raise Refused(f"Error: PERMISSION_DENIED: {me} cannot delete {obj_id}")
    for obj_id, meta in sorted(state["objects"].items(), key=lambda item: -item[0].count("/")):
        kind, name = obj_id.split(":", 1)
        for other in [o for o in world["objects"] if o.split(":", 1)[1].startswith(name + "/")]:
            del world["objects"][other]  # children go with their branch or project
        world["objects"].pop(obj_id, None)
        if kind in ("postgres_projects", "postgres_branches") and not meta["purge"]:
            world["trash"].append(obj_id)  # A6
        elif kind == "postgres_projects":  # purged, with whatever of it was in the trash
            world["trash"] = [t for t in world["trash"] if not t.split(":", 1)[1].startswith(name + "/")]
    del world["remote_states"][root]  # the local state stays (A4)


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str]) -> int:
    world = load()
    entry: dict[str, Any] = {"argv": argv, "client_id": os.environ.get("DATABRICKS_CLIENT_ID", "")}
    entry["cwd"] = os.getcwd()
    entry["bundle_vars"] = {k: v for k, v in os.environ.items() if k.startswith("BUNDLE_VAR_")}
    try:
        client_id, principal = who_am_i(world)
        entry["user"] = principal["user_name"]
        output = dispatch(world, argv, client_id, principal, entry)
    except Refused as refused:
        entry["exit"] = 1
        record(entry)
        print(str(refused), file=sys.stderr)
        return 1
    save(world)
    entry["exit"] = 0
    record(entry)
    if output is not None:
        print(output if isinstance(output, str) else json.dumps(output))
    return 0


def dispatch(world: dict[str, Any], argv: list[str], client_id: str, principal: dict[str, Any], entry: dict) -> Any:
    command = " ".join(argv[:2])
    if command in ("bundle validate", "bundle deploy", "bundle destroy", "bundle run"):
        deployment = resolved(argv, principal)
        entry["target"] = deployment.target
        entry["lock"] = (deployment.config["bundle"].get("deployment") or {}).get("lock", {}).get(
            "enabled"
        ) is True or (deployment.config["bundle"].get("mode") != "development")
        if command == "bundle validate":
            config = {**deployment.config, "resources": _nested(deployment.raw_resources)}
            return config if "json" in argv else f"Validation OK! ({deployment.target})"
        if command == "bundle deploy":
            deploy(world, deployment, client_id)
            return "Deployment complete!"
        if command == "bundle destroy":
            if "--auto-approve" not in argv:
                raise Refused(
                    "Error: please specify --auto-approve since terminal does not support interactive prompts"
                )
            destroy(world, deployment)
            return "Destroy complete!"
        app = deployment.resources[("apps", argv[2])]["name"]
        if f"apps:{app}" not in world["objects"]:
            raise Refused(f"Error: app {app} does not exist: deploy first")
        return f"App {app} started"
    if command == "apps list":
        return [
            {"name": n.split(":", 1)[1], "url": o.get("url")}
            for n, o in world["objects"].items()
            if n.startswith("apps:")
        ]
    if command == "apps get":
        obj = world["objects"].get(f"apps:{argv[2]}")
        if obj is None:
            raise Refused(f"Error: App with name {argv[2]} does not exist or is deleted.")
        return {"name": argv[2], "url": obj["url"]}
    if command == "postgres list-branches":
        project = argv[2]
        if f"postgres_projects:{project}" not in world["objects"]:
            raise Refused(f"Error: NOT_FOUND: project {project}")
        if not can(world, project, client_id, "CAN_USE"):
            raise Refused(f"Error: PERMISSION_DENIED: listing branches needs CAN USE on {project}")
        return [
            {
                "name": n.split(":", 1)[1],
                "branch_id": n.rsplit("/", 1)[-1],
                "status": {"expire_time": o.get("expire_time")},
            }
            for n, o in world["objects"].items()
            if n.startswith(f"postgres_branches:{project}/branches/")
        ]
    raise Refused(f"Error: the stand-in does not know `databricks {command}`")


def _nested(resources: dict[tuple[str, str], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for (kind, key), spec in resources.items():
        nested.setdefault(kind, {})[key] = spec
    return nested


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
