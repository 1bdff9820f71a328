"""Attrition per design cell: planned, run, ok and analysed simulations (CONSORT flow).

Planned counts come from the study config (cells after exclusions, times replicates),
the rest from the ``simulations`` table of the run and from its scores. Nothing is
dropped silently: every planned simulation is in exactly one of ``not_started``,
``pending``, an excluded status, or ``analysed``.
"""

from __future__ import annotations

import pandas as pd

from alignbf.config.study import Study
from alignbf.engine.grid import cells
from alignbf.store import reader
from alignbf.store.store import Store

CELL = ["language", "alignment_ratio", "individuation_ratio", "model"]
EXCLUDED = ["invalid_output", "infra_error", "failed", "stopped", "context_length"]
RESPONSE_COLUMNS = [
    "replies",
    "format_failures",
    "format_failure_share",
    "refusals",
    "refusal_share",
    "content_filter_calls",
]
"""What the replies of a cell's simulations were, beside its statuses."""
COLUMNS = [
    "source",
    *CELL,
    "planned",
    "registered",
    "run",
    "ok",
    "analysed",
    "excluded",
    *EXCLUDED,
    "pending",
    "not_started",
    *RESPONSE_COLUMNS,
]


def _planned(study: Study) -> pd.DataFrame:
    frame = pd.DataFrame(cells(study), columns=CELL)
    return frame.assign(planned=study.replicates)


def _statuses(store: Store) -> pd.DataFrame:
    frame = reader.cell_status_counts(store)
    wide = frame.pivot_table(index=CELL, columns="status", values="n", aggfunc="sum")
    return wide.reindex(columns=["ok", *EXCLUDED, "pending"]).fillna(0).astype(int).reset_index()


def _responses(store: Store) -> pd.DataFrame:
    """Per cell, over the simulations that ran: replies and format failures (simulations
    table), replies that refuse the task and content-filter finishes (see
    :func:`alignbf.scoring.refusals.simulation_refusals`), and their shares of the replies."""
    from alignbf.scoring.refusals import simulation_refusals

    sims = reader.cell_replies(store)
    counted = simulation_refusals(store)[["sim_id", "refusals", "content_filter_calls"]]
    sims = sims.merge(counted, on="sim_id", how="left")
    counts = ["replies", "format_failures", "refusals", "content_filter_calls"]
    sims[counts] = sims[counts].fillna(0).astype(int)
    return add_response_shares(sims.groupby(CELL)[counts].sum().reset_index())


def add_response_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """``format_failure_share`` and ``refusal_share`` of ``replies`` (NaN without replies)."""
    replies = frame["replies"].where(frame["replies"] > 0)
    frame["format_failure_share"] = frame["format_failures"] / replies
    frame["refusal_share"] = frame["refusals"] / replies
    return frame


def _analysed(scores: pd.DataFrame) -> pd.DataFrame:
    return scores.groupby(CELL).size().rename("analysed").reset_index()


