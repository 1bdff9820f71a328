"""What a study will cost before anything is spent: cells, calls, tokens, dollars.

Input tokens are counted from the real rendered prompts (system prompt, events and
headers, about four characters per token) plus the conversation an agent has heard
and said by each turn, with an assumed typical reply length; the worst case bounds
every reply at ``max_tokens``. Both are estimates, labelled so.

Prompt caching: an agent's message list only grows, so each prompt repeats the agent's
previous prompt; that part is the expected cache share, priced at the endpoint's cached
input price (the input price when unset). The worst case assumes no cache hit.

Wall time of ``alignbf run``: the calls of one simulation wait for each other (``turns x
agents`` in a row for the sequential turn order, ``turns`` for the simultaneous one), each
taking an assumed ``ASSUMED_CALL_LATENCY_S``; the run takes at least that, at least its
calls at the endpoint's parallelism (``max_connections``, and ``DEFAULT_CONCURRENCY``
simulations in flight), and at least its calls and tokens at the endpoint's requests and
tokens per minute.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignbf.config.endpoints import Endpoint, check_endpoints
from alignbf.config.prompts import fill, load_prompts
from alignbf.config.rubric import load_rubric
from alignbf.config.study import Study
from alignbf.engine.grid import SimSpec, cells, expand
from alignbf.engine.synthetic import estimate_tokens

TYPICAL_REPLY_TOKENS = 150
"""Assumed tokens in a typical reply (talk + monologue), for the expected-cost estimate."""
ASSUMED_CALL_LATENCY_S = 3.0
"""Assumed seconds per call: a typical reply at about 60 tokens/s plus half a second."""
DEFAULT_CONCURRENCY = 64
"""Simulations in flight (``alignbf run --concurrency``'s default)."""
UTTERANCES_PER_REPLY = {"talk": 1.0, "monologue": 1.0, "whisper": 0.2}
"""Assumed utterances per reply and channel (a reply has one talk part and one monologue;
whispers are occasional), for the judge's expected calls; the worst case is one per
channel, each asked ``judge.max_attempts`` times."""
TYPICAL_JUDGE_TOKENS = 30
"""Assumed tokens of a judge reply (one small JSON object)."""


@dataclass
class EndpointPlan:
    """Calls, tokens and cost that go to one endpoint."""

    endpoint: str
    model: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    worst_input_tokens: int = 0
    worst_output_tokens: int = 0
    cost_usd: float | None = None
    worst_cost_usd: float | None = None
    role: str = "simulation"
    """``simulation`` (the agents' calls) or ``judge`` (one call per utterance)."""
    cached_input_tokens: int = 0
    """Expected input tokens that repeat the agent's previous prompt (a prefix cache's share)."""
    cache_share: float | None = None
    """``cached_input_tokens / input_tokens``."""
    cached_cost_usd: float | None = None
    """Expected cost with that share priced at the cached input price."""
    critical_path_calls: int = 0
    """Calls in a row of the longest simulation (they wait for each other)."""
    wall_time_s: float | None = None
    """Expected wall time: the largest of ``wall_time_bounds``."""
    wall_time_bounds: dict[str, float] = field(default_factory=dict)
    """Seconds each limit alone needs: ``critical_path``, ``parallelism``,
    ``requests_per_minute``, ``tokens_per_minute`` (the last two only when set)."""
    wall_time_limited_by: str = ""
    """Which bound is the largest."""
    batch_rounds: int | None = None
    """For an endpoint with ``batch: true``: batch jobs one simulation waits for under
    ``alignbf run --batch`` (one per speaking step, ``critical_path_calls``); None otherwise."""
    batch_cost_usd: float | None = None
    """Expected cost of these calls sent as batch jobs (less the endpoint's batch_discount)."""


def wall_time_bounds(
    calls: int,
    tokens: int,
    critical_path_calls: int,
    parallel: int,
    rpm: int | None,
    tpm: int | None,
    latency_s: float = ASSUMED_CALL_LATENCY_S,
) -> dict[str, float]:
    """Seconds a run needs under each limit alone; the run needs at least the largest.

    Args:
        calls: Calls to the endpoint.
        tokens: Input plus output tokens of those calls.
        critical_path_calls: Calls of one simulation that wait for each other.
        parallel: Requests the endpoint can have in flight at once.
        rpm: Requests per minute, or None for no limit.
        tpm: Tokens per minute, or None for no limit.
        latency_s: Seconds per call.
    """
    bounds = {
        "critical_path": critical_path_calls * latency_s,
        "parallelism": calls * latency_s / max(parallel, 1),
    }
    if rpm is not None:
        bounds["requests_per_minute"] = 60.0 * calls / rpm
    if tpm is not None:
        bounds["tokens_per_minute"] = 60.0 * tokens / tpm
    return bounds


@dataclass
class Plan:
    """The plan of a study."""

    study: str
    simulations: int
    calls: int
    cells: list[dict[str, Any]]
    endpoints: list[EndpointPlan] = field(default_factory=list)
    budget_usd: float | None = None
    """The study's ``budget.usd`` (None = no limit)."""
    judge_calls: int = 0
    """Expected judge calls (``scoring.instrument`` judge or both; 0 otherwise)."""
    estimate_note: str = (
        "token counts are estimates: rendered prompts at ~4 characters/token and "
        f"{TYPICAL_REPLY_TOKENS}-token typical replies; worst case = every reply at max_tokens"
        " and no prompt-cache hit; cached = the part of each prompt that repeats the agent's"
        " previous prompt, at the endpoint's cached input price (the input price when unset);"
        f" wall time assumes {ASSUMED_CALL_LATENCY_S:g} s per call, the calls of a simulation"
        f" one after another and at most {DEFAULT_CONCURRENCY} simulations in flight"
    )
    wall_time_s: float | None = None
    """Expected wall time of ``alignbf run`` (the slowest endpoint, or the in-flight bound)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``alignbf plan --json``)."""
        return {
            "study": self.study,
            "simulations": self.simulations,
            "calls": self.calls,
            "judge_calls": self.judge_calls,
            "cells": self.cells,
            "endpoints": [e.__dict__ for e in self.endpoints],
            "budget_usd": self.budget_usd,
            "wall_time_s": self.wall_time_s,
            "assumed_call_latency_s": ASSUMED_CALL_LATENCY_S,
            "warnings": self.warnings(),
            "note": self.estimate_note,
        }

    def warnings(self) -> list[str]:
        """What exceeds the budget: the expected cost, or the worst case."""
        if self.budget_usd is None:
            return []
        out = []
        for label, attr in (("expected cost", "cost_usd"), ("worst case", "worst_cost_usd")):
            values = [getattr(e, attr) for e in self.endpoints]
            if all(v is not None for v in values) and sum(values) > self.budget_usd:
                out.append(
                    f"the {label} ${sum(values):,.2f} exceeds budget.usd ${self.budget_usd:,.2f}; "
                    "the run stops when the budget is spent (resumable with a higher budget)"
                    + (self._cached_note(sum(values)) if attr == "cost_usd" else "")
                )
        return out

    def _cached_note(self, uncached: float) -> str:
        cached = [e.cached_cost_usd for e in self.endpoints]
        known = [v for v in cached if v is not None]
        if len(known) < len(cached) or sum(known) >= uncached:
            return ""
        return f" (with the expected prompt caching: ${sum(known):,.2f})"


def _sim_tokens(spec: SimSpec, reply_tokens: int) -> tuple[int, int]:
    """Input tokens of one simulation if every reply has ``reply_tokens`` tokens, and how
    many of them repeat the same agent's previous prompt (all of it while the message list
    only grows; the system prompt alone once a ``history_window`` drops old turns)."""
    p = load_prompts(spec.language)
    total = repeated = 0
    for agent in range(spec.n_agents):
        system = p.system_prompt(
            agent,
            spec.n_agents,
            aligned=spec.aligned[agent],
            individuated=spec.individuated[agent],
            channel_format=spec.channel_format,
        )
        context = system_tokens = estimate_tokens(system)
        previous = 0
        for turn in range(1, spec.turns + 1):
            header = fill(p.turn_header, turn=turn, turns=spec.turns) + p.event(turn, spec.target)
            heard = (spec.n_agents - 1) * reply_tokens // 2
            context += estimate_tokens(header + p.record_label + p.reply_prompt) + heard
            total += context
            window = spec.history_window
            repeated += system_tokens if window is not None and turn > window else previous
            previous = context
            context += reply_tokens
    return total, repeated


def _critical_path(spec: SimSpec) -> int:
    """Calls of one simulation that wait for each other."""
    return spec.turns if spec.turn_order == "simultaneous" else spec.turns * spec.n_agents


def make_plan(study: Study, config_path: Path) -> Plan:
    """Expand the grid and price it per endpoint."""
    endpoints = check_endpoints(study, config_path)
    specs = expand(study)
    per_model: dict[str, EndpointPlan] = {}
    per_cell: Counter[tuple[Any, ...]] = Counter(s.cell for s in specs)
    sizes: dict[tuple[Any, ...], tuple[tuple[int, int], tuple[int, int]]] = {}
    parallel_per_sim = 1
    for spec in specs:
        key = (spec.language, spec.alignment_ratio, spec.individuation_ratio, spec.model)
        if key not in sizes:
            sizes[key] = (
                _sim_tokens(spec, TYPICAL_REPLY_TOKENS),
                _sim_tokens(spec, spec.max_tokens),
            )
        name = study.endpoints.get(spec.model, "(none)")
        ep = per_model.setdefault(spec.model, EndpointPlan(endpoint=name, model=spec.model))
        calls = spec.n_agents * spec.turns
        ep.calls += calls
        ep.input_tokens += sizes[key][0][0]
        ep.cached_input_tokens += sizes[key][0][1]
        ep.worst_input_tokens += sizes[key][1][0]
        ep.output_tokens += calls * TYPICAL_REPLY_TOKENS
        ep.worst_output_tokens += calls * spec.max_tokens
        ep.critical_path_calls = max(ep.critical_path_calls, _critical_path(spec))
        parallel_per_sim = max(parallel_per_sim, calls // _critical_path(spec))
    in_flight = DEFAULT_CONCURRENCY * parallel_per_sim
    for ep in per_model.values():
        endpoint = endpoints.get(ep.endpoint)
        ep.cache_share = ep.cached_input_tokens / ep.input_tokens if ep.input_tokens else None
        if endpoint is not None:
            ep.cost_usd = endpoint.cost(ep.input_tokens, ep.output_tokens)
            ep.worst_cost_usd = endpoint.cost(ep.worst_input_tokens, ep.worst_output_tokens)
            ep.cached_cost_usd = endpoint.cost(
                ep.input_tokens, ep.output_tokens, ep.cached_input_tokens
            )
            if endpoint.batch:
                ep.batch_rounds = ep.critical_path_calls
                ep.batch_cost_usd = endpoint.batch_cost(ep.input_tokens, ep.output_tokens)
        _time(ep, endpoint, in_flight)
    cell_rows = [{**cell, "simulations": per_cell[tuple(cell.values())]} for cell in cells(study)]
    judge = _judge_plan(study, specs, endpoints)
    return Plan(
        study=study.name,
        simulations=len(specs),
        calls=sum(e.calls for e in per_model.values()),
        cells=cell_rows,
        endpoints=list(per_model.values()) + ([judge] if judge else []),
        budget_usd=study.budget.usd,
        judge_calls=judge.calls if judge else 0,
        wall_time_s=_run_time(list(per_model.values()), in_flight),
    )


def _time(ep: EndpointPlan, endpoint: Endpoint | None, in_flight: int) -> None:
    """Fill the wall-time fields of one endpoint's plan (no rate limits when unknown)."""
    connections = endpoint.max_connections if endpoint is not None else in_flight
    ep.wall_time_bounds = wall_time_bounds(
        ep.calls,
        ep.input_tokens + ep.output_tokens,
        ep.critical_path_calls,
        min(connections, in_flight),
        endpoint.requests_per_minute if endpoint is not None else None,
        endpoint.tokens_per_minute if endpoint is not None else None,
    )
    ep.wall_time_limited_by, ep.wall_time_s = max(
        ep.wall_time_bounds.items(), key=lambda item: item[1]
    )


def _run_time(simulation_plans: list[EndpointPlan], in_flight: int) -> float:
    """The run's wall time: its slowest endpoint, or all its calls at ``in_flight`` at once."""
    calls = sum(e.calls for e in simulation_plans)
    slowest = max((e.wall_time_s or 0.0 for e in simulation_plans), default=0.0)
    return max(slowest, calls * ASSUMED_CALL_LATENCY_S / in_flight)


def _judge_plan(
    study: Study, specs: list[SimSpec], endpoints: dict[str, Any]
) -> EndpointPlan | None:
    """The judge's calls, tokens and cost: one call per utterance of the hit channels."""
    judge = study.scoring.judge
    if judge is None or study.scoring.instrument == "lexicon":
        return None
    name = study.endpoints.get(judge.model, "(none)")
    plan = EndpointPlan(endpoint=name, model=judge.model, role="judge")
    channels = study.scoring.hit_channels
    per_reply = sum(UTTERANCES_PER_REPLY[c] for c in channels)
    expected_calls = 0.0
    for spec in specs:
        replies = spec.n_agents * spec.turns
        rubric = estimate_tokens(load_rubric(spec.language).system) + 20
        calls, worst_calls = replies * per_reply, replies * len(channels) * judge.max_attempts
        expected_calls += calls
        plan.input_tokens += int(calls * (rubric + TYPICAL_REPLY_TOKENS // 2))
        plan.worst_input_tokens += worst_calls * (rubric + spec.max_tokens)
        plan.output_tokens += int(calls * TYPICAL_JUDGE_TOKENS)
        plan.worst_output_tokens += worst_calls * judge.max_tokens
    plan.calls = round(expected_calls)
    endpoint = endpoints.get(name)
    if endpoint is not None:
        plan.cost_usd = endpoint.cost(plan.input_tokens, plan.output_tokens)
        plan.worst_cost_usd = endpoint.cost(plan.worst_input_tokens, plan.worst_output_tokens)
        plan.cached_cost_usd = plan.cost_usd
    _time(plan, endpoint, DEFAULT_CONCURRENCY)
    return plan
