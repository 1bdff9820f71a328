"""Run a study: drive every simulation of the grid through a backend into the store.

``run_study`` is the one entry point (the CLI calls it). Simulations run
concurrently in one event loop under a TaskGroup, at most ``concurrency`` in
flight. Every response is committed (write-through cache) before the conversation
uses it; every finished simulation is committed in one transaction. Running the
same command again resumes: finished simulations are skipped and unfinished ones
replay their cached responses at no cost before continuing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignbf.config.prompts import check_prompts, load_prompts
from alignbf.config.study import Budget, load_study
from alignbf.engine.conversation import Conversation
from alignbf.engine.grid import SimSpec, canonical_hash, expand, parse_shard, shard
from alignbf.engine.rundir import default_run_dir, open_run
from alignbf.errors import (
    AlignbfError,
    BudgetExceeded,
    ConfigError,
    ContextLengthError,
    TransientEndpointError,
)
from alignbf.store.rows import AttemptRow, CallRow
from alignbf.store.store import TERMINAL, Store
from alignbf.testing import crashpoints
from alignbf.transport.backend import Backend, ChatRequest, Completion


@dataclass
class Progress:
    """Counters the runner updates and a progress display reads."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    calls: int = 0
    cache_hits: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    cost_unknown: int = 0
    retries: int = 0
    failures: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    calls_total: int = 0
    """Calls the simulations still to run need (replayed ones included)."""
    in_flight: int = 0
    """Requests sent and not yet answered."""
    attempts_failed: int = 0
    """Failed attempts (each logged in ``attempts``), retried or not."""
    budget_usd: float | None = None
    """The study's ``budget.usd``."""
    prompt_tokens: int = 0
    """Prompt tokens of the calls made in this run."""
    cached_tokens: int = 0
    """Of those, tokens the providers read from their prompt caches (where reported)."""
    cache_reported_tokens: int = 0
    """Prompt tokens of the calls whose response said how many of them were cached."""

    @property
    def cache_share(self) -> float | None:
        """Cached / prompt tokens over the calls that reported it; None if none did."""
        return _share(self.cached_tokens, self.cache_reported_tokens)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class RunResult:
    """What ``run_study`` returns."""

    run_dir: Path
    progress: Progress
    stopped: str | None = None
    """Why the run stopped early (``interrupted``, ``budget: …``), or None."""
    throttled: dict[str, Any] = field(default_factory=dict)
    """Endpoints whose concurrency 429s cut: endpoint id -> ``ConcurrencySummary``."""
    notices: list[str] = field(default_factory=list)
    """Warnings about endpoints from the backend (e.g. a parameter switched off), one line each."""

    @property
    def complete(self) -> bool:
        """True when every simulation of the grid is in a terminal status."""
        return self.stopped is None and self.progress.failures == 0


def cache_key(endpoint: str, request: ChatRequest, digest: str) -> str:
    """Response-cache key: endpoint, model, sampling, messages and the sample identity."""
    return canonical_hash(
        [
            endpoint,
            request.model,
            request.temperature,
            request.top_p,
            request.max_tokens,
            request.seed,
            digest,
            request.sim_id,
            request.agent,
            request.turn,
        ]
    )


class _Budget:
    def __init__(self, budget: Budget, progress: Progress) -> None:
        self.budget, self.p = budget, progress

    def check(self) -> None:
        b, p = self.budget, self.p
        if b.calls is not None and p.calls >= b.calls:
            raise BudgetExceeded(f"budget: {b.calls} calls spent")
        if b.tokens is not None and p.tokens >= b.tokens:
            raise BudgetExceeded(f"budget: {b.tokens} tokens spent")
        if b.usd is not None and p.cost_usd >= b.usd:
            raise BudgetExceeded(f"budget: ${b.usd:.2f} spent")


STRIKES = 3
"""Runs in which a simulation failed while its endpoint answered others before it is ``failed``."""


