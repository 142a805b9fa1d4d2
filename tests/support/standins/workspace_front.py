"""What the deploy workflow meets besides Databricks' own fake workspace: GitHub's OIDC token service, and the
parts of a workspace that libs/testserver does not have. Each is an HTTP server on 127.0.0.1.

GitHubOidc stands for the job's ACTIONS_ID_TOKEN_REQUEST_URL (GitHub docs, "About security hardening with OpenID
Connect", "Configuring OpenID Connect in cloud providers"): `GET <url>&audience=<aud>` with
`Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN` answers `{"value": <JWT>}` whose `sub` is
`repo:<owner>/<repo>:environment:<name>` for a job in an environment, else `repo:<owner>/<repo>:ref:<ref>` or
`repo:<owner>/<repo>:pull_request`. A request token is issued per job by the workflow runner; a step cannot
change the subject it stands for. The JWT is signed with a key only these stand-ins know.

WorkspaceFront is DATABRICKS_HOST for the workflow: it passes every request to the testserver and adds
  - workload identity federation (docs: dev-tools/auth/oauth-federation, "service principal federation policy";
    sdk-go config/experimental/auth/oidc/tokensource.go sends the token exchange): POST /oidc/v1/token with
    grant_type token-exchange, the GitHub JWT and a client_id succeeds only if that service principal has a
    policy whose issuer, audience and subject match the JWT; the testserver's own /oidc/v1/token hands every
    caller the same token;
  - host metadata as a workspace advertises it (sdk-go config/host_metadata.go: the default OIDC audience of a
    workspace host is `https://<workspace host>/oidc/v1/token`), pointing the OIDC endpoints here;
  - one identity per service principal: the testserver knows a single one (fake_workspace.go TestUserSP); here
    /Me answers the federated service principal's own application id as its userName, as Databricks does;
  - the permissions the testserver records but never enforces: changing an app needs CAN_MANAGE on it (Apps docs,
    "Configure permissions for a Databricks app"; its creator has it); changing a Lakebase project needs
    CAN_MANAGE and creating or deleting what is inside it (branches, databases, roles) CAN_USE or CAN_MANAGE
    (Lakebase docs, "Manage project permissions": CAN_USE and CAN_MANAGE are the grantable levels, the creator
    holds CAN_MANAGE); a user's home folder is theirs alone (workspace docs, "Folders": only the user and admins
    can use /Users/<name>);
  - the list of apps (GET /api/2.0/apps, which the testserver does not serve), from the apps created here;
  - PostgreSQL behind the endpoints, Lakebase credentials and a branch's copy of its source's databases
    (lakebase_postgres.py), each endpoint's host being the harness's server;
  - a branch's `status.expire_time` (creation + ttl, which the real API materializes; the testserver leaves it
    out), with a way for a test to move a branch's creation back in time.
Every request is recorded with the identity it ran as and its status.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
_KEY = secrets.token_bytes(32)  # signs the stand-in's GitHub JWTs


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: dict[str, Any]) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + _b64(hmac.new(_KEY, head.encode(), hashlib.sha256).digest())


def verify(token: str) -> dict[str, Any] | None:
    try:
        head, body, signature = token.split(".")
    except ValueError:
        return None
    expected = hmac.new(_KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64(signature)):
        return None
    claims = json.loads(_unb64(body))
    return claims if claims.get("exp", 0) > time.time() else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], owner: Any) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.owner = owner
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":  # Go's client chunks form posts
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(chunks)


# ------------------------------------------------------------------------------------------------ GitHub
class GitHubOidc:
    """GitHub's OIDC token service for the jobs of one repository."""

    def __init__(self) -> None:
        self.subjects: dict[str, str] = {}  # request token -> subject
        self.issued: list[dict[str, Any]] = []
        self.server = _Server(_GitHubHandler, self)

    def request_token(self, subject: str) -> tuple[str, str]:
        """ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN for a job with this subject."""
        token = secrets.token_urlsafe(24)
        self.subjects[token] = subject
        return f"{self.server.url}/token?api-version=2.0", token

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _GitHubHandler(_Handler):
    def do_GET(self) -> None:
        owner: GitHubOidc = self.server.owner  # type: ignore[attr-defined]
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
        subject = owner.subjects.get(bearer)
        if subject is None:
            return self.reply(401, {"message": "Bad credentials"})
        query = parse_qs(urlsplit(self.path).query)
        now = int(time.time())
        claims = {
            "iss": GITHUB_ISSUER,
            "sub": subject,
            "aud": query.get("audience", [f"https://github.com/{subject.split(':')[1]}"])[0],
            "iat": now,
            "exp": now + 300,
        }
        owner.issued.append(claims)
        return self.reply(200, {"count": 1, "value": sign(claims)})


