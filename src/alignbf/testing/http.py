"""Minimal HTTP/1.1 framing for the loopback server: read a request, build and send a
response. Hand-rolled on asyncio streams because the fault modes (resets, stalls, short or
huge bodies) need the raw socket."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class HttpRequest:
    """One parsed HTTP/1.1 request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """The next request on a connection, or None when the client closed it."""
    line = await reader.readline()
    if not line.strip():
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return HttpRequest(method, path, headers, body)


def response(
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    length: int | None = None,
) -> bytes:
    """A complete HTTP/1.1 response (``length`` overrides the declared Content-Length)."""
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body) if length is None else length}",
        "Connection: keep-alive",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def send(writer: asyncio.StreamWriter, data: bytes) -> bool:
    """Write a response; False when the client has gone."""
    try:
        writer.write(data)
        await writer.drain()
    except ConnectionError:
        return False
    return True