class Runner:
    """Drives the simulations of one run directory.

    A simulation that ends ``infra_error`` gets a strike when its model answered
    other requests after it failed (a request that fails for it alone, not an
    outage or a rate limit that began mid-run), or when it already has one and so
    has every other simulation of its model that failed in this run (only suspects
    are left to run). After ``STRIKES`` strikes across resumes it is ``failed`` and
    no longer run. An outage costs no strikes to a simulation never seen failing alone.
    """

    def __init__(
        self,
        store: Store,
        backend: Backend,
        budget: Budget,
        concurrency: int,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.store, self.backend = store, backend
        self.progress = Progress()
        self.budget = _Budget(budget, self.progress)
        self.concurrency = concurrency
        self.on_progress = on_progress or (lambda p: None)
        self.stop_reason: str | None = None
        self._resumable: set[str] = set()
        self._answered: dict[str, float] = {}
        """model -> when it last answered."""
        self._unlucky: list[tuple[str, str, float]] = []
        """(sim_id, model, when it failed) of simulations that ended ``infra_error``."""
        if hasattr(backend, "on_attempt_failed"):
            backend.on_attempt_failed = self._attempt_failed
        if hasattr(backend, "bind_store"):  # the batching backend records its jobs here
            backend.bind_store(store)

    def _attempt_failed(
        self,
        sim_id: str,
        agent: int,
        turn: int,
        endpoint: str,
        status: str,
        detail: str,
        latency_s: float,
    ) -> None:
        self.store.log_attempt(AttemptRow(sim_id, agent, turn, endpoint, status, detail, latency_s))
        self.progress.attempts_failed += 1
        self.on_progress(self.progress)

    async def _ask(self, request: ChatRequest, digest: str) -> Completion:
        endpoint = self.backend.endpoint_id(request.model)
        key = cache_key(endpoint, request, digest)
        if request.sim_id in self._resumable and (row := self.store.cached(key)) is not None:
            self.progress.cache_hits += 1
            return Completion(text=row.response, finish_reason=row.finish_reason or "stop")
        if self.stop_reason:
            raise BudgetExceeded(self.stop_reason)
        self.budget.check()
        crashpoints.reached("before_send")
        self.progress.in_flight += 1
        try:
            completion = await self.backend.complete(request)
        finally:
            self.progress.in_flight -= 1
        crashpoints.reached("after_response_before_commit")
        self._answered[request.model] = time.monotonic()
        p = self.progress
        p.calls += 1
        p.tokens += completion.prompt_tokens + completion.completion_tokens
        p.retries += completion.attempts - 1
        p.prompt_tokens += completion.prompt_tokens
        if completion.cached_tokens is not None:
            p.cached_tokens += completion.cached_tokens
            p.cache_reported_tokens += completion.prompt_tokens
        if completion.cost_usd is None:
            p.cost_unknown += 1
        else:
            p.cost_usd += completion.cost_usd
        await self.store.put_call(
            CallRow(
                cache_key=key,
                sim_id=request.sim_id,
                agent=request.agent,
                turn=request.turn,
                endpoint=endpoint,
                model=request.model,
                resolved_model=completion.model,
                response=completion.text,
                finish_reason=completion.finish_reason,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                latency_s=completion.latency_s,
                attempts=completion.attempts,
                cost_usd=completion.cost_usd,
                system_fingerprint=completion.system_fingerprint,
                flags=",".join(completion.flags),
                created_at=time.time(),
                cached_tokens=completion.cached_tokens,
                cache_write_tokens=completion.cache_write_tokens,
            )
        )
        self.on_progress(p)
        return completion

    async def ask(self, request: ChatRequest, digest: str) -> Completion:
        """One paid call through the budget, the backend and the write-through store, as a
        simulation's calls go (the judge sends its requests this way); ``digest`` is the
        part of the cache key that identifies the messages."""
        return await self._ask(request, digest)

    async def _converse(self, spec: SimSpec) -> tuple[str, str | None, Conversation]:
        """Play one simulation; returns its status, error text and the conversation."""
        conversation = Conversation(spec, load_prompts(spec.language))
        try:
            transcript = await conversation.run(self._ask)
        except BudgetExceeded as exc:
            self.stop_reason = self.stop_reason or str(exc)
            return "stopped", str(exc), conversation
        except ContextLengthError as exc:
            return "context_length", str(exc), conversation
        except TransientEndpointError as exc:
            return "infra_error", str(exc), conversation
        except asyncio.CancelledError:
            self.store.mark(spec.sim_id, "stopped", "interrupted")
            raise
        return transcript.status(spec.invalid_threshold), None, conversation

    async def _simulate(self, spec: SimSpec) -> None:
        status, error, conversation = await self._converse(spec)
        out = conversation.out
        if status in ("ok", "invalid_output", "context_length"):
            self.store.finish(
                spec.sim_id,
                status,
                out.rows,
                format_failures=out.format_failures,
                replies=out.replies,
                error=error,
            )
        else:
            self.store.mark(spec.sim_id, status, error)
            if status == "infra_error":
                self._unlucky.append((spec.sim_id, spec.model, time.monotonic()))
        p = self.progress
        p.done += 1
        p.statuses[status] = p.statuses.get(status, 0) + 1
        p.failures += status in ("infra_error", "stopped")
        self.on_progress(p)

    async def _worker(self, queue: Iterator[SimSpec]) -> None:
        for spec in queue:
            if self.stop_reason:
                return
            await self._tracked(spec)

    async def _tracked(self, spec: SimSpec) -> None:
        """Run one simulation, telling a batching backend how many are in flight."""
        started = getattr(self.backend, "simulation_started", None)
        finished = getattr(self.backend, "simulation_finished", None)
        if started is not None:
            started()
        try:
            await self._simulate(spec)
        finally:
            if finished is not None:
                finished()

    async def run(self, specs: list[SimSpec]) -> None:
        """Run every spec not yet finished, ``concurrency`` simulations at a time."""
        statuses = self.store.statuses()
        todo = [s for s in specs if statuses.get(s.sim_id) not in TERMINAL]
        self._resumable = self.store.sims_with_calls()
        self.progress.total = len(specs)
        self.progress.skipped = len(specs) - len(todo)
        self.progress.calls_total = sum(s.n_agents * s.turns for s in todo)
        self.progress.budget_usd = self.budget.budget.usd
        self.on_progress(self.progress)
        queue = iter(todo)
        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(self.concurrency, len(todo))):
                    tg.create_task(self._worker(queue))
        except BaseExceptionGroup as group:
            raise _first_user_error(group) from None
        finally:
            await self.backend.aclose()
        self._strike()

    def _strike(self) -> None:
        prior = self.store.strikes([sim for sim, _, _ in self._unlucky])
        suspects_only = {model for _, model, _ in self._unlucky}
        for sim, model, _ in self._unlucky:
            if not prior.get(sim):
                suspects_only.discard(model)
        struck = [
            sim
            for sim, model, failed_at in self._unlucky
            if self._answered.get(model, -1.0) > failed_at or model in suspects_only
        ]
        failed = self.store.strike(struck, STRIKES) if struck else []
        if failed:
            p = self.progress
            p.statuses["infra_error"] -= len(failed)
            if not p.statuses["infra_error"]:
                del p.statuses["infra_error"]
            p.statuses["failed"] = p.statuses.get("failed", 0) + len(failed)
            p.failures -= len(failed)


