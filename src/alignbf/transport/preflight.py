"""Checks before a run spends anything: keys present, endpoints reachable and OpenAI-compatible.

``check_route`` sends one ``GET {base_url}/models`` with a short timeout. It
turns the usual set-up mistakes into one line each: a host that cannot be
reached, a base URL without ``/v1`` (an HTML 404), a rejected key, a redirect, a
certificate the client does not trust, a proxy that refuses or cannot reach the
endpoint. Anything else it lets through: some servers do not implement ``/models``.
Every check goes through the route's proxy with its certificates, as the run does.
"""

from __future__ import annotations

import ipaddress
import json
from typing import TYPE_CHECKING

import httpx

from alignbf.config.urls import redact_url, redact_urls
from alignbf.errors import EndpointError
from alignbf.transport.keys import scrub

if TYPE_CHECKING:
    from alignbf.transport.routes import Route

PREFLIGHT_TIMEOUT_S = 5.0
_PEEK_BYTES = 65536


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _get_models(route: Route) -> tuple[int, httpx.Headers, bytes]:
    headers = {"Accept": "application/json"}
    if route.key is not None:
        headers["Authorization"] = f"Bearer {route.key.get_secret_value()}"
    url = route.endpoint.base_url + "/models"
    options = route.client_options()
    with (
        httpx.Client(timeout=PREFLIGHT_TIMEOUT_S, follow_redirects=False, **options) as c,
        c.stream("GET", url, headers=headers) as response,
    ):
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= _PEEK_BYTES:
                break
        return response.status_code, response.headers, body


def _loopback_hint(route: Route) -> str:
    """Advice for a loopback endpoint sent through a proxy, which rarely can reach it."""
    host = httpx.URL(route.endpoint.base_url).host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if route.proxy is None or not loopback:
        return ""
    return f"; a local server is reached directly only when NO_PROXY lists it (NO_PROXY={host})"


def unreachable(route: Route, exc: httpx.HTTPError) -> EndpointError:
    """The one line for a request to ``route`` that got no HTTP answer."""
    base = redact_url(route.endpoint.base_url)
    if isinstance(exc, httpx.TimeoutException):
        reason = f"no answer in {PREFLIGHT_TIMEOUT_S:.0f}s"
    else:
        reason = redact_urls(scrub(str(exc) or type(exc).__name__))
    if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate verify failed" in reason:
        return EndpointError(
            f"{route.where}: the TLS certificate of {base}{route.via} is not trusted "
            f"({reason}); set SSL_CERT_FILE (or SSL_CERT_DIR) to the CA that issued it"
        )
    if route.proxy is not None and isinstance(exc, httpx.ProxyError) and "407" in reason:
        return _credentials_wanted(route)
    hint = _loopback_hint(route)
    return EndpointError(f"{route.where}: cannot reach {base}{route.via} ({reason}){hint}")


def _credentials_wanted(route: Route) -> EndpointError:
    assert route.proxy is not None
    return EndpointError(
        f"{route.where}: the {route.proxy} asks for credentials (HTTP 407); "
        f"give them in {route.proxy.variable} as http://USER:PASSWORD@HOST:PORT"
    )


def check_route(route: Route) -> None:
    """Raise one ``EndpointError`` line when ``route`` is plainly unusable.

    Raises:
        EndpointError: unreachable host, not OpenAI-compatible, auth rejected, redirect,
            untrusted certificate, a proxy that refuses or cannot reach the endpoint.
    """
    base = redact_url(route.endpoint.base_url)
    try:
        status, headers, body = _get_models(route)
    except httpx.HTTPError as exc:
        raise unreachable(route, exc) from None
    if route.proxy is not None and status == 407:
        raise _credentials_wanted(route)
    if route.proxy is not None and status in (502, 504) and not _is_json(body):
        raise EndpointError(
            f"{route.where}: the {route.proxy} could not reach {base} "
            f"(HTTP {status}){_loopback_hint(route)}"
        )
    if 300 <= status < 400 or status in (401, 403):
        raise route.classify(status, headers, body, cap_s=0.0)
    if status in (200, 404) and not _is_json(body):
        raise EndpointError(
            f"{route.where}: endpoint does not look OpenAI-compatible "
            f"(GET {base}/models gave HTTP {status} without JSON; is /v1 missing?)"
        )


