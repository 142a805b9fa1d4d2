"""The rendered project's "Add a feature" walkthrough (docs/add-a-feature.md), followed literally in a rendered project of each framework:
a `notes` feature with its own table (and row-level security), migration, queries and operations, and its JSON API
and a line on the page (Flask, FastAPI), its section (Dash), its tab (Gradio) or its page (Streamlit). The app is
then started with its app.yaml command against the PostgreSQL + workspace stub harness and the feature used as two
users through the framework's real interface; no file of the items feature changed, and items still work."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness.ports import free_port
from tests.support import apprunner, feature_walkthrough
from tests.support.appenv import app_python
from tests.support.http_api import ALICE, BOB, HttpApi
from tests.support.template import render
from tests.support.waiting import HANG_GUARD

pytestmark = pytest.mark.e2e

COMBOS = [
    {"framework": "flask", "driver": "psycopg3"},
    {"framework": "fastapi", "driver": "asyncpg"},
    {"framework": "dash", "driver": "sqlalchemy"},
    {"framework": "gradio", "driver": "asyncpg"},
    {"framework": "streamlit", "driver": "psycopg2"},
]
# What the walkthrough may edit besides the files it creates: the app's entry point and, for the JSON APIs, the page.
SHARED = {"app/main.py", "app/static/index.html"}


def fingerprints(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def notes_in_db(pg_server: Any, dbname: str) -> list[tuple[str, str]]:
    return pg_server.query("SELECT owner, text FROM app_data.notes ORDER BY id", dbname=dbname)


def row_security_forced(pg_server: Any, dbname: str) -> bool:
    sql = "SELECT relforcerowsecurity FROM pg_class WHERE oid = 'app_data.notes'::regclass"
    return pg_server.query(sql, dbname=dbname)[0][0]


def use_json_api(url: str) -> None:
    def post(user: str, body: Any) -> requests.Response:
        return requests.post(f"{url}/api/notes", json=body, headers={"X-Forwarded-Email": user}, timeout=HANG_GUARD)

    def listed(user: str) -> list[str]:
        r = requests.get(f"{url}/api/notes", headers={"X-Forwarded-Email": user}, timeout=HANG_GUARD)
        assert r.status_code == 200, (r.status_code, r.text)
        return [note["text"] for note in r.json()]

    created = post(ALICE, {"text": "  first note "})
    assert created.status_code == 201 and created.json()["text"] == "first note", created.text
    assert set(created.json()) == {"id", "text"}
    for bad in ({"text": ""}, {"text": "x" * 501}, {"text": 5}):
        refused = post(ALICE, bad)  # the app's one error body, from the feature's InputError or the body's shape
        assert refused.status_code == 400 and refused.json()["field"] == "text", (bad, refused.text)
        assert set(refused.json()) == {"error", "field"}
    assert post(ALICE, {"text": "x", "extra": 1}).json() == {"error": "unknown field 'extra'", "field": "extra"}
    assert post(BOB, {"text": "bob's"}).status_code == 201
    assert listed(ALICE) == ["first note"] and listed(BOB) == ["bob's"]
    page = requests.get(url, timeout=HANG_GUARD).text
    assert '<script src="/static/notes.js" defer></script>' in page
    script = requests.get(f"{url}/static/notes.js", timeout=HANG_GUARD)
    assert script.status_code == 200 and 'fetch("/api/notes")' in script.text


def use_dash(url: str) -> None:
    deps = requests.get(f"{url}/_dash-dependencies", timeout=HANG_GUARD).json()
    (output,) = [d["output"] for d in deps if "notes.children" in d["output"]]

    def add(user: str, clicks: int, text: Any) -> tuple[list[str], str]:
        body = {
            "output": output,
            "outputs": [{"id": "notes", "property": "children"}, {"id": "note-message", "property": "children"}],
            "inputs": [{"id": "add-note", "property": "n_clicks", "value": clicks}],
            "state": [{"id": "new-note", "property": "value", "value": text}],
            "changedPropIds": ["add-note.n_clicks"] if clicks else [],
        }
        r = requests.post(
            f"{url}/_dash-update-component", json=body, headers={"X-Forwarded-Email": user}, timeout=HANG_GUARD
        )
        assert r.status_code == 200, (r.status_code, r.text)
        shown = r.json()["response"]
        return [li["props"]["children"] for li in shown["notes"]["children"]], shown["note-message"]["children"]

    assert add(ALICE, 1, "first note") == (["first note"], "")
    assert add(ALICE, 2, "") == ([], "text must be a non-empty string")
    assert add(BOB, 0, None) == ([], "")  # the first call on a page load: the list only
    assert add(ALICE, 0, None) == (["first note"], "")


def use_gradio(driver: apprunner.Driver) -> None:
    def texts(table: Any) -> list[str]:
        data = table["data"] if isinstance(table, dict) else table
        return [row[0] for row in data or []]

    table, cleared = driver.call("predict", user=ALICE, api_name="/create_note", args=["first note"])
    assert texts(table) == ["first note"] and cleared == ""
    with pytest.raises(apprunner.DriverError, match="text must be a non-empty string"):
        driver.call("predict", user=ALICE, api_name="/create_note", args=[""])
    assert texts(driver.call("predict", user=BOB, api_name="/list_notes", args=[])) == []
    assert texts(driver.call("predict", user=ALICE, api_name="/list_notes", args=[])) == ["first note"]


# AppTest on main.py, then to the notes page the way the sidebar goes there (switch_page); the user as the proxy
# names it (the same st.context patch as the end-to-end Streamlit driver).
STREAMLIT_NOTES = """
import json, os, sys
import streamlit.runtime.context as context
from streamlit.testing.v1 import AppTest
user, text = sys.argv[1], sys.argv[2]
context.ContextProxy.headers = property(lambda self: context.StreamlitHeaders([("X-Forwarded-Email", user)]))
sys.path.insert(0, os.getcwd())
at = AppTest.from_file(os.path.join(os.getcwd(), "main.py"), default_timeout=float(os.environ["HANG_GUARD"]))
at.run()
at.switch_page("pages/notes.py")
at.run()
if text:
    at.text_input[0].input(text)
    [button for button in at.button if button.label == "Add"][0].click()
    at.run()
