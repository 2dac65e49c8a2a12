"""A local server implementing the API contract (§3), with the faults a real API shows.

`create_app(settings)` is a Starlette app: `X-API-Key` auth (A1), create-or-update of customers
and subscriptions, invoices that upsert or conflict (A4), GET/PATCH by id, cursor listing (A8)
and pydantic-style 422 validation (A6, see `sandbox_rules`). Data lives in SQLite (`db`), so a
file survives restarts. Before the app, a fault gate adds latency, checks the key, applies a
token-bucket rate limit (429 + Retry-After), fails a fraction of requests with 500/503 *before*
any write, and drops a fraction of answers *after* the write was committed.

Faults are reproducible: whether a request fails or is dropped is drawn from a hash of the seed
and the request itself (method, path, body, and how many times that same request came before),
so the same run meets the same faults whatever the concurrency.

`sandbox(...)` runs it with uvicorn on 127.0.0.1 in a background thread, for tests and notebooks.
`GET /_sandbox/stats` (no key needed: counts only, no data) reports what was served; those
introspection requests are not counted themselves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import math
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from fincome_toolkit.contract import ENTITIES, ContractSettings
from fincome_toolkit.errors import ConfigError
from fincome_toolkit.sandbox_routes import contract_routes
from fincome_toolkit.sandbox_store import RecordStore, RequestStats

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "sandbox-key"  # public test key, documented: printing it is fine
DEFAULT_PORT = 8765
BACKLOG = 4096
DUPLICATE_POLICIES = ("upsert", "conflict")


@dataclass(frozen=True)
class SandboxSettings:
    """How the sandbox behaves: its key, storage, faults and the contract it implements."""

    api_key: str = DEFAULT_API_KEY
    db: Path | None = None  # SQLite file (survives restarts); None = in memory
    rate_limit: float | None = None  # requests per second (token bucket); None = unlimited
    fail_rate: float = 0.0  # fraction of requests answered 500/503 before any write
    drop_rate: float = 0.0  # fraction of answers lost after the write was committed
    latency_ms: float = 0.0  # added to every request
    duplicate_policy: str = "upsert"  # A4: a second POST /invoices with a known id
    seed: int = 0  # makes the faults reproducible
    default_page_size: int = 100  # A8: page size when `limit` is not given
    contract: ContractSettings = field(default_factory=ContractSettings)

    def __post_init__(self) -> None:
        for name in ("fail_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} is {getattr(self, name)}", fix="use 0 to 1")
        if self.fail_rate + self.drop_rate > 1.0:
            raise ConfigError("fail_rate + drop_rate exceeds 1", fix="lower one of them")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ConfigError(f"rate_limit is {self.rate_limit}", fix="use a positive number")
        if self.latency_ms < 0:
            raise ConfigError(f"latency_ms is {self.latency_ms}", fix="use 0 or more")
        if self.duplicate_policy not in DUPLICATE_POLICIES:
            raise ConfigError(
                f"duplicate_policy is {self.duplicate_policy!r}", fix="use upsert or conflict"
            )
        if not self.api_key:
            raise ConfigError("the sandbox needs an API key", fix=f"e.g. {DEFAULT_API_KEY}")


class _TokenBucket:
    """`rate` tokens per second, holding at most one second's worth (at least one token)."""

    def __init__(self, rate: float) -> None:
        self.rate, self.capacity = rate, max(1.0, rate)
        self.tokens, self.stamp = self.capacity, time.monotonic()

    def take(self) -> float | None:
        """Take a token; None when allowed, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate


class _FaultDraws:
    """Deterministic uniform draws per request: same seed + same request → same faults."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._seen: Counter[bytes] = Counter()

    def draw(self, scope: Scope, body: bytes) -> tuple[float, float, float]:
        """Three numbers in [0, 1): fail?, which 5xx?, drop?"""
        identity = hashlib.sha256(
            b"|".join((scope["method"].encode(), scope["raw_path"], scope["query_string"], body))
        ).digest()
        self._seen[identity] += 1
        key = f"{self.seed}|{self._seen[identity]}".encode() + identity
        digest = hashlib.sha256(key).digest()
        fail, which, drop = (int.from_bytes(digest[i : i + 8]) / 2**64 for i in (0, 8, 16))
        return fail, which, drop


