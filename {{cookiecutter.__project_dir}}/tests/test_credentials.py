"""Credential caching and renewal: pure logic, with a fake mint and a fake clock."""

import threading
from pathlib import Path

import pytest

from database.credentials import RefreshingToken, StaticPassword, login
from database.settings import SettingsError, ca_file, load_settings
from database.unavailable import CERTIFICATE, LOGIN, UNREACHABLE, DatabaseUnavailable, explain, unavailable


class FakeMint:
    def __init__(self, lifetime: float, clock: list[float]) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self.calls = 0

    def __call__(self) -> tuple[str, float]:
        self.calls += 1
        return f"token-{self.calls}", self.clock[0] + self.lifetime


def test_token_is_cached_and_renewed_before_the_stated_expiry() -> None:
    clock = [1000.0]
    mint = FakeMint(lifetime=100.0, clock=clock)
    source = RefreshingToken(mint, clock=lambda: clock[0])
    assert source.password() == "token-1"
    clock[0] += 79
    assert source.password() == "token-1"
    clock[0] += 2  # past 80% of the lifetime
    assert source.password() == "token-2"
    assert mint.calls == 2


def test_renewal_margin_is_at_most_five_minutes_for_long_tokens() -> None:
    clock = [0.0]
    mint = FakeMint(lifetime=3600.0, clock=clock)
    source = RefreshingToken(mint, clock=lambda: clock[0])
    source.password()
    clock[0] = 3299.0
    source.password()
    assert mint.calls == 1
    clock[0] = 3301.0
    source.password()
    assert mint.calls == 2


def test_concurrent_callers_share_one_mint() -> None:
    clock = [0.0]
    mint = FakeMint(lifetime=600.0, clock=clock)
    source = RefreshingToken(mint, clock=lambda: clock[0])
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(source.password())) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["token-1"] * 16 and mint.calls == 1


def test_a_refused_token_is_replaced_once() -> None:
    clock = [0.0]
    mint = FakeMint(lifetime=600.0, clock=clock)
    source = RefreshingToken(mint, clock=lambda: clock[0])
    tried: list[str] = []

    def connect(password: str) -> str:
        tried.append(password)
        if password == "token-1":
            raise RuntimeError('FATAL:  password authentication failed for user "sp"')
        return "connection"

    assert login(connect, source) == "connection"
    assert tried == ["token-1", "token-2"]


def test_other_connect_errors_are_not_retried() -> None:
    def connect(password: str) -> str:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ConnectionRefusedError):
        login(connect, StaticPassword("local"))


def test_settings_say_what_is_missing() -> None:
    with pytest.raises(SettingsError, match="PGHOST"):
        load_settings({"PGDATABASE": "db", "PGUSER": "me"})
{%- if cookiecutter.__flavour == "autoscaling" %}
    with pytest.raises(SettingsError, match="LAKEBASE_ENDPOINT"):
        load_settings({"PGHOST": "h", "PGDATABASE": "db", "PGUSER": "me"})
{%- else %}
    # Provisioned logs in with the workspace OAuth token: no instance name to configure
    assert load_settings({"PGHOST": "h", "PGDATABASE": "db", "PGUSER": "me"}).local_password is None
{%- endif %}
    local = {"PGHOST": "h", "PGDATABASE": "db", "PGUSER": "me", "PGPASSWORD": "x"}
    with pytest.raises(SettingsError, match="DB_POOL_MAX_SIZE"):
        load_settings({**local, "DB_POOL_MAX_SIZE": "many"})
    # a person against a real Lakebase (no PGPASSWORD) must name the database as their own
    person = {"PGHOST": "h", "PGDATABASE": "db", "PGUSER": "me@example.com", "LAKEBASE_ENDPOINT": "projects/p"}
    with pytest.raises(SettingsError, match="LAKEBASE_OWN_DATABASE"):
        load_settings(person)
    assert load_settings({**person, "LAKEBASE_OWN_DATABASE": "db"}).user == "me@example.com"
    with pytest.raises(SettingsError, match="LAKEBASE_OWN_DATABASE"):
        load_settings({**person, "LAKEBASE_OWN_DATABASE": "another"})
    settings = load_settings(local)
    assert settings.pool_max_size == {{ cookiecutter.pool_max_size }}
    assert (settings.statement_timeout_ms, settings.lock_timeout_ms) == (5000, 2000)


