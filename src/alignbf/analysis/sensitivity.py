"""Sensitivity of CPI/DI verdicts to the z-score reference, and their components.

The scores carry CPI and DI under every reference (``cpi__<scope>``); the sensitivity
analysis re-runs every CPI/DI hypothesis with the index swapped, families and all. The
component analysis applies each hypothesis' estimator to each weighted component alone.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from alignbf.analysis.verdicts import Source, evaluate_all
from alignbf.config.hypotheses import Prereg
from alignbf.config.study import Study
from alignbf.scoring.indices import COMPONENTS, SCOPES
from alignbf.scoring.scores import Scores

SENSITIVITY_COLUMNS = [
    "id",
    "scope",
    "primary",
    "estimate",
    "ci_low",
    "ci_high",
    "p_adj",
    "verdict",
]
COMPONENT_COLUMNS = ["id", "outcome", "component", "weight", "estimate", "ci_low", "ci_high"]
INDEX_OUTCOMES = ("cpi", "di")


def _replaced(sources: dict[str, Source], columns: dict[str, str]) -> dict[str, Source]:
    """The sources with score columns replaced (``{"cpi": "cpi__pooled"}``)."""
    out = {}
    for name, source in sources.items():
        scores = source.scores
        if scores is not None:
            frames = [
                frame.assign(**{new: frame[old] for new, old in columns.items()})
                if all(old in frame.columns for old in columns.values())
                else frame
                for frame in (scores.simulations, scores.agents)
            ]
            scores = Scores(frames[0], frames[1], scores.paths)
        out[name] = Source(source.run_dir, scores, source.note)
    return out


def sensitivity_analysis(
    prereg: Prereg,
    sources: dict[str, Source],
    languages: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
    primary: str,
) -> pd.DataFrame:
    """Every CPI/DI hypothesis under every z-score reference (the primary one included).

    The other references are the preregistered sensitivity analysis: the same
    hypotheses, estimators and families on indices standardised another way.
    """
    indexed = [i for i, h in enumerate(prereg.hypotheses) if h.outcome in INDEX_OUTCOMES]
    out = []
    for scope in SCOPES:
        if scope == primary:
            scoped = rows
        else:
            columns = {o: f"{o}__{scope}" for o in INDEX_OUTCOMES}
            columns.update({f"z_{c}": f"z_{c}__{scope}" for c in COMPONENTS})
            scoped, _ = evaluate_all(prereg, _replaced(sources, columns), languages)
        for i in indexed:
            r = scoped[i]
            out.append(
                {"id": r["id"], "scope": scope, "primary": scope == primary}
                | {k: r[k] for k in ("estimate", "ci_low", "ci_high", "p_adj", "verdict")}
            )
    return pd.DataFrame(out, columns=SENSITIVITY_COLUMNS)


def component_analysis(
    prereg: Prereg,
    sources: dict[str, Source],
    languages: dict[str, dict[str, Any]],
    study: Study,
) -> pd.DataFrame:
    """Each CPI/DI hypothesis' estimator applied to each weighted component alone."""
    indexed = [i for i, h in enumerate(prereg.hypotheses) if h.outcome in INDEX_OUTCOMES]
    out = []
    for component in COMPONENTS:
        weights = {o: getattr(getattr(study.scoring, o), component) for o in INDEX_OUTCOMES}
        parts = {}
        for name, source in sources.items():
            scores = source.scores
            if scores is not None:
                frames = [
                    frame.assign(**{o: w * frame[f"z_{component}"] for o, w in weights.items()})
                    for frame in (scores.simulations, scores.agents)
                ]
                scores = Scores(frames[0], frames[1], scores.paths)
            parts[name] = Source(source.run_dir, scores, source.note)
        rows, _ = evaluate_all(prereg, parts, languages)
        for i in indexed:
            h, r = prereg.hypotheses[i], rows[i]
            out.append(
                {"id": h.id, "outcome": h.outcome, "component": component}
                | {"weight": weights[h.outcome]}
                | {k: r[k] for k in ("estimate", "ci_low", "ci_high")}
            )
    return pd.DataFrame(out, columns=COMPONENT_COLUMNS)


def annotate(
    rows: list[dict[str, Any]], sensitivity: pd.DataFrame, components: pd.DataFrame
) -> None:
    """Add the driver, the other references' verdicts and whether one differs."""
    for row in rows:
        row["driver"], row["sensitivity"], row["verdict_changes"] = "", "", False
        mine = components[components["id"] == row["id"]]
        if not mine.empty and mine["estimate"].notna().any():
            sign = 1.0 if not math.isfinite(row["estimate"]) or row["estimate"] >= 0 else -1.0
            row["driver"] = str(mine.loc[(sign * mine["estimate"]).idxmax(), "component"])
        others = sensitivity[(sensitivity["id"] == row["id"]) & ~sensitivity["primary"]]
        if not others.empty:
            row["sensitivity"] = "; ".join(
                f"{s}: {v}" for s, v in zip(others["scope"], others["verdict"], strict=True)
            )
            row["verdict_changes"] = bool((others["verdict"] != row["verdict"]).any())