class SandboxApp(Starlette):
    """The contract's routes behind the fault gate; owns the store and the request counters."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.sandbox_settings = settings
        self.store = RecordStore(settings.db)
        self.request_stats = RequestStats()
        self._bucket = _TokenBucket(settings.rate_limit) if settings.rate_limit else None
        self._draws = _FaultDraws(settings.seed)
        self._auth_value = (settings.contract.auth_prefix + settings.api_key).encode()
        super().__init__(routes=contract_routes(settings.contract))

    def stats(self) -> dict[str, Any]:
        """Requests by status and route, injected faults, and stored records per entity."""
        return self.request_stats.snapshot() | {"records": self.store.counts()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox/"):
            await super().__call__(scope, receive, send)
            return
        route = _route_label(self.sandbox_settings.contract, scope)
        body = await _read_body(receive)
        if body is None:  # the client went away before sending its request
            return
        if self.sandbox_settings.latency_ms:
            await asyncio.sleep(self.sandbox_settings.latency_ms / 1000)
        refusal, drop = self._gate(scope, body)
        if refusal is not None:
            self.request_stats.record(route, refusal.status_code)
            await refusal(scope, _replay(body, receive), send)
            return
        await self._serve(route, scope, _replay(body, receive), send, drop=drop)

    def _gate(self, scope: Scope, body: bytes) -> tuple[Response | None, bool]:
        """(refusal, drop?): a 401, 429 or injected 500/503 is decided before any data is
        touched; `drop` says whether to lose the answer once the app has done its work."""
        settings = self.sandbox_settings
        if not self._authorised(scope):
            return JSONResponse({"detail": "Invalid or missing API key"}, 401), False
        if self._bucket is not None and (wait := self._bucket.take()) is not None:
            self.request_stats.fault("rate_limited")
            seconds = str(max(1, math.ceil(wait)))  # delta-seconds is an integer (RFC 9110)
            detail = f"rate limit of {settings.rate_limit:g} requests per second exceeded"
            headers = {"Retry-After": seconds}
            return JSONResponse({"detail": detail}, 429, headers=headers), False
        fail, which, drop = self._draws.draw(scope, body)
        if fail < settings.fail_rate:
            self.request_stats.fault("failed")
            if which < 0.5:
                return JSONResponse({"detail": "Internal Server Error (injected)"}, 500), False
            detail = "Service Unavailable (injected)"
            return JSONResponse({"detail": detail}, 503, headers={"Retry-After": "1"}), False
        return None, drop < settings.drop_rate

    def _authorised(self, scope: Scope) -> bool:
        wanted = self.sandbox_settings.contract.auth_header.lower().encode()
        given = next((value for name, value in scope["headers"] if name == wanted), b"")
        return hmac.compare_digest(given, self._auth_value)

    async def _serve(
        self, route: str, scope: Scope, receive: Receive, send: Send, *, drop: bool
    ) -> None:
        status: list[int] = []

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            if not drop:
                await send(message)

        await super().__call__(scope, receive, answer)
        if drop:
            self.request_stats.record(route, "dropped")
            self.request_stats.fault("dropped")
            await _drop_connection(send)
        else:
            self.request_stats.record(route, status[0] if status else 500)


async def _read_body(receive: Receive) -> bytes | None:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body to the app, then waits for disconnect."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


class _DroppedResponse(Exception):
    """Raised to make the server close a connection without a complete answer."""


async def _drop_connection(send: Send) -> None:
    """Lose the answer: reset the connection before a byte of it is written.

    With uvicorn, `send` is bound to the connection's request cycle, whose transport can be
    aborted directly. Elsewhere, start an answer and fail: every ASGI server then closes the
    connection mid-answer. Either way the client sees a protocol or read error, no status.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        transport.abort()
        for _ in range(3):  # let the server notice the lost connection before we return
            await asyncio.sleep(0)
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise _DroppedResponse("response dropped on purpose by the sandbox (drop_rate)")


