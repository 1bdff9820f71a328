"""Display views of the analysis frames, shared by the terminal, Markdown and HTML.

The analysis frames keep full precision; these views format numbers for reading
(three decimals, p-values as ``< .0001`` below that) and pick the columns a reader needs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from alignbf.analysis.attrition import EXCLUDED, add_response_shares
from alignbf.scoring.lexicon import CATEGORIES

if TYPE_CHECKING:
    from alignbf.analysis.analyze import Analysis

VERDICT_STYLE = {
    "supported": "green",
    "not_supported": "red",
    "inconclusive": "yellow",
    "descriptive": "cyan",
}


def fmt(value: Any) -> str:
    """A cell as text: floats with three decimals (or thousands), NaN as ``–``."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.3f}"
    return str(value)


def fmt_p(p: float) -> str:
    """A p-value: ``< .0001`` below 1e-4, four decimals otherwise, ``–`` when missing."""
    if not isinstance(p, float) or math.isnan(p):
        return "–"
    return "< .0001" if p < 1e-4 else f"{p:.4f}"


def ci_text(row: Any) -> str:
    """``[ci_low, ci_high]``, or ``–`` when the estimator gives no interval."""
    if math.isnan(row.ci_low) and math.isnan(row.ci_high):
        return "–"
    return f"[{fmt(float(row.ci_low))}, {fmt(float(row.ci_high))}]"


def verdict_view(verdicts: pd.DataFrame, full: bool = True, locked: bool = True) -> pd.DataFrame:
    """The verdict table for reading.

    Args:
        verdicts: The verdict frame of an analysis.
        full: Add ``expected``, ``estimator`` and ``paper``; the terminal leaves them out.
        locked: Whether the run was made under a preregistration lock; without one a
            confirmatory verdict reads "supported (not locked)", never plain "supported".

    Returns:
        One row per hypothesis with the text columns ``id``, ``statement``
        (marked "(exploratory)" when so), [``expected``, ``estimator``,] ``estimate``,
        ``CI``, ``p``, ``p_adj``, ``verdict`` [, ``why`` (the verdict's reason in words)
        and ``paper``, the reference].
    """
    rows = [
        {
            "id": r.id,
            "statement": r.statement + (" (exploratory)" if r.exploratory else ""),
            "expected": r.expected,
            "estimator": r.estimator,
            "estimate": fmt(float(r.estimate)),
            "CI": ci_text(r),
            "p": fmt_p(r.p_val),
            "p_adj": fmt_p(r.p_adj),
            "verdict": r.verdict
            + (
                " (not locked)"
                if not locked and not r.exploratory and r.verdict in ("supported", "not_supported")
                else ""
            ),
            "why": getattr(r, "reason", ""),
            "paper": r.reference,
        }
        for r in verdicts.itertuples()
    ]
    frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["id"])
    return frame if full else frame.drop(columns=["expected", "estimator", "why", "paper"])


def attrition_view(attrition: pd.DataFrame, max_rows: int | None = None) -> pd.DataFrame:
    """The attrition table for reading, collapsed to one row per language when long.

    Args:
        attrition: The frame from :func:`alignbf.analysis.attrition.attrition`.
        max_rows: Collapse cells to languages (per source and model) above this many rows.

    Returns:
        Text columns ``source``, ``language``, ``alignment``, ``individuation``, ``model``,
        ``planned``, ``run``, ``ok``, ``analysed``, ``excluded``, the excluded statuses
        that occur, ``pending`` / ``not_started`` when any, then the shares of the
        replies that broke the format (``format_failures``) and that refused the task
        (``refusals``), and ``content_filter`` (calls) when any.
    """
    frame = attrition.copy()
    if max_rows is not None and len(frame) > max_rows:
        counts = [c for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])]
        frame = frame.groupby(["source", "model", "language"], sort=False)[counts].sum()
        frame = frame.reset_index().assign(alignment_ratio="all", individuation_ratio="all")
        if "replies" in frame:
            frame = add_response_shares(frame)
    frame = frame.rename(
        columns={"alignment_ratio": "alignment", "individuation_ratio": "individuation"}
    )
    keep = [
        "source",
        "language",
        "alignment",
        "individuation",
        "model",
        "planned",
        "run",
        "ok",
        "analysed",
        "excluded",
    ]
    keep += [c for c in [*EXCLUDED, "pending", "not_started"] if frame[c].sum() > 0]
    if "refusal_share" in frame:
        frame["format_failures"] = frame["format_failure_share"].map(_share)
        frame["refusals"] = frame["refusal_share"].map(_share)
        frame["content_filter"] = frame["content_filter_calls"]
        keep += ["format_failures", "refusals"]
        keep += ["content_filter"] if frame["content_filter_calls"].sum() > 0 else []
    return frame[keep].astype(str)


