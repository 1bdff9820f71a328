"""Checks before a run spends anything: keys present, endpoints reachable and OpenAI-compatible.

``check_route`` sends one ``GET {base_url}/models`` with a short timeout. It
turns the usual set-up mistakes into one line each: a host that cannot be
reached, a base URL without ``/v1`` (an HTML 404), a rejected key, a redirect.
Anything else it lets through: some servers do not implement ``/models``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx

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
    with (
        httpx.Client(timeout=PREFLIGHT_TIMEOUT_S, follow_redirects=False, trust_env=False) as c,
        c.stream("GET", url, headers=headers) as response,
    ):
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) >= _PEEK_BYTES:
                break
        return response.status_code, response.headers, body


def check_route(route: Route) -> None:
    """Raise one ``EndpointError`` line when ``route`` is plainly unusable.

    Raises:
        EndpointError: unreachable host, not OpenAI-compatible, auth rejected, redirect.
    """
    base = route.endpoint.base_url
    try:
        status, headers, body = _get_models(route)
    except httpx.TimeoutException:
        raise EndpointError(
            f"{route.where}: cannot reach {base} (no answer in {PREFLIGHT_TIMEOUT_S:.0f}s)"
        ) from None
    except httpx.HTTPError as exc:
        reason = scrub(str(exc) or type(exc).__name__)
        raise EndpointError(f"{route.where}: cannot reach {base} ({reason})") from None
    if 300 <= status < 400 or status in (401, 403):
        raise route.classify(status, headers, body, cap_s=0.0)
    if status in (200, 404) and not _is_json(body):
        raise EndpointError(
            f"{route.where}: endpoint does not look OpenAI-compatible "
            f"(GET {base}/models gave HTTP {status} without JSON; is /v1 missing?)"
        )
