"""The batching backend (``alignbf run --batch``): calls go out as OpenAI-format batch jobs.

``BatchBackend.complete`` has the interface of every backend, so conversations and the
runner are unchanged: a request to an endpoint with ``batch: true`` joins that
endpoint's queue and waits. The queue is sent as one job (``batchclient.py``) when every
simulation in flight is waiting for an answer (after ``SETTLE_S`` without a new
request), when it holds the endpoint's ``batch_max_requests``, or after ``idle_s``
without a new request. Each job thus advances every simulation by one speaking step
(a *round*). Answers go back to the waiting conversations, and the runner commits them
to the store exactly as interactive responses: same cache keys, resume and budget.
Calls to other endpoints go to the interactive backend.

Crash safety (``store/batches.py``): a job's input file id and request ids are stored
before the job is created, its batch id before it is first polled, and its answer lines
before any is used. A resumed run polls the jobs still open for the requests it needs
(a job whose creation went unacknowledged is looked up by its input file) and reads
stored answers back, so no request is paid for twice. A request id (``custom_id``) is a
hash of the request and its sample identity, the same in every run.

A failed line, a line missing from the output, and every unanswered line of an expired,
failed or cancelled job is logged as a failed attempt and sent again in a later job, at
most ``max_retries + 1`` jobs per request (then ``TransientEndpointError``). An output
line with an unknown ``custom_id`` is logged and ignored.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from alignbf.errors import ContextLengthError, EndpointError, TransientEndpointError
from alignbf.store import batches as jobs_store
from alignbf.store.store import Store
from alignbf.testing import crashpoints
from alignbf.transport.backend import ChatRequest, Completion
from alignbf.transport.batchclient import BatchAPI
from alignbf.transport.client import AttemptHook, OpenAIBackend
from alignbf.transport.responses import parse_completion
from alignbf.transport.retry import Refused, RetryableError, describe, env_number
from alignbf.transport.routes import Route

log = logging.getLogger(__name__)

SETTLE_S = 0.05
"""Quiet time after the last simulation in flight started waiting, before a job is sent."""
DONE = ("completed", "failed", "expired", "cancelled")
"""Final statuses of a batch job."""
_REFUSED = {
    "choices": [
        {"message": {"role": "assistant", "content": ""}, "finish_reason": "content_filter"}
    ],
    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
}
"""The answer a 400 content-policy line stands for (as the interactive client records it)."""


def custom_id(request: ChatRequest, payload: bytes) -> str:
    """The request's id inside a job: a hash of its body and its sample identity."""
    head = json.dumps([request.sim_id, request.agent, request.turn]).encode()
    return "alignbf-" + hashlib.sha256(head + b"\n" + payload).hexdigest()[:40]


@dataclass
class _Item:
    request: ChatRequest
    payload: bytes
    custom_id: str
    future: asyncio.Future[Completion]
    started: float = field(default_factory=time.monotonic)
    jobs: int = 0
    """Jobs this request was sent in."""


@dataclass
class BatchCounts:
    """What the batch jobs of this run did."""

    jobs: int = 0
    """Jobs created in this run."""
    requests: int = 0
    """Request lines sent in them."""
    resent: int = 0
    """Lines sent again after a failed line, a missing line or an unfinished job."""
    unfinished_jobs: int = 0
    """Jobs that ended expired, failed or cancelled."""
    unknown_lines: int = 0
    """Output lines whose ``custom_id`` belongs to no request of their job (ignored)."""
    recovered_jobs: int = 0
    """Open jobs of an earlier run polled instead of sending their requests again."""


