"""A route: everything needed to send one request to one endpoint, and the exchange itself.

A route's connections are *lanes*: up to ``max_connections`` ``wire.Lane``
transports of one keep-alive HTTP/1.1 connection each, reused last-in first-out,
with explicit ``httpx.Timeout`` values on every request. Requests go to the lane
directly: no redirects are followed (a 3xx is a configuration error, so
Authorization never travels to another origin), no cookies are kept, no
compression is asked for, and the response is read incrementally up to a byte cap.
Tests may give a route a fixed ``httpx`` transport (``httpx.MockTransport``) instead.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass, field

import httpx
from pydantic import SecretStr

from alignbf.config.endpoints import Endpoint
from alignbf.errors import EndpointError
from alignbf.testing import crashpoints
from alignbf.transport.ratelimit import EndpointLimiter
from alignbf.transport.retry import RetryableError, classify, env_number
from alignbf.transport.wire import Lane

CONNECT_TIMEOUT_S = 10.0


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
    lanes: list[httpx.AsyncBaseTransport] = field(default_factory=list)
    idle: list[httpx.AsyncBaseTransport] = field(default_factory=list)
    _tls: ssl.SSLContext | None = None
    _template: tuple[httpx.URL, httpx.Headers, dict[str, float | None]] | None = None

    @property
    def where(self) -> str:
        """``endpoint NAME (BASE_URL)``, the subject of every message about this endpoint."""
        return f"endpoint {self.name} ({self.endpoint.base_url})"

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
        if self._tls is None and self.endpoint.base_url.startswith("https:"):
            self._tls = httpx.create_ssl_context(trust_env=False)
        lane = Lane(self._tls)
        self.lanes.append(lane)
        return lane

    def _request(self, payload: bytes) -> httpx.Request:
        if self._template is None:
            read = self.read_timeout_s
            timeout = httpx.Timeout(connect=CONNECT_TIMEOUT_S, read=read, write=read, pool=read)
            fields = {"Content-Type": "application/json", "Accept": "application/json"}
            if self.key is not None:
                fields["Authorization"] = f"Bearer {self.key.get_secret_value()}"
            url = httpx.URL(self.endpoint.base_url + "/chat/completions")
            self._template = (url, httpx.Headers(fields), timeout.as_dict())
        url, headers, timeout_dict = self._template
        return httpx.Request(
            "POST", url, headers=headers, content=payload, extensions={"timeout": timeout_dict}
        )

    async def post(self, payload: bytes, cap: int) -> tuple[int, httpx.Headers, bytes]:
        """Send one chat request; read at most ``cap`` bytes of the answer.

        Raises:
            RetryableError: the response is larger than ``cap``.
            httpx.HTTPError: timeouts and connection failures.
        """
        lane = self._lane()
        try:
            response = await lane.handle_async_request(self._request(payload))
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
    """A route with the endpoint's limits; ``ALIGNBF_HTTP_TIMEOUT_S`` caps the read timeout."""
    read = endpoint.timeout_s
    if os.environ.get("ALIGNBF_HTTP_TIMEOUT_S"):
        read = min(read, env_number("ALIGNBF_HTTP_TIMEOUT_S", float) or read)
    limiter = EndpointLimiter(
        endpoint.max_connections, endpoint.requests_per_minute, endpoint.tokens_per_minute
    )
    return Route(name, endpoint, key, endpoint_id, read, limiter, transport)
