"""The OpenAI-compatible HTTP backend: ``POST {base_url}/chat/completions``, no streaming.

Requests go through each endpoint's ``routes.Route`` (explicit timeouts, a
connection limit, no redirects, a response size cap). Every attempt goes through
``retry.py``'s one policy and the endpoint's ``ratelimit.EndpointLimiter``; each
failed attempt is reported to ``on_attempt_failed``. Until one call to an
endpoint has succeeded, calls to it go one at a time, so a wrong key, model or
exhausted quota costs exactly one request, not one per simulation in flight, and
an endpoint that never answered is given up after one call's retries; after a
fatal error no further request is sent to that endpoint.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from alignbf.errors import (
    ConfigError,
    ContextLengthError,
    EndpointError,
    TransientEndpointError,
)
from alignbf.transport.backend import ChatRequest, Completion
from alignbf.transport.keys import quiet_http_loggers, read_key
from alignbf.transport.ratelimit import ConcurrencySummary, estimate_tokens
from alignbf.transport.responses import parse_completion
from alignbf.transport.retry import (
    Refused,
    RetryableError,
    RetryPolicy,
    call_with_retries,
    describe,
)
from alignbf.transport.routes import Route, make_route

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
AttemptHook = Callable[[str, int, int, str, str, str, float], None]
"""``on_attempt_failed(sim_id, agent, turn, endpoint, status, detail, latency_s)``."""


class OpenAIBackend:
    """A ``Backend`` for OpenAI-compatible endpoints (study model name -> route)."""

    def __init__(
        self,
        routes: dict[str, Route],
        policy: RetryPolicy | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        quiet_http_loggers()
        self.routes = routes
        self.policy = policy or RetryPolicy()
        self.max_response_bytes = max_response_bytes
        self.on_attempt_failed: AttemptHook | None = None

    def endpoint_id(self, model: str) -> str:
        """``NAME:PROVIDER_MODEL`` (plus ``@BASE_URL`` when the base URL is overridden)."""
        return self.routes[model].endpoint_id

    async def complete(self, request: ChatRequest) -> Completion:
        """One completion with retries; raises ``EndpointError`` subclasses."""
        route = self.routes[request.model]
        if route.fatal is not None:
            raise route.fatal
        if not route.proven:
            async with route.probe:
                if route.fatal is not None:
                    raise route.fatal
                if not route.proven:
                    try:
                        completion = await self._call(route, request)
                    except TransientEndpointError as exc:
                        route.fatal = exc
                        raise
                    route.proven = True
                    return completion
        return await self._call(route, request)

    async def _call(self, route: Route, request: ChatRequest) -> Completion:
        payload = self._payload(route, request)
        estimate = estimate_tokens(request.messages, request.max_tokens)
        started = time.monotonic()
        tries = 0

        async def attempt(number: int) -> Completion:
            nonlocal tries
            tries = number
            t0 = time.monotonic()
            try:
                completion = await self._attempt(route, payload, estimate, started)
            except Exception as exc:
                self._report(route, request, exc, time.monotonic() - t0)
                raise
            completion.attempts = number
            return completion

        try:
            return await call_with_retries(attempt, self.policy)
        except (ContextLengthError, TransientEndpointError):
            raise
        except EndpointError as exc:
            route.fatal = exc
            raise
        except (RetryableError, httpx.HTTPError, TimeoutError) as exc:
            label, detail = describe(exc)
            raise TransientEndpointError(
                f"{route.where}: gave up after {tries} attempt(s); last: {label}: {detail}"
            ) from None

    def _payload(self, route: Route, request: ChatRequest) -> bytes:
        body: dict[str, Any] = {
            "model": route.endpoint.model,
            "messages": list(request.messages),
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
        }
        if route.endpoint.supports_seed:
            body["seed"] = request.seed
        mode = route.endpoint.structured_output
        if mode != "off" and request.response_schema is not None:
            body["response_format"] = (
                {"type": "json_object", "schema": request.response_schema}
                if mode == "json_object"
                else {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "reply",
                        "schema": request.response_schema,
                        "strict": True,
                    },
                }
            )
        return json.dumps(body, ensure_ascii=False).encode()

    async def _attempt(
        self, route: Route, payload: bytes, estimate: int, started: float
    ) -> Completion:
        async with route.limiter.slot(estimate) as slot:
            remaining = self.policy.deadline_s - (time.monotonic() - started)
            t0 = time.monotonic()
            async with asyncio.timeout(max(min(route.attempt_deadline_s, remaining), 0.001)):
                status, headers, body = await route.post(payload, self.max_response_bytes)
            latency = time.monotonic() - t0
            if not 200 <= status < 300:
                error = route.classify(status, headers, body, self.policy.retry_after_cap_s)
                if status == 429 and isinstance(error, RetryableError):
                    slot.throttled(error.retry_after)
                if isinstance(error, Refused):
                    return Completion(
                        text="",
                        finish_reason="content_filter",
                        latency_s=latency,
                        flags=("refused_400",),
                    )
                raise error
            completion = parse_completion(body)
            completion.latency_s = latency
            completion.cost_usd = route.endpoint.cost(
                completion.prompt_tokens, completion.completion_tokens
            )
            used = completion.prompt_tokens + completion.completion_tokens
            slot.settle(used or estimate)
            return completion

    def _report(self, route: Route, request: ChatRequest, exc: Exception, latency: float) -> None:
        if self.on_attempt_failed is None:
            return
        label, detail = describe(exc)
        self.on_attempt_failed(
            request.sim_id, request.agent, request.turn, route.endpoint_id, label, detail, latency
        )

    def throttled(self) -> dict[str, ConcurrencySummary]:
        """Endpoints whose concurrency 429s cut during this run: endpoint id -> summary."""
        summaries = {r.endpoint_id: r.limiter.connections.summary() for r in self.routes.values()}
        return {name: s for name, s in summaries.items() if s.cuts}

    async def aclose(self) -> None:
        """Close every endpoint's connections."""
        for route in self.routes.values():
            await route.aclose()


