"""What every backend (synthetic, OpenAI-compatible HTTP, test fakes) implements.

A backend turns one ``ChatRequest`` into one ``Completion``. It knows nothing of
studies, stores or caching; the runner owns those. Errors are ``EndpointError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completion call of one agent at one turn of one simulation."""

    sim_id: str
    agent: int
    turn: int
    model: str
    messages: tuple[dict[str, str], ...]
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    response_schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    """JSON schema of the reply (the JSON channel format); endpoints with
    ``structured_output`` on send it as ``response_format``, the others ignore it."""


@dataclass
class Completion:
    """What a backend returned for a request, with its accounting."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    system_fingerprint: str | None = None
    latency_s: float = 0.0
    attempts: int = 1
    cost_usd: float | None = None
    flags: tuple[str, ...] = field(default_factory=tuple)
    cached_tokens: int | None = None
    """Prompt tokens the provider read from its prompt cache (part of ``prompt_tokens``);
    None when the response does not say."""
    cache_write_tokens: int | None = None
    """Prompt tokens the provider wrote to its prompt cache, where it reports them."""


class Backend(Protocol):
    """The interface the runner drives."""

    def endpoint_id(self, model: str) -> str:
        """Identity of the endpoint serving ``model`` (part of every cache key)."""
        ...

    async def complete(self, request: ChatRequest) -> Completion:
        """Return one completion, or raise ``EndpointError``."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
