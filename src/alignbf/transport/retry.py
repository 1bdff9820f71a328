"""The one retry policy of the HTTP client, and how a failed attempt is classified.

A failed attempt is one of three things:

* **transient** (``should_retry`` is True): 408, 409, 429 other than an exhausted
  quota, 5xx other than a context-length body, timeouts, connection errors and
  invalid 200 bodies. Retried after the server's ``retry-after-ms`` /
  ``Retry-After`` hint plus 0-20 % jitter; without a hint, a stray failure among
  successes (the endpoint's ``failing()`` is False) is retried promptly after a
  short full-jitter backoff (``stray_backoff_s``, doubling per retry), and failures
  that persist back off exponentially from ``backoff_initial_s``; in both cases up to
  ``max_retries`` retries and a total deadline per logical request. A hint above
  the cap is not slept on: the call fails as ``TransientEndpointError`` and the
  run can be resumed later.
* **an outcome**: context-length errors (``ContextLengthError``) and 400 content
  policy refusals (``Refused``). One attempt; the conversation records them.
* **fatal**: auth, unknown model, exhausted quota or credits, redirects, other
  4xx. One attempt and one line naming what to fix.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from alignbf.config.urls import redact_urls
from alignbf.errors import ConfigError, ContextLengthError, EndpointError, TransientEndpointError
from alignbf.transport.keys import scrub

T = TypeVar("T")
RETRY_STATUSES = frozenset({408, 409, 429})
_CONTEXT = re.compile(
    r"context_length_exceeded|exceed_context_size|context size has been exceeded|"
    r"maximum context length|context window (is )?exceeded|prompt is too long",
    re.I,
)
_POLICY = re.compile(r"content_policy_violation|content_filter|content management policy", re.I)
_QUOTA = re.compile(r"insufficient_quota|insufficient credits|exceeded your current quota", re.I)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds and pacing of retries (runtime settings: never part of a sim_id)."""

    max_retries: int = 4
    """Retries after the first attempt (so at most ``max_retries + 1`` attempts)."""
    deadline_s: float = 600.0
    """Total time for one logical request, all attempts and waits included."""
    retry_after_cap_s: float = 60.0
    """Longest server hint honoured by sleeping; longer hints end the call (resume later)."""
    backoff_initial_s: float = 1.0
    """First backoff without a server hint; doubles per retry, plus up to as much jitter."""
    backoff_max_s: float = 60.0
    """Longest backoff without a server hint."""
    stray_backoff_s: float = 0.1
    """Upper bound of the first backoff after a stray failure (one among successes, so a
    fresh attempt is likely to pass): a uniform draw below it, doubling per retry, never
    above ``backoff_initial_s``."""

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """The defaults, with ``ALIGNBF_MAX_RETRIES``, ``ALIGNBF_REQUEST_DEADLINE_S``,
        ``ALIGNBF_RETRY_AFTER_CAP_S``, ``ALIGNBF_BACKOFF_S`` and ``ALIGNBF_STRAY_BACKOFF_S``
        applied when set."""
        fields = {
            "max_retries": ("ALIGNBF_MAX_RETRIES", int),
            "deadline_s": ("ALIGNBF_REQUEST_DEADLINE_S", float),
            "retry_after_cap_s": ("ALIGNBF_RETRY_AFTER_CAP_S", float),
            "backoff_initial_s": ("ALIGNBF_BACKOFF_S", float),
            "stray_backoff_s": ("ALIGNBF_STRAY_BACKOFF_S", float),
        }
        values: dict[str, Any] = {}
        for name, (var, kind) in fields.items():
            if os.environ.get(var):
                values[name] = env_number(var, kind)
        return cls(**values)


def env_number(var: str, kind: type[int] | type[float]) -> float:
    """A finite non-negative number from an environment variable, or one ConfigError line."""
    text = os.environ.get(var, "")
    try:
        value = kind(text)
    except ValueError:
        value = -1
    if not math.isfinite(value) or value < 0:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{var}={text!r}: expected {what}, 0 or more (not nan or inf)")
    return value


