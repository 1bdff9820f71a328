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
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from alignbf.config.urls import check_base_url, redact_url, url_password
from alignbf.errors import (
    ConfigError,
    ContextLengthError,
    EndpointError,
    TransientEndpointError,
)
from alignbf.transport.backend import ChatRequest, Completion
from alignbf.transport.keys import quiet_http_loggers, read_key, register_secret
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

if TYPE_CHECKING:
    from alignbf.transport.batch import BatchBackend

MAX_RESPONSE_BYTES = 8 * 1024 * 1024
AttemptHook = Callable[[str, int, int, str, str, str, float], None]
"""``on_attempt_failed(sim_id, agent, turn, endpoint, status, detail, latency_s)``."""


class _CacheKeyRejected(Exception):
    """The endpoint refused the ``prompt_cache_key`` parameter (HTTP 400 or 422 naming it)."""


def prompt_cache_key(request: ChatRequest) -> str:
    """One key per simulation and agent: every prompt of an agent shares its cache route.

    Derived from the sample identity, so it changes neither the sim_id nor any cache key.
    """
    digest = hashlib.sha256(f"{request.sim_id}/{request.agent}".encode()).hexdigest()
    return f"alignbf-{digest[:32]}"


def _rejects_cache_key(status: int, payload: bytes, body: bytes) -> bool:
    return (
        status in (400, 422)
        and b'"prompt_cache_key"' in payload
        and b"prompt_cache_key" in body[:4096].lower()
    )


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
        tries = stalls = 0

        async def attempt(number: int) -> Completion:
            nonlocal tries, stalls, payload
            tries = number
            t0 = time.monotonic()
            try:
                try:
                    completion = await self._attempt(route, payload, estimate, started, stalls)
                except _CacheKeyRejected:
                    self._drop_cache_key(route)
                    payload = self._payload(route, request)
                    completion = await self._attempt(route, payload, estimate, started, stalls)
            except Exception as exc:
                if isinstance(exc, httpx.ReadTimeout):
                    stalls += 1
                self._report(route, request, exc, time.monotonic() - t0)
                raise
            completion.attempts = number
            return completion

        failing = route.limiter.connections.failing
        try:
            return await call_with_retries(attempt, self.policy, failing=failing)
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
        if route.cache_key:
            body["prompt_cache_key"] = prompt_cache_key(request)
        mode = route.endpoint.structured_output
        if mode != "off" and request.response_schema is not None:
            body["response_format"] = response_format(mode, request.response_schema)
        return json.dumps(body, ensure_ascii=False).encode()

    async def _attempt(
        self, route: Route, payload: bytes, estimate: int, started: float, stalls: int = 0
    ) -> Completion:
        async with route.limiter.slot(estimate) as slot:
            remaining = self.policy.deadline_s - (time.monotonic() - started)
            read = route.stall.read_timeout(route.read_timeout_s, stalls)
            t0 = time.monotonic()
            try:
                async with asyncio.timeout(max(min(route.attempt_deadline_s, remaining), 0.001)):
                    status, headers, body = await route.post(payload, self.max_response_bytes, read)
            except (httpx.HTTPError, TimeoutError, RetryableError):
                slot.failed()  # counted for ``failing()``; the limit is left alone
                raise
            latency = time.monotonic() - t0
            slot.observe(headers)
            if _rejects_cache_key(status, payload, body):
                raise _CacheKeyRejected
            if not 200 <= status < 300:
                error = route.classify(status, headers, body, self.policy.retry_after_cap_s)
                if status == 429 and isinstance(error, RetryableError):
                    slot.throttled(error.retry_after)
                elif isinstance(error, RetryableError):
                    slot.failed()
                if isinstance(error, Refused):
                    return Completion(
                        text="",
                        finish_reason="content_filter",
                        latency_s=latency,
                        flags=("refused_400",),
                    )
                raise error
            try:
                completion = parse_completion(body)
            except RetryableError:
                slot.failed()
                raise
            route.stall.record(latency)
            completion.latency_s = latency
            completion.cost_usd = route.endpoint.cost(
                completion.prompt_tokens,
                completion.completion_tokens,
                completion.cached_tokens,
                completion.cache_write_tokens,
            )
            used = completion.prompt_tokens + completion.completion_tokens
            slot.settle(used or estimate)
            return completion

    @staticmethod
    def _drop_cache_key(route: Route) -> None:
        if route.cache_key:
            route.cache_key = False
            route.notices.append(
                f"{route.where} rejected prompt_cache_key (HTTP 400); requests are sent "
                "without it (set prompt_cache_key: false for this endpoint)"
            )

    def notices(self) -> list[str]:
        """Warnings about endpoints gathered during the run, one line each."""
        return [line for route in self.routes.values() for line in route.notices]

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


