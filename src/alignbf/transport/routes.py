"""A route: everything needed to send one request to one endpoint, and the exchange itself.

A route's connections are *lanes*: up to ``max_connections`` ``wire.Lane``
transports of one keep-alive HTTP/1.1 connection each, reused last-in first-out,
with explicit ``httpx.Timeout`` values on every request. The route's proxy and TLS
trust come from the environment when it is made (``network.proxy_for``,
``network.trust``) and serve its pre-flight and batch requests too
(``client_options``). Requests go to the lane directly: no redirects are followed
(a 3xx is a configuration error, so Authorization never travels to another origin),
no cookies are kept, no compression is asked for, and the response is read
incrementally up to a byte cap.
Tests may give a route a fixed ``httpx`` transport (``httpx.MockTransport``) instead.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from alignbf.config.endpoints import Endpoint
from alignbf.config.urls import redact_url
from alignbf.errors import EndpointError
from alignbf.testing import crashpoints
from alignbf.transport.network import Proxy, plain_context, proxy_for, trust
from alignbf.transport.ratelimit import EndpointLimiter
from alignbf.transport.retry import RetryableError, classify, env_number
from alignbf.transport.wire import Lane

CONNECT_TIMEOUT_S = 10.0
STALL_FACTOR = 4.0
"""An attempt waits this many times the endpoint's slowest recent answer (``StallBound``)."""


class StallBound:
    """How long an attempt waits for the server's first byte before it is taken for a stall.

    A non-streaming answer sends nothing until the completion is done, so a stalled
    request (accepted, never answered) is only seen by the read timeout. Once an
    endpoint has answered ``WARMUP`` times, an attempt waits ``factor`` times the
    slowest of its last ``SAMPLES`` successful answers (at least ``FLOOR_S``, at most the
    read timeout); each retry of a request after such a timeout waits twice as long, so
    an endpoint that has grown slower is soon given the full read timeout again.
    ``factor`` 0 turns it off (``ALIGNBF_STALL_FACTOR``).
    """

    SAMPLES = 256
    WARMUP = 50
    FLOOR_S = 1.0

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._latencies: deque[float] = deque(maxlen=self.SAMPLES)
        self._slowest = 0.0
        self._stale = 0

    def record(self, latency_s: float) -> None:
        """A successful answer took ``latency_s`` from request to last byte."""
        self._latencies.append(latency_s)
        self._stale += 1
        if latency_s > self._slowest:
            self._slowest = latency_s
        elif self._stale >= 32:  # the slowest may have left the window: look again
            self._slowest = max(self._latencies)
            self._stale = 0

    def read_timeout(self, configured_s: float, stalls: int) -> float:
        """The read timeout of an attempt that follows ``stalls`` timed-out attempts."""
        if not self.factor or len(self._latencies) < self.WARMUP:
            return configured_s
        bound = max(self.FLOOR_S, self.factor * self._slowest) * 2.0**stalls
        return float(min(configured_s, bound))