def _override(base_url: str) -> str:
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"--base-url {base_url!r}: must start with http:// or https://")
    return base_url.rstrip("/")


def endpoints_backend(
    config_path: Path, base_url: str | None
) -> tuple[OpenAIBackend, str, dict[str, object]]:
    """Build the HTTP backend a study's endpoints describe, after the pre-flight checks.

    Args:
        config_path: The study config.
        base_url: Send every model to this server instead (``--base-url``); the key
            then becomes optional.

    Returns:
        The backend, its recorded name (``endpoints``) and manifest facts (no keys).

    Raises:
        EndpointError: a key is missing, or an endpoint is unreachable or unusable.
    """
    from alignbf.config.endpoints import check_endpoints
    from alignbf.config.study import load_study
    from alignbf.transport.preflight import check_route

    quiet_http_loggers()
    study = load_study(config_path)
    endpoints = check_endpoints(study, config_path)
    if not study.endpoints:
        raise ConfigError(f"{config_path}: endpoints: no model is mapped to an endpoint")
    override = _override(base_url) if base_url else None
    routes: dict[str, Route] = {}
    for model, name in study.endpoints.items():
        endpoint = endpoints[name]
        endpoint_id = f"{name}:{endpoint.model}"
        if endpoint.structured_output != "off":
            endpoint_id += f"+{endpoint.structured_output}"
        if override:
            endpoint = endpoint.model_copy(update={"base_url": override})
            endpoint_id += f"@{override}"
        key = read_key(endpoint.api_key_env, name, required=override is None)
        routes[model] = make_route(name, endpoint, key, endpoint_id)
    for route in routes.values():
        check_route(route)
    extra: dict[str, object] = {
        "endpoints": {name: endpoints[name].model_dump() for name in study.endpoints.values()}
    }
    if override:
        extra["base_url_override"] = override
    return OpenAIBackend(routes, RetryPolicy.from_env()), "endpoints", extra
