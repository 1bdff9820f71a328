"""Token buckets and the per-endpoint limiter."""

from __future__ import annotations

import asyncio

import pytest

from alignbf.ratelimit import EndpointLimiter, TokenBucket, estimate_tokens


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
