"""A judge model as a second instrument: one request per utterance, its categories as JSON.

Every utterance of the ``ok`` simulations in the study's ``hit_channels`` is sent to the
judge (``scoring.judge``) with the language's rubric (:mod:`alignbf.config.rubric`). A
judge call is a paid call like any other: it goes through the run's backend (retries,
rate limits), the budget and the write-through store (:meth:`Runner.ask`), under a
cache key carrying the utterance (sim_id, agent, turn, channel), the rubric's digest,
the judge model, its sampling and the attempt number; it is committed before its label
is used, so a resume sends no request for a label already stored.

A reply that is not JSON of the expected shape is asked again (a new attempt, a new seed)
up to ``judge.max_attempts`` requests; then the utterance is recorded as *unlabelled*
(reason ``unparseable``): counted and reported, never guessed. A request the endpoint
refuses because the rubric and the utterance exceed the judge model's context length can
never be answered, whatever the seed: it is recorded at once (``Store.record_unlabelled``)
and the utterance is unlabelled with reason ``context_length``, so a resume does not send
it again. Labels are read back from the stored replies and those records, so ``alignbf
analyze`` needs no model once every utterance is judged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from alignbf.config.rubric import JUDGE_CATEGORIES, Rubric, load_rubric, parse_labels
from alignbf.config.rubric import response_schema as judge_schema
from alignbf.config.study import Judge, Study
from alignbf.engine.grid import canonical_hash
from alignbf.engine.runner import Progress, Runner, cache_key, run_blocking
from alignbf.errors import (
    AnalysisError,
    BudgetExceeded,
    ContextLengthError,
    TransientEndpointError,
)
from alignbf.store.store import Store
from alignbf.transport.backend import Backend, ChatRequest, Completion

JUDGE_FLAG = "judge"
"""Flag of a judge call in the calls table."""
JUDGE_VERSION = "1.1.0"
ENDPOINT_FACT = "judge_endpoint"
"""Run fact: the endpoint id the judge was last called on (keys of stored labels)."""
UNPARSEABLE = "unparseable"
"""Why an utterance is unlabelled: no reply of its ``max_attempts`` had the expected shape."""
CONTEXT_LENGTH = "context_length"
"""Why an utterance is unlabelled: with the rubric it exceeds the judge model's context."""
LABEL_COLUMNS = ["sim_id", "turn", "agent", "channel", "language", "labelled", "reason",
                 "requests", *JUDGE_CATEGORIES]  # fmt: skip

Utterance = tuple[str, int, int, str, str, str]
"""(sim_id, turn, agent, channel, language, text)."""


@dataclass
class JudgeResult:
    """What a judge pass did."""

    utterances: int = 0
    sent: int = 0
    """Judge requests sent in this pass (0 when every label was stored)."""
    stored: int = 0
    """Utterances whose final reply was already stored when the pass began."""
    labelled: int = 0
    unlabelled: int = 0
    """Utterances the judge gave no label: every reply failed the expected JSON shape, or
    the request exceeded the judge's context length (``context_length`` of them)."""
    context_length: int = 0
    """Unlabelled utterances that, with the rubric, exceed the judge model's context."""
    unjudged: int = 0
    """Utterances left without a final reply (budget, endpoint failures): a resume judges them."""
    stopped: str | None = None
    progress: Progress = field(default_factory=Progress)