print(json.dumps({"titles": [t.value for t in at.title], "notes": [t.value for t in at.text],
                  "errors": [e.value for e in at.error], "exceptions": [str(e.value) for e in at.exception]}))
"""


def use_streamlit(project: Path, env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "notes_page.py"
    script.write_text(STREAMLIT_NOTES)

    def page(user: str, text: str) -> dict[str, Any]:
        done = subprocess.run(
            [str(app_python()), str(script), user, text],
            cwd=project / "app",
            env={**env, "HANG_GUARD": str(HANG_GUARD)},
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        shown = json.loads(done.stdout.strip().splitlines()[-1])
        assert not shown["exceptions"], shown
        return shown

    first = page(ALICE, "first note")
    assert first["titles"] == ["Notes"] and first["notes"] == ["first note"] and not first["errors"], first
    assert page(ALICE, " ")["errors"] == ["text must be a non-empty string"]
    assert page(BOB, "")["notes"] == []
    assert page(ALICE, "")["notes"] == ["first note"]


@pytest.mark.parametrize("answers", COMBOS, ids=lambda a: a["framework"])
def test_add_a_feature_as_the_readme_says(answers, tmp_path, pg_server, workspace_stub, deployment):
    client, dbname = deployment
    framework = answers["framework"]
    project = render(tmp_path / "out", **answers)
    before = fingerprints(project)
    touched = feature_walkthrough.follow(project)
    after = fingerprints(project)
    changed = {path for path in before if before[path] != after.get(path)}
    created = set(after) - set(before)
    assert changed <= SHARED, f"the walkthrough edits {sorted(changed - SHARED)}"
    assert not {path for path in changed | created if path.startswith("app/items/")}, "items' files changed"
    assert set(touched) == changed | created
    print(f"ADD A FEATURE {framework}: creates {sorted(created)}, edits {sorted(changed)}")
    for check in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        done = subprocess.run([sys.executable, "-m", "ruff", *check], cwd=project, capture_output=True, text=True)
        assert done.returncode == 0, f"ruff {check[0]} after the walkthrough:\n{done.stdout}{done.stderr}"

    env = apprunner.runtime_env(project, workspace_stub, client, free_port(), tmp_path / "home", dbname)
    ready = "/_stcore/health" if framework == "streamlit" else "/"
    with apprunner.running_app(project, env, tmp_path / "app.log", ready_path=ready) as app, ExitStack() as stack:
        logs = [app.log]
        try:
            if framework in ("flask", "fastapi"):
                use_json_api(app.url)
                items = HttpApi(app.url)  # the first feature, unchanged, beside the second
                item = items.create(ALICE, "an item")
                assert items.list(ALICE) == [(item, "an item", False)]
            elif framework == "dash":
                use_dash(app.url)
            elif framework == "gradio":
                driver = apprunner.driver("gradio", tmp_path, env, project / "app", app.url)
                stack.callback(driver.close)
                logs.append(driver.log)
                use_gradio(driver)
            else:
                use_streamlit(project, env, tmp_path)
        except BaseException:
            for log in logs:
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-8000:]}")
            raise
    assert sorted(notes_in_db(pg_server, dbname)) == sorted(
        [(ALICE, "first note")] + ([(BOB, "bob's")] if framework in ("flask", "fastapi") else [])
    )
    assert row_security_forced(pg_server, dbname)
