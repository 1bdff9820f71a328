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
  route's SSL context and the host name checked;
* timeouts from the request's ``timeout`` extension, as httpx sets them:
  ``connect``, ``write`` (a stalled send buffer) and ``read`` (between bytes);
* failures raise the matching ``httpx`` exceptions (``ConnectError``,
  ``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``, ``ReadError``,
  ``RemoteProtocolError``), so the retry policy sees what it would see from httpx.

No proxies, no HTTP/2, no redirects, no content decoding (requests ask for no
compression); a lane serves one origin.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import h11
import httpx

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

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
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
            head = state.send(
                h11.Request(
                    method=request.method,
                    target=request.url.raw_path,
                    headers=request.headers.raw,
                )
            )
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
        conn = await _connect(url, self._ssl, connect_timeout)
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


async def _connect(
    url: httpx.URL, context: ssl.SSLContext | None, timeout: float | None
) -> _Connection:
    scheme, host = url.scheme, url.host
    if scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
    port = url.port or (443 if scheme == "https" else 80)
    tls: ssl.SSLContext | None = None
    if scheme == "https":
        tls = context or ssl.create_default_context()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            _, conn = await loop.create_connection(
                _Connection, host, port, ssl=tls, server_hostname=host if tls else None
            )
    except TimeoutError:
        raise httpx.ConnectTimeout(f"no connection to {host}:{port} within {timeout} s") from None
    except (OSError, ssl.SSLError) as exc:
        raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
    return conn
