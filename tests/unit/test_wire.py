"""One HTTP/1.1 connection as an httpx transport, against raw servers on 127.0.0.1.

Each server is a few lines of asyncio streams that answer with exact bytes, so the
framing cases (keep-alive, chunked, close-delimited, torn bodies, garbage) and the
failures (refused, stalled, TLS with an unknown CA) are the server's real bytes on
a real socket.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import trustme

from alignbf.config.endpoints import Endpoint
from alignbf.transport.network import Proxy, parse_proxy
from alignbf.transport.routes import Route, make_route
from alignbf.transport.wire import Lane

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
TIMEOUTS = {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    """The request's body, or None when the client closed the connection."""
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return await reader.readexactly(length)


def ok(body: bytes, *extra: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Type: application/json",
            b"Content-Length: %d" % len(body), *extra]  # fmt: skip
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class Served:
    """A loopback server running ``handler``; counts connections."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler, self.tls, self.connections = handler, tls, 0

    async def __aenter__(self) -> str:
        async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(r, w)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                w.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=self.tls)
        port = self.server.sockets[0].getsockname()[1]
        return (
            f"{'https' if self.tls else 'http'}://{'localhost' if self.tls else '127.0.0.1'}:{port}"
        )

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


async def post(
    lane: Lane, url: str, body: bytes = b'{"q": 1}', **timeouts: float
) -> tuple[int, bytes]:
    request = httpx.Request(
        "POST", url + "/v1/chat/completions", content=body,
        headers={"Content-Type": "application/json"},
        extensions={"timeout": {**TIMEOUTS, **timeouts}},
    )  # fmt: skip
    response = await lane.handle_async_request(request)
    try:
        return response.status_code, b"".join([c async for c in response.aiter_bytes()])
    finally:
        await response.aclose()


async def echo_keepalive(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    while (body := await read_request(r)) is not None:
        w.write(ok(b'{"echo": ' + body + b"}"))
        await w.drain()


def test_requests_share_one_keepalive_connection() -> None:
    async def main() -> tuple[list[tuple[int, bytes]], int]:
        lane = Lane()
        served = Served(echo_keepalive)
        async with served as url:
            out = [await post(lane, url, b'{"n": %d}' % i) for i in range(5)]
        await lane.aclose()
        return out, served.connections

    out, connections = asyncio.run(main())
    assert out == [(200, b'{"echo": {"n": %d}}' % i) for i in range(5)]
    assert connections == 1


def test_request_head_and_body_are_sent_as_written() -> None:
    seen: list[bytes] = []

    async def record(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        seen.append(head + await r.readexactly(8))
        w.write(ok(b"{}"))
        await w.drain()

    async def main() -> None:
        async with Served(record) as url:
            await post(Lane(), url, b'{"q": 1}')

    asyncio.run(main())
    head, body = seen[0].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert {b"content-length: 8", b"content-type: application/json"} <= {
        line.lower() for line in lines
    }
    assert any(line.lower().startswith(b"host: 127.0.0.1:") for line in lines)
    assert body == b'{"q": 1}'


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def one_then_close(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(ok(b'{"a": 1}'))
        await w.drain()

    async def main() -> tuple[list[tuple[int, bytes]], int]:
        lane = Lane()
        served = Served(one_then_close)
        async with served as url:
            first = await post(lane, url)
            await asyncio.sleep(0.05)  # the server's FIN arrives while the lane is idle
            second = await post(lane, url)
        return [first, second], served.connections

    out, connections = asyncio.run(main())
    assert out == [(200, b'{"a": 1}')] * 2
    assert connections == 2


def test_connection_close_and_close_delimited_bodies() -> None:
    async def close_delimited(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b'{"x": "' + b"y" * 5000 + b'"}')
        await w.drain()

    async def main() -> tuple[tuple[int, bytes], tuple[int, bytes], int]:
        lane = Lane()
        served = Served(close_delimited)
        async with served as url:
            first, second = await post(lane, url), await post(lane, url)
        return first, second, served.connections

    first, second, connections = asyncio.run(main())
    assert first == second == (200, b'{"x": "' + b"y" * 5000 + b'"}')
    assert connections == 2


def test_chunked_body_with_extension_and_trailer() -> None:
    async def chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while await read_request(r) is not None:
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            w.write(b'5;ext=1\r\n{"a":\r\n3\r\n 1}\r\n0\r\nX-Trailer: t\r\n\r\n')
            await w.drain()

    async def main() -> list[tuple[int, bytes]]:
        lane = Lane()
        served = Served(chunked)
        async with served as url:
            out = [await post(lane, url), await post(lane, url)]
        assert served.connections == 1
        return out

    assert asyncio.run(main()) == [(200, b'{"a": 1}')] * 2


def test_interim_100_response_is_skipped_and_error_statuses_are_returned() -> None:
    async def interim(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b'{"error": {"type": "server_error"}}'
        head = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n"
        w.write(head % len(body) + body)
        await w.drain()

    async def main() -> tuple[int, bytes]:
        async with Served(interim) as url:
            return await post(Lane(), url)

    assert asyncio.run(main()) == (503, b'{"error": {"type": "server_error"}}')


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"", httpx.RemoteProtocolError),  # closed without a response
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", httpx.RemoteProtocolError),  # not HTTP
        (b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cut', httpx.RemoteProtocolError),
        (
            b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"cu',
            httpx.RemoteProtocolError,
        ),
    ],
    ids=["no-response", "not-http", "short-body", "torn-chunk"],
)
def test_broken_replies_raise_httpx_errors(reply: bytes, error: type[Exception]) -> None:
    async def broken(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.write(reply)
        await w.drain()

    async def main() -> None:
        lane = Lane()
        async with Served(broken) as url:
            with pytest.raises(error):
                await post(lane, url)
            with pytest.raises(error):  # the broken connection is not reused
                await post(lane, url)

    asyncio.run(main())


def test_reset_connection_is_a_network_error() -> None:
    async def reset(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        w.transport.abort()

    async def main() -> None:
        async with Served(reset) as url:
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await post(Lane(), url)

    asyncio.run(main())


def test_silent_server_gives_read_timeout_and_refused_port_connect_error() -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        await asyncio.sleep(5)

    async def main() -> None:
        async with Served(silent) as url:
            with pytest.raises(httpx.ReadTimeout):
                await post(Lane(), url, read=0.2)
        with pytest.raises(httpx.ConnectError):
            await post(Lane(), "http://127.0.0.1:1")

    asyncio.run(main())


def test_server_that_never_reads_gives_write_timeout() -> None:
    async def deaf(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def main() -> None:
        async with Served(deaf) as url:
            with pytest.raises(httpx.WriteTimeout):
                await post(Lane(), url, b"x" * (64 << 20), write=0.3)

    asyncio.run(main())


def test_one_request_at_a_time() -> None:
    async def slow(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await read_request(r)
        await asyncio.sleep(0.2)
        w.write(ok(b"{}"))
        await w.drain()

    async def main() -> None:
        lane = Lane()
        async with Served(slow) as url:
            first = asyncio.create_task(post(lane, url))
            await asyncio.sleep(0.05)
            with pytest.raises(RuntimeError, match="one request at a time"):
                await post(lane, url)
            assert await first == (200, b"{}")

    asyncio.run(main())


def test_a_route_gives_each_request_in_flight_its_own_lane() -> None:
    async def slow(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while await read_request(r) is not None:
            await asyncio.sleep(0.2)
            w.write(ok(b"{}"))
            await w.drain()

    async def main() -> tuple[int, int, int]:
        served = Served(slow)
        async with served as url:
            endpoint = Endpoint(base_url=url + "/v1", model="m", serves="m", max_connections=4)
            route = make_route("e", endpoint, None, "e:m")
            started = asyncio.get_running_loop().time()
            async with asyncio.TaskGroup() as tg:
                for _ in range(3):
                    tg.create_task(route.post(b"{}", 1024))
            elapsed = asyncio.get_running_loop().time() - started
            assert elapsed < 0.5  # side by side, not one after another
            assert (await route.post(b"{}", 1024))[0] == 200  # an idle lane is reused
            lanes = len(route.lanes)
            await route.aclose()
        return served.connections, lanes, len(route.idle)

    assert asyncio.run(main()) == (3, 3, 0)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("TLS TEST SKIPPED: the openssl command is not installed")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_with_the_right_ca_works_and_an_unknown_ca_is_refused(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        served = Served(echo_keepalive, tls=server_side)
        async with served as url:
            lane = Lane(trusting)
            assert await post(lane, url, b"1") == (200, b'{"echo": 1}')
            assert await post(lane, url, b"2") == (200, b'{"echo": 2}')
            await lane.aclose()
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await post(Lane(ssl.create_default_context()), url)
        assert served.connections == 1  # a refused handshake never reaches the handler

    asyncio.run(main())


# Certificates and proxies, as the environment names them.


@pytest.fixture(scope="module")
def test_ca() -> trustme.CA:
    return trustme.CA()


def tls_server_side(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def https_route(url: str) -> Route:
    endpoint = Endpoint(base_url=url + "/v1", model="m", serves="m", max_connections=1)
    return make_route("e", endpoint, None, "e:m")


def test_ssl_cert_file_names_the_ca_that_https_endpoints_are_checked_against(
    test_ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file = tmp_path / "ca.pem"
    test_ca.cert_pem.write_to_path(str(ca_file))

    async def main() -> None:
        async with Served(echo_keepalive, tls=tls_server_side(test_ca)) as url:
            monkeypatch.delenv("SSL_CERT_FILE", raising=False)
            untrusting = https_route(url)  # certifi's bundle: the test CA is not in it
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.post(b"1", 1024)
            monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
            trusting = https_route(url)
            assert (await trusting.post(b"1", 1024))[2] == b'{"echo": 1}'
            for route in (untrusting, trusting):
                await route.aclose()

    asyncio.run(main())


def test_ssl_cert_dir_of_hashed_certificates(
    test_ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("SSL_CERT_DIR TEST SKIPPED: the openssl command (openssl rehash) is missing")
    certs = tmp_path / "certs"
    certs.mkdir()
    test_ca.cert_pem.write_to_path(str(certs / "lab-ca.pem"))
    subprocess.run(["openssl", "rehash", str(certs)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))

    async def main() -> bytes:
        async with Served(echo_keepalive, tls=tls_server_side(test_ca)) as url:
            route = https_route(url)
            try:
                return (await route.post(b"2", 1024))[2]
            finally:
                await route.aclose()

    assert asyncio.run(main()) == b'{"echo": 2}'


def proxy_at(url: str, credentials: str = "alice:pw") -> Proxy:
    return parse_proxy("HTTPS_PROXY", url.replace("http://", f"http://{credentials}@"))


def test_http_requests_go_to_the_proxy_in_absolute_form_with_its_credentials() -> None:
    heads: list[bytes] = []

    async def forwarding_proxy(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while not r.at_eof():
            head = await r.readuntil(b"\r\n\r\n")
            heads.append(head)
            fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:-2])
            body = await r.readexactly(int(fields[b"content-length"]))
            w.write(ok(b'{"echo": ' + body + b"}"))
            await w.drain()

    async def main() -> list[tuple[int, bytes]]:
        served = Served(forwarding_proxy)
        async with served as url:
            lane = Lane(proxy=proxy_at(url))
            out = [await post(lane, "http://origin.example:8000", b"%d" % i) for i in range(2)]
            await lane.aclose()
        assert served.connections == 1  # kept alive to the proxy
        return out

    assert asyncio.run(main()) == [(200, b'{"echo": 0}'), (200, b'{"echo": 1}')]
    for head in heads:
        lines = head.lower().split(b"\r\n")
        assert lines[0] == b"post http://origin.example:8000/v1/chat/completions http/1.1"
        assert b"host: origin.example:8000" in lines
        assert b"proxy-authorization: basic ywxpy2u6chc=" in lines  # alice:pw


async def tunnel_to(target: str, seen: list[bytes]) -> Handler:
    """A proxy that answers CONNECT with 200 and relays bytes to ``target`` (host:port)."""
    host, port = target.rsplit(":", 1)

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        seen.append(await r.readuntil(b"\r\n\r\n"))
        up_r, up_w = await asyncio.open_connection(host, int(port))
        w.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            dst.close()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(pipe(r, up_w))
            tg.create_task(pipe(up_r, w))

    return handler


def test_https_goes_through_a_connect_tunnel_with_tls_to_the_endpoint(
    test_ca: trustme.CA,
) -> None:
    seen: list[bytes] = []
    trusting = ssl.create_default_context()
    test_ca.configure_trust(trusting)

    async def main() -> tuple[int, bytes]:
        async with Served(echo_keepalive, tls=tls_server_side(test_ca)) as origin:
            target = origin.removeprefix("https://")
            async with Served(await tunnel_to(target, seen)) as proxy:
                lane = Lane(trusting, proxy_at(proxy))
                try:
                    return await post(lane, origin, b"7")
                finally:
                    await lane.aclose()

    assert asyncio.run(main()) == (200, b'{"echo": 7}')
    lines = seen[0].split(b"\r\n")
    assert lines[0].startswith(b"CONNECT localhost:") and lines[0].endswith(b" HTTP/1.1")
    assert b"Proxy-Authorization: Basic YWxpY2U6cHc=" in lines


@pytest.mark.parametrize(
    ("answer", "error", "match"),
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
         httpx.ProxyError, "CONNECT localhost:443 with 407 Proxy Authentication Required"),
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
         httpx.ConnectError, "with 502 Bad Gateway"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", httpx.ProxyError, "did not open a tunnel"),
    ],
    ids=["407", "502", "not-http"],
)  # fmt: skip
def test_a_tunnel_the_proxy_refuses(answer: bytes, error: type[Exception], match: str) -> None:
    async def refusing(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(answer)
        await w.drain()

    async def main() -> None:
        async with Served(refusing) as proxy:
            lane = Lane(ssl.create_default_context(), proxy_at(proxy))
            with pytest.raises(error, match=match):
                await post(lane, "https://localhost")

    asyncio.run(main())