def _route_label(contract: ContractSettings, scope: Scope) -> str:
    path = scope["path"]
    for entity in ENTITIES:
        base = contract.path(entity)
        if path == base:
            return f"{scope['method']} {base}"
        if path.startswith(base + "/"):
            return f"{scope['method']} {base}/{{id}}"
    return f"{scope['method']} (unknown path)"


def create_app(settings: SandboxSettings | None = None) -> SandboxApp:
    """The sandbox as an ASGI app (a Starlette subclass carrying `store` and `stats()`)."""
    return SandboxApp(settings or SandboxSettings())


# --- running it ------------------------------------------------------------------------------


@dataclass
class RunningSandbox:
    """A sandbox served on loopback: where it is, its key, and what it served."""

    settings: SandboxSettings
    base_url: str
    app: SandboxApp

    @property
    def api_key(self) -> str:
        """The key clients must send (the public test key unless one was chosen)."""
        return self.settings.api_key

    def stats(self) -> dict[str, Any]:
        """Requests by status and route, injected faults, stored records per entity."""
        return self.app.stats()

    def records(self, entity: str) -> list[dict[str, Any]]:
        """Every stored object of an entity, in insertion order (for tests and notebooks)."""
        return self.app.store.all(entity)

    def contract(self) -> ContractSettings:
        """Contract settings pointing at this sandbox (paths and auth as it implements them)."""
        return self.settings.contract.replace(base_url=self.base_url)


def _server_config(app: SandboxApp, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
        backlog=BACKLOG,
    )


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
    # without it every answer waits ~40 ms (Nagle's algorithm against the client's delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror})",
            fix="choose another --port, or 0 for any free port",
        ) from exc
    # Listen at once: clients told the URL may connect before the server loop accepts.
    sock.listen(BACKLOG)
    return sock


@contextmanager
def sandbox(
    settings: SandboxSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **overrides: Any,
) -> Iterator[RunningSandbox]:
    """Serve a sandbox in a background thread for the `with` block; port 0 = any free port.

    `sandbox(fail_rate=0.2, seed=3)` is a shortcut for `sandbox(SandboxSettings(...))`.
    """
    settings = settings or SandboxSettings()
    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    app = create_app(settings)
    sock = _bind(host, port)
    server = uvicorn.Server(_server_config(app, host, port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fincome-sandbox", daemon=True
    )
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise ConfigError(f"the sandbox could not start on {host}:{port}")
            time.sleep(0.005)
        bound_port = sock.getsockname()[1]
        yield RunningSandbox(settings, f"http://{host}:{bound_port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        app.store.close()


def serve(
    settings: SandboxSettings,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve a sandbox in the foreground until Ctrl-C (the CLI's `sandbox` command).

    `announce` receives the lines of `banner` once the port is bound.
    """
    app = create_app(settings)
    sock = _bind(host, port)
    try:
        if announce:
            for line in banner(settings, f"http://{host}:{sock.getsockname()[1]}"):
                announce(line)
        uvicorn.Server(_server_config(app, host, port)).run(sockets=[sock])
    finally:
        sock.close()
        app.store.close()


def banner(settings: SandboxSettings, base_url: str) -> list[str]:
    """What to tell a user who started a sandbox: where it is and how to point the toolkit at it.

    The default key is a public test key and is shown; a key the user chose is never echoed.
    """
    shown_key = settings.api_key if settings.api_key == DEFAULT_API_KEY else "<the key you chose>"
    faults = [
        f"{name}={value}"
        for name, value in (
            ("rate_limit", settings.rate_limit),
            ("fail_rate", settings.fail_rate),
            ("drop_rate", settings.drop_rate),
            ("latency_ms", settings.latency_ms),
        )
        if value
    ]
    return [
        f"Fincome sandbox listening on {base_url}",
        f"  data: {settings.db or 'in memory (lost on exit; use --db FILE to keep it)'}",
        f"  duplicate invoices: {settings.duplicate_policy}; seed {settings.seed}; "
        f"faults: {', '.join(faults) or 'none'}",
        f"  stats: {base_url}/_sandbox/stats",
        "Point the toolkit at it:",
        f"  export {settings.contract.api_key_env}={shown_key}",
        f"  fincome-toolkit upload ... --base-url {base_url}",
        "Press Ctrl-C to stop.",
    ]
