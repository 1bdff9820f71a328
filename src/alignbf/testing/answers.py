"""Chat requests and canned answers of the loopback server: the request's fields, its
prompt size, the structured-output setting, and the bodies of error, context-length and
batch answers."""

from __future__ import annotations

import json
from typing import Any

from alignbf.errors import ConfigError
from alignbf.testing.http import response
from alignbf.transport.backend import ChatRequest


def prompt_tokens(messages: tuple[dict[str, str], ...]) -> int:
    """The server's estimate of a prompt's tokens (what ``usage.prompt_tokens`` reports)."""
    return sum(len(m.get("content") or "") for m in messages) // 4 + 1


def chat_request(body: dict[str, Any]) -> ChatRequest:
    messages = tuple(
        {"role": str(m["role"]), "content": str(m["content"])} for m in body["messages"]
    )
    if not messages:
        raise ValueError("no messages")
    return ChatRequest(
        sim_id="",
        agent=0,
        turn=0,
        model=str(body.get("model", "")),
        messages=messages,
        temperature=float(body.get("temperature", 1.0)),
        top_p=float(body.get("top_p", 1.0)),
        max_tokens=int(body.get("max_tokens", 256)),
        seed=int(body.get("seed", 0)),
    )


RESPONSE_FORMATS = ("json_schema", "json_object")


def parse_response_formats(text: str | None) -> tuple[str, ...]:
    """``--reject-response-format json_schema,json_object`` as a tuple (one-line errors)."""
    kinds = tuple(k.strip() for k in (text or "").split(",") if k.strip())
    for kind in kinds:
        if kind not in RESPONSE_FORMATS:
            raise ConfigError(
                f"--reject-response-format: unknown type {kind!r}; "
                f"accepted: {', '.join(RESPONSE_FORMATS)}"
            )
    return kinds


def format_type(body: dict[str, Any]) -> str | None:
    """The ``type`` of a request's ``response_format``, if it has one."""
    value = body.get("response_format")
    return str(value.get("type")) if isinstance(value, dict) else None


def format_rejected(kind: str) -> bytes:
    message = f"response_format type '{kind}' is not supported by this model"
    error = {"message": message, "type": "invalid_request_error", "param": "response_format"}
    return json.dumps({"error": error}).encode()


def requested_tokens(chat: ChatRequest) -> int:
    """Tokens a request asks of the context window: its prompt and its ``max_tokens``."""
    return prompt_tokens(chat.messages) + chat.max_tokens


def context_exceeded(limit: int, chat: ChatRequest) -> bytes:
    prompt = prompt_tokens(chat.messages)
    message = (
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{prompt + chat.max_tokens} tokens ({prompt} in the messages, {chat.max_tokens} in "
        "the completion). Please reduce the length of the messages or completion."
    )
    error = {"message": message, "type": "invalid_request_error", "param": "messages",
             "code": "context_length_exceeded"}  # fmt: skip
    return json.dumps({"error": error}).encode()


def error_status(fault: str) -> tuple[int, dict[str, str]]:
    return {
        "429": (429, {"Retry-After": "1", "retry-after-ms": "200"}),
        "429_reset": (
            429,
            {"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "2s"},
        ),
        "500": (500, {}),
        "503": (503, {"Retry-After": "1"}),
        "401": (401, {}),
        "404": (404, {}),
        "insufficient_quota": (429, {}),
        "context_length": (400, {}),
    }[fault]


def batch_response(status: int, content: Any) -> bytes:
    """A batch route's answer: file bytes as JSONL, anything else as JSON."""
    if isinstance(content, bytes):
        return response(status, content, content_type="application/jsonl")
    return response(status, json.dumps(content, ensure_ascii=False).encode())
