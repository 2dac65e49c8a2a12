"""A connection pool that stays fast with many concurrent requests: several small httpcore pools.

httpcore's pool scans every connection (checking each idle socket) each time a request starts or
ends, so its cost per request grows with the number of connections: measured on loopback, one
pool of 32 connections spends ~6 ms of CPU per request, four times the cost of eight pools of
four. `ShardedTransport` spreads requests over small pools, picking the least busy one, and is
passed to `FincomeClient(transport=...)`; timeouts still come from the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import cast

import httpx

CONNECTIONS_PER_POOL = 4


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that tells its pool when it is closed (the connection is free again)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream, self._release = stream, release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()


class ShardedTransport(httpx.AsyncBaseTransport):
    """`connections` connections in all, in pools of `per_pool`; each request goes to the least
    busy pool (busy = requests sent whose answer is not closed yet)."""

    def __init__(self, connections: int = 32, *, per_pool: int = CONNECTIONS_PER_POOL) -> None:
        if connections < 1 or per_pool < 1:
            raise ValueError("connections and per_pool must be at least 1")
        pools = -(-connections // per_pool)  # ceiling division
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        tls = httpx.create_ssl_context()  # built once: loading the CA bundle takes ~0.1 s
        self._pools = [httpx.AsyncHTTPTransport(verify=tls, limits=limits) for _ in range(pools)]
        self._busy = [0] * pools

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` through the least busy pool."""
        index = min(range(len(self._pools)), key=self._busy.__getitem__)
        self._busy[index] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._busy[index] -= 1

        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_ReleasingStream(cast(httpx.AsyncByteStream, response.stream), release),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every pool."""
        for pool in self._pools:
            await pool.aclose()
