"""A scripted in-process backend for conversation and runner tests."""

from __future__ import annotations

from collections.abc import Callable

from alignbf.transport.backend import ChatRequest, Completion


class ScriptedBackend:
    """Answers with ``script(request)`` and records every request it saw."""

    def __init__(self, script: Callable[[ChatRequest], str] | None = None) -> None:
        self.script = script or (
            lambda r: f"[TALK] agent {r.agent} turn {r.turn}\n[MONOLOGUE] thinking {r.turn}"
        )
        self.requests: list[ChatRequest] = []

    def endpoint_id(self, model: str) -> str:
        return "scripted"

    async def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        text = self.script(request)
        return Completion(text=text, prompt_tokens=10, completion_tokens=5, model=request.model)

    async def aclose(self) -> None:
        return None
