"""Drivers for the rendered UIs that have no JSON API, each with HttpApi's methods (create, create_refused, list,
update, delete; tests/support/http_api.py) so one test drives any framework: Dash through its callback endpoint,
Gradio through gradio_client, Streamlit through AppTest (both in the app's environment: tests/support/apprunner.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from tests.support import apprunner
from tests.support.http_api import ALICE
from tests.support.waiting import HANG_GUARD


class DashUi:
    """dash: its two callbacks through /_dash-update-component (change: add / toggle / delete a row; show: the list)."""

    def __init__(self, url: str) -> None:
        self.url = url
        deps = requests.get(f"{url}/_dash-dependencies", timeout=HANG_GUARD).json()
        self.change_output = next(
            d["output"] for d in deps if "changes.data" in d["output"] and "message" in d["output"]
        )
        self.show_output = next(d["output"] for d in deps if d["output"].startswith("items.children"))
        self.clicks = 0

    def post(self, user: str | None, body: dict[str, Any]) -> requests.Response:
        headers = {"X-Forwarded-Email": user} if user else {}
        return requests.post(f"{self.url}/_dash-update-component", json=body, headers=headers, timeout=HANG_GUARD)

    def change_body(self, trigger: str, item: Any = None, value: Any = None, title: Any = None) -> dict[str, Any]:
        """The body the browser posts when the add button, a row's checkbox or its Delete button is used."""
        self.clicks += 1
        rows = [] if item is None else [item]
        pattern = {"item": item, "type": trigger}
        return {
            "output": self.change_output,
            "outputs": [
                {"id": "changes", "property": "data"},
                {"id": "message", "property": "children"},
                {"id": "new-title", "property": "value"},
            ],
            "inputs": [
                {"id": "add", "property": "n_clicks", "value": self.clicks if trigger == "add" else 0},
                [
                    {"id": {"item": i, "type": "done"}, "property": "value", "value": value}
                    for i in rows
                    if trigger == "done"
                ],
                [
                    {"id": {"item": i, "type": "delete"}, "property": "n_clicks", "value": 1}
                    for i in rows
                    if trigger == "delete"
                ],
            ],
            "state": [
                {"id": "new-title", "property": "value", "value": title},
                {"id": "changes", "property": "data", "value": 0},
            ],
            "changedPropIds": [
                "add.n_clicks"
                if trigger == "add"
                else json.dumps(pattern, sort_keys=True, separators=(",", ":"))
                + (".value" if trigger == "done" else ".n_clicks")
            ],
        }

    def change(self, user: str | None, trigger: str, item: Any = None, value: Any = None, title: Any = None) -> str:
        """Fire the change callback as the browser does; returns the message shown ('' when none)."""
        r = self.post(user, self.change_body(trigger, item, value, title))
        assert r.status_code in (200, 204), (r.status_code, r.text[:2000])
        response = r.json()["response"] if r.status_code == 200 else {}
        if trigger == "add" and "changes" in response:
            assert response["new-title"]["value"] == "", response  # the input is cleared after Add
        return response.get("message", {}).get("children") or ""

    def list(self, user: str | None) -> list[tuple[int, str, bool]]:
        body = {
            "output": self.show_output,
            "outputs": {"id": "items", "property": "children"},
            "inputs": [{"id": "changes", "property": "data", "value": 0}],
            "changedPropIds": [],
        }
        r = self.post(user, body)
        assert r.status_code == 200, (r.status_code, r.text[:2000])
        rows = []
        for li in r.json()["response"]["items"]["children"]:
            if li["props"].get("className") == "empty":  # "Nothing here yet": no rows
                continue
            children = li["props"]["children"]
            if isinstance(children, str):
                raise AssertionError(children)  # a message instead of a list
            box = children[0]["props"]
            rows.append((int(box["id"]["item"]), box["options"][0]["label"], box["value"] == ["done"]))
        return rows

    def create(self, user: str, title: str) -> int:
        assert self.change(user, "add", title=title) == ""
        return max(i for i, t, _ in self.list(user) if t == title)

    def create_refused(self, user: str, title: str) -> None:
        message = self.change(user, "add", title=title)
        assert "title" in message, message

    def update(self, user: str, item_id: int, title: str, done: bool) -> bool:
        return not self.change(user, "done", item=item_id, value=["done"] if done else [])

    def delete(self, user: str, item_id: int) -> bool:
        return not self.change(user, "delete", item=item_id)