_PROBE_SCHEMA = {
    "type": "object",
    "properties": {
        "talk": {"type": "string"},
        "monologue": {"type": "string"},
        "whisper": {
            "type": "object",
            "properties": {
                "to": {"type": "string", "enum": ["Ana", "Ben"]},
                "text": {"type": "string"},
            },
            "required": ["to", "text"],
            "additionalProperties": False,
        },
    },
    "required": ["talk", "monologue"],
    "additionalProperties": False,
}
"""A reply schema of the shape a study sends (an enum of names, a nested optional object)."""
_TRANSIENT = (408, 409, 429)
_OTHER_MODE = {"json_schema": "json_object", "json_object": "json_schema"}


def _post_probe(route: Route, body: dict[str, object]) -> tuple[int, httpx.Headers, bytes]:
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if route.key is not None:
        headers["Authorization"] = f"Bearer {route.key.get_secret_value()}"
    timeout = httpx.Timeout(PREFLIGHT_TIMEOUT_S, read=max(route.read_timeout_s, 1.0))
    options = route.client_options()
    with httpx.Client(timeout=timeout, follow_redirects=False, **options) as client:
        response = client.post(
            route.endpoint.base_url + "/chat/completions", json=body, headers=headers
        )
        return response.status_code, response.headers, response.content[:_PEEK_BYTES]


def _error_text(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    text = error.get("message") if isinstance(error, dict) else error
    if not isinstance(text, str) or not text:
        text = body.decode("utf-8", "replace")
    return " ".join(scrub(text).split())[:200]


def check_structured_output(route: Route) -> None:
    """Send one tiny request with the ``response_format`` the endpoint's
    ``structured_output`` will use, and fail in one line when the server rejects it.

    Nothing is checked for ``structured_output: off``. A transient answer (408, 409, 429,
    5xx) or no answer says nothing about the setting and lets the run go on; 401, 403
    and 404 are the usual one-line errors.

    Raises:
        EndpointError: the server answers the request 4xx.
    """
    from alignbf.transport.client import response_format

    mode = route.endpoint.structured_output
    if mode == "off":
        return
    body: dict[str, object] = {
        "model": route.endpoint.model,
        "messages": [{"role": "user", "content": "Reply with a JSON object: talk, monologue."}],
        "max_tokens": 16,
        "temperature": 0,
        "response_format": response_format(mode, _PROBE_SCHEMA),
    }
    try:
        status, headers, raw = _post_probe(route, body)
    except httpx.HTTPError:
        return
    if status < 400 or status >= 500 or status in _TRANSIENT:
        return
    if status in (401, 403, 404):
        raise route.classify(status, headers, raw, cap_s=0.0)
    raise EndpointError(
        f"{route.where}: structured_output {mode} rejected by the server "
        f"({status}: {_error_text(raw)}); set structured_output: {_OTHER_MODE[mode]} or off"
    )


def check_batch_api(route: Route) -> None:
    """For an endpoint with ``batch: true``: ``GET {base_url}/batches?limit=1`` must answer
    JSON, so a server without the batch API fails here, before anything is submitted.

    Raises:
        EndpointError: unreachable, no batch API (404 or no JSON), or auth rejected.
    """
    base = redact_url(route.endpoint.base_url)
    headers = {"Accept": "application/json"}
    if route.key is not None:
        headers["Authorization"] = f"Bearer {route.key.get_secret_value()}"
    options = route.client_options()
    try:
        with httpx.Client(timeout=PREFLIGHT_TIMEOUT_S, follow_redirects=False, **options) as client:
            response = client.get(
                route.endpoint.base_url + "/batches", params={"limit": 1}, headers=headers
            )
    except httpx.HTTPError as exc:
        raise unreachable(route, exc) from None
    status, body = response.status_code, response.content[:_PEEK_BYTES]
    if 300 <= status < 400 or status in (401, 403):
        raise route.classify(status, response.headers, body, cap_s=0.0)
    if status == 404 or (status == 200 and not _is_json(body)):
        raise EndpointError(
            f"{route.where}: no batch API (GET {base}/batches gave HTTP {status}); "
            "set batch: false for this endpoint or run without --batch"
        )
