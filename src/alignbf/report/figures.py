"""Report figures as PNG bytes (matplotlib, Agg backend, imported on first use).

Each function takes a tidy frame and returns the PNG of one figure:

* :func:`forest`: one effect per row with its CI (per-language Hedges' g).
* :func:`by_ratio`: small multiples, one panel per group, of outcome means ± SE against
  the alignment ratio.
* :func:`scatter`: per-group effect against a group attribute, labelled, with r.

:func:`report_figures` draws the report's figures from an analysis: the forest plot of
per-language g (CPI, 100% vs 0% aligned), CPI and DI by ratio per language, and the
per-language CPI slope against Power Distance (with three or more languages).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from alignbf.analysis.estimators import group_effects
from alignbf.config.hypotheses import PerGroup
from alignbf.errors import AlignbfError, AnalysisError

if TYPE_CHECKING:
    from alignbf.analysis.analyze import Analysis

DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def forest(
    effects: pd.DataFrame,
    title: str,
    xlabel: str,
    original: dict[str, float] | None = None,
) -> bytes:
    """Forest plot.

    Args:
        effects: One row per effect with columns ``label``, ``estimate``, ``ci_low``,
            ``ci_high`` (and ``n``, shown beside the label); drawn top to bottom in frame
            order.
        title: Figure title.
        xlabel: Axis label of the effect.
        original: Label -> the original study's estimate, drawn as an open diamond.
    """
    plt = _pyplot()
    n = len(effects)
    fig, ax = plt.subplots(figsize=(7, 1.1 + 0.32 * n))
    y = list(range(n))[::-1]
    colors = ["#b2182b" if e > 0 else "#2166ac" for e in effects["estimate"]]
    ax.hlines(y, effects["ci_low"], effects["ci_high"], color=colors, linewidth=1.6)
    ax.scatter(effects["estimate"], y, color=colors, zorder=3, s=28, label="this run (95% CI)")
    marks = [(yy, original[str(label)]) for yy, label in zip(y, effects["label"], strict=True)
             if original and str(label) in original]  # fmt: skip
    if marks:
        ax.scatter([m[1] for m in marks], [m[0] for m in marks], marker="D", s=40, zorder=4,
                   facecolors="none", edgecolors="black", label="original study")  # fmt: skip
        ax.legend(fontsize=8, frameon=False, loc="best")
    ax.axvline(0, color="0.4", linewidth=0.8, linestyle="--")
    labels = [str(label) for label in effects["label"]]
    if "n" in effects.columns:
        labels = [f"{label} (n = {int(k)})" for label, k in zip(labels, effects["n"], strict=True)]
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cell")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", color="0.9")
    return _png(fig)


def by_ratio(
    means: pd.DataFrame,
    outcomes: list[str],
    panel: str = "language",
    title: str = "",
    ylabel: str = "mean ± SE",
) -> bytes:
    """Outcome means ± SE against the alignment ratio, one panel per ``panel`` value.

    Args:
        means: Columns ``panel``, ``alignment_ratio``, ``outcome``, ``mean``, ``se`` (and
            ``n``, the simulations of the panel, shown in its title).
        outcomes: Outcomes drawn as separate lines in every panel.
        panel: Column naming the panel of each row.
        title: Figure title.
        ylabel: Axis label of the means.
    """
    plt = _pyplot()
    panels = list(dict.fromkeys(means[panel]))
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 2.5 * rows), sharex=True, sharey=True, squeeze=False
    )
    for ax, name in zip(axes.flat, panels, strict=False):
        part = means[means[panel] == name]
        for outcome, color in zip(outcomes, ("#b2182b", "#2166ac", "#1b7837"), strict=False):
            line = part[part["outcome"] == outcome].sort_values("alignment_ratio")
            ax.errorbar(
                line["alignment_ratio"],
                line["mean"],
                yerr=line["se"],
                label=outcome,
                color=color,
                marker="o",
                markersize=3,
                capsize=2,
                linewidth=1.2,
            )
        ax.axhline(0, color="0.6", linewidth=0.6)
        count = f" (n = {int(part['n'].iloc[0])})" if "n" in part.columns else ""
        ax.set_title(f"{name}{count}", fontsize=10)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("alignment ratio")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    axes.flat[0].legend(fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


def scatter(points: pd.DataFrame, xlabel: str, ylabel: str, title: str) -> bytes:
    """Labelled scatter with a least-squares line.

    Args:
        points: Columns ``label``, ``x``, ``y``.
        xlabel: Axis label of ``x``.
        ylabel: Axis label of ``y``.
        title: Figure title (carry r and p here).
    """
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.scatter(points["x"], points["y"], color="#4d4d4d", s=24)
    for _, row in points.iterrows():
        ax.annotate(
            str(row["label"]),
            (row["x"], row["y"]),
            xytext=(3, 3),
            textcoords="offset points",
            fontsize=8,
        )
    slope, intercept = np.polyfit(points["x"].astype(float), points["y"].astype(float), 1)
    xs = np.linspace(float(points["x"].min()), float(points["x"].max()), 20)
    ax.plot(xs, intercept + slope * xs, color="#b2182b", linewidth=1)
    ax.axhline(0, color="0.6", linewidth=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    return _png(fig)


@dataclass(frozen=True)
class Figure:
    """One figure of the report: file stem, PNG bytes and caption."""

    name: str
    png: bytes
    caption: str


def _labelled(analysis: Analysis) -> pd.DataFrame:
    """Simulation scores with a ``label`` per cell: the language, plus the model and the
    individuation ratio when they vary, and a ``rank`` that orders cells as the study."""
    sims = analysis.scores.simulations
    languages = {code: i for i, code in enumerate(analysis.study.factors.languages)}
    models = {m: i for i, m in enumerate(analysis.study.factors.models)}
    labels = sims["language"].astype(str)
    if sims["model"].nunique() > 1:
        labels = labels + " · " + sims["model"]
    if sims["individuation_ratio"].nunique() > 1:
        labels = labels + " · individuated " + sims["individuation_ratio"].map("{:g}".format)
    rank = sims["language"].map(languages).fillna(99) * 100 + sims["model"].map(models).fillna(99)
    rank = rank + sims["individuation_ratio"].astype(float) / 10
    return sims.assign(label=labels, rank=rank).sort_values(["rank", "alignment_ratio"])


def forest_figure(analysis: Analysis) -> Figure:
    """Per-cell Hedges' g of CPI, 100% vs 0% aligned, with 95% CIs."""
    sims = _labelled(analysis)
    effects, _ = group_effects(sims, "cpi", PerGroup(effect="g", by="label"))
    if effects.empty:
        raise AnalysisError(
            "Forest plot not drawn: Hedges' g of CPI (100% vs 0% aligned) needs cells run at "
            "both 0% and 100% alignment, and no cell of this run has both."
        )
    order = list(dict.fromkeys(sims["label"]))
    effects = effects.set_index("label").loc[[x for x in order if x in set(effects["label"])]]
    original = original_g(analysis, sims)
    png = forest(
        effects.reset_index(),
        f"CPI, 100% vs 0% aligned agents: Hedges' g with 95% CI{_status(analysis)}",
        "Hedges' g (positive = alignment raises collective pathology)",
        original,
    )
    caption = "Per-cell Hedges' g of CPI, 100% vs 0% aligned (n = simulations in both cells)"
    if original:
        caption += "; open diamonds: the original study's estimates"
    return Figure("forest_cpi_g", png, caption + _status(analysis))