class _Flagged:
    """A backend whose completions carry the judge flag into the calls table."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        if hasattr(inner, "on_attempt_failed"):
            self.on_attempt_failed: Any = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "on_attempt_failed":
            self.inner.on_attempt_failed = value  # type: ignore[attr-defined]

    def endpoint_id(self, model: str) -> str:
        return self.inner.endpoint_id(model)

    async def complete(self, request: ChatRequest) -> Completion:
        completion = await self.inner.complete(request)
        completion.flags = (*completion.flags, JUDGE_FLAG)
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()


def utterances(store: Store, study: Study) -> list[Utterance]:
    """The utterances the judge labels: agents' messages of ``ok`` simulations in the
    hit channels, in a stable order."""
    from alignbf.store.reader import judge_utterances

    return judge_utterances(store, list(study.scoring.hit_channels))


def judge_seed(judge: Judge, utterance: Utterance, attempt: int) -> int:
    """The API seed of one attempt at one utterance: derived from the study's judge seed
    and the utterance's identity, as a simulation's seed derives from its sim_id, so two
    utterances with the same words are two samples."""
    sim_id, turn, agent, channel = utterance[:4]
    digest = canonical_hash([judge.seed, sim_id, agent, turn, channel, attempt])
    return int(digest[:8], 16)


def judge_request(
    rubric: Rubric, judge: Judge, utterance: Utterance, attempt: int
) -> tuple[ChatRequest, str]:
    """The request of one attempt at one utterance and the digest of its cache key."""
    sim_id, turn, agent, channel, _, text = utterance
    messages = rubric.messages(text, channel)
    request = ChatRequest(
        sim_id=sim_id,
        agent=agent,
        turn=turn,
        model=judge.model,
        messages=messages,
        temperature=judge.temperature,
        top_p=1.0,
        max_tokens=judge.max_tokens,
        seed=judge_seed(judge, utterance, attempt),
        response_schema=judge_schema(),
    )
    digest = canonical_hash([JUDGE_FLAG, channel, rubric.digest, attempt, list(messages)])
    return request, digest


class _Labeller:
    """Walks each utterance's attempts through the stored replies, then the judge."""

    def __init__(
        self, study: Study, endpoint: str, stored: dict[str, str], refused: dict[str, str]
    ) -> None:
        assert study.scoring.judge is not None
        self.judge = study.scoring.judge
        self.endpoint, self.stored = endpoint, stored
        self.refused = refused
        """cache_key -> reason of the requests recorded as never answerable."""
        self.already = 0

    def key(self, utterance: Utterance, attempt: int) -> tuple[ChatRequest, str, str]:
        request, digest = judge_request(load_rubric(utterance[4]), self.judge, utterance, attempt)
        return request, digest, cache_key(self.endpoint, request, digest)

    def from_store(self, utterance: Utterance) -> tuple[dict[str, int] | None, int, str | None]:
        """(labels, requests made, reason): labels when labelled, else the reason it is
        unlabelled; neither while an attempt is still to be made."""
        for attempt in range(self.judge.max_attempts):
            key = self.key(utterance, attempt)[2]
            reply = self.stored.get(key)
            if reply is None:
                reason = self.refused.get(key)
                return None, attempt + (reason is not None), reason
            labels = parse_labels(reply)
            if labels is not None:
                return labels, attempt + 1, None
        return None, self.judge.max_attempts, UNPARSEABLE

    async def label(self, runner: Runner, utterance: Utterance) -> dict[str, int] | None:
        labels, start, reason = self.from_store(utterance)
        if labels is not None or reason is not None:
            self.already += 1
            return labels
        for attempt in range(start, self.judge.max_attempts):
            request, digest, key = self.key(utterance, attempt)
            try:
                completion = await runner.ask(request, digest)
            except ContextLengthError as exc:
                # another seed cannot shorten the prompt: record it, ask no more
                runner.store.record_unlabelled(key, utterance[:4], CONTEXT_LENGTH, str(exc))
                self.refused[key] = CONTEXT_LENGTH
                return None
            self.stored[key] = completion.text
            labels = parse_labels(completion.text)
            if labels is not None:
                return labels
        return None


def complete_labels(store: Store, study: Study) -> pd.DataFrame:
    """:func:`label_frame`, refused in one line while some utterance has no label yet."""
    labels = label_frame(store, study)
    missing = int(labels["labelled"].isna().sum())
    if missing:
        raise AnalysisError(
            f"{store.dir}: {missing} of {len(labels)} utterances have no judge label yet; "
            "run `alignbf score RUN` to call the judge (it resumes where it stopped)"
        )
    return labels


def label_frame(store: Store, study: Study, endpoint: str | None = None) -> pd.DataFrame:
    """The stored judge labels, one row per utterance (see ``LABEL_COLUMNS``).

    ``labelled`` is True for a valid reply, False for an unlabelled utterance (category
    columns NaN; ``reason`` is ``unparseable`` or ``context_length``) and NA when the
    utterance has not been judged yet.
    """
    endpoint = endpoint or store.get(ENDPOINT_FACT)
    items = utterances(store, study)
    stored = store.flagged_responses(JUDGE_FLAG) if endpoint else {}
    refused = store.unlabelled_requests() if endpoint else {}
    labeller = _Labeller(study, endpoint or "", stored, refused)
    rows = []
    for u in items:
        labels, requests, reason = labeller.from_store(u)
        state = True if labels is not None else (False if reason is not None else None)
        values = [labels[c] if labels else None for c in JUDGE_CATEGORIES]
        rows.append((u[0], u[1], u[2], u[3], u[4], state, reason, requests, *values))
    frame = pd.DataFrame(rows, columns=LABEL_COLUMNS)
    for c in JUDGE_CATEGORIES:
        frame[c] = frame[c].astype(float)
    return frame


