"""The contract every rendered interface keeps (the rendered project's docs/api.md, "API contract"), as checks a
test runs against a running app: hostile input refused with the one error body and no row changed, no user
served without a signed-in identity, FastAPI's OpenAPI document saying the same, and no token written anywhere.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import apprunner
from tests.support.http_api import ALICE, BOB
from tests.support.ui_drivers import DashUi, GradioUi
from tests.support.waiting import HANG_GUARD

# The credential API calls one app run may make: at start, per process, and after a rotation.
MAX_CREDENTIAL_CALLS = 6

# Hostile inputs every interface must refuse without touching a row (the rendered README's "API contract").
# The harness sets DATABRICKS_APP_NAME as the Apps runtime does, so a request without X-Forwarded-Email is
# refused, never served as a local user.
BAD_TITLES = ["a\x00b", "x" * 201, "", "   ", "line\nbreak"]
BAD_IDS = [2**63, 99999999999999999999, 0, -1, "abc", 1.5]


def http_contract(url: str, alice_item: int) -> None:
    alice, bob = {"X-Forwarded-Email": ALICE}, {"X-Forwarded-Email": BOB}
    api = f"{url}/api/items"

    def refused(r: requests.Response, status: int, field: str | None) -> None:
        assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
        body = r.json()
        assert set(body) == {"error", "field"} and isinstance(body["error"], str) and body["error"], body
        assert body["field"] == field, (r.request.method, r.request.url, body)

    refused(requests.get(api, timeout=HANG_GUARD), 401, None)  # no signed-in user on Databricks
    refused(requests.post(api, json={"title": "anonymous"}, timeout=HANG_GUARD), 401, None)
    refused(requests.delete(f"{api}/{alice_item}", timeout=HANG_GUARD), 401, None)
    refused(requests.get(f"{api}/{alice_item}", timeout=HANG_GUARD), 401, None)
    for bad in BAD_IDS:
        refused(requests.get(f"{api}/{bad}", headers=alice, timeout=HANG_GUARD), 400, "id")
        refused(requests.delete(f"{api}/{bad}", headers=alice, timeout=HANG_GUARD), 400, "id")
        refused(
            requests.put(f"{api}/{bad}", json={"title": "t", "done": True}, headers=alice, timeout=HANG_GUARD),
            400,
            "id",
        )
    for title in [*BAD_TITLES, 5, None, ["t"]]:
        refused(requests.post(api, json={"title": title}, headers=alice, timeout=HANG_GUARD), 400, "title")
    as_json = {**alice, "Content-Type": "application/json"}
    refused(
        requests.post(api, data='{"title": "\\ud800"}', headers=as_json, timeout=HANG_GUARD), 400, "title"
    )  # lone surrogate
    for done in ("false", 1, None):
        body = {"title": "t", "done": done}
        refused(requests.put(f"{api}/{alice_item}", json=body, headers=alice, timeout=HANG_GUARD), 400, "done")
    refused(requests.put(f"{api}/{alice_item}", json={"title": "t"}, headers=alice, timeout=HANG_GUARD), 400, "done")
    refused(requests.post(api, json={"title": "t", "owner": BOB}, headers=alice, timeout=HANG_GUARD), 400, "owner")
    for raw in ("{", "", "[]", '"title"', "\xff"):
        refused(requests.post(api, data=raw.encode("latin-1"), headers=as_json, timeout=HANG_GUARD), 400, "body")
    refused(requests.post(api, data="title=t", headers=alice, timeout=HANG_GUARD), 415, "body")  # a form, not JSON
    refused(
        requests.put(f"{api}/{alice_item}", json={"title": "mine", "done": False}, headers=bob, timeout=HANG_GUARD),
        404,
        "id",
    )
    refused(requests.delete(f"{api}/{alice_item}", headers=bob, timeout=HANG_GUARD), 404, "id")
    refused(requests.get(f"{api}/{alice_item}", headers=bob, timeout=HANG_GUARD), 404, "id")  # alice's: as if none
    got = requests.get(f"{api}/{alice_item}", headers=alice, timeout=HANG_GUARD)
    listed = requests.get(api, headers=alice, timeout=HANG_GUARD).json()
    assert got.status_code == 200 and got.json() in listed, got.text
    refused(requests.patch(f"{api}/{alice_item}", json={}, headers=alice, timeout=HANG_GUARD), 405, None)
    for item in requests.get(api, headers=alice, timeout=HANG_GUARD).json():
        assert set(item) == {"id", "title", "done", "created_at", "updated_at"}, item
        assert type(item["id"]) is int and type(item["done"]) is bool and type(item["title"]) is str, item
        for stamp in (item["created_at"], item["updated_at"]):
            assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0), stamp  # ISO 8601, UTC


def dash_contract(ui: DashUi, alice_item: int) -> None:
    assert "not signed in" in ui.change(None, "add", title="anonymous")
    with pytest.raises(AssertionError, match="not signed in"):
        ui.list(None)
    for title in [*BAD_TITLES, 5, ["t"]]:
        assert "title" in ui.change(ALICE, "add", title=title), title
    for bad in BAD_IDS:
        assert "id" in ui.change(ALICE, "delete", item=bad), bad
    assert "done" in ui.change(ALICE, "done", item=alice_item, value="false")
    assert "not in your list" in ui.change(BOB, "delete", item=alice_item)
    assert "not in your list" in ui.change(BOB, "done", item=alice_item, value=[])
    r = requests.post(
        f"{ui.url}/_dash-update-component", data="{", headers={"Content-Type": "application/json"}, timeout=HANG_GUARD
    )
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])


def gradio_contract(ui: GradioUi, alice_item: int) -> None:
    def refused(user: str | None, api_name: str, *args: Any, says: str) -> None:
        with pytest.raises(apprunner.DriverError) as refusal:
            ui.predict(user, api_name, *args)
        assert says in str(refusal.value), (api_name, args, str(refusal.value))

    refused(None, "/list_items", says="not signed in")
    refused(None, "/create_item", "anonymous", says="not signed in")
    for title in BAD_TITLES:
        refused(ALICE, "/create_item", title, says="title")
    for bad in BAD_IDS:
        refused(ALICE, "/delete_item", bad, says="id")
    refused(ALICE, "/set_done", alice_item, "false", says="done")
    refused(BOB, "/delete_item", alice_item, says="not in your list")
    refused(BOB, "/set_done", alice_item, False, says="not in your list")


def streamlit_contract(driver: apprunner.Driver) -> None:
    assert any("not signed in" in e for e in driver.call("list", user=None)["errors"])
    for title in ("a\x00b", "line\nbreak", "   "):
        shown = driver.call("add", user=ALICE, title=title)["acting_session"]
        assert any("title" in e for e in shown["errors"]), (title, shown)


def assert_no_token_leak(workspace_stub: Any, project: Path, logs: list[Path]) -> None:
    tokens = [*workspace_stub.issued_tokens, *workspace_stub.issued_access_tokens]
    assert workspace_stub.issued_tokens or workspace_stub.issued_access_tokens, "no credential was issued"
    files = [p for p in project.rglob("*") if p.is_file()] + [p for p in logs if p.exists()]
    for path in files:
        data = path.read_bytes()
        for token in tokens:
            assert token.encode() not in data, f"a database token was written to {path}"


def documented_contract(url: str) -> None:
    """FastAPI's /openapi.json (what /docs shows) documents the contract http_contract holds: typed bodies that take
    no unknown field, the one error body for each refusal, and no 422, which the API never answers."""
    schema = requests.get(f"{url}/openapi.json", timeout=HANG_GUARD).json()
    shapes = schema["components"]["schemas"]
    assert shapes["Problem"]["required"] == ["error", "field"]
    assert set(shapes["Item"]["properties"]) == {"id", "title", "done", "created_at", "updated_at"}
    expected = {
        ("get", "/api/items"): ({"200", "400", "401", "503"}, None),
        ("post", "/api/items"): ({"201", "400", "401", "403", "409", "413", "415", "503"}, ["title"]),
        ("get", "/api/items/{item_id}"): ({"200", "400", "401", "404", "503"}, None),
        ("put", "/api/items/{item_id}"): ({"200", "400", "401", "403", "404", "413", "415", "503"}, ["title", "done"]),
        ("delete", "/api/items/{item_id}"): ({"204", "400", "401", "403", "404", "503"}, None),
    }
    for (method, path), (statuses, fields) in expected.items():
        operation = schema["paths"][path][method]
        assert set(operation["responses"]) == statuses, (method, path, operation["responses"])
        for status in statuses - {"200", "201", "204"}:
            problem = operation["responses"][status]["content"]["application/json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
        if fields:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            body = shapes[ref.rsplit("/", 1)[1]]
            assert body["required"] == fields and body["additionalProperties"] is False, body