def response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The ``response_format`` an endpoint's ``structured_output`` mode sends with a schema."""
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": schema, "strict": True},
    }


def _override(base_url: str) -> str:
    try:
        return check_base_url(base_url)
    except ValueError as exc:
        raise ConfigError(f"--base-url {redact_url(base_url)!r}: {exc}") from None


def _register_url_secret(url: str) -> None:
    secret = url_password(url)
    if secret:
        register_secret(secret)


def endpoints_backend(
    config_path: Path, base_url: str | None, batch: bool = False
) -> tuple[OpenAIBackend | BatchBackend, str, dict[str, object]]:
    """Build the HTTP backend a study's endpoints describe, after the pre-flight checks.

    Args:
        config_path: The study config.
        base_url: Send every model to this server instead (``--base-url``); the key
            then becomes optional.
        batch: Send the calls of endpoints with ``batch: true`` as batch jobs
            (``transport/batch.py``); at least one endpoint must have it.

    Returns:
        The backend, its recorded name (``endpoints``) and manifest facts (no keys).

    Raises:
        EndpointError: a key is missing, or an endpoint is unreachable or unusable.
    """
    from alignbf.config.endpoints import check_endpoints
    from alignbf.config.study import load_study
    from alignbf.transport.preflight import (
        check_batch_api,
        check_route,
        check_structured_output,
    )

    quiet_http_loggers()
    study = load_study(config_path)
    endpoints = check_endpoints(study, config_path)
    if not study.endpoints:
        raise ConfigError(f"{config_path}: endpoints: no model is mapped to an endpoint")
    batch_models = {m for m, name in study.endpoints.items() if endpoints[name].batch}
    if batch and not batch_models:
        raise ConfigError(
            f"--batch: no endpoint that {config_path} maps a model to declares batch: true "
            f"(in {study.endpoints_file})"
        )
    override = _override(base_url) if base_url else None
    policy = RetryPolicy.from_env()
    routes: dict[str, Route] = {}
    for model, name in study.endpoints.items():
        endpoint = endpoints[name]
        _register_url_secret(override or endpoint.base_url)
        endpoint_id = f"{name}:{endpoint.model}"
        if endpoint.structured_output != "off":
            endpoint_id += f"+{endpoint.structured_output}"
        if override:
            endpoint = endpoint.model_copy(update={"base_url": override})
            endpoint_id += f"@{redact_url(override)}"
        key = read_key(endpoint.api_key_env, name, required=override is None)
        routes[model] = make_route(name, endpoint, key, endpoint_id)
    for model, route in routes.items():
        check_route(route)
        if study.conversation.channel_format == "json":
            check_structured_output(route)
        if batch and model in batch_models:
            check_batch_api(route)
    extra: dict[str, object] = {
        "endpoints": {
            name: {**endpoints[name].model_dump(), "base_url": redact_url(endpoints[name].base_url)}
            for name in study.endpoints.values()
        }
    }
    if override:
        extra["base_url_override"] = redact_url(override)
    if batch:
        from alignbf.transport.batch import BatchBackend

        extra["batch_endpoints"] = sorted({study.endpoints[m] for m in batch_models})
        return BatchBackend(OpenAIBackend(routes, policy), batch_models), "endpoints", extra
    return OpenAIBackend(routes, policy), "endpoints", extra
