"""The retry policy, response classification and fail-fast kinds, over ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from alignbf.config.endpoints import Endpoint
from alignbf.errors import ContextLengthError, EndpointError, TransientEndpointError
from alignbf.transport.backend import ChatRequest, Completion
from alignbf.transport.client import OpenAIBackend
from alignbf.transport.keys import read_key
from alignbf.transport.retry import (
    RetryableError,
    RetryPolicy,
    call_with_retries,
    classify,
    parse_retry_after,
    should_retry,
)
from alignbf.transport.routes import StallBound, make_route

FAST = RetryPolicy(backoff_initial_s=0.001, backoff_max_s=0.002)
OK = {
    "model": "m-2024",
    "system_fingerprint": "fp_1",
    "choices": [{"message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2},
}
Reply = httpx.Response | Exception


def err(status: int, type_: str = "", code: str = "", message: str = "x", **headers: str) -> Reply:
    body = {"error": {"type": type_, "code": code, "message": message}}
    return httpx.Response(status, json=body, headers=headers)


def backend(replies: Callable[[int], Reply], policy: RetryPolicy = FAST, **kw: Any):
    """A backend whose one endpoint answers request n with ``replies(n)``; returns (it, log)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = replies(len(seen))
        if isinstance(reply, Exception):
            raise reply
        return reply

    endpoint = Endpoint(base_url="http://test/v1", api_key_env="K", model="m", serves="model",
                        price_input_per_mtok=1.0, price_output_per_mtok=1.0)  # fmt: skip
    key = SecretStr("sk-secret-123456")
    route = make_route("e", endpoint, key, "e:m", httpx.MockTransport(handler))
    return OpenAIBackend({"model": route}, policy, **kw), seen


def complete(b: OpenAIBackend) -> Completion:
    request = ChatRequest("s", 0, 1, "model", ({"role": "user", "content": "hi"},), 0.7, 1, 9, 3)
    return asyncio.run(b.complete(request))


def test_success_records_usage_and_payload() -> None:
    b, seen = backend(lambda n: httpx.Response(200, json=OK))
    c = complete(b)
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.attempts) == ("hello", 10, 2, 1)
    assert (c.model, c.system_fingerprint, c.cost_usd) == ("m-2024", "fp_1", 12 / 1e6)
    sent = json.loads(seen[0].content)
    assert sent == {"model": "m", "messages": [{"role": "user", "content": "hi"}],
                    "temperature": 0.7, "top_p": 1, "max_tokens": 9, "seed": 3}  # fmt: skip
    assert str(seen[0].url) == "http://test/v1/chat/completions"


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retried(status: int) -> None:
    b, seen = backend(lambda n: err(status) if n == 1 else httpx.Response(200, json=OK))
    assert complete(b).attempts == 2 and len(seen) == 2


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(200, content=b"<html>oops</html>"),
        httpx.Response(200, json={"choices": []}),
        httpx.Response(200, json={"error": {"message": "upstream failed"}}),
        httpx.Response(200, json={"choices": [{"message": {"content": None}}]}),
        httpx.Response(200, content=b'{"choices": [{"message": {"content": "\xff"}}]}'),
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("dropped"),
    ],
)
def test_invalid_bodies_and_network_errors_are_retried(reply: Reply) -> None:
    b, seen = backend(lambda n: reply if n == 1 else httpx.Response(200, json=OK))
    assert complete(b).text == "hello" and len(seen) == 2


@pytest.mark.parametrize(
    ("reply", "error", "words"),
    [
        (err(401), EndpointError, "authentication failed (HTTP 401); check the key in K"),
        (err(403), EndpointError, "access denied"),
        (err(404, code="model_not_found"), EndpointError, "model 'm' not found"),
        (err(429, "insufficient_quota", "insufficient_quota"), EndpointError, "quota"),
        (err(402, message="Insufficient credits"), EndpointError, "credits exhausted"),
        (err(400, code="context_length_exceeded"), ContextLengthError, "context length"),
        (err(400, "exceed_context_size_error"), ContextLengthError, "context length"),
        (err(500, message="Context size has been exceeded."), ContextLengthError, "context"),
        (httpx.Response(307, headers={"location": "http://x/"}), EndpointError, "redirects"),
        (err(400, message="bad temperature"), EndpointError, "request rejected"),
        (err(429, **{"retry-after": "3600"}), TransientEndpointError, "resume later"),
    ],
)
def test_fail_fast_kinds_send_one_request(reply: Reply, error: type, words: str) -> None:
    b, seen = backend(lambda n: reply)
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        complete(b)
    assert len(seen) == 1


def test_after_a_fatal_error_no_request_is_sent() -> None:
    b, seen = backend(lambda n: err(401))
    for _ in range(3):
        with pytest.raises(EndpointError):
            complete(b)
    assert len(seen) == 1