def _merge_cells(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    for frame in (left, right):
        frame["alignment_ratio"] = frame["alignment_ratio"].astype(float).round(9)
        frame["individuation_ratio"] = frame["individuation_ratio"].astype(float).round(9)
    return left.merge(right, on=CELL, how="outer")


def attrition(
    store: Store, study: Study, scores: pd.DataFrame, source: str = "main"
) -> pd.DataFrame:
    """Attrition of one run, one row per design cell (plus cells run but not planned).

    Args:
        store: The run's store (read-only is enough).
        study: The study config recorded in the run.
        scores: The run's simulation scores (one row per analysed simulation).
        source: Label of the run (``main``, or an input name such as ``study1``).

    Returns:
        One row per cell with columns ``source``, ``language``, ``alignment_ratio``,
        ``individuation_ratio``, ``model``, ``planned`` (design), ``registered`` (rows in
        the simulations table), ``run`` (registered and not pending), ``ok``,
        ``analysed`` (scored), ``excluded`` (run but not analysed), one column per
        excluded status (``invalid_output``, ``infra_error``, ``failed``, ``stopped``,
        ``context_length``), ``pending`` and ``not_started`` (planned, never registered),
        then over the simulations that ran: ``replies``, ``format_failures``,
        ``format_failure_share``, ``refusals`` (replies that refuse the task or step out
        of role), ``refusal_share`` and ``content_filter_calls`` (responses that ended with
        ``finish_reason`` ``content_filter``).
    """
    frame = _merge_cells(_planned(study), _statuses(store))
    frame = _merge_cells(frame, _analysed(scores))
    frame = _merge_cells(frame, _responses(store))
    counts = ["planned", "ok", *EXCLUDED, "pending", "analysed"]
    counts += ["replies", "format_failures", "refusals", "content_filter_calls"]
    frame[counts] = frame[counts].fillna(0).astype(int)
    frame["registered"] = frame[["ok", *EXCLUDED, "pending"]].sum(axis=1)
    frame["run"] = frame["registered"] - frame["pending"]
    frame["excluded"] = frame["run"] - frame["analysed"]
    frame["not_started"] = (frame["planned"] - frame["registered"]).clip(lower=0)
    frame["source"] = source
    order = {
        "model": {m: i for i, m in enumerate(study.factors.models)},
        "language": {code: i for i, code in enumerate(study.factors.languages)},
    }
    frame = frame.sort_values(
        by=["model", "language", "individuation_ratio", "alignment_ratio"],
        key=lambda s: (
            s.map(order[str(s.name)]).fillna(len(order[str(s.name)])) if s.name in order else s
        ),
    )
    return frame[COLUMNS].reset_index(drop=True)


def flow(frame: pd.DataFrame) -> dict[str, int]:
    """Totals of the CONSORT flow: planned, run, ok, analysed and each excluded status."""
    keys = ["planned", "registered", "run", "ok", "analysed", *EXCLUDED, "pending", "not_started"]
    return {key: int(frame[key].sum()) for key in keys}


DIFFERENTIAL_COLUMNS = [
    "language", "model", "simulations", "replies", "format_failures", "failure_share_low",
    "failure_share_high", "excluded_low", "excluded_high", "slope", "p_val", "p_adj", "flagged",
]  # fmt: skip


def _quasi_binomial_slope(rows: pd.DataFrame) -> tuple[float, float]:
    """Log-odds slope of a reply's format failure on the alignment ratio, and its p-value,
    from a binomial GLM of per-simulation counts with Pearson-estimated dispersion (replies
    of one conversation are not independent)."""
    import math
    import warnings

    import statsmodels.api as sm

    used = rows[rows["replies"] > 0]
    failures, replies = used["format_failures"].to_numpy(float), used["replies"].to_numpy(float)
    if (
        used["alignment_ratio"].nunique() < 2
        or failures.sum() == 0
        or failures.sum() == replies.sum()
    ):
        return math.nan, 1.0
    exog = sm.add_constant(used["alignment_ratio"].to_numpy(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = sm.GLM(failures / replies, exog, family=sm.families.Binomial(), var_weights=replies)
        fit = model.fit(scale="X2")
    slope, p = float(fit.params[1]), float(fit.pvalues[1])
    return slope, p if math.isfinite(p) else 1.0


def differential_attrition(store: Store) -> pd.DataFrame:
    """Whether breaking the reply format (and so exclusion) depends on alignment.

    Per language and model, over every simulation that ran: the log-odds slope of a
    reply's format failure on the alignment ratio (quasi-binomial GLM) with its p-value,
    Holm-adjusted over the languages and models of the run; ``flagged`` when p_adj < .05.
    Also the failure share and the share of simulations excluded at the lowest and the
    highest alignment ratio.
    """
    return differential_table(reader.ran_simulations(store))


def differential_table(frame: pd.DataFrame) -> pd.DataFrame:
    """:func:`differential_attrition` of a frame of simulations (``language, model,
    alignment_ratio, format_failures, replies, status``)."""
    from alignbf.analysis.stats import p_adjust

    frame = frame.copy()
    frame[["format_failures", "replies"]] = frame[["format_failures", "replies"]].fillna(0)
    rows = []
    for (language, model), part in frame.groupby(["language", "model"], sort=False):
        low, high = part["alignment_ratio"].min(), part["alignment_ratio"].max()
        ends = {}
        for name, level in (("low", low), ("high", high)):
            at = part[part["alignment_ratio"] == level]
            replies = at["replies"].sum()
            ends[f"failure_share_{name}"] = (
                at["format_failures"].sum() / replies if replies else float("nan")
            )
            ends[f"excluded_{name}"] = float((at["status"] != "ok").mean())
        slope, p = _quasi_binomial_slope(part)
        rows.append(
            dict(
                language=language,
                model=model,
                simulations=len(part),
                replies=int(part["replies"].sum()),
                format_failures=int(part["format_failures"].sum()),
                **ends,
                slope=slope,
                p_val=p,
            )
        )
    out = pd.DataFrame(rows, columns=DIFFERENTIAL_COLUMNS[:-2])
    out["p_adj"] = p_adjust(out["p_val"], method="holm")["p_adj"].to_numpy() if len(out) else []
    out["flagged"] = out["p_adj"] < 0.05
    return out
