"""How the uploader waits: the retry policy (capped exponential backoff with jitter) and the shared
rate-limit gate that pauses the whole worker pool when Fincome answers 429.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    - `max_attempts`: HTTP requests one record may use for transient failures (5xx, timeouts,
      dropped connections), across its POST, GET and PATCH steps. Then it stays pending and the
      next run sends it again.
    - `base_delay`, `max_delay` (seconds): backoff is `base_delay * 2**(n-1)`, capped at
      `max_delay`, which also caps the `Retry-After` of a 503 (a wait for that request only).
    - `jitter` (0..1): the fraction of the delay drawn at random, so a pool of workers that failed
      together does not retry together.
    - `max_rate_limited`: 429 answers one record may receive before it is left pending (429s
      do not use `max_attempts`: being told to slow down is not a failure).
    - `max_retry_after` (seconds): a cap on a 429's `Retry-After` (which pauses every worker),
      so one absurd header cannot stall a run for an hour.
    - `seed`: makes the jitter reproducible; `sleep`: how to wait (tests may inject their own).
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    max_rate_limited: int = 100
    max_retry_after: float = 120.0
    seed: int | None = None
    sleep: Sleep = asyncio.sleep

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("RetryPolicy.jitter must be between 0 and 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays cannot be negative")

    def rng(self) -> random.Random:
        """A fresh random generator for one run (seeded when `seed` is set)."""
        return random.Random(self.seed)

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after the `failures`-th consecutive failure (1-based)."""
        delay = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
        return delay * (1 - self.jitter * rng.random())


class RateGate:
    """One gate shared by every worker: a 429 closes it for `Retry-After` seconds for everyone.

    Without it, each worker would learn about the limit on its own and the pool would keep
    hammering the server while some workers wait.
    """

    def __init__(
        self, *, sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.monotonic
    ):
        self._sleep = sleep
        self._clock = clock
        self._open_at = 0.0
        self.pauses = 0

    def close_for(self, seconds: float) -> None:
        """Keep the gate closed for at least `seconds` from now (never shortens a pause)."""
        reopen = self._clock() + max(seconds, 0.0)
        if reopen > self._open_at:
            self._open_at = reopen
            self.pauses += 1

    async def wait(self) -> None:
        """Return at once when open, else sleep until the current pause ends."""
        delay = self._open_at - self._clock()
        if delay > 0:
            await self._sleep(delay)