def test_an_endpoint_that_never_answered_is_given_up_after_one_call() -> None:
    b, seen = backend(lambda n: err(503))
    for _ in range(3):
        with pytest.raises(TransientEndpointError):
            complete(b)
    assert len(seen) == 5


def test_outcomes_are_returned_not_retried() -> None:
    for finish in ("length", "content_filter"):
        body = {"choices": [{"message": {"content": None}, "finish_reason": finish}]}
        b, seen = backend(lambda n, body=body: httpx.Response(200, json=body))
        c = complete(b)
        assert (c.text, c.finish_reason, len(seen)) == ("", finish, 1)
    b, seen = backend(lambda n: err(400, code="content_policy_violation"))
    assert complete(b).finish_reason == "content_filter" and len(seen) == 1


@pytest.mark.parametrize(("max_retries", "requests"), [(4, 5), (2, 3), (0, 1)])
def test_attempts_are_bounded(max_retries: int, requests: int) -> None:
    policy = RetryPolicy(max_retries=max_retries, backoff_initial_s=0.001)
    for reply in (err(500), httpx.ReadTimeout("slow")):
        b, seen = backend(lambda n, r=reply: r, policy)
        with pytest.raises(TransientEndpointError, match=f"after {requests} attempt"):
            complete(b)
        assert len(seen) == requests


def test_deadline_beats_remaining_retries() -> None:
    policy = RetryPolicy(max_retries=10, deadline_s=0.3, backoff_initial_s=0.2)
    b, seen = backend(lambda n: err(503), policy)
    with pytest.raises(TransientEndpointError):
        complete(b)
    assert len(seen) < 4


def test_oversized_response_is_rejected_while_reading() -> None:
    big = httpx.Response(200, content=b"x" * 5000)
    b, _ = backend(lambda n: big if n == 1 else httpx.Response(200, json=OK),
                      max_response_bytes=1000)  # fmt: skip
    assert complete(b).attempts == 2


def test_echoed_key_is_scrubbed_from_errors_and_attempt_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("K", "sk-secret-123456")
    read_key("K", "e")
    echo = err(401, message="Incorrect API key provided: Bearer sk-secret-123456")
    b, _ = backend(lambda n: err(500, message="from Bearer sk-secret-123456") if n == 1 else echo)
    log: list[tuple[Any, ...]] = []
    b.on_attempt_failed = lambda *row: log.append(row)
    with pytest.raises(EndpointError) as caught:
        complete(b)
    assert "sk-secret" not in str(caught.value) and len(log) == 2
    assert log[0][4] == "http_500" and "**********" in log[0][5]
    assert not any("sk-secret" in str(row) for row in log)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
        ({"retry-after": "-3"}, 0.0),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers)) == seconds


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "2s"}, 2.0),
        ({"x-ratelimit-reset-requests": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "120ms"}, 0.12),
        ({"x-ratelimit-reset-requests": "2m59.56s", "x-ratelimit-reset-tokens": "7.66s"}, 179.56),
        ({"x-ratelimit-reset-requests": "1h"}, 3600.0),
        ({"x-ratelimit-reset-requests": "soon"}, None),
        ({"retry-after": "3", "x-ratelimit-reset-requests": "9s"}, 3.0),
    ],
)
def test_rate_limit_reset_headers_count_for_429_only(
    headers: dict[str, str], seconds: float | None
) -> None:
    got = parse_retry_after(httpx.Headers(headers), rate_limited=True)
    assert got == (None if seconds is None else pytest.approx(seconds))
    if "retry-after" not in headers:  # other statuses do not wait for a rate-limit window
        assert parse_retry_after(httpx.Headers(headers)) is None


def test_parse_retry_after_http_date() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": date}), now) == pytest.approx(30, abs=1)


def test_server_hint_is_honoured_with_positive_jitter() -> None:
    waits: list[float] = []
    replies = iter([RetryableError("http_429", "slow down", 0.25), None])

    async def attempt(n: int) -> int:
        exc = next(replies)
        if exc:
            raise exc
        return n

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    assert asyncio.run(call_with_retries(attempt, FAST, sleep)) == 2
    assert 0.25 <= waits[0] <= 0.3


@pytest.mark.parametrize(
    ("status", "body", "retry"),
    [
        (429, {"error": {"code": "rate_limit_exceeded"}}, True),
        (429, {"error": {"code": "insufficient_quota"}}, False),
        (500, {"error": {"message": "boom"}}, True),
        (500, {"error": {"message": "Context size has been exceeded."}}, False),
        (400, {"error": {"type": "exceed_context_size_error", "n_ctx": 4096}}, False),
        (401, {}, False),
    ],
)
def test_should_retry_classification(status: int, body: dict[str, Any], retry: bool) -> None:
    error = classify(status, httpx.Headers(), json.dumps(body).encode(), where="endpoint e",
                     model="m", key_env="K", cap_s=60)  # fmt: skip
    assert should_retry(error) is retry
    assert should_retry(httpx.ConnectTimeout("x")) and should_retry(TimeoutError())
    assert not should_retry(ValueError())


