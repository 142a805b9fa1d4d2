"""The load generator of bench/load.py: keep-alive HTTP/1.1 clients on 127.0.0.1 in asyncio, bounded in count and
seconds (or wrk when it is installed), and the result of a run (req/s, p50/p99, failures by cause)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

from tests.support.waiting import HANG_GUARD

READERS = 8  # owners whose lists the GETs read (seeded with SEED_ITEMS each)
SEED_ITEMS = 5


@dataclass
class LoadResult:
    clients: int
    seconds: float
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)
    events: list[tuple[float, bool]] = field(default_factory=list)  # (monotonic end, ok)
    errors: Counter = field(default_factory=Counter)
    quantiles: dict[str, float] = field(default_factory=dict)  # seconds, as wrk reports them ("50%", "99%")
    cpu: tuple[float, float] = (0.0, 0.0)  # CPU seconds of the app and of its backends (scenario 8)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if f"{q * 100:.0f}%" in self.quantiles:
            return self.quantiles[f"{q * 100:.0f}%"] * 1000
        if not self.latencies:
            return float("nan")
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000


def _post_item(owner: str, title: str) -> bytes:
    body = json.dumps({"title": title}).encode()
    return (
        f"POST /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Email: {owner}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def request_bytes(mode: str, i: int, n: int) -> bytes:
    if mode == "reads":
        return b"GET /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Email: reader0@example.com\r\n\r\n"
    if mode == "writes":  # a new owner every 50 items: none comes near the rendered app's per-user item limit
        return _post_item(f"writer{i}-{n // 50}@example.com", f"item {i}-{n}")
    if mode == "items":
        if (i + n) % 5 == 0:
            return _post_item(f"writer{i}@example.com", f"item {i}-{n}")
        return (
            f"GET /api/items HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Email: reader{i % READERS}@example.com\r\n\r\n"
        ).encode()
    return f"GET {mode} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()  # mode is a path


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    line = await reader.readline()
    if not line:
        raise ConnectionResetError("connection closed by the app")
    status = int(line.split()[1])
    length, chunked, close = None, False, False
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        key, _, value = header.partition(b":")
        key, value = key.strip().lower(), value.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif key == b"connection" and value == b"close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        close = True
    return status, close


async def _load(ports: list[int], mode: str, clients: int, seconds: float, timeout: float) -> LoadResult:
    result = LoadResult(clients, seconds)
    deadline = time.monotonic() + seconds

    async def client(i: int) -> None:
        port = ports[i % len(ports)]
        reader = writer = None
        n = 0
        while time.monotonic() < deadline:
            data = request_bytes(mode, i, n)
            n += 1
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
                writer.write(data)
                status, close = await asyncio.wait_for(_read_response(reader), timeout)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                result.failed += 1
                result.errors[type(e).__name__] += 1
                result.events.append((time.monotonic(), False))
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.02)
                continue
            ok = 200 <= status < 300
            result.events.append((time.monotonic(), ok))
            if ok:
                result.ok += 1
                result.latencies.append(time.perf_counter() - t0)
            else:
                result.failed += 1
                result.errors[f"HTTP {status}"] += 1
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return result


def run_load(ports: list[int], mode: str, clients: int, seconds: float, timeout: float = 30.0) -> LoadResult:
    return asyncio.run(_load(ports, mode, clients, seconds, timeout))


# wrk's request for mode "writes": every request a POST of one item, a new owner every 50 per wrk thread (wrk's Lua
# API, https://github.com/wg/wrk/blob/master/SCRIPTING: request() returns wrk.format(method, path, headers, body))
WRK_POST = """counter = 0
request = function()
  counter = counter + 1
  local owner = "writer" .. math.floor(counter / 50) .. "@example.com"
  local headers = {["Content-Type"] = "application/json", ["X-Forwarded-Email"] = owner}
  return wrk.format("POST", nil, headers, '{"title": "written by wrk"}')
end
"""


def run_wrk(
    port: int, clients: int, seconds: float, user: str = "reader0@example.com", mode: str = "reads"
) -> LoadResult:
    """GET /api/items (mode "reads") or POST /api/items ("writes") as ``user`` with wrk (2 threads, keep-alive);
    the asyncio loader when wrk is missing."""
    if not shutil.which("wrk"):
        return run_load([port], mode, clients, seconds)
    command = ["wrk", "-t2", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-H", f"X-Forwarded-Email: {user}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_POST if mode == "writes" else "")
        script.flush()
        out = subprocess.run(
            [*command, "-s", script.name, f"http://127.0.0.1:{port}/api/items"],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
    result = LoadResult(clients, seconds)
    total = failed = 0
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] == "requests" and words[0].isdigit():
            total = int(words[0])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            failed += int(words[-1])
            result.errors["non-2xx"] += int(words[-1])
        elif line.strip().startswith("Socket errors:"):
            failed += sum(int(w.strip(",")) for w in words if w.strip(",").isdigit())
            result.errors["socket"] += 1
        elif len(words) == 2 and words[0] in ("50%", "99%"):
            unit = next(u for u in ("us", "ms", "s") if words[1].endswith(u))
            result.quantiles[words[0]] = float(words[1][: -len(unit)]) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]
    result.ok, result.failed = total - failed, failed
    return result


def http(
    url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None, timeout=HANG_GUARD
) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0
