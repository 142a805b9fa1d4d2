"""The one identity rule (app/identity.py), without a database."""

import logging

import pytest

import identity
from identity import LOCAL_USER, NotSignedIn, current_user


def test_the_proxy_header_names_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    assert current_user({"X-Forwarded-Email": " Alice@Example.com "}) == "alice@example.com"


def test_on_databricks_a_request_without_the_header_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    for headers in ({}, {"X-Forwarded-Email": "  "}):
        with pytest.raises(NotSignedIn, match="not signed in"):
            current_user(headers)


def test_run_locally_a_request_without_the_header_is_the_local_user_and_the_log_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("DATABRICKS_APP_NAME", raising=False)
    monkeypatch.setattr(identity, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="identity"):
        assert current_user({}) == LOCAL_USER
        assert current_user({}) == LOCAL_USER
    assert [r.getMessage() for r in caplog.records] == [
        f"no X-Forwarded-Email header: running locally, so requests act as {LOCAL_USER}"
    ]
