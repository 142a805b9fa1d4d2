"""The two signed-in users the tests act as, and the JSON API client for the flask and fastapi apps (a request may
open the pool and migrate: on a busy machine that is slow, not wrong, so only a hang times out)."""

from __future__ import annotations

import requests

from tests.support.waiting import HANG_GUARD

ALICE = "alice@example.com"
BOB = "bob@example.com"


class HttpApi:
    """flask / fastapi: the JSON API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _h(self, user: str) -> dict[str, str]:
        return {"X-Forwarded-Email": user}

    def create(self, user: str, title: str) -> int:
        r = requests.post(f"{self.url}/api/items", json={"title": title}, headers=self._h(user), timeout=HANG_GUARD)
        assert r.status_code == 201, (r.status_code, r.text)
        return int(r.json()["id"])

    def create_refused(self, user: str, title: str) -> None:
        r = requests.post(f"{self.url}/api/items", json={"title": title}, headers=self._h(user), timeout=HANG_GUARD)
        assert r.status_code == 400, (r.status_code, r.text)

    def list(self, user: str) -> list[tuple[int, str, bool]]:
        r = requests.get(f"{self.url}/api/items", headers=self._h(user), timeout=HANG_GUARD)
        assert r.status_code == 200, (r.status_code, r.text)
        return [(int(i["id"]), i["title"], bool(i["done"])) for i in r.json()]

    def update(self, user: str, item_id: int, title: str, done: bool) -> bool:
        r = requests.put(
            f"{self.url}/api/items/{item_id}",
            json={"title": title, "done": done},
            headers=self._h(user),
            timeout=HANG_GUARD,
        )
        assert r.status_code in (200, 404), (r.status_code, r.text)
        return r.status_code == 200

    def delete(self, user: str, item_id: int) -> bool:
        r = requests.delete(f"{self.url}/api/items/{item_id}", headers=self._h(user), timeout=HANG_GUARD)
        assert r.status_code in (204, 404), (r.status_code, r.text)
        return r.status_code == 204
