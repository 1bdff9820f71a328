"""The Collective Pathology Index (CPI) and the Dissociation Index (DI).

Both are weighted sums of z-scores of three components (weights from the study config)::

    CPI = z(monologue ratio) + z(coercive rate) - z(protective rate)
    DI  = z(monologue ratio) + z(protective rate) - z(coercive rate)

so CPI + DI = 2 z(monologue ratio) and DI - CPI = 2 (z(protective) - z(coercive)): the
indices are not independent, and every result on them is shown with its components.

The z-score reference is the study's ``scoring.zscore_scope``:

* ``within`` (the default): within each language, scaled by the language's pooled
  within-cell SD (each cell's deviations from its own mean, cells being language x
  alignment x individuation x model) and centred on the mean of the language's cell
  means. Units (words, or characters for ja/zh/th) and lexicon sensitivity differ between
  languages; standardising within language cancels both, and a within-cell SD is not
  inflated by the treatment effect itself, while pooling every cell of the language gives
  it far more degrees of freedom than the control cell alone. Every cell enters the
  centre with the same weight, so no cell's sampling error is shared by the others.
* ``control``: the same scale, centred on the mean of the language's control cell (its
  lowest alignment and individuation ratios: 0% and 0% in every shipped study), so the
  control cell reads 0. Its mean is estimated from that cell alone, and its error is
  shared by every other cell of the language as a common step away from the control
  cell: a model with a random alignment slope per language absorbs that step as slope
  variance and is conservative (on the null world's Study 2 its DI slope test rejected
  0 of 99 times at alpha = .05). Differences between cells are the same as ``within``'s.
* ``language``: plain z within each language (mean and SD of all its rows).
* ``model``: plain z within each model.
* ``pooled``: plain z over all scored rows (puts per-character and per-word rates on
  one scale; kept as a sensitivity analysis).

z uses the sample standard deviation (ddof = 1); a component with no variation in its
reference set contributes 0. The rate is the per-1,000-units rate, or the raw count when
``normalisation`` is ``raw``. Every other scope is computed too, as ``cpi__<scope>`` and
``di__<scope>`` columns, for the preregistered sensitivity analysis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alignbf.config.study import IndexWeights, Scoring

INDICES_VERSION = "2.1.0"
SCOPES = ("within", "control", "language", "pooled", "model")
SCOPE_COLUMN = {"pooled": None, "language": "language", "model": "model"}
CELL = ["language", "alignment_ratio", "individuation_ratio", "model"]
COMPONENTS = ("monologue_ratio", "coercive", "protective")


def _plain_z(values: pd.Series, groups: pd.Series) -> pd.Series:
    mean = values.groupby(groups).transform("mean")
    sd = values.groupby(groups).transform(lambda v: v.std(ddof=1))
    return (values - mean) / sd.where(sd > 0)


def _within_z(frame: pd.DataFrame, values: pd.Series, centre_on: str) -> pd.Series:
    """z within each language, scaled by its pooled within-cell SD and centred on the mean
    of its cell means (``within``) or on its control cell's mean (``control``)."""
    cells = [c for c in CELL if c in frame.columns]
    data = frame[cells].assign(_v=values)
    cell_mean = data.groupby(cells)["_v"].transform("mean")
    deviation = data["_v"] - cell_mean
    df = data.groupby(cells)["_v"].transform("count") - 1
    by_language = pd.DataFrame({"language": frame["language"], "sq": deviation**2, "df": df})
    first = ~data.duplicated(cells)
    totals = by_language.groupby("language").agg(sq=("sq", "sum"))
    totals["df"] = by_language[first].groupby("language")["df"].sum()
    sd = np.sqrt(totals["sq"] / totals["df"].where(totals["df"] > 0))
    language = frame["language"]
    if centre_on == "control":
        lowest = frame.groupby("language")[["alignment_ratio", "individuation_ratio"]].transform(
            "min"
        )
        control = (frame["alignment_ratio"] == lowest["alignment_ratio"]) & (
            frame["individuation_ratio"] == lowest["individuation_ratio"]
        )
        centre = data["_v"].where(control).groupby(language).mean()
    else:
        centre = cell_mean[first].groupby(language[first]).mean()
    scale = language.map(sd)
    return (values - language.map(centre)) / scale.where(scale > 0)


def zscore(frame: pd.DataFrame, column: str, scope: str) -> pd.Series:
    """z-scores of ``column`` against the scope's reference (see the module docstring)."""
    values = frame[column].astype(float)
    if scope in ("within", "control"):
        z = _within_z(frame, values, scope)
    else:
        by = SCOPE_COLUMN[scope]
        groups = pd.Series(0, index=frame.index) if by is None else frame[by]
        z = _plain_z(values, groups)
    return z.fillna(0.0).where(values.notna())


def _index(z: dict[str, pd.Series], weights: IndexWeights) -> pd.Series:
    return (
        weights.monologue_ratio * z["monologue_ratio"]
        + weights.coercive * z["coercive"]
        + weights.protective * z["protective"]
    )


def _components(frame: pd.DataFrame, scoring: Scoring, scope: str) -> dict[str, pd.Series]:
    suffix = "_rate" if scoring.normalisation == "per_1000_units" else ""
    columns = {"monologue_ratio": "monologue_ratio"}
    columns.update(coercive=f"coercive{suffix}", protective=f"protective{suffix}")
    return {name: zscore(frame, column, scope) for name, column in columns.items()}


def add_indices(frame: pd.DataFrame, scoring: Scoring) -> pd.DataFrame:
    """Return ``frame`` with ``z_*``, ``cpi`` and ``di`` columns and the scope recorded.

    ``cpi``/``di`` and ``z_<component>`` use the primary scope; ``cpi__<scope>``,
    ``di__<scope>`` and ``z_<component>__<scope>`` every scope (the primary one included).
    """
    out = frame.copy()
    for scope in SCOPES:
        z = _components(out, scoring, scope)
        for name, series in z.items():
            out[f"z_{name}__{scope}"] = series
        out[f"cpi__{scope}"] = _index(z, scoring.cpi)
        out[f"di__{scope}"] = _index(z, scoring.di)
    primary = scoring.zscore_scope
    for name in COMPONENTS:
        out[f"z_{name}"] = out[f"z_{name}__{primary}"]
    out["cpi"] = out[f"cpi__{primary}"]
    out["di"] = out[f"di__{primary}"]
    out["z_scope"] = primary
    out["indices_version"] = INDICES_VERSION
    return out
