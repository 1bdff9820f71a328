"""The loopback server's fault catalogue and its deterministic schedule.

Transient kinds (a correct client retries and gets through):

* ``429``: Too Many Requests with ``Retry-After: 1`` and ``retry-after-ms: 200``;
* ``429_reset``: Too Many Requests with only ``x-ratelimit-reset-requests: 1s`` and
  ``x-ratelimit-reset-tokens: 2s`` (the client must wait the larger);
* ``500`` (the body echoes the Authorization header) and ``503`` with ``Retry-After: 1``;
* ``stall``: no byte is sent until the client gives up;
* ``reset``: the connection is dropped before the status line;
* ``truncated``: a 200 whose Content-Length matches a body cut mid-JSON;
* ``nonutf8``: a 200 whose body holds invalid UTF-8;
* ``huge``: a 200 larger than any sane client cap;
* ``billed_lost``: the completion is generated and billed, then the connection is reset.

Permanent kinds, forced on every request: ``401`` (the body echoes the
Authorization header), ``404`` (model not found), ``insufficient_quota`` and
``context_length``.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache

from alignbf.errors import ConfigError

TRANSIENT = (
    "429",
    "429_reset",
    "500",
    "503",
    "stall",
    "reset",
    "truncated",
    "nonutf8",
    "huge",
    "billed_lost",
)
PERMANENT = ("401", "404", "insufficient_quota", "context_length")
MAX_CONSECUTIVE = 2
"""Transient faults in a row per fingerprint, at most."""
HUGE_BYTES = 9 * 1024 * 1024


def parse_fault_kinds(text: str | None) -> tuple[str, ...]:
    """``--fault-kinds 429,500`` as a tuple; unknown kinds are one ConfigError line."""
    kinds = tuple(k.strip() for k in (text or "").split(",") if k.strip())
    known = TRANSIENT + PERMANENT
    for kind in kinds:
        if kind not in known:
            raise ConfigError(f"--fault-kinds: unknown kind {kind!r}; accepted: {', '.join(known)}")
    return kinds


class FaultPlan:
    """Which fault, if any, the n-th attempt of a request gets."""

    def __init__(self, rate: float, seed: int, kinds: tuple[str, ...] = ()) -> None:
        self.rate, self.seed = rate, seed
        self.forced = tuple(k for k in kinds if k in PERMANENT)
        self.pool = tuple(k for k in kinds if k in TRANSIENT) or TRANSIENT
        self._in_a_row: dict[str, int] = {}

    def pick(self, fingerprint: str, attempt_no: int) -> str | None:
        """The fault for this attempt (a pure function of seed, fingerprint and attempt)."""
        if self.forced:
            return self.forced[0]
        fault = None
        if self._in_a_row.get(fingerprint, 0) < MAX_CONSECUTIVE:
            digest = hashlib.sha256(f"{self.seed}|{fingerprint}|{attempt_no}".encode()).digest()
            if int.from_bytes(digest[:8], "big") / 2**64 < self.rate:
                fault = self.pool[int.from_bytes(digest[8:16], "big") % len(self.pool)]
        self._in_a_row[fingerprint] = self._in_a_row.get(fingerprint, 0) + 1 if fault else 0
        return fault


def error_body(kind: str, authorization: str) -> bytes:
    """An OpenAI-style error body for a fault kind (some echo the Authorization header)."""
    errors = {
        "401": (
            "invalid_request_error",
            "invalid_api_key",
            f"Incorrect API key provided: {authorization}",
        ),
        "404": ("invalid_request_error", "model_not_found", "The model does not exist"),
        "insufficient_quota": (
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota",
        ),
        "context_length": (
            "invalid_request_error",
            "context_length_exceeded",
            "This model's maximum context length is 8192 tokens",
        ),
        "429": ("rate_limit_error", "rate_limit_exceeded", "Rate limit reached"),
        "429_reset": ("rate_limit_error", "rate_limit_exceeded", "Rate limit reached"),
        "500": ("server_error", None, f"Internal error handling request from {authorization}"),
        "503": ("server_error", None, "Service unavailable"),
        "bad_request": ("invalid_request_error", None, "Could not parse the request body"),
    }
    kind_type, code, message = errors[kind]
    return json.dumps({"error": {"type": kind_type, "code": code, "message": message}}).encode()


def corrupt_utf8(body: bytes) -> bytes:
    """``body`` with two bytes that are not UTF-8 put at the start of the content string."""
    return body.replace(b'"content": "', b'"content": "\xff\xfe', 1)


@cache
def huge_body() -> bytes:
    """A 200 body of ``HUGE_BYTES`` (built once)."""
    head = b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "'
    tail = b'"}, "finish_reason": "stop"}]}'
    return head + b"x" * HUGE_BYTES + tail
