"""The one identity rule (app/identity.py), without a database."""

import logging

import pytest

import identity
from identity import LOCAL_USER, NotSignedIn, current_user, wrong_host


@pytest.fixture(autouse=True)
def neither_databricks_nor_local(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says where the app runs: on Databricks, in a local run, or neither."""
    monkeypatch.delenv("DATABRICKS_APP_NAME", raising=False)
    monkeypatch.delenv("LOCAL_RUN_BIND", raising=False)


def test_the_proxy_header_names_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    assert current_user({"X-Forwarded-Email": " Alice@Example.com "}) == "alice@example.com"


def test_on_databricks_a_request_without_the_header_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    monkeypatch.setenv("LOCAL_RUN_BIND", "127.0.0.1:8000")  # never local mode on Databricks
    for headers in ({}, {"X-Forwarded-Email": "  "}):
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


def test_run_locally_a_request_without_the_header_is_the_local_user_and_the_log_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LOCAL_RUN_BIND", "127.0.0.1:8000")
    monkeypatch.setattr(identity, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="identity"):
        assert current_user({}) == LOCAL_USER
        assert current_user({}) == LOCAL_USER
    assert [r.getMessage() for r in caplog.records] == [
        f"no X-Forwarded-Email header: running locally, so requests act as {LOCAL_USER}"
    ]


def test_run_locally_only_the_apps_own_address_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RUN_BIND", "127.0.0.1:8000")
    for own in ("127.0.0.1:8000", "localhost:8000", "LOCALHOST:8000", "[::1]:8000"):
        assert not wrong_host({"Host": own}), own
    for other in ("evil.example:8000", "evil.example", "127.0.0.1:8001", "127.0.0.1", "10.0.0.2:8000", ""):
        assert wrong_host({"Host": other}), other  # a DNS-rebinding page sends its own name
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    assert not wrong_host({"Host": "my-app-123.aws.databricksapps.com"})  # the proxy picks the host there
