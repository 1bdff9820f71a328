"""Per-cell descriptives: n, mean and SD of CPI, DI and their three components.

Cells are language x alignment ratio x individuation ratio x model, in the study's
order. The components are the raw measures the indices standardise (monologue ratio,
coercive and protective rates), so a reader sees both what was counted and how the
indices moved.
"""

from __future__ import annotations

import pandas as pd

CELL = ["language", "alignment_ratio", "individuation_ratio", "model"]
OUTCOMES = ("cpi", "di", "monologue_ratio", "coercive_rate", "protective_rate")
DESCRIPTIVE_COLUMNS = [*CELL, "n"] + [f"{o}_{s}" for o in OUTCOMES for s in ("mean", "sd")]


def cell_descriptives(simulations: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: ``n`` and ``<outcome>_mean``, ``<outcome>_sd`` (ddof = 1) for
    CPI, DI, monologue ratio, coercive rate and protective rate. Outcomes missing from
    the scores (``raw`` normalisation has no rates) are left out."""
    present = [o for o in OUTCOMES if o in simulations.columns]
    if simulations.empty:
        return pd.DataFrame(columns=DESCRIPTIVE_COLUMNS)
    grouped = simulations.groupby(CELL, sort=False)
    out = grouped.size().rename("n").to_frame()
    for outcome in present:
        out[f"{outcome}_mean"] = grouped[outcome].mean()
        out[f"{outcome}_sd"] = grouped[outcome].std(ddof=1)
    out = out.reset_index()
    order = {name: i for i, name in enumerate(dict.fromkeys(simulations["language"]))}
    out = out.assign(_o=out["language"].map(order)).sort_values(
        ["_o", "model", "individuation_ratio", "alignment_ratio"]
    )
    return out.drop(columns="_o").reset_index(drop=True)
