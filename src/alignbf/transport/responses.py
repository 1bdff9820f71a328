"""Validate a 200 chat-completion body and turn it into a ``Completion``.

A body that is not UTF-8, not JSON, has no ``choices``, carries an ``error``
object, or has ``content: null`` without a refusal is an invalid response: the
attempt failed and is retried (``RetryableError``). ``finish_reason`` ``length``
and ``content_filter`` are data and are returned as they are, never re-rolled.
"""

from __future__ import annotations

import json
from typing import Any

from alignbf.transport.backend import Completion
from alignbf.transport.keys import scrub
from alignbf.transport.retry import RetryableError


def _invalid(detail: str) -> RetryableError:
    return RetryableError("invalid_response", scrub(detail)[:300])


def _load(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except ValueError:
        raise _invalid(f"body is not JSON: {text[:120]!r}") from None
    if not isinstance(obj, dict):
        raise _invalid(f"body is a JSON {type(obj).__name__}, not an object")
    if obj.get("error"):
        raise RetryableError("provider_error", scrub(f"error inside a 200: {obj['error']}")[:300])
    return obj


def _count(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and value >= 0 else 0


def _reported(usage: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> int | None:
    """The first count found at one of ``paths`` in ``usage``; None when none is reported."""
    for path in paths:
        node: Any = usage
        for name in path:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, int) and not isinstance(node, bool) and node >= 0:
            return node
    return None


# OpenAI (and vLLM, Groq, OpenRouter) nest cache reads under prompt_tokens_details;
# DeepSeek and Anthropic-style usages name them at the top level.
_CACHED = (
    ("prompt_tokens_details", "cached_tokens"),
    ("cache_read_input_tokens",),
    ("prompt_cache_hit_tokens",),
)
_CACHE_WRITE = (
    ("prompt_tokens_details", "cache_write_tokens"),
    ("cache_creation_input_tokens",),
)


def _text(message: dict[str, Any], finish: str, flags: list[str]) -> str:
    content = message.get("content")
    if content is None:
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            flags.append("refusal")
            return refusal
        if finish in ("length", "content_filter"):
            return ""
        raise _invalid("content is null without a refusal")
    if not isinstance(content, str):
        raise _invalid(f"content is a {type(content).__name__}, not a string")
    clean = content.encode("utf-8", "replace").decode("utf-8")
    if clean != content:
        flags.append("replaced_surrogates")
    return clean


def parse_completion(body: bytes) -> Completion:
    """The completion in a 200 body, or ``RetryableError`` when the body is invalid."""
    obj = _load(body)
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _invalid("no choices in the body")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise _invalid("choice has no message")
    finish = str(choice.get("finish_reason") or "stop")
    flags: list[str] = []
    text = _text(message, finish, flags)
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else None
    if usage is None:
        flags.append("no_usage")
    fingerprint = obj.get("system_fingerprint")
    return Completion(
        text=text,
        finish_reason=finish,
        prompt_tokens=_count(usage or {}, "prompt_tokens"),
        completion_tokens=_count(usage or {}, "completion_tokens"),
        model=str(obj.get("model") or ""),
        system_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
        flags=tuple(flags),
        cached_tokens=_reported(usage or {}, _CACHED),
        cache_write_tokens=_reported(usage or {}, _CACHE_WRITE),
    )
