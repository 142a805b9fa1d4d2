"""What a fake workspace holds, read through the real CLI (`apps get`, `permissions get`, `postgres list-*`).

The testserver serves no app listing (GET /api/2.0/apps has no handler), so apps are read by the names the
deployments resolved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.databricks_cli import Cli


class WorkspaceView:
    def __init__(self, cli: Cli, cwd: Path) -> None:
        self.cli = cli
        self.cwd = cwd

    def _json(self, *args: str, check: bool = True) -> Any:
        done = self.cli.run(*args, "-o", "json", cwd=self.cwd, check=check)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def app(self, name: str) -> dict[str, Any] | None:
        """The app, or None once it is gone (deleted, or on its way: the testserver keeps it as DELETING)."""
        found = self._json("apps", "get", name, check=False)
        if found is None or found.get("compute_status", {}).get("state") == "DELETING":
            return None
        return found

    def app_grants(self, name: str) -> set[tuple[str, str]]:
        acl = self._json("permissions", "get", "apps", name)["access_control_list"]
        return {
            (level["permission_level"], e.get("user_name") or e.get("group_name") or e.get("service_principal_name"))
            for e in acl
            for level in e["all_permissions"]
        }

    def projects(self) -> set[str]:
        return {p["name"] for p in self._json("postgres", "list-projects") or []}

    def branches(self, project: str) -> set[str]:
        return {b["name"] for b in self._json("postgres", "list-branches", project, check=False) or []}

    def databases(self, branch: str) -> dict[str, dict[str, Any]]:
        return {d["name"]: d for d in self._json("postgres", "list-databases", branch, check=False) or []}

    def roles(self, branch: str) -> set[str]:
        return {r["name"] for r in self._json("postgres", "list-roles", branch, check=False) or []}

    def present(self, names: set[str]) -> set[str]:
        """Which of these projects, branches, databases and roles (by name) the workspace holds: one listing per
        collection they live in (a listing under a parent that is gone counts as empty)."""
        found: set[str] = set()
        if any(n.count("/") == 1 for n in names):
            found |= self.projects() & names
        for project in {"/".join(n.split("/")[:2]) for n in names if n.count("/") == 3}:
            found |= self.branches(project) & names
        for collection, listing in (("databases", self.databases), ("roles", self.roles)):
            for branch in {n.split(f"/{collection}/")[0] for n in names if f"/{collection}/" in n}:
                found |= set(listing(branch)) & names
        return found

    def snapshot(self, app_names: list[str], lakebase: set[str]) -> dict[str, Any]:
        """What must not change: these apps (resources, grants, compute) and these Lakebase objects."""
        apps = {}
        for name in app_names:
            app = self.app(name)
            apps[name] = app and {
                "resources": app.get("resources"),
                "compute": app["compute_status"]["state"],
                "grants": self.app_grants(name),
            }
        return {"apps": apps, "lakebase": self.present(lakebase)}