def _share(value: float) -> str:
    return "–" if pd.isna(value) else f"{100 * value:.1f}%"


NARROW = 120
"""Terminal width below which long text columns are left out of printed tables."""


LONG_TEXT = ("statement", "paper", "why")
"""Columns left out of printed tables in a terminal narrower than :data:`NARROW`."""
KEEP_WHOLE = ("id", "verdict", "outcome", "language", "cell", "estimate [CI]", "p_adj")
"""Columns never folded in a printed table (ids and outcomes stay readable)."""
CONSTANT = ("source", "alignment", "individuation", "model")
"""Design columns printed in the title instead when every row has the same value."""


def _compact_attrition(frame: pd.DataFrame) -> pd.DataFrame:
    """An attrition view for a narrow terminal: the design columns joined into one
    ``cell`` column, counts that repeat ``planned`` or are all zero left out (the CONSORT
    line printed below the table carries the totals)."""
    design = [c for c in ("source", "language", *CONSTANT[1:]) if c in frame.columns]
    out = frame.drop(columns=design)
    out.insert(0, "cell", frame[design].astype(str).agg(" ".join, axis=1))
    same = [c for c in ("registered", "run") if c in out and (out[c] == out["planned"]).all()]
    zero = [c for c in out.columns[1:] if (out[c].astype(str) == "0").all()]
    out = out.drop(columns=same + zero)
    return out.rename(columns={"format_failures": "format", "content_filter": "filtered"})


def rich_table(frame: pd.DataFrame, title: str) -> Any:
    """A rich Table of a text frame; a ``verdict`` column is coloured.

    In a terminal narrower than 120 columns the long text columns (``statement``,
    ``paper``, ``why``) are left out; the report and ``--json`` carry them. Design columns
    with one value over all rows move into the title, and ids, outcomes and verdicts are
    never folded, so the table reads at 80 columns.
    """
    from rich.console import Console
    from rich.table import Table

    if Console().width < NARROW:
        frame = frame.drop(columns=[c for c in LONG_TEXT if c in frame.columns])
    if len(frame) > 1:
        same = [c for c in CONSTANT if c in frame.columns and frame[c].nunique() == 1]
        if same:
            title += " — " + ", ".join(f"{c} {frame[c].iloc[0]}" for c in same)
            frame = frame.drop(columns=same)
    if Console().width < NARROW and "planned" in frame.columns:
        frame = _compact_attrition(frame)
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(
            str(column),
            overflow="fold",
            ratio=4 if column in LONG_TEXT else None,
            no_wrap=column in KEEP_WHOLE,
        )
    for row in frame.itertuples(index=False):
        cells = [fmt(v) for v in row]
        if "verdict" in frame.columns:
            i = list(frame.columns).index("verdict")
            style = VERDICT_STYLE.get(cells[i].split(" ")[0], "")
            cells[i] = f"[{style}]{cells[i]}[/]" if style else cells[i]
        table.add_row(*cells)
    return table


def _compact_verdicts(verdicts: pd.DataFrame, view: pd.DataFrame) -> pd.DataFrame:
    """The verdict view for a narrow terminal: estimate and CI in one column with two
    decimals, the adjusted p only, "(not locked)" as ``*``."""

    def two(value: float) -> str:
        return "–" if math.isnan(value) else f"{value:.2f}"

    est = [
        two(float(r.estimate))
        + ("" if math.isnan(r.ci_low) else f" [{two(float(r.ci_low))}, {two(float(r.ci_high))}]")
        for r in verdicts.itertuples()
    ]
    return pd.DataFrame(
        {
            "id": view["id"],
            "estimate [CI]": est,
            "p_adj": view["p_adj"],
            "verdict": view["verdict"].str.replace(" (not locked)", " *", regex=False),
        }
    )


def analysis_renderables(analysis: Analysis) -> list[Any]:
    """What ``alignbf analyze`` prints, in order: the synthetic warning (if any), the
    attrition table and its CONSORT line, then the verdict table."""
    from rich.console import Console

    from alignbf.analysis.attrition import flow

    out: list[Any] = []
    if analysis.synthetic:
        out.append(f"[bold yellow]SYNTHETIC DATA (backend {analysis.backend}): not model output[/]")
    title = f"Attrition: {analysis.run_dir} ({analysis.study.name})"
    out.append(rich_table(attrition_view(analysis.attrition, max_rows=24), title))
    totals = flow(analysis.attrition[analysis.attrition["source"] == "main"])
    out.append(
        f"planned {totals['planned']} → run {totals['run']} → ok {totals['ok']} → "
        f"analysed {totals['analysed']}"
    )
    verdicts = verdict_view(analysis.verdicts, full=False, locked=analysis.locked)
    narrow = Console().width < NARROW
    if narrow:
        verdicts = _compact_verdicts(analysis.verdicts, verdicts)
    out.append(rich_table(verdicts, f"Verdicts ({analysis.prereg_path.name})"))
    if not analysis.locked and not analysis.notice:
        out.append(
            f"[yellow]{'* ' if narrow else ''}not locked: the run was made without `alignbf "
            "prereg lock`, so its verdicts are exploratory[/]"
        )
    if analysis.notice:
        out.append(f"[yellow]{analysis.notice}[/]")
    return out