def _first_user_error(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first AlignbfError inside a (nested) exception group, else the group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_user_error(exc)
            if inner is not exc:
                return inner
        elif isinstance(exc, AlignbfError):
            return exc
    return group


def select(specs: list[SimSpec], shard_text: str | None, limit: int | None) -> list[SimSpec]:
    """Apply ``--shard K/N`` then ``--limit N``."""
    if shard_text:
        specs = shard(specs, *parse_shard(shard_text))
    return specs[:limit] if limit is not None else specs


def run_study(
    config: str | Path,
    *,
    backend: Backend,
    backend_name: str,
    run_dir: Path | None = None,
    concurrency: int = 64,
    shard_text: str | None = None,
    limit: int | None = None,
    manifest_extra: dict[str, Any] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    seed_salt: str = "",
    deviations: list[tuple[str, str]] | None = None,
    retry_failed: bool = False,
) -> RunResult:
    """Run (or resume) a study into a run directory.

    Args:
        config: Study config path or built-in name.
        backend: The backend every call goes to.
        backend_name: ``synthetic:<world>`` or ``endpoints`` (recorded; must not change).
        run_dir: Where the run lives; default ``runs/<study>[-backend]``.
        concurrency: Simulations in flight.
        shard_text: ``K/N`` to run one slice of the grid.
        limit: Run at most this many simulations (after sharding).
        manifest_extra: More facts for ``manifest.json`` (never keys).
        on_progress: Called after each simulation with the counters.
        seed_salt: The preregistration lock's root hash when the study is locked.
        deviations: (kind, detail) pairs to record in the run (lock drift, reasons).
        retry_failed: Run ``failed`` simulations again (their strikes start over).
    """
    from alignbf.config.assets import find_config

    config_path = find_config(config)
    study = load_study(config_path)
    check_prompts(study.factors.languages)  # before the run directory is made
    specs = select(expand(study, seed_salt=seed_salt), shard_text, limit)
    run_dir = run_dir or default_run_dir(study, backend_name)
    extra = {**(manifest_extra or {}), "lock_root": seed_salt or None}
    store = open_run(study, config_path, run_dir, backend_name, extra)
    try:
        _check_salt(store, seed_salt)
        for kind, detail in deviations or []:
            store.add_deviation(kind, detail)
        store.register(specs)
        if retry_failed:
            store.retry_failed()
        runner = Runner(store, backend, study.budget, concurrency, on_progress)
        interrupted = run_blocking(runner.run(specs))
        stopped = "interrupted" if interrupted else runner.stop_reason
        if stopped:
            store.add_deviation("stopped", stopped)
        throttled = backend.throttled() if hasattr(backend, "throttled") else {}
        if throttled:
            store.set_fact(
                "throttled", json.dumps({k: dataclasses.asdict(v) for k, v in throttled.items()})
            )
        notices = backend.notices() if hasattr(backend, "notices") else []
        return RunResult(run_dir, runner.progress, stopped, throttled, notices)
    finally:
        store.close()


def _check_salt(store: Store, seed_salt: str) -> None:
    stored = store.get("seed_salt")
    if stored is None:
        store.set_fact("seed_salt", seed_salt)
    elif stored != seed_salt:
        raise ConfigError(
            f"{store.dir}: was started under another preregistration lock (seeds differ); "
            "use a new --run-dir"
        )


def run_blocking(coro: Any) -> bool:
    """Run ``coro`` to completion; returns True if it was interrupted.

    In a plain script (the main thread, no event loop running) SIGINT/SIGTERM cancel it
    cleanly. Where an event loop already runs in this thread (Jupyter) or off the main
    thread, it runs on a fresh loop in a worker thread, without signal handlers, so
    ``run_study`` works in a notebook cell.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if running or threading.current_thread() is not threading.main_thread():
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, _until_cancelled(coro)).result()
    return asyncio.run(_with_signals(coro))


async def _until_cancelled(coro: Any) -> bool:
    try:
        await coro
    except asyncio.CancelledError:
        return True
    return False


async def _with_signals(coro: Any) -> bool:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    hits = 0

    def stop() -> None:
        nonlocal hits
        hits += 1
        if hits > 1:
            raise SystemExit(130)
        if task is not None:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        return await _until_cancelled(coro)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
