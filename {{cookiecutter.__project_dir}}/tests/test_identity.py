"""The one identity rule (app/identity.py), without a database."""

import logging
import re

import pytest

import identity
from identity import LOCAL_USER, NO_KEY, NotSignedIn, current_user, local_sign_in, wrong_host

KEY = "k" * 32
HOLDS_KEY = {"Cookie": f"theme=dark; local_run_8000={KEY}"}


@pytest.fixture(autouse=True)
def neither_databricks_nor_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says where the app runs: on Databricks, in a local run, or neither."""
    monkeypatch.delenv("DATABRICKS_APP_NAME", raising=False)
    monkeypatch.delenv("LOCAL_RUN_BIND", raising=False)
    monkeypatch.setenv("LOCAL_RUN_KEY", KEY)


def run_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RUN_BIND", "127.0.0.1:8000")


def test_the_proxy_header_names_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    assert current_user({"X-Forwarded-Email": " Alice@Example.com "}) == "alice@example.com"


def test_on_databricks_a_request_without_the_header_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    run_locally(monkeypatch)  # never local mode on Databricks
    for headers in ({}, {"X-Forwarded-Email": "  "}, HOLDS_KEY):
        with pytest.raises(NotSignedIn, match="not signed in"):
            current_user(headers)


def test_outside_databricks_without_the_local_switch_a_request_without_the_header_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for bind in (None, "0.0.0.0:8000", "192.168.1.5:8000", "127.0.0.1", "nonsense"):  # no loopback bind: no switch
        if bind:
            monkeypatch.setenv("LOCAL_RUN_BIND", bind)
        with pytest.raises(NotSignedIn, match="run-local.sh"):
            current_user({})


def test_run_locally_a_request_with_the_runs_key_and_no_header_is_the_local_user_and_the_log_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run_locally(monkeypatch)
    monkeypatch.setattr(identity, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="identity"):
        assert current_user(HOLDS_KEY) == LOCAL_USER
        assert current_user({}, offered_key=KEY) == LOCAL_USER  # Streamlit: the key in the page's address
    assert current_user({**HOLDS_KEY, "X-Forwarded-Email": "Bob@Example.com"}) == "bob@example.com"
    assert [r.getMessage() for r in caplog.records] == [
        f"no X-Forwarded-Email header: running locally, so requests act as {LOCAL_USER}"
    ]


def test_run_locally_a_request_without_the_runs_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone on this machine reaches 127.0.0.1; only the developer's browser holds the key."""
    run_locally(monkeypatch)
    for headers in ({}, {"X-Forwarded-Email": "dev@example.com"}, {"Cookie": "local_run_8000=guess"}, {"Cookie": "x"}):
        with pytest.raises(NotSignedIn, match=re.escape(NO_KEY)):
            current_user(headers)
    with pytest.raises(NotSignedIn):
        current_user({"Cookie": f"local_run_9999={KEY}"})  # another run's cookie name
    monkeypatch.setenv("LOCAL_RUN_KEY", "short")
    with pytest.raises(NotSignedIn, match="run-local.sh"):  # no key worth the name: no local mode at all
        current_user(HOLDS_KEY)


def test_the_printed_address_signs_the_browser_in_with_a_cookie(monkeypatch: pytest.MonkeyPatch) -> None:
    run_locally(monkeypatch)
    cookie = f"local_run_8000={KEY}; Path=/; HttpOnly; SameSite=Strict"
    assert local_sign_in("/", f"local_run_key={KEY}") == ("/", cookie)
    assert local_sign_in("/", "local_run_key=guess") is None
    assert local_sign_in("/", "") is None
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    assert local_sign_in("/", f"local_run_key={KEY}") is None


def test_run_locally_only_the_apps_own_address_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    run_locally(monkeypatch)
    for own in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST:8000", "[::1]:8000"):
        assert not wrong_host({"Host": own}), own
    for other in ("evil.example:8000", "evil.example", "127.0.0.1:8001", "127.0.0.1", "10.0.0.2:8000", ""):
        assert wrong_host({"Host": other}), other  # a DNS-rebinding page sends its own name
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    assert not wrong_host({"Host": "my-app-123.aws.databricksapps.com"})  # the proxy picks the host there