# ------------------------------------------------------------------------------------------------ Databricks
@dataclass
class Policy:
    """A service principal federation policy (the fields `databricks account service-principal-federation-policy
    create` takes in its oidc_policy)."""

    subject: str
    audiences: list[str]
    issuer: str = GITHUB_ISSUER


@dataclass
class Identity:
    principal: str  # "sp:<application id>" or "user:<user name>"
    user_name: str
    upstream_token: str


@dataclass
class Recorded:
    principal: str
    method: str
    path: str
    query: str
    status: int
    body: Any = None


@dataclass
class _State:
    policies: dict[str, list[Policy]] = field(default_factory=dict)  # application id -> its policies
    tokens: dict[str, Identity] = field(default_factory=dict)  # our access tokens
    creators: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, id) -> principal
    apps: list[str] = field(default_factory=list)  # names of apps created here, in order
    ttls: dict[str, float] = field(default_factory=dict)  # branch name -> ttl seconds
    created_at: dict[str, datetime] = field(default_factory=dict)  # branch name -> creation (overrides)
    log: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


CREDENTIALS = ("/api/2.0/postgres/credentials", "/api/2.0/database/credentials")
USER_NAME = "tester@databricks.com"  # the testserver's user behind a dbapi0 token (fake_workspace.go TestUser)
LEVELS = {"CAN_USE": 1, "CAN_MANAGE": 2}
_APP = re.compile(r"/api/2\.0/apps/([^/]+)(/.*)?")
_APP_PERMISSIONS = re.compile(r"/api/2\.0/permissions/apps/([^/]+)")
_PROJECT = re.compile(r"/api/2\.0/postgres/projects/([^/]+)(/.*)?")
_PROJECT_PERMISSIONS = re.compile(r"/api/2\.0/permissions/database-projects/([^/]+)")
_BRANCH = re.compile(r"projects/[^/]+/branches/[^/]+")
_HOME = re.compile(r"^(?:/Workspace)?/Users/([^/]+)")


