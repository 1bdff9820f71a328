"""The analysis of a study with no preregistration: default exploratory contrasts.

A user's own study need not be preregistered to be analysed. Its analysis reports, per
language, Hedges' g of CPI and DI at the highest vs the lowest alignment ratio (at the
lowest individuation level), and the CPI and DI slopes on the alignment ratio over all
languages (OLS with a language intercept). Every result is descriptive and labelled
exploratory: no verdict, no family, no confirmation. The hypotheses are written as a
preregistration file under the run's ``analysis/``, ready to be edited, moved to
``prereg/`` and locked with ``alignbf prereg lock``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from alignbf.config.study import Study
from alignbf.store.store import write_atomic

HOW_TO = (
    "no preregistration: exploratory contrasts only; to preregister, copy {path} to "
    "prereg/, state the expected directions and name it under prereg: in the study, then "
    "run `alignbf prereg lock`"
)


def _hypothesis(hid: str, statement: str, outcome: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": hid,
        "statement": statement,
        "outcome": outcome,
        "expected": "positive",
        "family": "exploratory",
        "decision": "descriptive",
        "exploratory": True,
        "reference": {"statistic": "none", "source": "assumed", "text": "no original"},
        **fields,
    }


def default_prereg(study: Study) -> dict[str, Any]:
    """The default exploratory hypotheses of a study, as preregistration data."""
    f = study.factors
    high, low = max(f.alignment_ratios), min(f.alignment_ratios)
    hypotheses = []
    for language in f.languages:
        for outcome in ("cpi", "di"):
            if high == low:
                continue
            hypotheses.append(
                _hypothesis(
                    f"x_{language}_{outcome}",
                    f"{outcome.upper()} at {high:g} vs {low:g} alignment-instructed agents in "
                    f"{language} (Hedges' g).",
                    outcome,
                    subset={
                        "language": language,
                        "individuation_ratio": min(f.individuation_ratios),
                    },
                    estimator={
                        "type": "g_contrast",
                        "factor": "alignment_ratio",
                        "high": high,
                        "low": low,
                    },
                )
            )
    if len(f.alignment_ratios) > 1:
        language = " + C(language)" if len(f.languages) > 1 else ""
        for outcome in ("cpi", "di"):
            hypotheses.append(
                _hypothesis(
                    f"x_{outcome}_slope",
                    f"{outcome.upper()} per unit of alignment proportion over all languages (OLS).",
                    outcome,
                    estimator={
                        "type": "slope",
                        "formula": f"{outcome} ~ alignment_ratio{language}",
                        "term": "alignment_ratio",
                    },
                )
            )
    return {
        "study": study.name,
        "version": "exploratory",
        "description": "Default exploratory contrasts of a study with no preregistration.",
        "families": {"exploratory": {"method": "none", "description": "Not preregistered."}},
        "hypotheses": hypotheses,
    }


def write_default_prereg(run_dir: Path, study: Study) -> Path:
    """Write :func:`default_prereg` to ``RUN_DIR/analysis/exploratory_prereg.yaml``."""
    out = run_dir / "analysis"
    out.mkdir(exist_ok=True)
    path = out / "exploratory_prereg.yaml"
    text = yaml.safe_dump(default_prereg(study), sort_keys=False, allow_unicode=True)
    write_atomic(path, text)
    return path