def _status(analysis: Analysis) -> str:
    """`` — exploratory`` when the run's verdicts are exploratory (no lock, or no
    preregistration), else nothing."""
    return "" if analysis.locked and not analysis.notice else " — exploratory"


def original_g(analysis: Analysis, sims: pd.DataFrame) -> dict[str, float]:
    """Cell label -> the original study's Hedges' g of CPI (100% vs 0%), from the
    preregistration's references of ``g_contrast`` hypotheses on this run's cells."""
    from alignbf.config.hypotheses import GContrast, load_prereg

    try:
        prereg = load_prereg(analysis.prereg_path)
    except AlignbfError:
        return {}
    out = {}
    for h in prereg.hypotheses:
        spec, ref = h.estimator, h.reference
        if not isinstance(spec, GContrast) or h.outcome != "cpi" or h.input is not None:
            continue
        if ref.statistic != "g" or ref.value is None or (spec.high, spec.low) != (1.0, 0.0):
            continue
        rows = sims
        for column, wanted in h.subset.items():
            if column not in rows.columns or isinstance(wanted, list):
                rows = rows.iloc[0:0]
                break
            rows = rows[rows[column] == wanted]
        labels = set(rows["label"])
        if len(labels) == 1:
            out[labels.pop()] = float(ref.value)
    return out


