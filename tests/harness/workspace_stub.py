"""A local Databricks workspace stub that the real databricks-sdk talks HTTP to.

Endpoints (what databricks-sdk 0.162 actually calls for M2M OAuth + Lakebase credentials):

* ``GET  /.well-known/databricks-config``          host metadata: ``oidc_endpoint``, ``workspace_id``
* ``GET  /oidc/.well-known/oauth-authorization-server``  ``authorization_endpoint``, ``token_endpoint``
* ``POST /oidc/v1/token``  form ``grant_type=client_credentials&scope=all-apis``, client id/secret in
  HTTP Basic auth (the SDK uses ``use_header=True``; form fields are accepted too); wrong secret -> 401
* ``POST /api/2.0/postgres/credentials``  (Autoscaling) body ``{"endpoint": ..., "ttl"?: "300s"}`` ->
  ``{"token": ..., "expire_time": "<RFC3339>"}``
* ``POST /api/2.0/database/credentials``  (Provisioned) body ``{"instance_names": [...], "request_id": ...}``
  -> ``{"token": ..., "expiration_time": "<RFC3339>"}``
* ``GET  /api/2.0/preview/scim/v2/Me``  (``w.current_user.me()``)

Strict like the workspace it stands for: this workspace has ONE Lakebase Autoscaling endpoint (``endpoint``) and ONE
Provisioned instance (``instance_name``); a credential for any other endpoint or instance is refused with 404
RESOURCE_DOES_NOT_EXIST. What an app's ``valueFrom`` yields is ``value_from(key)``, per the Apps docs' valueFrom table
(dev-tools/databricks-apps/environment-variables): the endpoint path for a ``postgres`` resource, the HOST (not the
instance name) for a ``database`` resource. So code that passes ``valueFrom: database`` as an instance name fails
here as it does on Databricks.

A service principal granted a Provisioned ``database`` resource (``register_client(..., lakebase="provisioned")``)
may also log in with its workspace OAuth access token as the password, as databricks/app-templates'
flask-database-app does (``WorkspaceClient().config.oauth_token().access_token``): for such a client every access
token the stub issues becomes its PostgreSQL password.

Each credential becomes the caller's PostgreSQL role password with ``VALID UNTIL now+ttl``.
Unlike real Lakebase (where every unexpired token works), PostgreSQL keeps ONE password per role, so minting
a new credential would invalidate the previous token for new logins, and several processes of one app
(gunicorn workers, app instances) would break each other. So a credential call RETURNS THE CURRENT TOKEN
(same token, same expiry) while more than 25% of its TTL remains (and it does not outlive the TTL the call
would get now), and mints a new one otherwise. Every call is still recorded in ``calls``; ``issued_tokens``
lists each distinct token once. ``expire_now`` forgets the current token, so the next call mints. The same rule
holds for the OAuth access tokens of Provisioned clients (``access_token_calls`` counts the token requests).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from .postgres import PostgresServer

DEFAULT_ENDPOINT = "projects/p/branches/production/endpoints/primary"  # bench/core.py assumes this one
DEFAULT_INSTANCE = "lakebase-app-instance"
POSTGRES_CREDENTIALS = "/api/2.0/postgres/credentials"
TOKEN_PATH = "/oidc/v1/token"
DATABASE_CREDENTIALS = "/api/2.0/database/credentials"
KINDS = {POSTGRES_CREDENTIALS: "postgres", DATABASE_CREDENTIALS: "database"}


@dataclass
class Client:
    client_id: str
    client_secret: str
    role: str
    lakebase: str = "autoscaling"  # the flavour of the app resource this service principal was granted


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_duration(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return float(str(v).rstrip("s"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    stub: WorkspaceStub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args) -> None:  # silence the stderr access log
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self) -> None:
        self.server.stub._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.stub._dispatch(self, "POST")


class WorkspaceStub:
    """In-process Databricks workspace: OAuth M2M + Lakebase credential APIs backed by a real PostgreSQL."""

    def __init__(
        self,
        pg: PostgresServer,
        ttl_seconds: float = 3600,
        workspace_id: str = "1234567890123456",
        endpoint: str = DEFAULT_ENDPOINT,
        instance_name: str = DEFAULT_INSTANCE,
    ):
        self.pg = pg
        self.endpoint = endpoint  # the only Autoscaling endpoint credentials are minted for
        self.instance_name = instance_name  # the only Provisioned instance credentials are minted for
        self.ttl_seconds = ttl_seconds
        self.oauth_ttl_seconds = 3600
        self.workspace_id = workspace_id
        self.url = ""
        self.host = "127.0.0.1"
        self.port = 0
        self.calls: list[tuple[str, str | None, float]] = []
        self.issued_tokens: list[str] = []  # database credentials (= PG passwords)
        self.issued_access_tokens: list[str] = []  # OAuth bearer tokens
        self.fail_credentials = 0  # the next N credential calls fail with fail_status
        self.fail_status = 500
        self.clients: dict[str, Client] = {}
        self._bearer: dict[str, tuple[str, float]] = {}
        # client id -> (token, issued at, expires at): the role's current PostgreSQL password
        self._current: dict[str, tuple[str, dt.datetime, dt.datetime]] = {}
        # client id -> (access token, issued at, expires at) for Provisioned clients (their PostgreSQL password)
        self._current_access: dict[str, tuple[str, dt.datetime, dt.datetime]] = {}
        self._lock = threading.RLock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> WorkspaceStub:
        if self._httpd is not None:
            return self
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.stub = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="workspace-stub",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(10)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ test API
    def register_client(
        self, client_id: str, client_secret: str, role: str | None = None, lakebase: str = "autoscaling"
    ) -> Client:
        """A service principal; its Postgres role (default: the client id) is created in the server.

        lakebase: "autoscaling" or "provisioned", the flavour of the Lakebase resource the app was granted.
        """
        if lakebase not in ("autoscaling", "provisioned"):
            raise ValueError(f"lakebase must be 'autoscaling' or 'provisioned', not {lakebase!r}")
        c = Client(client_id, client_secret, role or client_id, lakebase)
        self.pg.create_service_principal_role(c.role)
        with self._lock:
            self.clients[client_id] = c
        return c

    def new_client(self, lakebase: str = "autoscaling") -> Client:
        """Register a service principal with a random UUID client id and secret."""
        return self.register_client(str(uuid.uuid4()), "dose" + secrets.token_hex(16), lakebase=lakebase)

    def value_from(self, resource_key: str) -> str:
        """What an app.yaml ``valueFrom: <resource_key>`` entry yields, per the Apps docs' valueFrom table."""
        values = {"postgres": self.endpoint, "database": self.pg.host}  # Provisioned: the HOST, not the name
        if resource_key not in values:
            raise KeyError(f"this workspace declares no app resource {resource_key!r} (known: {sorted(values)})")
        return values[resource_key]

    def env_for_app(self, client: Client | str, appname: str = "lakebase-app") -> dict[str, str]:
        """Everything the Apps runtime injects for this SP: DATABRICKS_* plus PG* (no PGPASSWORD)."""
        c = self.clients[client] if isinstance(client, str) else client
        env = {
            "DATABRICKS_HOST": self.url,
            "DATABRICKS_CLIENT_ID": c.client_id,
            "DATABRICKS_CLIENT_SECRET": c.client_secret,
            "DATABRICKS_WORKSPACE_ID": self.workspace_id,
            "DATABRICKS_APP_NAME": appname,
        }
        env.update(self.pg.env_for_app(c.role, appname))
        return env

    def credential_calls(self, kind: str | None = None) -> int:
        """Number of credential calls answered with a token; kind: None, "postgres" or "database"."""
        with self._lock:
            return sum(1 for path, cid, _ in self.calls if path in KINDS and (kind is None or KINDS[path] == kind))

    def access_token_calls(self, client_id: str | None = None) -> int:
        """Number of OAuth token requests answered with an access token (for one client, or all)."""
        with self._lock:
            return sum(
                1 for path, cid, _ in self.calls if path == TOKEN_PATH and (client_id is None or cid == client_id)
            )

    def expire_now(self, client_id: str) -> None:
        """The client's current token stops working for NEW logins (open sessions stay); the next call mints."""
        with self._lock:
            self._current.pop(client_id, None)
            self._current_access.pop(client_id, None)
            self.pg.expire_password(self.clients[client_id].role)

    def all_secrets(self) -> list[str]:
        """Every secret this stub knows or issued (to assert none leaks into logs/files)."""
        with self._lock:
            return [
                *self.issued_tokens,
                *self.issued_access_tokens,
                *(c.client_secret for c in self.clients.values()),
            ]

    # ------------------------------------------------------------------ HTTP
    def _record(self, path: str, client_id: str | None) -> None:
        with self._lock:
            self.calls.append((path, client_id, time.time()))

    def _dispatch(self, h: _Handler, method: str) -> None:
        try:
            path = urlsplit(h.path).path
            body = h._body() if method == "POST" else b""
            route = {
                ("GET", "/.well-known/databricks-config"): self._host_metadata,
                (
                    "GET",
                    "/oidc/.well-known/oauth-authorization-server",
                ): self._oidc_discovery,
                ("POST", TOKEN_PATH): self._token,
                ("POST", POSTGRES_CREDENTIALS): self._credentials,
                ("POST", DATABASE_CREDENTIALS): self._credentials,
                ("GET", "/api/2.0/preview/scim/v2/Me"): self._me,
            }.get((method, path))
            if route is None:
                self._record(path, None)
                h._send(
                    404,
                    {
                        "error_code": "ENDPOINT_NOT_FOUND",
                        "message": f"No API found for '{method} {path}'",
                    },
                )
                return
            status, payload = route(h, path, body)
            h._send(status, payload)
        except Exception as e:  # noqa: BLE001 - surfaced to the client as a 500
            h._send(
                500,
                {
                    "error_code": "INTERNAL_ERROR",
                    "message": f"stub error: {type(e).__name__}: {e}",
                },
            )

    def _host_metadata(self, h, path, body):
        self._record(path, None)
        return 200, {
            "oidc_endpoint": f"{self.url}/oidc",
            "workspace_id": self.workspace_id,
        }

    def _oidc_discovery(self, h, path, body):
        self._record(path, None)
        return 200, {
            "issuer": f"{self.url}/oidc",
            "authorization_endpoint": f"{self.url}/oidc/v1/authorize",
            "token_endpoint": f"{self.url}/oidc/v1/token",
            "grant_types_supported": [
                "client_credentials",
                "authorization_code",
                "refresh_token",
            ],
        }

    def _token(self, h, path, body):
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        cid, secret = form.get("client_id"), form.get("client_secret")
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                cid = secret = None
        if form.get("grant_type") != "client_credentials":
            self._record(path + "#bad-grant", cid)
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "only client_credentials",
            }
        with self._lock:
            c = self.clients.get(cid or "")
        if c is None or not secrets.compare_digest(c.client_secret.encode(), (secret or "").encode()):
            self._record(path + "#rejected", cid)
            return 401, {
                "error": "invalid_client",
                "error_description": "Client authentication failed",
            }
        if c.lakebase == "provisioned":
            token, expires_in = self._provisioned_access_token(c)
        else:
            token, expires_in = "dapi-stub-" + secrets.token_urlsafe(32), self.oauth_ttl_seconds
            with self._lock:
                self._bearer[token] = (c.client_id, time.time() + expires_in)
                self.issued_access_tokens.append(token)
        self._record(path, cid)
        return 200, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(expires_in),
            "scope": form.get("scope", "all-apis"),
        }

    def _provisioned_access_token(self, c: Client) -> tuple[str, float]:
        """The client's current access token (its PostgreSQL password), or a new one: same reuse rule as credentials."""
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            current = self._current_access.get(c.client_id)
            if current is not None:
                token, issued, expires = current
                if (expires - now).total_seconds() > 0.25 * (expires - issued).total_seconds():
                    return token, (expires - now).total_seconds()
            token = "dapi-stub-" + secrets.token_urlsafe(32)
            expires = now + dt.timedelta(seconds=self.oauth_ttl_seconds)
            self.pg.set_password(c.role, token, expires)
            self._current_access[c.client_id] = (token, now, expires)
            self._bearer[token] = (c.client_id, expires.timestamp())
            self.issued_access_tokens.append(token)
            return token, float(self.oauth_ttl_seconds)

    def _caller(self, h) -> Client | None:
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        with self._lock:
            entry = self._bearer.get(auth[7:])
            if entry is None or entry[1] < time.time():
                return None
            return self.clients.get(entry[0])

    def _me(self, h, path, body):
        c = self._caller(h)
        self._record(path, c.client_id if c else None)
        if c is None:
            return 401, {
                "error_code": "UNAUTHENTICATED",
                "message": "Invalid access token.",
            }
        return 200, {
            "id": "1",
            "userName": c.client_id,
            "displayName": c.client_id,
            "active": True,
        }

    def _credentials(self, h, path, body):
        c = self._caller(h)
        if c is None:
            self._record(path + "#rejected", None)
            return 401, {
                "error_code": "UNAUTHENTICATED",
                "message": "Invalid access token.",
            }
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return 400, {"error_code": "MALFORMED_REQUEST", "message": "Invalid JSON"}
        kind = KINDS[path]
        refused = self._unknown_target(kind, req)
        if refused is not None:
            self._record(path + "#refused", c.client_id)
            return refused
        with self._lock:
            if self.fail_credentials > 0:
                self.fail_credentials -= 1
                self._record(path + "#failed", c.client_id)
                return self.fail_status, {
                    "error_code": "INTERNAL_ERROR",
                    "message": "injected failure",
                }
        ttl = float(self.ttl_seconds)
        requested = _parse_duration(req.get("ttl"))
        if requested:
            ttl = min(ttl, requested)
        now = dt.datetime.now(dt.UTC)
        if req.get("expire_time"):
            wanted = dt.datetime.fromisoformat(req["expire_time"])
            ttl = min(ttl, (wanted - now).total_seconds())
        expires = now + dt.timedelta(seconds=ttl)
        with self._lock:  # one decision per client at a time: concurrent callers share one token
            current = self._current.get(c.client_id)
            if current is not None:
                token, issued, current_expires = current
                left = (current_expires - now).total_seconds()
                if left > 0.25 * (current_expires - issued).total_seconds() and current_expires <= expires:
                    expires = current_expires  # reuse: same token, same expiry
                else:
                    current = None
            if current is None:
                token = self._mint(c, expires)
                self.pg.set_password(c.role, token, expires)
                self._current[c.client_id] = (token, now, expires)
                self.issued_tokens.append(token)
            self._record(path, c.client_id)
        field = "expire_time" if kind == "postgres" else "expiration_time"
        return 200, {"token": token, field: _rfc3339(expires)}

    def _unknown_target(self, kind: str, req: dict) -> tuple[int, dict] | None:
        """400 for a malformed request, 404 for an endpoint or instance this workspace does not have."""
        if kind == "postgres":
            endpoint = str(req.get("endpoint", ""))
            if not endpoint.startswith("projects/"):
                return 400, {
                    "error_code": "INVALID_PARAMETER_VALUE",
                    "message": "endpoint must look like projects/{project}/branches/{branch}/endpoints/{endpoint}",
                }
            if endpoint != self.endpoint:
                return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Endpoint '{endpoint}' not found."}
            return None
        names = req.get("instance_names")
        if not names:
            return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "instance_names is required"}
        for name in names:
            if name != self.instance_name:
                return 404, {
                    "error_code": "RESOURCE_DOES_NOT_EXIST",
                    "message": f"Database instance '{name}' does not exist.",
                }
        return None

    def _mint(self, c: Client, expires: dt.datetime) -> str:
        """A JWT-shaped token (like real Lakebase credentials; the signature is random)."""
        header = {"alg": "RS256", "typ": "JWT", "kid": "stub"}
        claims = {
            "sub": c.client_id,
            "iss": f"{self.url}/oidc",
            "aud": "lakebase",
            "iat": int(time.time()),
            "exp": int(expires.timestamp()),
            "jti": uuid.uuid4().hex,
        }
        parts = [
            _b64(json.dumps(header).encode()),
            _b64(json.dumps(claims).encode()),
            _b64(secrets.token_bytes(64)),
        ]
        return ".".join(parts)
