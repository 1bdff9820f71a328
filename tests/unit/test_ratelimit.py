"""Token buckets and the per-endpoint limiter."""

from __future__ import annotations

import asyncio

import pytest

from alignbf.transport.ratelimit import (
    Concurrency,
    EndpointLimiter,
    Slot,
    TokenBucket,
    estimate_tokens,
    quota_left,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_its_rate_and_caps_bursts() -> None:
    clock = Clock()
    bucket = TokenBucket(600, clock)  # 10 per second, 100 at most
    assert bucket.capacity == 100 and bucket.delay(100) == 0
    bucket.level -= 100
    assert bucket.delay(10) == pytest.approx(1.0)
    clock.now = 0.5
    assert bucket.delay(10) == pytest.approx(0.5)
    clock.now = 1000
    assert bucket.delay(1) == 0 and bucket.level == 100


def test_oversized_request_waits_for_a_full_bucket_then_goes_into_debt() -> None:
    clock = Clock()
    bucket = TokenBucket(60, clock)
    asyncio.run(bucket.take(50))
    assert bucket.level == 10 - 50
    bucket.give_back(45)  # the real usage was 5 tokens
    assert bucket.level == 10 - 5


def test_limiter_holds_at_most_max_connections() -> None:
    limiter = EndpointLimiter(2)
    active, peak = 0, 0

    async def one() -> None:
        nonlocal active, peak
        async with limiter.slot(10):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.01)
            active -= 1

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            for _ in range(6):
                tg.create_task(one())

    asyncio.run(main())
    assert peak == 2


def test_estimate_is_prompt_chars_over_four_plus_max_tokens() -> None:
    messages = ({"role": "system", "content": "x" * 40}, {"role": "user", "content": "y" * 8})
    assert estimate_tokens(messages, 100) == 112


def test_settle_returns_unused_tokens_and_grows_the_limit() -> None:
    limiter = EndpointLimiter(4, tokens_per_minute=6000)
    limiter.connections.limit = 2.0

    async def main() -> None:
        async with limiter.slot(300) as slot:
            slot.settle(100)

    asyncio.run(main())
    assert limiter.tokens is not None and limiter.tokens.level == pytest.approx(1000 - 100, abs=1)
    assert limiter.connections.limit == 2.5 and limiter.connections.in_flight == 0


def _persist(limit: Concurrency, clock: Clock) -> None:
    """Two 429s among the last answers: the next one makes the rate limit persistent."""
    for _ in range(Concurrency.PERSIST_COUNT - 1):
        limit.throttled(started=clock.now - 10, retry_after=None)


def test_429s_to_one_round_of_requests_cut_the_limit_once() -> None:
    clock = Clock()
    limit = Concurrency(16, clock)
    _persist(limit, clock)
    assert (limit.limit, limit.cuts) == (16.0, 0)  # not yet persistent
    limit.throttled(started=0.0, retry_after=None)
    limit.throttled(started=0.0, retry_after=None)  # sent before the cut: same round
    assert (limit.limit, limit.cuts) == (8.0, 1)
    clock.now = 0.5
    limit.throttled(started=0.25, retry_after=None)  # sent after the cut: a new round
    assert (limit.limit, limit.cuts, limit.lowest) == (4.0, 2, 4.0)
    for _ in range(5):
        clock.now += 0.1
        limit.throttled(started=clock.now, retry_after=None)
    assert limit.limit == 1.0  # never below one


def test_a_stray_429_among_successes_neither_cuts_nor_pauses() -> None:
    clock = Clock()
    limit = Concurrency(16, clock)
    for i in range(200):
        clock.now = i * 0.01
        if i % 25 == 0:  # 4% of the answers, as random faults give
            limit.throttled(started=clock.now, retry_after=1.0)
        else:
            limit.succeeded()
    assert (limit.limit, limit.cuts) == (16.0, 0)
    assert limit.paused_until == float("-inf")
    for sent in range(1, 200):  # noqa: B007 - then the endpoint answers nothing but 429s
        clock.now += 0.01
        limit.throttled(started=clock.now, retry_after=1.0)
        if limit.cuts:
            break
    # the 429s are half of the last eight answers after four of them
    assert limit.cuts == 1 and sent == 4
    assert limit.paused_until == pytest.approx(clock.now + 1.0)


def test_successes_win_back_about_one_slot_per_round_up_to_the_maximum() -> None:
    limit = Concurrency(8)
    limit.limit = 2.0
    for _ in range(2):
        limit.succeeded()
    assert limit.limit == pytest.approx(2.9)  # 2 + 1/2 + 1/2.5
    for _ in range(1000):
        limit.succeeded()
    assert limit.limit == 8.0 and limit.summary().lowest == 8.0


