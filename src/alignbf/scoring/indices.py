"""The Collective Pathology Index (CPI) and the Dissociation Index (DI).

Both are weighted sums of z-scores (weights from the study config)::

    CPI = z(monologue ratio) + z(coercive rate) - z(protective rate)
    DI  = z(monologue ratio) + z(protective rate) - z(coercive rate)

The z-score reference set is the study's ``scoring.zscore_scope``: ``pooled`` (all
scored rows), ``language`` (within each language) or ``model`` (within each model).
z uses the sample standard deviation (ddof = 1); a component with no variation in
its reference set contributes 0. The rate is the per-1,000-units rate, or the raw
count when ``normalisation`` is ``raw``.
"""

from __future__ import annotations

import pandas as pd

from alignbf.config.study import IndexWeights, Scoring

INDICES_VERSION = "1.0.0"
SCOPE_COLUMN = {"pooled": None, "language": "language", "model": "model"}


def zscore(frame: pd.DataFrame, column: str, scope: str) -> pd.Series:
    """z-scores of ``column`` within the scope's reference sets."""
    by = SCOPE_COLUMN[scope]
    values = frame[column].astype(float)
    groups = pd.Series(0, index=frame.index) if by is None else frame[by]
    mean = values.groupby(groups).transform("mean")
    sd = values.groupby(groups).transform(lambda v: v.std(ddof=1))
    z = (values - mean) / sd.where(sd > 0)
    return z.fillna(0.0).where(values.notna())


def _index(z: dict[str, pd.Series], weights: IndexWeights) -> pd.Series:
    return (
        weights.monologue_ratio * z["monologue_ratio"]
        + weights.coercive * z["coercive"]
        + weights.protective * z["protective"]
    )


def add_indices(frame: pd.DataFrame, scoring: Scoring) -> pd.DataFrame:
    """Return ``frame`` with ``z_*``, ``cpi`` and ``di`` columns and the scope recorded."""
    out = frame.copy()
    suffix = "_rate" if scoring.normalisation == "per_1000_units" else ""
    z = {
        "monologue_ratio": zscore(out, "monologue_ratio", scoring.zscore_scope),
        "coercive": zscore(out, f"coercive{suffix}", scoring.zscore_scope),
        "protective": zscore(out, f"protective{suffix}", scoring.zscore_scope),
    }
    for name, series in z.items():
        out[f"z_{name}"] = series
    out["cpi"] = _index(z, scoring.cpi)
    out["di"] = _index(z, scoring.di)
    out["z_scope"] = scoring.zscore_scope
    out["indices_version"] = INDICES_VERSION
    return out