def test_tls_verifies_the_certificate_unless_told_not_to(tmp_path: Path) -> None:
    """The runtime's PGSSLMODE=require becomes verify-full against the OS's CA bundle (or PGSSLROOTCERT)."""
    local = {"PGHOST": "h", "PGDATABASE": "db", "PGUSER": "me", "PGPASSWORD": "x"}
    runtime = load_settings({**local, "PGSSLMODE": "require"})
    assert (runtime.sslmode, runtime.sslrootcert) == ("verify-full", "system")
    assert Path(ca_file(runtime)).is_file()  # the OS's bundle, as Python's ssl module finds it
    assert load_settings({**local, "PGSSLMODE": "require", "DB_TLS_VERIFY": "off"}).sslmode == "require"
    assert load_settings({**local, "PGSSLMODE": "disable"}).sslmode == "disable"  # local PostgreSQL without TLS
    own_ca = tmp_path / "ca.pem"
    own_ca.write_text("a CA the tests trust\n")
    assert ca_file(load_settings({**local, "PGSSLROOTCERT": str(own_ca)})) == str(own_ca)
    with pytest.raises(SettingsError, match="DB_TLS_VERIFY"):
        load_settings({**local, "DB_TLS_VERIFY": "maybe"})


def test_on_databricks_nothing_weaker_than_require_is_taken() -> None:
    """The password is the app's OAuth token: prefer/allow/disable could send it unencrypted, so they are refused."""
    runtime = {"PGHOST": "h", "PGDATABASE": "db", "PGUSER": "sp", "PGPASSWORD": "x", "DATABRICKS_APP_NAME": "app"}
    for mode in ("disable", "allow", "prefer"):
        with pytest.raises(SettingsError, match=f"PGSSLMODE={mode} on Databricks"):
            load_settings({**runtime, "PGSSLMODE": mode})
    assert load_settings({**runtime, "PGSSLMODE": "verify-ca"}).sslmode == "verify-ca"
    assert load_settings(runtime).sslmode == "verify-full"


def test_an_unusable_database_is_one_line_that_says_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    """The certificate case names PGSSLROOTCERT before turning verification off; a refused login names PGUSER and
    the resource; each cause is logged once, however many requests meet it."""
    import ssl

    refused = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert explain(refused) == CERTIFICATE
    assert CERTIFICATE.index("PGSSLROOTCERT") < CERTIFICATE.index("DB_TLS_VERIFY=off")
    assert explain(RuntimeError('FATAL:  password authentication failed for user "sp"')) == LOGIN
    assert "PGUSER" in LOGIN and "resource" in LOGIN
    assert explain(ConnectionRefusedError("connection refused")) == UNREACHABLE
    with caplog.at_level("ERROR", logger="database.unavailable"):
        errors = [unavailable(refused) for _ in range(3)]
    assert all(isinstance(e, DatabaseUnavailable) and str(e) == CERTIFICATE for e in errors)
    assert len(caplog.records) == 1 and not caplog.records[0].exc_info, caplog.records


def test_tls_falls_back_to_certifi_without_an_os_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where Python finds no OS CA bundle, the app verifies against certifi's rather than refusing to log in."""
    import certifi

    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    local = {"PGHOST": "h", "PGDATABASE": "db", "PGUSER": "me", "PGPASSWORD": "x"}
    settings = load_settings({**local, "PGSSLMODE": "require"})
    assert ca_file(settings) == certifi.where()