@dataclass
class Route:
    """One endpoint as the client uses it: address, key, limits, lanes and health."""

    name: str
    endpoint: Endpoint
    key: SecretStr | None
    endpoint_id: str
    read_timeout_s: float
    limiter: EndpointLimiter
    transport: httpx.AsyncBaseTransport | None = None
    """A fixed transport for every lane (tests pass ``httpx.MockTransport``)."""
    probe: asyncio.Lock = field(default_factory=asyncio.Lock)
    proven: bool = False
    """True once a call has succeeded (until then calls go one at a time)."""
    fatal: EndpointError | None = None
    """The error that made this endpoint unusable; no request is sent after it."""
    cache_key: bool = False
    """Requests carry ``prompt_cache_key`` (turned off when the endpoint rejects it)."""
    notices: list[str] = field(default_factory=list)
    """Warnings about this endpoint for the run summary (one line each)."""
    stall: StallBound = field(default_factory=lambda: StallBound(0.0))
    """The read timeout that tells a stall from a slow answer (off unless set)."""
    lanes: list[httpx.AsyncBaseTransport] = field(default_factory=list)
    idle: list[httpx.AsyncBaseTransport] = field(default_factory=list)
    proxy: Proxy | None = None
    """The proxy the environment names for this endpoint (None: direct)."""
    tls: ssl.SSLContext | None = None
    """What verifies the server's certificate (``network.trust``; set by ``make_route``)."""
    _template: tuple[httpx.URL, httpx.Headers, dict[str, float | None]] | None = None

    @property
    def where(self) -> str:
        """``endpoint NAME (BASE_URL)``, the subject of every message about this endpoint."""
        return f"endpoint {self.name} ({redact_url(self.endpoint.base_url)})"

    @property
    def via(self) -> str:
        """`` through proxy URL (from VARIABLE)`` for messages, or "" when direct."""
        return f" through {self.proxy}" if self.proxy else ""

    def _trust(self) -> ssl.SSLContext:
        if self.tls is None:
            self.tls = trust()
        return self.tls

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of an ``httpx`` client for this route's other requests
        (pre-flight, batch API): the same proxy and certificates as its lanes."""
        if self.transport is not None:
            return {"trust_env": False}
        proxy = self.proxy.for_httpx() if self.proxy else None
        return {"trust_env": False, "verify": self._trust(), "proxy": proxy}

    @property
    def attempt_deadline_s(self) -> float:
        """Total time one attempt may take, however slowly the bytes trickle in."""
        return 2 * self.read_timeout_s + CONNECT_TIMEOUT_S

    def classify(self, status: int, headers: httpx.Headers, body: bytes, cap_s: float) -> Exception:
        """The exception for a non-2xx answer from this endpoint (see ``retry.classify``)."""
        return classify(
            status,
            headers,
            body,
            where=self.where,
            model=self.endpoint.model,
            key_env=self.endpoint.api_key_env,
            cap_s=cap_s,
        )

    def _lane(self) -> httpx.AsyncBaseTransport:
        if self.idle:
            return self.idle.pop()
        if self.transport is not None:
            return self.transport
        lane = Lane(self._trust(), self.proxy)
        self.lanes.append(lane)
        return lane

    def _request(self, payload: bytes, read_timeout_s: float | None = None) -> httpx.Request:
        if self._template is None:
            read = self.read_timeout_s
            timeout = httpx.Timeout(connect=CONNECT_TIMEOUT_S, read=read, write=read, pool=read)
            fields = {"Content-Type": "application/json", "Accept": "application/json"}
            if self.key is not None:
                fields["Authorization"] = f"Bearer {self.key.get_secret_value()}"
            url = httpx.URL(self.endpoint.base_url + "/chat/completions")
            self._template = (url, httpx.Headers(fields), timeout.as_dict())
        url, headers, timeout_dict = self._template
        if read_timeout_s is not None and read_timeout_s != timeout_dict["read"]:
            timeout_dict = {**timeout_dict, "read": read_timeout_s}
        return httpx.Request(
            "POST", url, headers=headers, content=payload, extensions={"timeout": timeout_dict}
        )

    async def post(
        self, payload: bytes, cap: int, read_timeout_s: float | None = None
    ) -> tuple[int, httpx.Headers, bytes]:
        """Send one chat request; read at most ``cap`` bytes of the answer.

        ``read_timeout_s`` replaces the route's read timeout for this request.

        Raises:
            RetryableError: the response is larger than ``cap``.
            httpx.HTTPError: timeouts and connection failures.
        """
        lane = self._lane()
        try:
            response = await lane.handle_async_request(self._request(payload, read_timeout_s))
            try:
                crashpoints.reached("http_response_headers")
                return response.status_code, response.headers, await _read(response, cap)
            finally:
                await response.aclose()
        finally:
            if lane is not self.transport:
                self.idle.append(lane)

    async def aclose(self) -> None:
        """Close every lane."""
        lanes, self.lanes, self.idle = self.lanes, [], []
        for lane in lanes:
            await lane.aclose()


async def _read(response: httpx.Response, cap: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise RetryableError("too_large", f"response declares {declared} bytes (cap {cap})")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > cap:
            raise RetryableError("too_large", f"response exceeds {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def make_route(
    name: str,
    endpoint: Endpoint,
    key: SecretStr | None,
    endpoint_id: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Route:
    """A route with the endpoint's limits; ``ALIGNBF_HTTP_TIMEOUT_S`` caps the read timeout
    and ``ALIGNBF_STALL_FACTOR`` sets the stall bound's factor (default ``STALL_FACTOR``).
    The proxy and certificates are read from the environment here (``network.py``).

    Raises:
        ConfigError: a proxy variable, ``NO_PROXY``, ``SSL_CERT_FILE`` or ``SSL_CERT_DIR``
            is malformed.
    """
    read = endpoint.timeout_s
    if os.environ.get("ALIGNBF_HTTP_TIMEOUT_S"):
        read = min(read, env_number("ALIGNBF_HTTP_TIMEOUT_S", float) or read)
    factor = STALL_FACTOR
    if os.environ.get("ALIGNBF_STALL_FACTOR"):
        factor = env_number("ALIGNBF_STALL_FACTOR", float)
    limiter = EndpointLimiter(
        endpoint.max_connections, endpoint.requests_per_minute, endpoint.tokens_per_minute
    )
    route = Route(name, endpoint, key, endpoint_id, read, limiter, transport)
    route.cache_key = endpoint.sends_prompt_cache_key
    route.stall = StallBound(factor)
    route.proxy = proxy_for(endpoint.base_url)
    route.tls = trust() if endpoint.base_url.startswith("https:") else plain_context()
    return route
