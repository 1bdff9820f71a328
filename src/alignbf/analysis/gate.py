"""The preregistered validity gate: no confirmatory verdict on an unvalidated measure.

A preregistration may state ``validity: {kappa: 0.6, min_coded: 100}``. A language meets
it when ``RUN/analysis/validity.csv`` (``alignbf code agree``) holds at least
``min_coded`` coded utterances of it and the kappa against the human codes of the
instrument the verdicts are computed from (the lexicon, or the judge) is at least
``kappa`` for every gated category. Each confirmatory verdict that uses a
language which does not meet it (every language of the study, when the hypothesis is not
restricted to some) becomes ``measure_not_validated``, with the reason in its note;
``alignbf replicate`` counts it as inconclusive.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from alignbf.analysis.verdicts import languages_of
from alignbf.config.hypotheses import Prereg, ValidityGate
from alignbf.config.study import Study

NOT_VALIDATED = "measure_not_validated"


def unmet(
    gate: ValidityGate,
    validity: pd.DataFrame | None,
    languages: list[str],
    instrument: str = "lexicon",
) -> dict[str, str]:
    """Language -> why it does not meet the gate (absent when it does), for the verdicts
    of ``instrument``."""
    if validity is not None:
        # a file written before the judge was measured holds the lexicon's rows alone
        mine = validity.get("instrument", pd.Series("lexicon", index=validity.index))
        validity = validity[mine == instrument]
    out = {}
    for language in languages:
        if validity is None:
            out[language] = "no human codes (analysis/validity.csv; run `alignbf code agree`)"
            continue
        if validity.empty:
            out[language] = (
                f"no agreement of the {instrument} with human codes in analysis/validity.csv "
                "(run `alignbf code agree` once the run is scored)"
            )
            continue
        rows = validity[
            (validity["language"] == language) & validity["category"].isin(gate.categories)
        ]
        if rows.empty or int(rows["n"].max()) < gate.min_coded:
            n = 0 if rows.empty else int(rows["n"].max())
            out[language] = f"{n} coded utterances, fewer than {gate.min_coded}"
            continue
        low = [
            f"{r.category} kappa {r.kappa:.2f}"
            for r in rows.itertuples()
            if not (isinstance(r.kappa, float) and math.isfinite(r.kappa) and r.kappa >= gate.kappa)
        ]
        if low:
            out[language] = ", ".join(low) + f" < {gate.kappa:g}"
    return out


def apply_gate(
    prereg: Prereg,
    rows: list[dict[str, Any]],
    run_dir: Path,
    study: Study,
    instrument: str = "lexicon",
) -> None:
    """Mark the confirmatory verdicts whose languages fail the gate (see the module);
    ``instrument`` is the one the verdicts are computed from."""
    gate = prereg.validity
    if gate is None:
        return
    path = run_dir / "analysis" / "validity.csv"
    validity = pd.read_csv(path) if path.exists() else None
    failing = unmet(gate, validity, list(study.factors.languages), instrument)
    for h, row in zip(prereg.hypotheses, rows, strict=True):
        if h.exploratory or row["verdict"] == "descriptive":
            continue
        used = languages_of(h, list(study.factors.languages))
        reasons = [f"{lang}: {failing[lang]}" for lang in used if lang in failing]
        if reasons:
            row["verdict"] = NOT_VALIDATED
            row["reason"] = "the measure is not validated for " + "; ".join(reasons)
            row["note"] = "; ".join(
                filter(None, [row["note"], "measure not validated: " + "; ".join(reasons)])
            )
