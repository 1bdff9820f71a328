"""Per-endpoint limits shared by every simulation: connections, requests/min, tokens/min.

Each attempt takes a connection slot, one request from the requests/min bucket
and an estimate of its tokens (prompt characters / 4 + ``max_tokens``) from the
tokens/min bucket; once the response is in, the reservation is settled against
the real usage, so the bucket tracks what the provider counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

BURST_SECONDS = 10.0
"""A bucket holds at most this many seconds' worth of its rate, so a start is not one burst."""


class TokenBucket:
    """A token bucket refilled at ``per_minute / 60`` per second.

    A request larger than the bucket's capacity waits for a full bucket and then
    drives the level negative, so it is served rather than starved.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * BURST_SECONDS)
        self.level = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay(self, amount: float) -> float:
        """Seconds until ``amount`` could be taken (0 when it can be taken now)."""
        self._refill()
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    async def take(self, amount: float) -> None:
        """Wait until ``amount`` is available, then take it (waiters are served in order)."""
        async with self._lock:
            while (wait := self.delay(amount)) > 0:
                await asyncio.sleep(wait)
            self.level -= amount

    def give_back(self, amount: float) -> None:
        """Return ``amount`` (negative to take more) after the real usage is known."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class EndpointLimiter:
    """The limits of one endpoint: a connection semaphore and optional rate buckets."""

    def __init__(
        self,
        max_connections: int,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
    ) -> None:
        self.connections = asyncio.Semaphore(max_connections)
        self.requests = TokenBucket(requests_per_minute) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute) if tokens_per_minute else None

    @asynccontextmanager
    async def slot(self, estimated_tokens: int) -> AsyncIterator[Callable[[int], None]]:
        """Hold a connection and a rate reservation for one attempt.

        Yields a ``settle(actual_tokens)`` callable; an attempt that never calls it
        keeps its whole reservation (a failed attempt may still have been counted).
        """
        tokens = self.tokens

        def settle(actual_tokens: int) -> None:
            if tokens is not None:
                tokens.give_back(estimated_tokens - actual_tokens)

        async with self.connections:
            if self.requests is not None:
                await self.requests.take(1)
            if tokens is not None:
                await tokens.take(estimated_tokens)
            yield settle


def estimate_tokens(messages: tuple[dict[str, str], ...], max_tokens: int) -> int:
    """Tokens to reserve for a request: prompt characters / 4 plus ``max_tokens``."""
    return sum(len(m.get("content") or "") for m in messages) // 4 + max_tokens