class GradioUi:
    """gradio: gradio_client (in the app env) calling the named endpoints, a header per user. The page shows no
    ids, so the test reads them from the database (``ids``: title -> id of a user's rows)."""

    def __init__(self, driver: apprunner.Driver, ids: Callable[[str], dict[str, int]]) -> None:
        self.driver = driver
        self.ids = ids

    def predict(self, user: str | None, api_name: str, *args: Any) -> Any:
        return self.driver.call("predict", user=user, api_name=api_name, args=list(args))

    def _rows(self, user: str, result: Any) -> list[tuple[int, str, bool]]:
        table = result[0]
        data = table["data"] if isinstance(table, dict) else table
        ids = self.ids(user)
        assert all(len(r) == 3 for r in data or []), data  # title, done, updated: no id column
        return [(ids[r[0]], r[0], r[1] in (True, "true", "True")) for r in data or []]

    def create(self, user: str, title: str) -> int:
        result = self.predict(user, "/create_item", title)
        assert result[-1] == "", result  # the input is cleared after Add
        return self.ids(user)[title]

    def create_refused(self, user: str, title: str) -> None:
        with pytest.raises(apprunner.DriverError):
            self.predict(user, "/create_item", title)

    def list(self, user: str) -> list[tuple[int, str, bool]]:
        return self._rows(user, self.predict(user, "/list_items"))

    def update(self, user: str, item_id: int, title: str, done: bool) -> bool:
        try:
            self.predict(user, "/set_done", item_id, done)
        except apprunner.DriverError:
            return False
        return True

    def delete(self, user: str, item_id: int) -> bool:
        try:
            self.predict(user, "/delete_item", item_id)
        except apprunner.DriverError:
            return False
        return True


class StreamlitUi:
    """streamlit: AppTest on main.py in a subprocess with the app's env; the driver hands st.context the user."""

    def __init__(self, driver: apprunner.Driver) -> None:
        self.driver = driver

    def _state(self, op: str, **args: Any) -> dict[str, Any]:
        state = self.driver.call(op, user=ALICE, **args)
        assert not state["exceptions"], state["exceptions"]
        return state

    def _items(self, state: dict[str, Any]) -> list[tuple[int, str, bool]]:
        ids = [int(k.split("-", 1)[1]) for k in state["checkboxes"]]
        return [(i, t, state["checkboxes"][f"done-{i}"]) for i, t in zip(ids, state["titles"], strict=True)]

    def create(self, user: str, title: str) -> int:
        state = self._state("add", title=title)
        assert not state["acting_session"]["errors"], state["acting_session"]["errors"]
        return max(i for i, t, _ in self._items(state) if t == title)

    def create_refused(self, user: str, title: str) -> None:
        state = self.driver.call("add", user=user, title=title)
        # the refusal is shown in the session that submitted; the new session lists what is stored
        assert not state["exceptions"], state["exceptions"]
        assert any("title" in e for e in state["acting_session"]["errors"]), state["acting_session"]
        assert title not in state["titles"]

    def list(self, user: str) -> list[tuple[int, str, bool]]:
        return self._items(self._state("list"))

    def update(self, user: str, item_id: int, title: str, done: bool) -> bool:
        self._state("toggle", id=item_id)
        return True

    def delete(self, user: str, item_id: int) -> bool:
        self._state("delete", id=item_id)
        return True