def ratio_figure(analysis: Analysis) -> Figure:
    """CPI and DI means ± SE against the alignment ratio, one panel per cell label."""
    sims = _labelled(analysis)
    if sims["alignment_ratio"].nunique() < 2:
        raise AnalysisError(
            "CPI and DI by alignment ratio not drawn: the plot needs two or more alignment "
            "ratios, and this run has one."
        )
    long = sims.melt(
        id_vars=["label", "rank", "alignment_ratio"], value_vars=["cpi", "di"], var_name="outcome"
    )
    grouped = long.groupby(["rank", "label", "alignment_ratio", "outcome"])["value"]
    means = grouped.agg(
        mean="mean", se=lambda v: v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
    ).reset_index()
    counts = sims.groupby("label")["sim_id"].count().rename("n").reset_index()
    means = means.merge(counts, on="label")
    title = f"CPI and DI by alignment ratio{_status(analysis)}"
    png = by_ratio(means, ["cpi", "di"], panel="label", title=title, ylabel="index (mean ± SE)")
    caption = "Mean CPI and DI (± SE) by alignment ratio; n = simulations per panel"
    return Figure("cpi_di_by_ratio", png, caption + _status(analysis))


def pdi_figure(analysis: Analysis) -> Figure:
    """Per-language CPI slope on the alignment ratio against Hofstede's PDI, with r."""
    from alignbf.analysis.stats import pearson
    from alignbf.config.study import load_languages

    sims = analysis.scores.simulations
    effects, _ = group_effects(sims, "cpi", PerGroup(effect="slope", by="language"))
    if len(effects) < 3:
        raise AnalysisError(
            "Power Distance scatter not drawn: it plots each language's CPI slope on the "
            "alignment ratio against Hofstede's Power Distance Index (PDI) and needs 3 or more "
            f"languages with a slope; this run has {len(effects)}."
        )
    languages = load_languages()
    points = pd.DataFrame(
        {
            "label": effects["language"],
            "x": [float(languages[code]["pdi"]) for code in effects["language"]],
            "y": effects["estimate"].astype(float),
        }
    )
    test = pearson(points["y"], points["x"]).iloc[0]
    title = f"r = {test['estimate']:.3f}, p = {test['p_val']:.4f}, n = {len(points)} languages"
    png = scatter(
        points,
        "Hofstede Power Distance Index",
        "CPI slope on alignment ratio",
        title + _status(analysis),
    )
    caption = f"Per-language CPI alignment slope vs PDI ({title})"
    return Figure("pdi_scatter", png, caption + _status(analysis))


def report_figures(analysis: Analysis) -> tuple[list[Figure], list[str]]:
    """Every figure the run's data allow, and a note for each one skipped."""
    made, skipped = [], []
    for maker in (forest_figure, ratio_figure, pdi_figure):
        try:
            made.append(maker(analysis))
        except AnalysisError as exc:
            skipped.append(str(exc))
    return made, skipped