def test_a_cut_limit_holds_requests_back_in_arrival_order() -> None:
    limit = Concurrency(4)
    order: list[int] = []

    async def one(i: int, hold: float) -> None:
        await limit.acquire()
        order.append(i)
        await asyncio.sleep(hold)
        limit.release()

    async def main() -> int:
        for _ in range(Concurrency.PERSIST_COUNT):
            limit.throttled(started=0.0, retry_after=None)
        limit.throttled(started=limit._clock(), retry_after=None)  # now 1 slot
        async with asyncio.TaskGroup() as tg:
            for i in range(5):
                tg.create_task(one(i, 0.01))
            await asyncio.sleep(0.005)
            peak = limit.in_flight
        return peak

    assert asyncio.run(main()) == 1
    assert order == [0, 1, 2, 3, 4] and limit.in_flight == 0


def test_retry_after_pauses_every_new_request_until_it_has_passed() -> None:
    limit = Concurrency(8)
    starts: list[float] = []

    async def main() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(Concurrency.PERSIST_COUNT):
            limit.throttled(started=limit._clock(), retry_after=0.2)

        async def one() -> None:
            await limit.acquire()
            starts.append(loop.time() - t0)
            limit.release()

        async with asyncio.TaskGroup() as tg:
            for _ in range(3):
                tg.create_task(one())
        return loop.time() - t0

    asyncio.run(main())
    assert len(starts) == 3 and min(starts) >= 0.2


def test_a_waiter_cancelled_after_its_slot_was_granted_hands_it_on() -> None:
    limit = Concurrency(1)

    async def main() -> None:
        await limit.acquire()
        waiter = asyncio.create_task(limit.acquire())
        second = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0)
        limit.release()  # grants the slot to ``waiter`` ...
        waiter.cancel()  # ... which is cancelled before it runs
        await asyncio.wait_for(second, 1)
        assert limit.in_flight == 1
        limit.release()

    asyncio.run(main())
    assert limit.in_flight == 0


def test_a_cancelled_waiter_already_dropped_by_a_wake_up_leaves_cleanly() -> None:
    limit = Concurrency(1)

    async def main() -> None:
        await limit.acquire()
        waiter = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0)
        waiter.cancel()  # its future is cancelled now; the task has not run its handler
        limit.release()  # the wake-up drops the cancelled future from the queue
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert limit.in_flight == 0 and not limit._waiters

    asyncio.run(main())


def test_server_errors_neither_cut_nor_pause_and_only_persisting_ones_count() -> None:
    limit = Concurrency(16)
    for i in range(100):
        if i % 5 == 0:  # 20 % of the answers are 500s, resets or timeouts
            limit.failed()
        else:
            limit.succeeded()
        assert not limit.failing()
    assert (limit.limit, limit.cuts, limit.paused_until) == (16.0, 0, float("-inf"))
    for _ in range(Concurrency.FAIL_WINDOW // 2):  # then the endpoint fails every request
        limit.failed()
    assert limit.failing() and (limit.limit, limit.cuts) == (16.0, 0)


def test_quota_left_reads_remaining_and_reset_headers() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-reset-requests": "1.5s",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-tokens": "120ms",
    }
    assert quota_left(headers) == [(3.0, 1.5, "requests"), (900.0, 0.12, "tokens")]
    assert quota_left({"x-ratelimit-remaining-requests": "3"}) == []  # no reset: no pacing
    assert quota_left({}) == []


def test_remaining_quota_below_the_requests_in_flight_holds_new_ones_until_the_reset() -> None:
    clock = Clock()
    limiter = EndpointLimiter(8)
    limit = limiter.connections = Concurrency(8, clock)

    async def main() -> list[float]:
        starts: list[float] = []
        for _ in range(3):
            await limit.acquire()
        slot = Slot(limiter, 100, clock.now)
        slot.observe({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "2s"})
        assert limit.paused_until == float("-inf")  # 5 left cover the 3 in flight
        slot.observe({"x-ratelimit-remaining-requests": "2", "x-ratelimit-reset-requests": "2s"})
        assert limit.paused_until == 2.0
        limit.release()
        waiter = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)
        assert not waiter.done()  # held although a slot is free
        clock.now = 2.0  # the quota window has reset
        limit._resume()
        starts.append(await waiter)
        # tokens: 3 requests of about 100 tokens in flight, 250 tokens left
        slot.observe({"x-ratelimit-remaining-tokens": "250", "x-ratelimit-reset-tokens": "1s"})
        starts.append(limit.paused_until)
        return starts

    assert asyncio.run(main()) == [2.0, 3.0]


def test_after_the_429s_stop_the_limit_wins_back_slots_quickly_then_slowly() -> None:
    clock = Clock()
    limit = Concurrency(64, clock)
    for _ in range(Concurrency.PERSIST_COUNT):
        limit.throttled(started=clock.now, retry_after=None)
    assert (limit.limit, limit.cuts) == (32.0, 1)
    for _ in range(Concurrency.PERSIST_WINDOW - 1):  # a 429 still among the last answers
        limit.succeeded()
    assert limit.limit == pytest.approx(32.0 + 7 / 32, abs=0.01)
    for _ in range(20):  # the rate limit has passed: a slot per success up to 3/4 of 64
        limit.succeeded()
    assert 48.0 <= limit.limit < 48.0 + 1 / 48 + 1
    before = limit.limit
    for _ in range(10):  # then about one slot per round
        limit.succeeded()
    assert limit.limit == pytest.approx(before + 10 / before, abs=0.01)
