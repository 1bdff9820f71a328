"""Evaluating preregistered hypotheses on scores: rows, estimates, families, verdicts.

The core of ``alignbf analyze``, shared by the analysis, its sensitivity analysis and the
power simulation: :func:`evaluate` estimates one hypothesis on one source of scores,
:func:`decide_all` adjusts p-values within each family and applies the decision rules,
:func:`evaluate_all` does both for a whole preregistration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from alignbf.analysis.estimators import Estimate, at_level, estimate
from alignbf.analysis.stats import p_adjust
from alignbf.config.hypotheses import Hypothesis, Prereg
from alignbf.errors import AnalysisError
from alignbf.scoring.scores import Scores

MAIN = "main"
VERDICT_COLUMNS = [
    "id",
    "statement",
    "exploratory",
    "outcome",
    "estimator",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "ci_level",
    "statistic",
    "df",
    "p_val",
    "p_adj",
    "family",
    "alpha",
    "equivalence_bound",
    "null",
    "n",
    "expected",
    "verdict",
    "reason",
    "reference",
    "note",
    "driver",
    "sensitivity",
    "verdict_changes",
    "attrition_flag",
]


@dataclass
class Source:
    """Scores of one run used by the analysis, or why they are missing."""

    run_dir: Path | None
    scores: Scores | None
    note: str = ""


def source_key(h: Hypothesis) -> str:
    """The name of the source a hypothesis reads: the analysed run (``main``), one input,
    or the union of the analysed run and its ``combine`` inputs (``main+study1``)."""
    if h.combine:
        return "+".join([MAIN, *h.combine])
    return h.input or MAIN


def languages_of(h: Hypothesis, languages: list[str]) -> list[str]:
    """The languages a hypothesis uses: its ``language`` subset, else all of ``languages``."""
    wanted = h.subset.get("language", languages)
    return [str(v) for v in wanted] if isinstance(wanted, list) else [str(wanted)]


def select_rows(scores: Scores, hypothesis: Hypothesis) -> pd.DataFrame:
    """The rows a hypothesis uses: its level's table restricted to its subset.

    Boolean design columns (``aligned``, ``individuated``) are coded 0/1 so formulas
    name them plainly.
    """
    frame = scores.simulations if hypothesis.level == "simulation" else scores.agents
    flags = [c for c in frame.columns if pd.api.types.is_bool_dtype(frame[c])]
    frame = frame.assign(**{c: frame[c].astype(int) for c in flags})
    for column, wanted in hypothesis.subset.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        frame = pd.concat([at_level(frame, column, v) for v in values])
    if frame.empty:
        where = ", ".join(f"{k} = {v}" for k, v in hypothesis.subset.items())
        raise AnalysisError(f"no {hypothesis.level} rows with {where or 'any value'}")
    return frame.reset_index(drop=True)


def _row(h: Hypothesis, est: Estimate | None, note: str) -> dict[str, Any]:
    numbers = {
        "estimate": math.nan,
        "se": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "ci_level": h.ci,
        "statistic": math.nan,
        "df": math.nan,
        "p_val": math.nan,
        "n": 0,
    }
    if est is not None:
        numbers = {k: getattr(est, k) for k in numbers}
    numbers["null"] = est.null if est is not None else math.nan
    return {
        "id": h.id,
        "statement": h.statement,
        "exploratory": h.exploratory,
        "outcome": h.outcome,
        "estimator": h.estimator.type,
        **numbers,
        "p_adj": math.nan,
        "family": h.family,
        "alpha": h.alpha,
        "equivalence_bound": h.equivalence_bound,
        "expected": h.expected,
        "verdict": "inconclusive",
        "reason": note if est is None else "",
        "reference": h.reference.render(),
        "note": note,
        "driver": "",
        "sensitivity": "",
        "verdict_changes": False,
        "attrition_flag": False,
    }


def evaluate(
    h: Hypothesis, source: Source, attributes: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], Estimate | None]:
    """One verdict row (before adjustment) and its estimate (None when not estimable)."""
    if source.scores is None:
        return _row(h, None, source.note), None
    try:
        rows = select_rows(source.scores, h)
        est = estimate(h.estimator, rows, h.outcome, h.ci, attributes)
    except AnalysisError as exc:
        return _row(h, None, "; ".join(filter(None, [f"not estimable: {exc}", source.note]))), None
    return _row(h, est, "; ".join(filter(None, [est.note, source.note]))), est


def decide_all(prereg: Prereg, rows: list[dict[str, Any]], ests: list[Estimate | None]) -> None:
    """Adjust p-values within each planned family, then apply each decision rule.

    A family holds the directional hypotheses (expected positive or negative) decided by
    significance; one that could not be estimated counts with p = 1, so a family never
    shrinks because a test failed. Hypotheses decided by their CI (``equivalent``,
    ``not_positive``) keep their own p-value.
    """
    for name, family in prereg.families.items():
        members = [
            i
            for i, h in enumerate(prereg.hypotheses)
            if h.family == name
            and h.decision == "significance"
            and h.expected in ("positive", "negative")
        ]
        if members:
            pvals = [rows[i]["p_val"] if math.isfinite(rows[i]["p_val"]) else 1.0 for i in members]
            adjusted = p_adjust(pvals, method=family.method)
            for i, p in zip(members, adjusted["p_adj"], strict=True):
                if math.isfinite(rows[i]["p_val"]):
                    rows[i]["p_adj"] = float(p)
    for h, row in zip(prereg.hypotheses, rows, strict=True):
        if h.expected not in ("positive", "negative") and math.isfinite(row["p_val"]):
            row["p_adj"] = row["p_val"]
    for h, row, est in zip(prereg.hypotheses, rows, ests, strict=True):
        if est is not None:
            numbers = (est.estimate, est.ci_low, est.ci_high, row["p_adj"], est.null)
            row["verdict"], row["reason"] = h.decide(*numbers), h.reason(*numbers)


def evaluate_all(
    prereg: Prereg, sources: dict[str, Source], languages: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Estimate | None]]:
    pairs = [evaluate(h, sources[source_key(h)], languages) for h in prereg.hypotheses]
    rows, ests = [r for r, _ in pairs], [e for _, e in pairs]
    decide_all(prereg, rows, ests)
    return rows, ests