class RetryableError(Exception):
    """One failed attempt that is worth another (transient status or invalid body)."""

    def __init__(self, status: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail, self.retry_after = status, detail, retry_after


class Refused(Exception):
    """A 400 content-policy refusal: an outcome of the turn, not an error."""


def should_retry(exc: BaseException) -> bool:
    """True when another attempt could succeed where this one failed."""
    if isinstance(exc, RetryableError):
        return True
    return isinstance(
        exc,
        httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError | TimeoutError,
    )


def parse_retry_after(
    headers: Mapping[str, str], now: float | None = None, rate_limited: bool = False
) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, else ``Retry-After``, else
    (for a 429, ``rate_limited``) the largest ``x-ratelimit-reset-requests`` / ``-tokens``.

    ``Retry-After`` may be seconds or an HTTP date; the reset headers are durations
    such as ``1s``, ``120ms`` or ``6m0s`` (OpenAI, Groq). Returns None without a usable hint.
    """
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return max(when.timestamp() - (time.time() if now is None else now), 0.0)
    if not rate_limited:
        return None
    resets = [
        parse_duration(headers.get(f"x-ratelimit-reset-{kind}") or "")
        for kind in ("requests", "tokens")
    ]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """``1s``, ``120ms``, ``6m0s``, ``1h2m3.5s`` or a plain number of seconds; None if neither."""
    text = text.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def error_fields(body: bytes) -> tuple[str, str]:
    """(``type``/``code`` words, message) of an OpenAI-style error body, best effort."""
    text = body[:4096].decode("utf-8", "replace")
    try:
        obj = json.loads(body)
    except ValueError:
        return "", text
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        kinds = " ".join(str(err.get(k) or "") for k in ("type", "code", "status"))
        return kinds, str(err.get("message") or "")
    if isinstance(err, str):
        return "", err
    return "", text


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    where: str,
    model: str,
    key_env: str | None,
    cap_s: float,
) -> Exception:
    """The exception for a non-2xx response (the caller raises it).

    Args:
        status: HTTP status code.
        headers: Response headers (case-insensitive mapping).
        body: The (capped) response body.
        where: ``endpoint NAME (BASE_URL)`` for messages.
        model: The provider's model id.
        key_env: The variable holding the key, named in auth messages.
        cap_s: Longest ``Retry-After`` honoured by sleeping.
    """
    kinds, message = error_fields(body)
    both = f"{kinds} {message}"
    short = scrub(" ".join(message.split())[:200])
    if 300 <= status < 400:
        target = redact_urls(scrub(headers.get("location", "?")))
        return EndpointError(
            f"{where}: endpoint redirects (HTTP {status} to {target}); "
            "set base_url to the final address"
        )
    if status in (401, 403):
        fix = f"check the key in {key_env}" if key_env else "set api_key_env in the endpoints file"
        what = "authentication failed" if status == 401 else "access denied"
        return EndpointError(f"{where}: {what} (HTTP {status}); {fix}")
    if status == 402 or (status == 429 and _QUOTA.search(both)):
        return EndpointError(
            f"{where}: quota or credits exhausted (HTTP {status}); "
            "add credits, then run the same command again to resume"
        )
    if _CONTEXT.search(both) and (status == 400 or status == 413 or status >= 500):
        return ContextLengthError(f"{where}: context length exceeded ({short})")
    if status == 404:
        return EndpointError(
            f"{where}: model {model!r} not found (HTTP 404); check model: in the endpoints file"
        )
    if status in RETRY_STATUSES or status >= 500:
        hint = parse_retry_after(headers, rate_limited=status == 429)
        if hint is not None and hint > cap_s:
            return TransientEndpointError(
                f"{where}: rate-limited for {hint:.0f}s (over the {cap_s:.0f}s cap); "
                "resume later with the same command"
            )
        return RetryableError(f"http_{status}", short, hint)
    if status == 400 and _POLICY.search(both):
        return Refused(short)
    return EndpointError(f"{where}: request rejected (HTTP {status}: {short})")


def describe(exc: BaseException) -> tuple[str, str]:
    """(status label, scrubbed one-line detail) of a failed attempt, for the attempt log."""
    if isinstance(exc, RetryableError):
        return exc.status, scrub(exc.detail)[:500]
    if isinstance(exc, httpx.TimeoutException):
        label = "timeout"
    elif isinstance(exc, TimeoutError):
        label = "attempt_deadline"
    elif isinstance(exc, httpx.HTTPError):
        label = "network"
    elif isinstance(exc, ContextLengthError):
        label = "context_length"
    else:
        label = "fatal" if isinstance(exc, EndpointError) else type(exc).__name__
    return label, scrub(f"{type(exc).__name__}: {exc}")[:500]


def _wait(
    policy: RetryPolicy, failing: Callable[[], bool] | None
) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if hint is not None:
            return float(hint) * (1.0 + random.uniform(0.0, 0.2))
        initial = policy.backoff_initial_s
        doubling = 2.0 ** (int(state.attempt_number) - 1)
        if failing is not None and not failing():
            stray = min(policy.stray_backoff_s, initial)
            return random.uniform(0.0, min(policy.backoff_max_s, stray * doubling))
        backoff = min(policy.backoff_max_s, initial * doubling)
        return backoff + random.uniform(0.0, initial)

    return wait


async def call_with_retries(
    attempt: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    failing: Callable[[], bool] | None = None,
) -> T:
    """Run ``attempt(n)`` (n = 1, 2, ...) until it returns, fails for good, or a bound is hit.

    ``failing()`` says whether the endpoint's failures persist (``Concurrency.failing``);
    when it says no, a failure without a server hint is taken for a stray one and retried
    promptly. Without it every such failure backs off exponentially. The last exception
    is re-raised unchanged when attempts, or the deadline, run out.
    """
    retrying = AsyncRetrying(
        retry=retry_if_exception(should_retry),
        stop=stop_after_attempt(policy.max_retries + 1) | stop_before_delay(policy.deadline_s),
        wait=_wait(policy, failing),
        sleep=sleep,
        reraise=True,
    )
    async for state in retrying:
        with state:
            return await attempt(state.retry_state.attempt_number)
    raise AssertionError("unreachable: tenacity either returns or raises")
