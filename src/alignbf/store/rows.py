"""Typed rows of the run database: what the store writes and reads back, field by field.

Field order is the column order of the table, so a row goes into its ``INSERT`` as
:func:`values` gives it and comes back from a ``SELECT`` of :func:`names` as
``Row(*record)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class CallRow:
    """One successful response (a row of ``calls``, which is also the response cache)."""

    cache_key: str
    sim_id: str
    agent: int
    turn: int
    endpoint: str
    model: str
    """The model the study names."""
    resolved_model: str | None
    """The model the endpoint says answered."""
    response: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None
    attempts: int | None
    cost_usd: float | None
    """None when the endpoint has no price."""
    system_fingerprint: str | None
    flags: str | None
    """Comma-separated (``judge`` marks the judge's calls)."""
    created_at: float
    cached_tokens: int | None
    """Prompt tokens read from the provider's prompt cache; None when not reported."""
    cache_write_tokens: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class AttemptRow:
    """One failed attempt at a request (a row of ``attempts``, without its timestamp)."""

    sim_id: str
    agent: int
    turn: int
    endpoint: str
    status: str
    detail: str
    latency_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class Deviation:
    """One recorded deviation from the plan (a row of ``deviations``)."""

    at: float
    """Epoch seconds."""
    kind: str
    detail: str


def names(row_type: type[Any]) -> tuple[str, ...]:
    """The column names of a row type, in table order."""
    return tuple(f.name for f in dataclasses.fields(row_type))


def values(row: Any) -> tuple[Any, ...]:
    """A row's values in column order (what its ``INSERT`` binds)."""
    return tuple(getattr(row, f.name) for f in dataclasses.fields(row))
