"""`./run-local.sh`'s core: a rendered app starts on this machine against an embedded PostgreSQL."""

import json
import urllib.request
from pathlib import Path

import pytest

from tests.localapp import running_local_app
from tests.template import render


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


@pytest.mark.parametrize("framework", ["flask", "fastapi", "dash", "gradio", "streamlit"])
def test_local_run_serves_the_app_against_embedded_postgres(tmp_path: Path, framework: str) -> None:
    driver = "asyncpg" if framework == "fastapi" else "psycopg3"
    root = render(tmp_path, framework=framework, driver=driver, project_name=f"Local {framework}")
    with running_local_app(root, tmp_path) as app:
        print(f"{framework}: first page after {app.startup_seconds:.1f} s")
        if framework in ("flask", "fastapi"):
            request = urllib.request.Request(
                f"{app.url}/api/items",
                data=json.dumps({"title": "runs locally"}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 201
            assert [item["title"] for item in json.loads(get(f"{app.url}/api/items")[1])] == ["runs locally"]
        if framework != "streamlit":
            assert get(f"{app.url}/healthz")[0] == 200
