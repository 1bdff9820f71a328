"""A loopback OpenAI-compatible server in front of the synthetic model, with fault injection.

``alignbf serve-synthetic`` exercises the HTTP path end to end in tests and
benchmarks. Built on asyncio streams (HTTP/1.1, keep-alive) because resets,
stalls and short bodies need a raw socket; with ``tls_cert`` and ``tls_key`` it serves
HTTPS. Routes:

* ``POST /v1/chat/completions``: the synthetic model's reply, deterministic per request;
* ``GET /v1/models``: one model;
* ``GET /_ledger``: one entry per chat request (arrival time, time answered,
  fingerprint = sha256 of the canonical body, attempt number per fingerprint,
  fault, status, billed tokens, whether a valid completion was delivered, sha256
  of the Authorization header and of the delivered content, the request's
  ``prompt_cache_key``). The ledger never holds a header value.

With ``prefix_cache_tokens`` set, an emulated provider prompt cache (``prefixcache.py``)
reports ``usage.prompt_tokens_details.cached_tokens`` for the cached prefix of each
prompt; ``reject_prompt_cache_key`` answers 400 to requests that carry that parameter.
``reject_response_format`` answers 400 to requests whose ``response_format`` has one of
the given types; ``content_filter_rate`` answers that share of requests (drawn per
fingerprint) 200 with empty content and ``finish_reason: content_filter``. With
``context_tokens`` set, a request whose prompt (estimated as in ``usage``) and
``max_tokens`` together exceed it is answered 400 ``context_length_exceeded``, as a
server with that context window does.

Transient faults are drawn from ``hash(fault_seed, fingerprint, attempt_no)`` at
``fault_rate``, at most ``MAX_CONSECUTIVE`` in a row per fingerprint, so the
schedule does not depend on timing and a correct client always gets through.
Permanent kinds in ``fault_kinds`` apply to every request. A *storm* answers
every chat request 429 with ``Retry-After: storm_retry_after_s`` from
``storm_at_s`` to ``storm_at_s + storm_s`` seconds after the first chat request.
A *quota* (``quota_requests`` per ``quota_window_s``) reports what is left of it in
``x-ratelimit-remaining-requests`` / ``x-ratelimit-reset-requests`` on every chat answer
and answers 429 to requests over it, as OpenAI-style providers do.
Error bodies echo the Authorization header on purpose: a client must not pass it on.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import math
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from alignbf.engine.synthetic import SyntheticModel, estimate_tokens, load_world
from alignbf.errors import ConfigError
from alignbf.testing.answers import (
    batch_response,
    chat_request,
    context_exceeded,
    error_status,
    format_rejected,
    format_type,
    prompt_tokens,
    requested_tokens,
)
from alignbf.testing.batchapi import BatchAPI, BatchFaults
from alignbf.testing.faults import PERMANENT, FaultPlan, corrupt_utf8, error_body, huge_body
from alignbf.testing.http import HttpRequest, read_request, response, send
from alignbf.testing.prefixcache import PrefixCache
from alignbf.transport.backend import ChatRequest

_UNKNOWN_PARAMETER = json.dumps(
    {
        "error": {
            "message": "Unrecognized request argument supplied: prompt_cache_key",
            "type": "invalid_request_error",
            "param": "prompt_cache_key",
            "code": "unknown_parameter",
        }
    }
).encode()
_NOT_FOUND = b"<html><head><title>404 Not Found</title></head><body>Not Found</body></html>"


@dataclass(frozen=True)
class ServerOptions:
    """Settings of ``alignbf serve-synthetic``."""

    host: str = "127.0.0.1"
    port: int = 0
    latency_ms: float = 0.0
    fault_rate: float = 0.0
    fault_seed: int = 0
    fault_kinds: tuple[str, ...] = ()
    world: str = "paper"
    ledger: Path | None = None
    stall_s: float = 30.0
    """How long a stalled request stays silent before the connection is closed."""
    storm_s: float = 0.0
    """How long the storm lasts (every chat request gets a 429)."""
    storm_at_s: float = 0.0
    """When the storm starts, in seconds after the first chat request."""
    storm_retry_after_s: int = 2
    """The ``Retry-After`` of the storm's 429s."""
    prefix_cache_tokens: int = 0
    """Capacity of the emulated prompt cache in tokens (0 = off); see ``prefixcache.py``."""
    reject_prompt_cache_key: bool = False
    """Answer 400 to any request that carries ``prompt_cache_key``, as a server that does
    not know the parameter does."""
    judge_error_rate: float | None = None
    """Probability that the judge flips each category label (None = the world's)."""
    content_filter_rate: float = 0.0
    """Share of chat requests answered 200 with empty content and ``finish_reason``
    ``content_filter``, drawn from ``hash(fault_seed, fingerprint)`` (a retry of the same
    request is filtered again)."""
    reject_response_format: tuple[str, ...] = ()
    """``response_format`` types (``json_schema``, ``json_object``) answered 400, as a
    server that does not support them does."""
    context_tokens: int = 0
    """The served model's context window in tokens (0 = unlimited): a request whose
    :func:`prompt_tokens` plus ``max_tokens`` exceed it is answered 400
    ``context_length_exceeded``."""
    quota_requests: int = 0
    """Chat requests allowed per ``quota_window_s`` (0 = no quota). Every chat answer then
    carries ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests`` and
    ``x-ratelimit-reset-requests``; a request over the quota gets a 429 (fault ``quota``)."""
    quota_window_s: float = 1.0
    """Length of a quota window; windows start at the first chat request."""
    batch_api: bool = True
    """Serve the batch API (``batchapi.py``); off, its routes answer 404."""
    batch_faults: BatchFaults = field(default_factory=BatchFaults)
    """Expired and partial jobs, failed lines, slow jobs, stray output lines."""
    tls_cert: Path | None = None
    """Serve HTTPS with this PEM certificate (chain) and ``tls_key``; the URL is https://."""
    tls_key: Path | None = None
    """The PEM private key of ``tls_cert``."""