def analysis_json(analysis: Analysis) -> dict[str, Any]:
    """The analysis as JSON-ready data: attrition first, then verdicts and files."""
    import json

    return {
        "study": analysis.study.name,
        "run_dir": str(analysis.run_dir),
        "backend": analysis.backend,
        "synthetic": analysis.synthetic,
        "attrition": json.loads(analysis.attrition.to_json(orient="records")),
        "verdicts": json.loads(analysis.verdicts.to_json(orient="records")),
        "files": [str(p) for p in analysis.paths],
    }


def component_view(components: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Each CPI/DI estimate beside the parts its three weighted components give.

    Columns ``id``, ``outcome``, ``estimate``, one per component and ``driver``.
    """
    if components.empty:
        return pd.DataFrame(columns=["id", "outcome", "estimate", "driver"])
    wide = components.pivot_table(
        index=["id", "outcome"], columns="component", values="estimate", sort=False
    )
    main = verdicts.set_index("id")
    rows = []
    for (hid, outcome), parts in wide.iterrows():
        rows.append(
            {"id": hid, "outcome": outcome, "estimate": fmt(float(main.loc[hid, "estimate"]))}
            | {f"{c} part": fmt(float(v)) for c, v in parts.items()}
            | {"driver": main.loc[hid, "driver"]}
        )
    return pd.DataFrame(rows)


def sensitivity_view(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """Verdict and estimate of each CPI/DI hypothesis under every z-score reference.

    Columns ``id``, one ``<scope>`` column per reference (primary first, marked with
    ``*``) holding ``estimate verdict``, and ``changes`` (``yes`` when they disagree).
    """
    if sensitivity.empty:
        return pd.DataFrame(columns=["id", "changes"])
    order = list(dict.fromkeys(sensitivity.sort_values("primary", ascending=False)["scope"]))
    primary = sensitivity.loc[sensitivity["primary"], "scope"].iloc[0]
    rows = []
    for hid, part in sensitivity.groupby("id", sort=False):
        by = part.set_index("scope")
        row: dict[str, str] = {"id": str(hid)}
        for scope in order:
            label = f"{scope}*" if scope == primary else scope
            row[label] = f"{fmt(float(by.loc[scope, 'estimate']))} {by.loc[scope, 'verdict']}"
        row["changes"] = "yes" if part["verdict"].nunique() > 1 else "no"
        rows.append(row)
    return pd.DataFrame(rows)


def echo_found(simulations: pd.DataFrame) -> pd.Series | None:
    """Lexicon hits found per simulation, echoes included (``None`` without echo counts)."""
    if "echoed" not in simulations.columns or not set(CATEGORIES) <= set(simulations.columns):
        return None
    return simulations[list(CATEGORIES)].sum(axis=1) + simulations["echoed"]


def echo_view(simulations: pd.DataFrame) -> pd.DataFrame:
    """Percent of lexicon hits left out as echoes of the instructions, pooled over each
    cell's simulations: one row per language (and model, when there are several), one
    column per alignment ratio (and individuation ratio, when it varies)."""
    found = echo_found(simulations)
    if found is None:
        return pd.DataFrame()
    frame = simulations.assign(found=found)
    rows = ["language"] + (["model"] if frame["model"].nunique() > 1 else [])
    columns = ["alignment_ratio"]
    if frame["individuation_ratio"].nunique() > 1:
        columns.append("individuation_ratio")
    pooled = frame.groupby(rows + columns)[["echoed", "found"]].sum()
    share = (100 * pooled["echoed"] / pooled["found"].where(pooled["found"] > 0)).unstack(columns)
    view = share.map(lambda v: "–" if math.isnan(v) else f"{v:.1f}")
    view.columns = [
        " / ".join(
            f"{name.split('_')[0]} {value:g}" for name, value in zip(columns, key, strict=True)
        )
        if isinstance(key, tuple)
        else f"alignment {key:g}"
        for key in view.columns
    ]
    return view.reset_index().astype(str)