class BatchBackend:
    """A ``Backend`` that sends the calls of ``batch: true`` endpoints as batch jobs."""

    def __init__(self, interactive: OpenAIBackend, batch_models: set[str]) -> None:
        self.interactive = interactive
        self.policy = interactive.policy
        self.poll_s = float(env_number("ALIGNBF_BATCH_POLL_S", float) or 0) or 30.0
        self.idle_s = float(env_number("ALIGNBF_BATCH_IDLE_S", float) or 0) or 2.0
        self.counts = BatchCounts()
        self.store: Store | None = None
        self.active = 0
        self._queues: dict[str, _Queue] = {}
        for model in sorted(batch_models):
            route = interactive.routes[model]
            if route.name not in self._queues:
                self._queues[route.name] = _Queue(self, route)

    # -- what the runner calls --------------------------------------------------------
    @property
    def on_attempt_failed(self) -> AttemptHook | None:
        """Called for every failed attempt, interactive or batched."""
        return self.interactive.on_attempt_failed

    @on_attempt_failed.setter
    def on_attempt_failed(self, hook: AttemptHook | None) -> None:
        self.interactive.on_attempt_failed = hook

    def bind_store(self, store: Store) -> None:
        """The run's store, where jobs are recorded before they are polled."""
        self.store = store

    def simulation_started(self) -> None:
        """One more simulation in flight."""
        self.active += 1

    def simulation_finished(self) -> None:
        """A simulation ended: the others may now all be waiting."""
        self.active -= 1
        for queue in self._queues.values():
            queue.wake.set()

    def endpoint_id(self, model: str) -> str:
        """The interactive endpoint's id: batch and interactive answers share the cache."""
        return self.interactive.endpoint_id(model)

    async def complete(self, request: ChatRequest) -> Completion:
        """Queue the request for the next job of its endpoint and wait for its answer."""
        route = self.interactive.routes[request.model]
        queue = self._queues.get(route.name)
        if queue is None:
            return await self.interactive.complete(request)
        return await queue.complete(request)

    def all_waiting(self) -> bool:
        """True when every simulation in flight waits for a batch answer."""
        waiting = {i.request.sim_id for q in self._queues.values() for i in q.items.values()}
        return self.active > 0 and len(waiting) >= self.active

    def notices(self) -> list[str]:
        """The interactive backend's warnings, and what the batch jobs did."""
        c = self.counts
        lines = self.interactive.notices()
        if c.resent or c.unfinished_jobs or c.unknown_lines or c.recovered_jobs:
            lines.append(
                f"batch: {c.jobs} job(s) sent with {c.requests} request line(s); "
                f"{c.resent} line(s) sent again, {c.unfinished_jobs} job(s) expired or failed, "
                f"{c.recovered_jobs} job(s) of an earlier run polled, "
                f"{c.unknown_lines} unknown output line(s) ignored"
            )
        return lines

    def throttled(self) -> dict[str, Any]:
        """As ``OpenAIBackend.throttled``."""
        return self.interactive.throttled()

    async def aclose(self) -> None:
        """Stop polling and close every connection."""
        for queue in self._queues.values():
            await queue.aclose()
        await self.interactive.aclose()

    def report(self, item: _Item, label: str, detail: str, route: Route) -> None:
        """Log one failed batch attempt of a request (as the interactive client does)."""
        hook = self.interactive.on_attempt_failed
        if hook is not None:
            r = item.request
            latency = time.monotonic() - item.started
            hook(r.sim_id, r.agent, r.turn, route.endpoint_id, label, detail, latency)