@pytest.mark.parametrize("mode", ["off", "json_object", "json_schema"])
def test_structured_output_sends_the_reply_schema(mode: str) -> None:
    from alignbf.engine.conversation import reply_schema

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=OK)

    endpoint = Endpoint(base_url="http://test/v1", api_key_env="K", model="m", serves="model",
                        structured_output=mode)  # type: ignore[arg-type]  # fmt: skip
    route = make_route("e", endpoint, SecretStr("k"), "e:m", httpx.MockTransport(handler))
    schema = reply_schema(["Ana", "Ben"])
    request = ChatRequest("s", 0, 1, "model", ({"role": "user", "content": "hi"},), 0.7, 1, 9, 3,
                          response_schema=schema)  # fmt: skip
    asyncio.run(OpenAIBackend({"model": route}, FAST).complete(request))
    sent = json.loads(seen[0].content)
    if mode == "off":
        assert "response_format" not in sent
    elif mode == "json_object":
        assert sent["response_format"] == {"type": "json_object", "schema": schema}
    else:
        assert sent["response_format"]["json_schema"]["schema"] == schema
        assert sent["response_format"]["json_schema"]["strict"] is True
    whisper = schema["properties"]["whisper"]["properties"]["to"]
    assert whisper["enum"] == ["Ana", "Ben"]


def _waits(failing: bool, error: RetryableError) -> list[float]:
    """The waits before the retries of ``error`` (three times) when the endpoint is or is
    not failing as a whole."""
    waits: list[float] = []
    calls = iter(range(4))

    async def attempt(n: int) -> int:
        if next(calls) < 3:
            raise error
        return n

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = RetryPolicy(backoff_initial_s=1.0, stray_backoff_s=0.1)
    assert asyncio.run(call_with_retries(attempt, policy, sleep, lambda: failing)) == 4
    return waits


def test_a_stray_failure_is_retried_promptly_and_persisting_ones_back_off() -> None:
    stray = _waits(False, RetryableError("http_500", "boom"))
    assert all(0.0 <= w <= 0.1 * 2**i for i, w in enumerate(stray)), stray
    persisting = _waits(True, RetryableError("http_500", "boom"))
    assert [w >= 2**i for i, w in enumerate(persisting)] == [True] * 3, persisting
    # a server hint is honoured either way: never a retry before Retry-After
    hinted = _waits(False, RetryableError("http_503", "busy", 1.0))
    assert all(1.0 <= w <= 1.2 for w in hinted), hinted


def test_server_errors_do_not_cut_the_concurrency_limit() -> None:
    b, seen = backend(lambda n: err(500) if n % 5 == 0 else httpx.Response(200, json=OK))
    for _ in range(20):
        complete(b)
    limit = b.routes["model"].limiter.connections
    assert len(seen) == 24 and (limit.limit, limit.cuts) == (float(limit.maximum), 0)
    assert limit.paused_until == float("-inf") and not limit.failing()


def test_stall_bound_follows_the_slowest_recent_answer() -> None:
    bound = StallBound(4.0)
    assert bound.read_timeout(30.0, 0) == 30.0  # no answers yet: the read timeout
    for _ in range(StallBound.WARMUP):
        bound.record(0.2)
    assert bound.read_timeout(30.0, 0) == StallBound.FLOOR_S  # 4 x 0.2 s is below the floor
    bound.record(0.5)
    assert bound.read_timeout(30.0, 0) == 2.0
    assert bound.read_timeout(30.0, 1) == 4.0  # a retry after a stall waits twice as long
    assert bound.read_timeout(3.0, 1) == 3.0  # never past the read timeout
    for _ in range(StallBound.SAMPLES + 32):  # the slow answer leaves the window
        bound.record(0.3)
    assert bound.read_timeout(30.0, 0) == pytest.approx(1.2)
    off = StallBound(0.0)
    for _ in range(StallBound.WARMUP):
        off.record(0.2)
    assert off.read_timeout(30.0, 0) == 30.0


def test_the_stall_bound_is_each_request_s_read_timeout() -> None:
    b, seen = backend(lambda n: httpx.Response(200, json=OK))
    for _ in range(StallBound.WARMUP + 1):
        complete(b)
    reads = [r.extensions["timeout"]["read"] for r in seen]
    assert reads[0] == b.routes["model"].read_timeout_s and reads[-1] == StallBound.FLOOR_S