def fingerprint(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a request body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Ledger:
    """The server's append-only record of chat requests (in memory, optionally JSONL)."""

    def __init__(self, path: Path | None) -> None:
        self.entries: list[dict[str, Any]] = []
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def open(self, entry: dict[str, Any]) -> None:
        """Enter a request as it arrives (shown at once, updated until it is answered)."""
        self.entries.append(entry)

    def close(self, entry: dict[str, Any]) -> None:
        """The request is answered: append its final entry to the ledger file."""
        if self._file is not None:
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()


class SyntheticServer:
    """Serves the synthetic model over HTTP with the configured latency and faults."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        world = load_world(options.world)
        if options.judge_error_rate is not None:
            world = world.model_copy(update={"judge_error_rate": options.judge_error_rate})
        self.model = SyntheticModel(world)
        self.fingerprint_tag = f"synthetic-{world.name}"
        self.faults = FaultPlan(options.fault_rate, options.fault_seed, options.fault_kinds)
        self.ledger = Ledger(options.ledger)
        self.attempts: dict[str, int] = {}
        self.first_request: float | None = None
        self.prefix_cache = PrefixCache(options.prefix_cache_tokens)
        self._quota_at = (-1, 0)
        """(index of the current quota window, chat requests counted in it)."""
        self.batch_api = (
            BatchAPI(lambda body: self._completion(chat_request(body))[1], options.batch_faults)
            if options.batch_api
            else None
        )

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until the client closes it or a fault drops it."""
        try:
            while (request := await read_request(reader)) is not None:
                if not await self._route(request, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _route(self, request: HttpRequest, writer: asyncio.StreamWriter) -> bool:
        path = request.path.split("?", 1)[0]
        if request.method == "POST" and path == "/v1/chat/completions":
            return await self._chat(request, writer)
        if request.method == "GET" and path == "/v1/models":
            auth = request.headers.get("authorization", "")
            if "401" in self.faults.forced:
                return await send(writer, response(401, error_body("401", auth)))
            models = {"object": "list", "data": [{"id": "synthetic", "object": "model"}]}
            return await send(writer, response(200, json.dumps(models).encode()))
        if request.method == "GET" and path == "/_ledger":
            return await send(writer, response(200, json.dumps(self.ledger.entries).encode()))
        if self.batch_api is not None:
            r = request
            routed = self.batch_api.route(r.method, r.path, r.headers, r.body)
            if routed is not None:
                return await send(writer, batch_response(*routed))
        return await send(writer, response(404, _NOT_FOUND, content_type="text/html"))

    async def _chat(self, request: HttpRequest, writer: asyncio.StreamWriter) -> bool:
        arrived = time.monotonic()
        try:
            body = json.loads(request.body)
            chat = chat_request(body)
        except (ValueError, KeyError, TypeError, IndexError):
            return await send(writer, response(400, error_body("bad_request", "")))
        fp = fingerprint(body)
        self.attempts[fp] = attempt = self.attempts.get(fp, 0) + 1
        if self.first_request is None:
            self.first_request = arrived
        since = arrived - self.first_request - self.options.storm_at_s
        storm = 0 <= since < self.options.storm_s
        fault = "storm" if storm else self.faults.pick(fp, attempt)
        quota = self._quota(arrived) if self.options.quota_requests else None
        if quota is not None and quota[1]:
            fault = "quota"
        if self.options.reject_prompt_cache_key and "prompt_cache_key" in body:
            fault = "prompt_cache_key"
        kind = format_type(body)
        if kind is not None and kind in self.options.reject_response_format:
            fault = f"response_format:{kind}"
        elif fault is None and _draw(self.options.fault_seed, "content_filter", fp) < (
            self.options.content_filter_rate
        ):
            fault = "content_filter"
        if self.options.context_tokens and requested_tokens(chat) > self.options.context_tokens:
            fault = "context_length"
        auth = request.headers.get("authorization")
        entry: dict[str, Any] = {
            "time": time.time(),
            "fingerprint": fp,
            "attempt_no": attempt,
            "fault": fault,
            "status": 0,
            "billed_tokens": 0,
            "delivered": False,
            "content_sha256": None,
            "auth_sha256": _sha(auth) if auth is not None else None,
            "answered": None,
            "prompt_cache_key": body.get("prompt_cache_key"),
        }
        self.ledger.open(entry)
        try:
            extra = quota[0] if quota is not None else None
            return await self._answer(chat, fault, auth or "", entry, writer, arrived, extra)
        finally:
            self.ledger.close(entry)

    def _quota(self, arrived: float) -> tuple[dict[str, str], bool]:
        """This request's quota headers, and whether it is over the quota."""
        assert self.first_request is not None
        window_s = self.options.quota_window_s
        index = int((arrived - self.first_request) // window_s)
        used = self._quota_at[1] + 1 if self._quota_at[0] == index else 1
        self._quota_at = (index, used)
        limit = self.options.quota_requests
        reset = self.first_request + (index + 1) * window_s - arrived
        headers = {
            "x-ratelimit-limit-requests": str(limit),
            "x-ratelimit-remaining-requests": str(max(limit - used, 0)),
            "x-ratelimit-reset-requests": f"{math.ceil(max(reset, 0.0) * 1000)}ms",
        }
        return headers, used > limit

    async def _answer(
        self,
        chat: ChatRequest,
        fault: str | None,
        auth: str,
        entry: dict[str, Any],
        writer: asyncio.StreamWriter,
        arrived: float,
        extra: dict[str, str] | None = None,
    ) -> bool:
        if fault == "quota":
            await self._latency(arrived)
            entry["status"], entry["answered"] = 429, time.time()
            return await send(writer, response(429, error_body("429", auth), extra))
        if fault == "reset":
            writer.transport.abort()
            return False
        if fault == "stall":
            await asyncio.sleep(self.options.stall_s)
            return False
        if fault == "storm":
            await self._latency(arrived)
            entry["status"], entry["answered"] = 429, time.time()
            headers = {"Retry-After": str(self.options.storm_retry_after_s)}
            return await send(writer, response(429, error_body("429", auth), headers))
        if fault == "prompt_cache_key":
            entry["status"], entry["answered"] = 400, time.time()
            return await send(writer, response(400, _UNKNOWN_PARAMETER))
        if fault is not None and fault.startswith("response_format:"):
            entry["status"], entry["answered"] = 400, time.time()
            return await send(writer, response(400, format_rejected(fault.split(":")[1])))
        if fault == "context_length" and self.options.context_tokens:
            entry["status"], entry["answered"] = 400, time.time()
            body = context_exceeded(self.options.context_tokens, chat)
            return await send(writer, response(400, body))
        if fault in PERMANENT or fault in ("429", "429_reset", "500", "503"):
            await self._latency(arrived)
            status, headers = error_status(fault)
            entry["status"], entry["answered"] = status, time.time()
            return await send(writer, response(status, error_body(fault, auth), headers))
        text, payload = self._completion(chat)
        if fault == "content_filter":
            text = payload["choices"][0]["message"]["content"] = ""
            payload["choices"][0]["finish_reason"] = "content_filter"
        entry["billed_tokens"] = payload["usage"]["total_tokens"]
        await self._latency(arrived)
        if fault == "billed_lost":
            writer.transport.abort()
            return False
        raw = json.dumps(payload, ensure_ascii=False).encode()
        entry["status"], entry["answered"] = 200, time.time()
        if fault == "truncated":
            cut = raw[: len(raw) // 2]
            return await send(writer, response(200, cut))
        if fault == "nonutf8":
            return await send(writer, response(200, corrupt_utf8(raw)))
        if fault == "huge":
            return await send(writer, response(200, huge_body()))
        delivered = await send(writer, response(200, raw, extra))
        entry["delivered"] = delivered
        entry["content_sha256"] = _sha(text) if delivered else None
        return delivered

    async def _latency(self, arrived: float) -> None:
        """Answer ``latency_ms`` after the request arrived (the work done counts toward it)."""
        await asyncio.sleep(max(self.options.latency_ms / 1000.0 - (time.monotonic() - arrived), 0))

    def _completion(self, chat: ChatRequest) -> tuple[str, dict[str, Any]]:
        text = self.model.reply(chat)
        prompt = prompt_tokens(chat.messages)
        completion = estimate_tokens(text)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if self.prefix_cache.enabled:
            cached = self.prefix_cache.lookup_and_store(chat.messages)
            usage["prompt_tokens_details"] = {"cached_tokens": min(cached, prompt)}
        payload = {
            "id": "chatcmpl-synthetic",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": chat.model,
            "system_fingerprint": self.fingerprint_tag,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        return text, payload


def _draw(seed: int, purpose: str, fp: str) -> float:
    """A uniform draw in [0, 1) from the seed, a purpose and a request fingerprint."""
    digest = hashlib.sha256(f"{seed}|{purpose}|{fp}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _tls_context(options: ServerOptions) -> ssl.SSLContext | None:
    """The server side of TLS when a certificate is given, else None (plain HTTP)."""
    if options.tls_cert is None and options.tls_key is None:
        return None
    if options.tls_cert is None or options.tls_key is None:
        raise ConfigError("--tls-cert and --tls-key go together: give both, or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(options.tls_cert, options.tls_key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"--tls-cert {options.tls_cert} / --tls-key {options.tls_key}: "
            f"cannot load the certificate and key ({reason})"
        ) from None
    return context


async def serve_async(options: ServerOptions, on_ready: Callable[[str], None]) -> None:
    """Serve until cancelled; ``on_ready`` gets the base URL once the port is bound."""
    server_state = SyntheticServer(options)
    where = f"{options.host}:{options.port}"
    tls = _tls_context(options)
    try:
        server = await asyncio.start_server(
            server_state.handle, options.host, options.port, ssl=tls
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"--port {options.port}: {where} is already in use; "
                "choose another port, or --port 0 for a free one"
            ) from None
        reason = exc.strerror or str(exc)
        raise ConfigError(f"--host/--port {where}: cannot listen there ({reason})") from None
    except OverflowError:
        raise ConfigError(f"--port {options.port}: must be a number from 0 to 65535") from None
    port = server.sockets[0].getsockname()[1]
    on_ready(f"{'https' if tls else 'http'}://{options.host}:{port}/v1")
    async with server:
        await server.serve_forever()


def serve(options: ServerOptions, on_ready: Callable[[str], None]) -> None:
    """Run the loopback server in the foreground (the CLI's ``serve-synthetic``)."""
    if not 0.0 <= options.fault_rate <= 1.0:
        raise ConfigError(f"--fault-rate {options.fault_rate}: must be between 0 and 1")
    if not 0.0 <= options.content_filter_rate <= 1.0:
        raise ConfigError(
            f"--content-filter-rate {options.content_filter_rate}: must be between 0 and 1"
        )
    if options.quota_requests < 0 or options.quota_window_s <= 0:
        raise ConfigError("quota: requests must be 0 (off) or more, the window above 0 s")
    if options.context_tokens < 0:
        raise ConfigError(f"--context-tokens {options.context_tokens}: must be 0 (off) or more")
    if options.prefix_cache_tokens < 0:
        raise ConfigError(
            f"--prefix-cache-tokens {options.prefix_cache_tokens}: must be 0 (off) or more"
        )
    rate = options.judge_error_rate
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise ConfigError(f"--judge-error-rate {rate}: must be between 0 and 1")
    asyncio.run(serve_async(options, on_ready))
