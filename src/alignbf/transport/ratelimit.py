"""Per-endpoint limits shared by every simulation: connections, requests/min, tokens/min.

Each attempt takes a connection slot, one request from the requests/min bucket
and an estimate of its tokens (prompt characters / 4 + ``max_tokens``) from the
tokens/min bucket; once the response is in, the reservation is settled against
the real usage, so the bucket tracks what the provider counts.

The number of connection slots adapts (AIMD): a 429 halves it and pauses the
endpoint for the server's ``Retry-After``; successes win the slots back one by one.
When the server reports what is left of its quota (``x-ratelimit-remaining-requests``
/ ``-tokens`` with ``x-ratelimit-reset-requests`` / ``-tokens``), new requests are held
until the reset once the requests in flight would use up what is left, so the quota is
not overrun in the first place.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from alignbf.transport.retry import parse_duration

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


class Concurrency:
    """How many requests may be in flight at one endpoint: AIMD between 1 and a maximum.

    * A rate limit halves the limit, once per round of requests: only a 429 to a request
      sent after the last cut cuts again (as TCP cuts once per window), so a burst of
      429s to requests already in flight counts once. Its ``Retry-After`` pauses the
      endpoint: no new request starts before it has passed.
    * A 429 is taken for a rate limit when it persists: at least ``PERSIST_COUNT`` of the
      last ``PERSIST_WINDOW`` answers (successes and 429s), and at least half of them,
      were 429s. A
      stray 429 among successes (a provider's hiccup, a fault) is retried after its own
      ``Retry-After`` and leaves the limit and the other requests alone; otherwise a few
      random 429s a second would keep the endpoint paused and the limit at 1.
    * Each success adds ``1 / limit``: about one more slot per round of successes. Once
      the last ``PERSIST_WINDOW`` answers hold no 429 (the rate limit has passed), each
      success adds a whole slot until the limit is back at ``RECOVER_SHARE`` of what it
      was before the latest cut (as TCP's slow start up to its threshold), then one per round.
    * Server errors and timeouts leave the limit alone; they say nothing about the rate.
      They are counted, though: ``failing()`` tells a stray failure among successes
      (worth a prompt retry) from an endpoint whose answers mostly fail (worth backing
      off), by the same rule over the last ``FAIL_WINDOW`` answers of any kind.
    * ``pace()`` holds new requests until the server's quota window resets when what is
      left of the quota would not cover the requests already in flight.

    Waiters are served first come, first served.
    """

    PERSIST_WINDOW = 8
    PERSIST_COUNT = 3
    FAIL_WINDOW = 20
    RECOVER_SHARE = 0.75

    def __init__(self, maximum: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self._recent: deque[bool] = deque(maxlen=self.PERSIST_WINDOW)
        """Whether each of the latest answers was a 429."""
        self._outcomes: deque[bool] = deque(maxlen=self.FAIL_WINDOW)
        """Whether each of the latest answers failed (any transient failure, 429s included)."""
        self.limit = float(maximum)
        self.lowest = float(maximum)
        self.cuts = 0
        self._recover_to = 0.0
        """Up to this limit, successes after a rate limit win back a slot each."""
        self.in_flight = 0
        self.paused_until = -math.inf
        self._cut_at = -math.inf
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def _free(self) -> bool:
        return self.in_flight < int(self.limit) and self._clock() >= self.paused_until

    async def acquire(self) -> float:
        """Wait for a slot; returns the time the request may start (for ``throttled``)."""
        if not self._waiters and self._free():
            self.in_flight += 1
            return self._clock()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.in_flight -= 1  # granted, then cancelled: hand the slot on
            elif waiter in self._waiters:  # ``_wake`` may have dropped it already
                self._waiters.remove(waiter)
            self._wake()
            raise
        return self._clock()

    def release(self) -> None:
        """A request is over (whatever its outcome)."""
        self.in_flight -= 1
        self._wake()

    def succeeded(self) -> None:
        """A request got its answer: grow the limit by ``1 / limit``."""
        self._recent.append(False)
        self._outcomes.append(False)
        step = 1.0 / self.limit
        if self.limit < self._recover_to and not any(self._recent):
            step = 1.0
        self.limit = min(float(self.maximum), self.limit + step)

    def failed(self) -> None:
        """A request failed for a reason other than a 429 (5xx, timeout, reset, bad body)."""
        self._outcomes.append(True)

    def failing(self) -> bool:
        """Whether failures persist: at least ``PERSIST_COUNT`` of the last ``FAIL_WINDOW``
        answers, and at least half of them, failed (a stray failure does not count)."""
        failed = sum(self._outcomes)
        return failed >= self.PERSIST_COUNT and 2 * failed >= len(self._outcomes)

    def pace(self, remaining: float, reset_s: float, per_request: float = 1.0) -> None:
        """The server has ``remaining`` of its quota left until it resets in ``reset_s``.

        When that would not cover ``per_request`` for each request in flight, no new
        request starts before the reset (the requests in flight are left to finish).
        """
        if remaining < self.in_flight * per_request and reset_s > 0:
            self.paused_until = max(self.paused_until, self._clock() + reset_s)

    def _persisting(self) -> bool:
        """Whether the latest answers are mostly 429s (see the class docstring)."""
        limited = sum(self._recent)
        return limited >= self.PERSIST_COUNT and 2 * limited >= len(self._recent)

    def throttled(self, started: float, retry_after: float | None) -> None:
        """A request started at ``started`` got a 429 (with the server's wait, if any)."""
        now = self._clock()
        self._recent.append(True)
        self._outcomes.append(True)
        if not self._persisting():
            return
        if started > self._cut_at:
            self._recover_to = self.RECOVER_SHARE * self.limit
            self.limit = max(1.0, self.limit / 2.0)
            self.lowest = min(self.lowest, self.limit)
            self.cuts += 1
            self._cut_at = now
        if retry_after:
            self.paused_until = max(self.paused_until, now + retry_after)

    def _wake(self) -> None:
        while self._waiters and self._free():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)
        if self._waiters and self._timer is None and self._clock() < self.paused_until:
            delay = self.paused_until - self._clock()
            self._timer = asyncio.get_running_loop().call_later(delay, self._resume)

    def _resume(self) -> None:
        self._timer = None
        self._wake()

    def summary(self) -> ConcurrencySummary:
        """The limit's history in brief, for the run's record."""
        return ConcurrencySummary(self.maximum, self.lowest, self.limit, self.cuts)


@dataclass(frozen=True)
class ConcurrencySummary:
    """Maximum, lowest and final concurrency limit of an endpoint, and how often 429s cut it."""

    maximum: int
    lowest: float
    final: float
    cuts: int


class EndpointLimiter:
    """The limits of one endpoint: a connection semaphore and optional rate buckets."""

    def __init__(
        self,
        max_connections: int,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
    ) -> None:
        self.connections = Concurrency(max_connections)
        self.requests = TokenBucket(requests_per_minute) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute) if tokens_per_minute else None

    @asynccontextmanager
    async def slot(self, estimated_tokens: int) -> AsyncIterator[Slot]:
        """Hold a connection and a rate reservation for one attempt.

        Yields the attempt's ``Slot``: ``settle(actual_tokens)`` once the usage is
        known (an attempt that never calls it keeps its whole reservation: a failed
        attempt may still have been counted), ``throttled(retry_after)`` on a 429.
        """
        connections = self.connections
        started = await connections.acquire()
        try:
            if self.requests is not None:
                await self.requests.take(1)
            if self.tokens is not None:
                await self.tokens.take(estimated_tokens)
            yield Slot(self, estimated_tokens, started)
        finally:
            connections.release()


class Slot:
    """One attempt's hold on an endpoint's limits."""

    __slots__ = ("_limiter", "estimate", "started")

    def __init__(self, limiter: EndpointLimiter, estimate: int, started: float) -> None:
        self._limiter, self.estimate, self.started = limiter, estimate, started

    def settle(self, actual_tokens: int) -> None:
        """The answer came: return the unused token reservation and grow the limit."""
        if self._limiter.tokens is not None:
            self._limiter.tokens.give_back(self.estimate - actual_tokens)
        self._limiter.connections.succeeded()

    def throttled(self, retry_after: float | None) -> None:
        """The endpoint answered 429: cut the concurrency and pause for ``retry_after``."""
        self._limiter.connections.throttled(self.started, retry_after)

    def failed(self) -> None:
        """The attempt failed otherwise (5xx, timeout, reset, bad body): count it, no cut."""
        self._limiter.connections.failed()

    def observe(self, headers: Mapping[str, str]) -> None:
        """Pace the endpoint by the quota its answer reports left (see ``quota_left``)."""
        connections = self._limiter.connections
        for remaining, reset_s, kind in quota_left(headers):
            connections.pace(remaining, reset_s, self.estimate if kind == "tokens" else 1.0)


def quota_left(headers: Mapping[str, str]) -> list[tuple[float, float, str]]:
    """(remaining, seconds to reset, ``requests`` or ``tokens``) for each quota an answer
    reports in ``x-ratelimit-remaining-*`` and ``x-ratelimit-reset-*`` (OpenAI, Groq)."""
    found = []
    for kind in ("requests", "tokens"):
        remaining = headers.get(f"x-ratelimit-remaining-{kind}")
        if remaining is None:
            continue
        reset_s = parse_duration(headers.get(f"x-ratelimit-reset-{kind}") or "")
        try:
            left = float(remaining)
        except ValueError:
            continue
        if reset_s is not None and math.isfinite(left):
            found.append((left, reset_s, kind))
    return found


def estimate_tokens(messages: tuple[dict[str, str], ...], max_tokens: int) -> int:
    """Tokens to reserve for a request: prompt characters / 4 plus ``max_tokens``."""
    return sum(len(m.get("content") or "") for m in messages) // 4 + max_tokens
