"""What a study will cost before anything is spent: cells, calls, tokens, dollars.

Input tokens are counted from the real rendered prompts (system prompt, events and
headers, about four characters per token) plus the conversation an agent has heard
and said by each turn, with an assumed typical reply length; the worst case bounds
every reply at ``max_tokens``. Both are estimates, labelled so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignbf.config.endpoints import check_endpoints
from alignbf.config.prompts import fill, load_prompts
from alignbf.config.study import Study
from alignbf.engine.grid import SimSpec, cells, expand
from alignbf.engine.synthetic import estimate_tokens

TYPICAL_REPLY_TOKENS = 150
"""Assumed tokens in a typical reply (talk + monologue), for the expected-cost estimate."""


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
    estimate_note: str = (
        "token counts are estimates: rendered prompts at ~4 characters/token and "
        f"{TYPICAL_REPLY_TOKENS}-token typical replies; worst case = every reply at max_tokens"
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``alignbf plan --json``)."""
        return {
            "study": self.study,
            "simulations": self.simulations,
            "calls": self.calls,
            "cells": self.cells,
            "endpoints": [e.__dict__ for e in self.endpoints],
            "budget_usd": self.budget_usd,
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
                )
        return out


def _sim_tokens(spec: SimSpec, reply_tokens: int) -> int:
    """Input tokens of one simulation if every reply has ``reply_tokens`` tokens."""
    p = load_prompts(spec.language)
    total = 0
    for agent in range(spec.n_agents):
        system = p.system_prompt(
            agent,
            spec.n_agents,
            aligned=spec.aligned[agent],
            individuated=spec.individuated[agent],
            channel_format=spec.channel_format,
        )
        context = estimate_tokens(system)
        for turn in range(1, spec.turns + 1):
            header = fill(p.turn_header, turn=turn, turns=spec.turns) + p.event(turn, spec.target)
            heard = (spec.n_agents - 1) * reply_tokens // 2
            context += estimate_tokens(header + p.record_label + p.reply_prompt) + heard
            total += context
            context += reply_tokens
    return total


def make_plan(study: Study, config_path: Path) -> Plan:
    """Expand the grid and price it per endpoint."""
    endpoints = check_endpoints(study, config_path)
    specs = expand(study)
    per_model: dict[str, EndpointPlan] = {}
    per_cell: Counter[tuple[Any, ...]] = Counter(s.cell for s in specs)
    sizes: dict[tuple[Any, ...], tuple[int, int]] = {}
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
        ep.input_tokens += sizes[key][0]
        ep.worst_input_tokens += sizes[key][1]
        ep.output_tokens += calls * TYPICAL_REPLY_TOKENS
        ep.worst_output_tokens += calls * spec.max_tokens
    for ep in per_model.values():
        endpoint = endpoints.get(ep.endpoint)
        if endpoint is not None:
            ep.cost_usd = endpoint.cost(ep.input_tokens, ep.output_tokens)
            ep.worst_cost_usd = endpoint.cost(ep.worst_input_tokens, ep.worst_output_tokens)
    cell_rows = [{**cell, "simulations": per_cell[tuple(cell.values())]} for cell in cells(study)]
    return Plan(
        study=study.name,
        simulations=len(specs),
        calls=sum(e.calls for e in per_model.values()),
        cells=cell_rows,
        endpoints=list(per_model.values()),
        budget_usd=study.budget.usd,
    )
