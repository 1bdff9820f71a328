"""One keep-alive HTTP/1.1 connection as an ``httpx`` transport: h11 over an asyncio protocol.

A route's lanes (``routes.py``) each hold one connection and carry one request at
a time, so the connection-pool machinery of httpcore (locks, cancel scopes and
expiry scans on every request, all through anyio) buys nothing here and cost
more CPU per call than the rest of the client. ``Lane`` keeps only what one
connection needs:

* the request goes out in a single write (head and body together), framed by h11;
* the response is parsed by h11 as bytes arrive; its body is streamed to the
  caller (who enforces a size cap) and the connection is reused only after a
  complete, keep-alive exchange;
* an idle connection the server has closed (or sent stray bytes on) is replaced
  before use;
* TLS through asyncio's ``start_tls`` path (``ssl=`` on connect), with the
  route's SSL context (``network.trust``) and the host name checked;
* through the route's HTTP proxy (``network.proxy_for``) when it has one: ``http://``
  requests are sent to the proxy in absolute form, ``https://`` ones through a
  ``CONNECT`` tunnel with TLS to the endpoint inside it, both with the proxy's
  ``Proxy-Authorization`` when its URL has credentials; a tunnel the proxy refuses
  raises ``ProxyError`` (4xx) or ``ConnectError`` (5xx, retried);
* timeouts from the request's ``timeout`` extension, as httpx sets them:
  ``connect``, ``write`` (a stalled send buffer) and ``read`` (between bytes);
* failures raise the matching ``httpx`` exceptions (``ConnectError``,
  ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``, ``ReadError``,
  ``RemoteProtocolError``), so the retry policy sees what it would see from httpx.

No HTTP/2, no redirects, no content decoding (requests ask for no compression); a
lane serves one origin.

**Why a transport of its own.** Stock httpx would make one HTTP stack of the run,
the pre-flight checks and the batch client (those two use httpx clients, with the
same proxy and certificates from ``network.py``). It was measured as one
``httpx.AsyncHTTPTransport`` per lane and kept out: ``python bench/http_runner.py``
(9,600 calls, 64 in flight, 200 ms per reply, 2 cores shared with other work) spent
1.88 ms of client CPU per call with it against 1.34 ms with these lanes, and its
efficiency was 0.89 (load average 2.1), under the benchmark's floor of 0.9 (these
lanes: 0.85 at load average 3.3, the load moving both runs). On the transport
alone, 64 lanes against a fixed-reply loopback server, a lane costs 0.21-0.29 ms per
request, a stock transport 0.50-0.71 ms, one stock transport for all lanes 2.0-2.1 ms
(httpcore's pool scans its connections on every request); proxy support left the
lane at 0.23 ms. Half a millisecond is nothing next to a model's latency, but it is
a third more client CPU on the hot path, where the floor is set, while proxies cost
this module about 80 lines, tested against a real proxy in
``tests/integration/test_proxy.py``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import h11
import httpx

from alignbf.transport.network import Proxy

READ_SIZE = 65536
_HIGH_WATER = 256 * 1024


class _Connection(asyncio.Protocol):
    """Buffers what the socket delivers; one reader waits at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost: Exception | None = None
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def readable(self) -> bool:
        """Bytes, EOF or a close are pending (on an idle connection: not reusable)."""
        return bool(self.buffer) or self.eof or self.closed

    async def read(self, timeout: float | None) -> bytes:
        """What has arrived, waiting up to ``timeout`` for something; b"" at EOF."""
        if not self.buffer and not self.eof and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            except TimeoutError:
                raise httpx.ReadTimeout(
                    "no bytes from the server within the read timeout"
                ) from None
            finally:
                self._waiter = None
        if self.buffer:
            data = bytes(self.buffer)
            self.buffer.clear()
            return data
        if self.lost is not None:
            raise httpx.ReadError(f"connection lost: {self.lost}")
        return b""

    async def write(self, data: bytes, timeout: float | None) -> None:
        """Send ``data``; wait (up to ``timeout``) only while the send buffer is full."""
        if self.closed or self.transport is None:
            raise httpx.WriteError("connection closed")
        self.transport.write(data)
        if self._drain is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self._drain
            except TimeoutError:
                raise httpx.WriteTimeout("the server stopped reading the request") from None
            if self.closed:
                raise httpx.WriteError(f"connection lost while sending: {self.lost}")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Lane(httpx.AsyncBaseTransport):
    """One HTTP/1.1 connection, reused while the server keeps it alive."""

    def __init__(
        self, ssl_context: ssl.SSLContext | None = None, proxy: Proxy | None = None
    ) -> None:
        self._ssl = ssl_context
        self._proxy = proxy
        self._conn: _Connection | None = None
        self._h11: h11.Connection | None = None
        self._busy = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._busy:
            raise RuntimeError("a lane carries one request at a time")
        self._busy = True
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        try:
            conn, state = await self._ready(request.url, timeouts.get("connect"))
            target, headers = request.url.raw_path, request.headers.raw
            if self._proxy is not None and request.url.scheme == "http":
                target, headers = _forwarded(request.url, headers, self._proxy)
            head = state.send(h11.Request(method=request.method, target=target, headers=headers))
            body = request.content
            data = state.send(h11.Data(data=body)) if body else b""
            end = state.send(h11.EndOfMessage())
            await conn.write(
                b"".join((head or b"", data or b"", end or b"")), timeouts.get("write")
            )
            event = await self._next(conn, state, timeouts.get("read"))
            while isinstance(event, h11.InformationalResponse):
                event = await self._next(conn, state, timeouts.get("read"))
            if not isinstance(event, h11.Response):
                raise httpx.RemoteProtocolError(
                    f"unexpected {type(event).__name__} from the server"
                )
        except BaseException:
            self._discard()
            self._busy = False
            raise
        return httpx.Response(
            status_code=event.status_code,
            headers=event.headers.raw_items(),
            stream=_Body(self, conn, state, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": event.reason},
        )

    async def _ready(
        self, url: httpx.URL, connect_timeout: float | None
    ) -> tuple[_Connection, h11.Connection]:
        conn, state = self._conn, self._h11
        if conn is not None and state is not None:
            if not conn.readable and state.our_state is h11.IDLE:
                return conn, state
            self._discard()
        conn = await _connect(url, self._ssl, connect_timeout, self._proxy)
        self._conn, self._h11 = conn, h11.Connection(h11.CLIENT)
        return conn, self._h11

    @staticmethod
    async def _next(conn: _Connection, state: h11.Connection, timeout: float | None) -> Any:
        while True:
            try:
                event = state.next_event()
            except h11.RemoteProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from None
            if event is not h11.NEED_DATA:
                return event
            data = await conn.read(timeout)
            if not data and state.their_state is h11.SEND_RESPONSE and not conn.buffer:
                raise httpx.RemoteProtocolError("server closed the connection without a response")
            state.receive_data(data)

    def _finish(self, complete: bool) -> None:
        """The response is done with: keep the connection for the next request, or drop it."""
        state = self._h11
        if (
            complete
            and state is not None
            and state.our_state is h11.DONE
            and state.their_state is h11.DONE
        ):
            state.start_next_cycle()
        else:
            self._discard()
        self._busy = False

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._h11 = None

    async def aclose(self) -> None:
        self._discard()


class _Body(httpx.AsyncByteStream):
    """A response body read from the lane's connection as the caller iterates."""

    def __init__(
        self, lane: Lane, conn: _Connection, state: h11.Connection, timeout: float | None
    ) -> None:
        self._lane, self._conn, self._state, self._timeout = lane, conn, state, timeout
        self._complete = False
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while not self._complete:
            event = await Lane._next(self._conn, self._state, self._timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._complete = True
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("connection closed before the body ended")

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._lane._finish(self._complete)


def _forwarded(
    url: httpx.URL, headers: list[tuple[bytes, bytes]], proxy: Proxy
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The absolute-form target and headers of a request an HTTP proxy forwards."""
    target = b"http://" + url.netloc + url.raw_path
    if proxy.authorization is None:
        return target, headers
    return target, [*headers, (b"Proxy-Authorization", proxy.authorization)]


async def _connect(
    url: httpx.URL,
    context: ssl.SSLContext | None,
    timeout: float | None,
    proxy: Proxy | None = None,
) -> _Connection:
    """A connection to ``url``'s origin: direct, or through ``proxy`` (tunnelled for TLS)."""
    scheme, host = url.scheme, url.host
    if scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
    port = url.port or (443 if scheme == "https" else 80)
    tls: ssl.SSLContext | None = None
    if scheme == "https":
        tls = context or ssl.create_default_context()
    loop = asyncio.get_running_loop()
    peer = (proxy.host, proxy.port) if proxy else (host, port)
    where = f"proxy {peer[0]}:{peer[1]}" if proxy else f"{host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            if proxy is None:
                _, conn = await loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
                return conn
            _, conn = await loop.create_connection(_Connection, *peer)
            if tls is None:
                return conn
            where = f"{host}:{port} through proxy {peer[0]}:{peer[1]}"
            try:
                await _tunnel(conn, host, port, proxy)
                await _start_tls(conn, tls, host)
            except BaseException:
                conn.close()
                raise
            return conn
    except TimeoutError:
        raise httpx.ConnectTimeout(f"no connection to {where} within {timeout} s") from None
    except (OSError, ssl.SSLError) as exc:
        raise httpx.ConnectError(f"cannot connect to {where}: {exc}") from None


async def _tunnel(conn: _Connection, host: str, port: int, proxy: Proxy) -> None:
    """Have the proxy open a tunnel to ``host:port`` on ``conn`` (``CONNECT``).

    Raises:
        httpx.ProxyError: the proxy refused (4xx) or did not answer HTTP.
        httpx.ConnectError: the proxy could not reach the endpoint (5xx).
    """
    authority = (f"[{host}]" if ":" in host else host).encode() + b":%d" % port
    headers = [(b"Host", authority)]
    if proxy.authorization is not None:
        headers.append((b"Proxy-Authorization", proxy.authorization))
    state = h11.Connection(h11.CLIENT)
    request = state.send(h11.Request(method=b"CONNECT", target=authority, headers=headers))
    try:
        await conn.write((request or b"") + (state.send(h11.EndOfMessage()) or b""), None)
        event = await Lane._next(conn, state, None)
        while isinstance(event, h11.InformationalResponse):
            event = await Lane._next(conn, state, None)
    except httpx.HTTPError as exc:
        raise httpx.ProxyError(f"the proxy did not open a tunnel: {exc}") from None
    if not isinstance(event, h11.Response):
        raise httpx.ProxyError(f"the proxy answered CONNECT with {type(event).__name__}")
    if not 200 <= event.status_code < 300:
        status = f"{event.status_code} {event.reason.decode(errors='replace')}"
        error = httpx.ConnectError if event.status_code >= 500 else httpx.ProxyError
        raise error(f"the proxy answered CONNECT {authority.decode()} with {status}")
    if state.trailing_data[0] or conn.buffer:
        raise httpx.ProxyError("the proxy sent bytes before the TLS handshake")


async def _start_tls(conn: _Connection, tls: ssl.SSLContext, host: str) -> None:
    """Upgrade ``conn`` (a tunnel) to TLS with the endpoint; the protocol stays the same."""
    assert conn.transport is not None
    loop = asyncio.get_running_loop()
    upgraded = await loop.start_tls(conn.transport, conn, tls, server_hostname=host)
    if upgraded is None:
        raise httpx.ConnectError(f"the TLS handshake with {host} through the proxy failed")
    conn.connection_made(upgraded)