async def _judge(
    store: Store, study: Study, backend: Backend, concurrency: int, result: JudgeResult
) -> None:
    assert study.scoring.judge is not None
    flagged = _Flagged(backend)
    endpoint = flagged.endpoint_id(study.scoring.judge.model)
    store.set_fact(ENDPOINT_FACT, endpoint)
    labeller = _Labeller(
        study, endpoint, store.flagged_responses(JUDGE_FLAG), store.unlabelled_requests()
    )
    items = utterances(store, study)
    result.utterances = len(items)
    runner = Runner(store, flagged, study.budget, concurrency)
    result.progress = runner.progress
    queue: Iterator[Utterance] = iter(items)

    async def worker() -> None:
        for utterance in queue:
            if result.stopped:
                return
            try:
                await labeller.label(runner, utterance)
            except BudgetExceeded as exc:
                result.stopped = result.stopped or str(exc)
            except TransientEndpointError:
                continue

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(concurrency, len(items)) or 1):
                tg.create_task(worker())
    finally:
        await flagged.aclose()
    result.sent, result.stored = runner.progress.calls, labeller.already


def judge_store(
    store: Store,
    study: Study,
    backend: Backend,
    concurrency: int = 16,
    on_progress: Callable[[Progress], None] | None = None,
) -> JudgeResult:
    """Judge every utterance not yet judged, ``concurrency`` requests in flight.

    Raises:
        EndpointError: the judge's endpoint refused (key, model, quota): one line.
    """
    if study.scoring.judge is None:
        raise AnalysisError(f"{store.dir}: the study's scoring has no judge block")
    result = JudgeResult()
    try:
        # like a run: Ctrl-C stops it cleanly, and inside a notebook's running event loop
        # it goes on a worker thread's loop
        interrupted = run_blocking(_judge(store, study, backend, concurrency, result))
    except BaseExceptionGroup as group:
        raise _first(group) from None
    if interrupted and result.stopped is None:
        result.stopped = "interrupted"
    labels = label_frame(store, study)
    result.labelled = int((labels["labelled"] == True).sum())  # noqa: E712
    result.unlabelled = int((labels["labelled"] == False).sum())  # noqa: E712
    result.unjudged = int(labels["labelled"].isna().sum())
    result.context_length = int((labels["reason"] == CONTEXT_LENGTH).sum())
    return result


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    for exc in group.exceptions:
        return _first(exc) if isinstance(exc, BaseExceptionGroup) else exc
    return group


def judge_messages(messages: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Per-message counts with the judge's labels in place of the lexicon's hits.

    ``messages`` is :func:`alignbf.scoring.measures.count_messages` output with a ``turn``
    column. In the hit channels each category is 1 when the judge labels the utterance
    so; ``units_unlabelled`` holds the units of unlabelled utterances, which leave the
    rate's denominator. Echoes are the judge's to judge (the rubric codes a restated
    instruction 0), so ``echoed`` is 0.
    """
    keys = ["sim_id", "turn", "agent", "channel"]
    merged = messages.merge(labels[[*keys, "labelled", *JUDGE_CATEGORIES]], on=keys, how="left",
                            suffixes=("_lexicon", ""))  # fmt: skip
    out = merged[[c for c in messages.columns if c not in JUDGE_CATEGORIES]].copy()
    judged = merged["labelled"] == True  # noqa: E712
    for c in JUDGE_CATEGORIES:
        out[c] = merged[c].where(judged, 0).fillna(0).astype("int64")
    out["protective_in_harmony"] = out["protective"] * out["conformity"]
    out["echoed"] = 0
    unlabelled = merged["labelled"] == False  # noqa: E712
    out["unlabelled"] = unlabelled.astype("int64")
    out["units_unlabelled"] = merged["units"].where(unlabelled, 0).astype("int64")
    return out


def judge_rates(frame: pd.DataFrame, per_message: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Measures from judge counts, the rates' denominators without unlabelled units."""
    extra = per_message.groupby(keys)[["unlabelled", "units_unlabelled"]].sum().reset_index()
    out = frame.merge(extra, on=keys, how="left")
    out[["unlabelled", "units_unlabelled"]] = out[["unlabelled", "units_unlabelled"]].fillna(0)
    units = out["units_hit"] - out["units_unlabelled"]
    per = units.where(units > 0)
    for c in JUDGE_CATEGORIES:
        out[f"{c}_rate"] = out[c] / per * 1000
    out["echo_share"] = float("nan")
    return out