class _Queue:
    """The requests waiting for one endpoint's batch jobs."""

    def __init__(self, backend: BatchBackend, route: Route) -> None:
        self.backend, self.route = backend, route
        self.api = BatchAPI(route, backend.policy)
        self.items: dict[str, _Item] = {}
        """Every request waiting for an answer, by custom_id."""
        self.pending: dict[str, _Item] = {}
        """Of those, the ones not yet in a job."""
        self.watched: set[str] = set()
        """custom_ids of the open jobs being polled."""
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self._loaded: asyncio.Lock | None = None
        self._driver: asyncio.Task[None] | None = None

    @property
    def store(self) -> Store:
        if self.backend.store is None:
            raise RuntimeError("BatchBackend.bind_store was not called")
        return self.backend.store

    async def complete(self, request: ChatRequest) -> Completion:
        await self._recover()
        payload = self.backend.interactive._payload(self.route, request)
        cid = custom_id(request, payload)
        stored = jobs_store.stored_results(self.store, [cid])
        if cid in stored:
            return self._completion(stored[cid], time.monotonic(), 0)
        if cid in self.items:
            return await asyncio.shield(self.items[cid].future)
        item = _Item(request, payload, cid, asyncio.get_running_loop().create_future())
        self.items[cid] = item
        if cid not in self.watched:
            self.pending[cid] = item
        self.wake.set()
        try:
            return await item.future
        finally:
            self.items.pop(cid, None)
            self.pending.pop(cid, None)
            self.wake.set()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # -- resuming jobs of an earlier run ------------------------------------------------
    async def _recover(self) -> None:
        if self._loaded is None:
            self._loaded = asyncio.Lock()
        async with self._loaded:
            if self._driver is not None or self.watched:
                return
            try:
                await self._adopt()
            except EndpointError:
                raise
            except Exception as exc:
                label, detail = describe(exc)
                raise TransientEndpointError(
                    f"{self.route.where}: cannot look up earlier batch jobs: {label}: {detail}"
                ) from None
            if self._driver is None:
                self._driver = self._spawn(self._drive())

    async def _adopt(self) -> None:
        """Poll the jobs an earlier run left open (looking up unacknowledged ones)."""
        for job in jobs_store.open_jobs(self.store, self.route.name):
            batch_id = job.batch_id or await self.api.find(job.input_file_id)
            if batch_id is None:
                jobs_store.record_outcome(self.store, job.id, "not_created", {})
                continue
            if job.batch_id is None:
                jobs_store.record_submitted(self.store, job.id, batch_id)
            self.backend.counts.recovered_jobs += 1
            self.watched.update(job.custom_ids)
            self._spawn(self._watch(job.id, batch_id, set(job.custom_ids)))

    # -- deciding when to send ---------------------------------------------------------
    async def _drive(self) -> None:
        limit = self.route.endpoint.batch_max_requests
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                if len(self.pending) >= limit:
                    self._submit(limit)
                    continue
                quiet = SETTLE_S if self.backend.all_waiting() else self.backend.idle_s
                try:
                    async with asyncio.timeout(quiet):
                        await self.wake.wait()
                    self.wake.clear()
                except TimeoutError:
                    self._submit(limit)

    def _submit(self, limit: int) -> None:
        chosen = list(self.pending.values())[:limit]
        for item in chosen:
            del self.pending[item.custom_id]
            item.jobs += 1
        self._spawn(self._job(chosen))

    # -- one job -----------------------------------------------------------------------
    async def _job(self, chosen: list[_Item]) -> None:
        try:
            lines = [_line(item) for item in chosen]
            file_id = await self.api.upload("".join(lines).encode())
            rows = [(i.custom_id, i.request.sim_id, i.request.agent, i.request.turn)
                    for i in chosen]  # fmt: skip
            job = jobs_store.record_upload(self.store, self.route.name, file_id, rows)
            crashpoints.reached("batch_before_submit")
            batch_id = await self.api.create(file_id)
            crashpoints.reached("batch_created_unrecorded")
            jobs_store.record_submitted(self.store, job, batch_id)
            crashpoints.reached("batch_after_submit")
            self.backend.counts.jobs += 1
            self.backend.counts.requests += len(chosen)
        except Exception as exc:
            self._fail([i.custom_id for i in chosen], exc)
            return
        self.watched.update(i.custom_id for i in chosen)
        await self._watch(job, batch_id, {i.custom_id for i in chosen})

    async def _watch(self, job: int, batch_id: str, ids: set[str]) -> None:
        try:
            info = await self._poll(batch_id)
            status = str(info.get("status"))
            results, failures, unknown = await self._download(info, ids)
            crashpoints.reached("batch_download")
            detail = None if status == "completed" else _job_error(info)
            jobs_store.record_outcome(self.store, job, status, results, detail)
        except Exception as exc:
            self.watched.difference_update(ids)
            self._fail(list(ids), exc)
            return
        self.watched.difference_update(ids)
        counts = self.backend.counts
        counts.unknown_lines += unknown
        counts.unfinished_jobs += status != "completed"
        for cid in ids:
            item = self.items.get(cid)
            if item is None or item.future.done():
                continue
            if cid in results:
                item.future.set_result(self._completion(results[cid], item.started, item.jobs))
            else:
                missing = "batch_missing_line" if status == "completed" else f"batch_{status}"
                label, text = failures.get(cid, (missing, f"no answer line (job {status})"))
                self._retry(item, label, text)
        self.wake.set()

    async def _poll(self, batch_id: str) -> dict[str, Any]:
        while True:
            info = await self.api.get(batch_id)
            if info.get("status") in DONE:
                return info
            await asyncio.sleep(self.backend.poll_s)

    async def _download(
        self, info: dict[str, Any], ids: set[str]
    ) -> tuple[dict[str, str], dict[str, tuple[str, str]], int]:
        """Answered lines (custom_id -> body JSON), failed lines (custom_id -> label,
        detail) and the number of lines with an unknown custom_id."""
        results: dict[str, str] = {}
        failures: dict[str, tuple[str, str]] = {}
        unknown = 0
        for key in ("output_file_id", "error_file_id"):
            file_id = info.get(key)
            if not isinstance(file_id, str) or not file_id:
                continue
            for raw in (await self.api.content(file_id)).splitlines():
                line = _parse_line(raw)
                cid = line.get("custom_id") if line else None
                if not isinstance(cid, str) or cid not in ids:
                    unknown += 1
                    continue
                body, failure = self._check(line or {})
                if body is not None:
                    results[cid] = body
                    failures.pop(cid, None)
                elif cid not in results and failure is not None:
                    failures[cid] = failure
        if unknown:
            log.warning(
                "%s: %d batch output line(s) naming no request of the job ignored",
                self.route.where,
                unknown,
            )
        return results, failures, unknown

    def _check(self, line: dict[str, Any]) -> tuple[str | None, tuple[str, str] | None]:
        """(body JSON, None) for an answered line, else (None, (label, detail))."""
        response = line.get("response") if isinstance(line.get("response"), dict) else None
        status = response.get("status_code") if response else None
        body = response.get("body") if response else None
        if line.get("error") or status is None:
            return None, ("batch_line_error", json.dumps(line.get("error"))[:300])
        raw = json.dumps(body, ensure_ascii=False).encode()
        if status != 200:
            exc = self.route.classify(int(status), httpx.Headers(), raw, 0.0)
            if isinstance(exc, RetryableError):
                return None, (exc.status, exc.detail)
            if isinstance(exc, Refused):
                return json.dumps(_REFUSED), None
            return None, ("fatal:" + type(exc).__name__, str(exc))
        try:
            parse_completion(raw)
        except RetryableError as exc:
            return None, (exc.status, exc.detail)
        return raw.decode(), None

    # -- handing answers back --------------------------------------------------------
    def _completion(self, body: str, started: float, jobs: int) -> Completion:
        completion = parse_completion(body.encode())
        completion.latency_s = max(time.monotonic() - started, 0.0)
        completion.attempts = max(jobs, 1)
        completion.cost_usd = self.route.endpoint.batch_cost(
            completion.prompt_tokens, completion.completion_tokens, completion.cached_tokens
        )
        completion.flags = (*completion.flags, "batch")
        return completion

    def _retry(self, item: _Item, label: str, detail: str) -> None:
        self.backend.report(item, label, detail, self.route)
        if label.startswith("fatal:"):
            fatal = ContextLengthError if "ContextLength" in label else EndpointError
            item.future.set_exception(fatal(detail))
        elif item.jobs > self.backend.policy.max_retries:
            item.future.set_exception(
                TransientEndpointError(
                    f"{self.route.where}: gave up after {item.jobs} batch job(s); "
                    f"last: {label}: {detail}"
                )
            )
        else:
            self.backend.counts.resent += 1
            self.pending[item.custom_id] = item

    def _fail(self, ids: list[str], exc: Exception) -> None:
        """A job could not be sent or followed: its waiting requests fail with ``exc``."""
        if not isinstance(exc, EndpointError):
            label, detail = describe(exc)
            exc = TransientEndpointError(f"{self.route.where}: batch job: {label}: {detail}")
        for cid in ids:
            item = self.items.get(cid)
            if item is not None and not item.future.done():
                item.future.set_exception(exc)

    async def aclose(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.api.aclose()


def _line(item: _Item) -> str:
    body = json.loads(item.payload)
    line = {"custom_id": item.custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": body}  # fmt: skip
    return json.dumps(line, ensure_ascii=False) + "\n"


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _job_error(info: dict[str, Any]) -> str:
    errors = info.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return str(data[0].get("message", ""))[:300]
    return str(info.get("status"))