class WorkspaceFront:
    """DATABRICKS_HOST for the workflow: the testserver behind it, plus federation, identities and permissions."""

    def __init__(self, upstream_url: str, workspace_key: str, lakebase: Any = None) -> None:
        self.upstream = urlsplit(upstream_url)
        self.key = workspace_key
        self.lakebase = lakebase  # a LakebasePostgres, or None: no database behind the endpoints
        self.role_names: dict[str, str] = {}  # role resource name -> its postgres_role
        self.state = _State()
        self.server = _Server(_FrontHandler, self)
        self.url = self.server.url

    # ---------------------------------------------------------------------------------- set-up by the test
    def trust(self, application_id: str, subject: str, audience: str) -> None:
        """An account admin's federation policy: this service principal trusts GitHub tokens for `subject`."""
        self.state.policies.setdefault(application_id, []).append(Policy(subject, [audience]))

    @property
    def user_token(self) -> str:
        """A developer's own token (the testserver's user), as `databricks auth login` would give."""
        return "dbapi0" + self.key

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """A workspace admin's call, straight to the testserver (admins may do anything)."""
        status, data, _ = self._upstream(
            method,
            path,
            json.dumps(body).encode() if body is not None else b"",
            {
                "Authorization": f"Bearer dbapi0{self.key}",
                "Content-Type": "application/json",
            },
        )
        if status >= 400:
            raise RuntimeError(f"{method} {path}: {status} {data[:500]!r}")
        return json.loads(data or b"null")

    def age_branch(self, name: str, created: datetime) -> None:
        self.state.created_at[name] = created

    def requests(self) -> list[Recorded]:
        with self.state.lock:
            return list(self.state.log)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---------------------------------------------------------------------------------- serving
    def _upstream(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, list]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.read(), response.getheaders()
        finally:
            conn.close()

    def identity(self, authorization: str) -> Identity | None:
        token = authorization.removeprefix("Bearer ")
        if token in self.state.tokens:
            return self.state.tokens[token]
        if token.startswith("dbapi0"):
            return Identity(f"user:{USER_NAME}", USER_NAME, token)
        return None

    def exchange(self, form: dict[str, list[str]]) -> tuple[int, Any]:
        """Databricks' token exchange for workload identity federation."""
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:token-exchange"]:
            return 400, {"error": "unsupported_grant_type", "error_description": "only token exchange here"}
        client_id = (form.get("client_id") or [""])[0]
        claims = verify((form.get("subject_token") or [""])[0])
        if claims is None:
            return 401, {"error": "invalid_request", "error_description": "the subject token is not valid"}
        for policy in self.state.policies.get(client_id, []):
            if claims["iss"] == policy.issuer and claims["sub"] == policy.subject and claims["aud"] in policy.audiences:
                token = "lbfed" + secrets.token_hex(16)
                self.state.tokens[token] = Identity(f"sp:{client_id}", client_id, "dbapi1" + self.key)
                return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"}
        return 401, {
            "error": "invalid_client",
            "error_description": f"no federation policy of service principal {client_id or '(none)'} matches "
            f"issuer {claims['iss']}, subject {claims['sub']}, audience {claims['aud']}",
        }

    def level(self, principal: str, kind: str, object_id: str) -> int:
        """The caller's permission level on an app or a database project (0: none)."""
        if self.state.creators.get((kind, object_id)) == principal:
            return LEVELS["CAN_MANAGE"]
        status, data, _ = self._upstream(
            "GET", f"/api/2.0/permissions/{kind}/{object_id}", b"", {"Authorization": f"Bearer dbapi0{self.key}"}
        )
        if status != 200:
            return 0
        found = 0
        who, _, name = principal.partition(":")
        for entry in json.loads(data).get("access_control_list") or []:
            mine = entry.get("service_principal_name" if who == "sp" else "user_name") == name
            if mine or entry.get("group_name") == "users":  # every workspace identity is in `users`
                for permission in entry.get("all_permissions") or [entry]:
                    found = max(found, LEVELS.get(permission.get("permission_level", ""), 0))
        return found

    def refusal(self, who: Identity, method: str, path: str, query: str, body: bytes) -> str | None:
        """Why this call is not allowed, or None."""
        changing = method not in ("GET", "HEAD")
        paths = [path, *parse_qs(query).get("path", [])]
        if body[:1] == b"{":
            try:
                value = json.loads(body).get("path")
            except (ValueError, AttributeError):
                value = None
            if isinstance(value, str):
                paths.append(value)
        for candidate in paths:
            inner = re.sub(
                r"^/api/2\.0/(workspace-files(/import-file)?|fs/(files|directories))/?", "/", unquote(candidate)
            )
            home = _HOME.match(inner)
            if home and home[1] != who.user_name:
                return f"{who.user_name} has no access to {home[0]}"
        if not changing:
            return None
        app = _APP.fullmatch(path) or _APP_PERMISSIONS.fullmatch(path)
        if app and (app.re is _APP_PERMISSIONS or app[2] is not None or method in ("PATCH", "DELETE")):
            exists = self._exists(f"/api/2.0/apps/{app[1]}")
            if exists and self.level(who.principal, "apps", app[1]) < LEVELS["CAN_MANAGE"]:
                return f"{who.user_name} does not have CAN_MANAGE on app {app[1]}"
        if m := _PROJECT_PERMISSIONS.fullmatch(path):
            if self.level(who.principal, "database-projects", m[1]) < LEVELS["CAN_MANAGE"]:
                return f"{who.user_name} does not have CAN_MANAGE on project {m[1]}"
        if m := _PROJECT.fullmatch(path):
            needed = "CAN_MANAGE" if not m[2] else "CAN_USE"
            if self.level(who.principal, "database-projects", m[1]) < LEVELS[needed]:
                return f"{who.user_name} does not have {needed} on project {m[1]}"
        return None

    def _exists(self, path: str) -> bool:
        status, _, _ = self._upstream("GET", path, b"", {"Authorization": f"Bearer dbapi0{self.key}"})
        return status == 200

    def created(self, who: Identity, method: str, path: str, query: str, body: bytes, status: int, data: bytes) -> None:
        """Remember who created an app, a project or a branch (and the branch's ttl); give what the API created its
        PostgreSQL counterpart."""
        if status >= 300:
            return
        params = parse_qs(query)
        spec = (_json(body) or {}).get("spec") or {} if method == "POST" else {}
        sub = re.fullmatch(r"/api/2\.0/postgres/(projects/[^/]+/branches/[^/]+)/(roles|databases)", path)
        if method == "DELETE" and (m := re.fullmatch(r"/api/2\.0/postgres/(projects/[^/]+/branches/[^/]+)", path)):
            if self.lakebase:
                self.lakebase.branch_deleted(m[1])
        if method != "POST":
            return
        if path == "/api/2.0/apps":
            name = json.loads(body)["name"]
            self.state.creators[("apps", name)] = who.principal
            if name not in self.state.apps:
                self.state.apps.append(name)
            if self.lakebase and (client_id := (_json(data) or {}).get("service_principal_client_id")):
                self.lakebase.login_role(client_id)
        elif path == "/api/2.0/postgres/projects":
            self.state.creators[("database-projects", params["project_id"][0])] = who.principal
        elif (m := _PROJECT.fullmatch(path)) and m[2] == "/branches":
            name = f"projects/{m[1]}/branches/{params['branch_id'][0]}"
            if spec.get("ttl"):
                self.state.ttls[name] = float(spec["ttl"].rstrip("s"))
            if self.lakebase and spec.get("source_branch"):
                self.lakebase.branch_created(name, spec["source_branch"])
        elif sub and sub[2] == "roles" and self.lakebase:
            self.role_names[f"{sub[1]}/roles/{params['role_id'][0]}"] = spec["postgres_role"]
            self.lakebase.role_created(who.user_name, spec["postgres_role"])
        elif sub and sub[2] == "databases" and self.lakebase:
            owner = self.role_names.get(spec.get("role", ""))
            self.lakebase.database_created(
                who.user_name, sub[1], params["database_id"][0], spec["postgres_database"], owner
            )

    def list_apps(self) -> dict[str, Any]:
        """GET /api/2.0/apps: every app created here that still exists (one page)."""
        found = []
        for name in list(self.state.apps):
            status, data, _ = self._upstream(
                "GET", f"/api/2.0/apps/{name}", b"", {"Authorization": f"Bearer dbapi0{self.key}"}
            )
            if status == 200:
                found.append(json.loads(data))
        return {"apps": found}

    def answered(self, path: str, data: bytes) -> bytes:
        """What the testserver answered, with what it lacks added."""
        if re.fullmatch(r"/api/2\.0/postgres/projects/[^/]+/branches(/[^/]+)?", path):
            return self.with_expiry(data)
        if not self.lakebase:
            return data
        if re.fullmatch(r"/api/2\.0/postgres/projects/[^/]+/branches/[^/]+/endpoints(/[^/]+)?", path):
            document = json.loads(data)
            for endpoint in document.get("endpoints") or [document]:
                hosts = (endpoint.get("status") or {}).get("hosts") or {}
                if hosts.get("host"):
                    hosts["host"] = self.lakebase.host  # every endpoint is the harness's server
            return json.dumps(document).encode()
        if m := re.fullmatch(r"/api/2\.0/postgres/(projects/[^/]+/branches/[^/]+)/databases", path):
            document = json.loads(data)
            for database_id, copy in self.lakebase.inherited(m[1]).items():
                document.setdefault("databases", []).append(
                    {"name": f"{m[1]}/databases/{database_id}", "status": {"postgres_database": copy}}
                )
            return json.dumps(document).encode()
        if re.fullmatch(r"/api/2\.0/database/instances/[^/]+", path):
            document = json.loads(data)
            document["read_write_dns"] = self.lakebase.host
            return json.dumps(document).encode()
        return data

    def with_expiry(self, data: bytes) -> bytes:
        """Add status.expire_time (creation + ttl) to a branch or a list of branches."""
        document = json.loads(data)

        def fix(branch: dict[str, Any]) -> None:
            name = branch.get("name", "")
            if name not in self.state.ttls:
                return
            created = self.state.created_at.get(name) or datetime.fromisoformat(branch["create_time"])
            expires = created + timedelta(seconds=self.state.ttls[name])
            branch.setdefault("status", {})["expire_time"] = expires.astimezone(UTC).isoformat()

        for branch in document.get("branches") or [document]:
            fix(branch)
        return json.dumps(document).encode()


