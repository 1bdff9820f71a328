"""The OpenAI-format batch API of one endpoint: upload a JSONL file, create, poll, download.

``POST {base_url}/files`` (multipart, ``purpose=batch``), ``POST {base_url}/batches``,
``GET {base_url}/batches/{id}``, ``GET {base_url}/batches`` (listed to find a job whose
creation was not acknowledged) and ``GET {base_url}/files/{id}/content``. Every call has
explicit timeouts, follows no redirect, goes through the route's proxy with its
certificates (``Route.client_options``) and through the retry policy of ``retry.py``.
Creating a job is the one call that costs money, so it is never simply sent again:
after a failed attempt the job list is searched for the input file first.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from alignbf.errors import EndpointError
from alignbf.transport.retry import RetryableError, RetryPolicy, call_with_retries
from alignbf.transport.routes import CONNECT_TIMEOUT_S, Route

MAX_OUTPUT_BYTES = 512 * 1024 * 1024
"""Largest output file read (the providers' input limit is 200 MB)."""
LIST_PAGES = 20
"""Pages of 100 jobs searched for an unacknowledged job."""


class BatchAPI:
    """HTTP calls of the batch API of one route (its base URL, key and read timeout)."""

    def __init__(self, route: Route, policy: RetryPolicy) -> None:
        self.route, self.policy = route, policy
        read = route.read_timeout_s
        headers = {"Accept": "application/json"}
        if route.key is not None:
            headers["Authorization"] = f"Bearer {route.key.get_secret_value()}"
        self.client = httpx.AsyncClient(
            base_url=route.endpoint.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(connect=CONNECT_TIMEOUT_S, read=read, write=read, pool=read),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
            follow_redirects=False,
            transport=route.transport,
            **route.client_options(),
        )

    async def _send(self, method: str, path: str, **kwargs: Any) -> bytes:
        """One request; the body of a 2xx answer, else the classified error is raised."""
        async with self.client.stream(method, path, **kwargs) as response:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_OUTPUT_BYTES:
                    raise EndpointError(f"{self.route.where}: {path} exceeds {MAX_OUTPUT_BYTES} B")
            status = response.status_code
            if 200 <= status < 300:
                return body
            if status == 404 and not path.startswith("files/"):
                raise EndpointError(
                    f"{self.route.where}: no batch API ({method} {path} gave HTTP 404); "
                    "set batch: false for this endpoint or run without --batch"
                )
            raise self.route.classify(status, response.headers, body, self.policy.retry_after_cap_s)

    async def _retried(self, call: Callable[[], Awaitable[bytes]]) -> bytes:
        async def attempt(number: int) -> bytes:
            return await call()

        return await call_with_retries(attempt, self.policy)

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body = await self._retried(lambda: self._send(method, path, **kwargs))
        try:
            obj = json.loads(body)
        except ValueError:
            raise RetryableError("invalid_response", f"{path}: not JSON") from None
        if not isinstance(obj, dict):
            raise RetryableError("invalid_response", f"{path}: not a JSON object")
        return obj

    async def upload(self, jsonl: bytes) -> str:
        """Upload a batch input file; returns its file id."""
        files = {"file": ("batch.jsonl", jsonl, "application/jsonl")}
        obj = await self._json("POST", "files", data={"purpose": "batch"}, files=files)
        return _id(obj, "files")

    async def create(self, input_file_id: str) -> str:
        """Create the job of an uploaded file; returns the batch id.

        A failed attempt may still have created the job (the answer was lost), so before
        each retry the job list is searched for this input file.
        """
        body = {
            "input_file_id": input_file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }

        async def attempt(number: int) -> str:
            if number > 1 and (found := await self.find(input_file_id)) is not None:
                return found
            raw = await self._send("POST", "batches", json=body)
            try:
                return _id(json.loads(raw), "batches")
            except ValueError:
                raise RetryableError("invalid_response", "batches: not JSON") from None

        return await call_with_retries(attempt, self.policy)

    async def get(self, batch_id: str) -> dict[str, Any]:
        """The job's status object (``status``, ``output_file_id``, ``error_file_id``...)."""
        return await self._json("GET", f"batches/{batch_id}")

    async def find(self, input_file_id: str) -> str | None:
        """The id of a job made from ``input_file_id``, or None when there is none."""
        params: dict[str, Any] = {"limit": 100}
        for _ in range(LIST_PAGES):
            page = await self._json("GET", "batches", params=params)
            data = page.get("data")
            if not isinstance(data, list) or not data:
                return None
            for job in data:
                if isinstance(job, dict) and job.get("input_file_id") == input_file_id:
                    return str(job.get("id"))
            if not page.get("has_more"):
                return None
            params["after"] = data[-1].get("id") if isinstance(data[-1], dict) else None
        return None

    async def content(self, file_id: str) -> bytes:
        """The bytes of an output or error file."""
        return await self._retried(lambda: self._send("GET", f"files/{file_id}/content"))

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.aclose()


def _id(obj: Any, what: str) -> str:
    value = obj.get("id") if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value:
        raise RetryableError("invalid_response", f"{what}: answer without an id")
    return value
