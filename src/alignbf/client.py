"""The OpenAI-compatible HTTP backend: ``POST {base_url}/chat/completions``, no streaming.

One ``httpx.AsyncClient`` per endpoint, with explicit timeouts and connection
limits and no redirects (a redirect is a configuration error, so Authorization
never travels to another origin). Every attempt goes through ``retry.py``'s one
policy and the endpoint's ``ratelimit.EndpointLimiter``. Until one call to an
endpoint has succeeded, calls to it go one at a time, so a wrong key, model or
exhausted quota costs exactly one request, not one per simulation in flight;
after a fatal error no further request is sent to that endpoint.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from alignbf import crashpoints
from alignbf.backend import ChatRequest, Completion
from alignbf.endpoints import Endpoint
from alignbf.errors import ContextLengthError, EndpointError, TransientEndpointError
from alignbf.keys import quiet_http_loggers
from alignbf.ratelimit import EndpointLimiter, estimate_tokens
from alignbf.responses import parse_completion
from alignbf.retry import (
    Refused,
    RetryableError,
    RetryPolicy,
    call_with_retries,
    classify,
    describe,
    env_number,
)

CONNECT_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
AttemptHook = Callable[[str, int, int, str, str, str, float], None]
"""``on_attempt_failed(sim_id, agent, turn, endpoint, status, detail, latency_s)``."""


@dataclass
class Route:
    """Everything needed to call one endpoint."""

    name: str
    endpoint: Endpoint
    key: SecretStr | None
    endpoint_id: str
    read_timeout_s: float
    limiter: EndpointLimiter
    probe: asyncio.Lock = field(default_factory=asyncio.Lock)
    proven: bool = False
    fatal: EndpointError | None = None
    client: httpx.AsyncClient | None = None

    @property
    def where(self) -> str:
        """``endpoint NAME (BASE_URL)``, the subject of every message about this endpoint."""
        return f"endpoint {self.name} ({self.endpoint.base_url})"

    def http(self) -> httpx.AsyncClient:
        """This endpoint's client, created on first use inside the event loop."""
        if self.client is None:
            ep = self.endpoint
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self.key is not None:
                headers["Authorization"] = f"Bearer {self.key.get_secret_value()}"
            self.client = httpx.AsyncClient(
                base_url=ep.base_url + "/",
                headers=headers,
                timeout=httpx.Timeout(
                    connect=CONNECT_TIMEOUT_S,
                    read=self.read_timeout_s,
                    write=self.read_timeout_s,
                    pool=self.read_timeout_s,
                ),
                limits=httpx.Limits(
                    max_connections=ep.max_connections,
                    max_keepalive_connections=ep.max_connections,
                ),
                follow_redirects=False,
                trust_env=False,
            )
        return self.client


def make_route(name: str, endpoint: Endpoint, key: SecretStr | None, endpoint_id: str) -> Route:
    """A route with the endpoint's limits; ``ALIGNBF_HTTP_TIMEOUT_S`` caps the read timeout."""
    read = endpoint.timeout_s
    if os.environ.get("ALIGNBF_HTTP_TIMEOUT_S"):
        read = min(read, env_number("ALIGNBF_HTTP_TIMEOUT_S", float) or read)
    limiter = EndpointLimiter(
        endpoint.max_connections, endpoint.requests_per_minute, endpoint.tokens_per_minute
    )
    return Route(name, endpoint, key, endpoint_id, read, limiter)


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
                    completion = await self._call(route, request)
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
        return json.dumps(body, ensure_ascii=False).encode()

    async def _attempt(
        self, route: Route, payload: bytes, estimate: int, started: float
    ) -> Completion:
        async with route.limiter.slot(estimate) as settle:
            remaining = self.policy.deadline_s - (time.monotonic() - started)
            t0 = time.monotonic()
            async with asyncio.timeout(max(min(2 * route.read_timeout_s, remaining), 0.001)):
                status, headers, body = await self._post(route, payload)
            latency = time.monotonic() - t0
            if not 200 <= status < 300:
                error = classify(
                    status, headers, body, where=route.where, model=route.endpoint.model,
                    key_env=route.endpoint.api_key_env, cap_s=self.policy.retry_after_cap_s,
                )
                if isinstance(error, Refused):
                    return Completion(text="", finish_reason="content_filter",
                                      latency_s=latency, flags=("refused_400",))
                raise error
            completion = parse_completion(body)
            completion.latency_s = latency
            completion.cost_usd = route.endpoint.cost(
                completion.prompt_tokens, completion.completion_tokens
            )
            used = completion.prompt_tokens + completion.completion_tokens
            settle(used or estimate)
            return completion

    async def _post(self, route: Route, payload: bytes) -> tuple[int, httpx.Headers, bytes]:
        """Send one request; read at most ``max_response_bytes`` of the answer."""
        cap = self.max_response_bytes
        async with route.http().stream("POST", "chat/completions", content=payload) as response:
            crashpoints.reached("http_response_headers")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise RetryableError("too_large", f"response declares {declared} bytes (cap {cap})")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise RetryableError("too_large", f"response exceeds {cap} bytes")
                chunks.append(chunk)
            return response.status_code, response.headers, b"".join(chunks)

    def _report(self, route: Route, request: ChatRequest, exc: Exception, latency: float) -> None:
        if self.on_attempt_failed is None:
            return
        label, detail = describe(exc)
        self.on_attempt_failed(
            request.sim_id, request.agent, request.turn, route.endpoint_id, label, detail, latency
        )

    async def aclose(self) -> None:
        """Close every endpoint's connections."""
        for route in self.routes.values():
            if route.client is not None:
                await route.client.aclose()
                route.client = None


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
    from alignbf.plan import check_endpoints
    from alignbf.preflight import check_route
    from alignbf.study import load_study

    study = load_study(config_path)
    endpoints = check_endpoints(study, config_path)
    if not study.endpoints:
        raise ConfigError(f"{config_path}: endpoints: no model is mapped to an endpoint")
    override = _override(base_url) if base_url else None
    routes: dict[str, Route] = {}
    for model, name in study.endpoints.items():
        endpoint = endpoints[name]
        endpoint_id = f"{name}:{endpoint.model}"
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