class _FrontHandler(_Handler):
    def _serve(self) -> None:
        front: WorkspaceFront = self.server.owner  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        path, query = split.path, split.query
        body = self.body()
        if path == "/.well-known/databricks-config":
            return self.reply(
                200,
                {
                    "oidc_endpoint": front.url + "/oidc",
                    "workspace_id": "900800700600",
                    "token_federation_default_oidc_audiences": [front.url + "/oidc/v1/token"],
                },
            )
        if path == "/oidc/.well-known/oauth-authorization-server":
            return self.reply(
                200,
                {
                    "authorization_endpoint": front.url + "/oidc/v1/authorize",
                    "token_endpoint": front.url + "/oidc/v1/token",
                },
            )
        if path == "/oidc/v1/token":
            status, answer = front.exchange(parse_qs(body.decode()))
            self._record("-", "POST", path, "", status, {"client_id": parse_qs(body.decode()).get("client_id")})
            return self.reply(status, answer)
        who = front.identity(self.headers.get("Authorization", ""))
        if who is None:
            self._record("-", self.command, path, query, 401)
            return self.reply(401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."})
        if path == "/api/2.0/preview/scim/v2/Me" and who.principal.startswith("sp:"):
            self._record(who.principal, "GET", path, query, 200)
            return self.reply(
                200,
                {
                    "id": str(uuid.uuid5(uuid.NAMESPACE_OID, who.user_name).int % 10**15),
                    "userName": who.user_name,
                    "displayName": who.user_name,
                    "active": True,
                    "groups": [{"display": "users"}],
                },
            )
        if path == "/api/2.0/apps" and self.command == "GET":
            self._record(who.principal, "GET", path, query, 200)
            return self.reply(200, front.list_apps())
        why = front.refusal(who, self.command, path, query, body)
        if why:
            self._record(who.principal, self.command, path, query, 403)
            return self.reply(403, {"error_code": "PERMISSION_DENIED", "message": why})
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization", "content-length")
        }
        headers["Authorization"] = f"Bearer {who.upstream_token}"
        if front.lakebase and self.command == "POST" and path in CREDENTIALS:
            self._record(who.principal, "POST", path, query, 200, _json(body))
            return self.reply(200, front.lakebase.credential(who.user_name))
        status, data, response_headers = front._upstream(self.command, self.path, body, headers)
        front.created(who, self.command, path, query, body, status, data)
        if self.command == "GET" and status == 200:
            data = front.answered(path, data)
        self._record(who.principal, self.command, path, query, status, _json(body))
        passed = {k: v for k, v in response_headers if k.lower() in ("content-type", "location")}
        return self.reply(status, data, passed)

    def _record(self, principal: str, method: str, path: str, query: str, status: int, body: Any = None) -> None:
        front: WorkspaceFront = self.server.owner  # type: ignore[attr-defined]
        with front.state.lock:
            front.state.log.append(Recorded(principal, method, path, query, status, body))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None
