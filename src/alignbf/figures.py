"""Report figures as PNG bytes (matplotlib, Agg backend, imported on first use).

Each function takes a tidy frame and returns the PNG of one figure:

* :func:`forest`: one effect per row with its CI (per-language Hedges' g).
* :func:`by_ratio`: small multiples, one panel per group, of outcome means ± SE against
  the alignment ratio.
* :func:`scatter`: per-group effect against a group attribute, labelled, with r.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

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


def forest(effects: pd.DataFrame, title: str, xlabel: str) -> bytes:
    """Forest plot.

    Args:
        effects: One row per effect with columns ``label``, ``estimate``, ``ci_low``,
            ``ci_high``; drawn top to bottom in frame order.
        title: Figure title.
        xlabel: Axis label of the effect.
    """
    plt = _pyplot()
    n = len(effects)
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.32 * n))
    y = list(range(n))[::-1]
    colors = ["#b2182b" if e > 0 else "#2166ac" for e in effects["estimate"]]
    ax.hlines(y, effects["ci_low"], effects["ci_high"], color=colors, linewidth=1.6)
    ax.scatter(effects["estimate"], y, color=colors, zorder=3, s=28)
    ax.axvline(0, color="0.4", linewidth=0.8, linestyle="--")
    ax.set_yticks(y, [str(label) for label in effects["label"]])
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x", color="0.9")
    return _png(fig)


def by_ratio(means: pd.DataFrame, outcomes: list[str], panel: str = "language") -> bytes:
    """Outcome means ± SE against the alignment ratio, one panel per ``panel`` value.

    Args:
        means: Columns ``panel``, ``alignment_ratio``, ``outcome``, ``mean``, ``se``.
        outcomes: Outcomes drawn as separate lines in every panel.
        panel: Column naming the panel of each row.
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
            ax.errorbar(line["alignment_ratio"], line["mean"], yerr=line["se"], label=outcome,
                        color=color, marker="o", markersize=3, capsize=2, linewidth=1.2)  # fmt: skip
        ax.axhline(0, color="0.6", linewidth=0.6)
        ax.set_title(str(name), fontsize=10)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("alignment ratio")
    axes.flat[0].legend(fontsize=8, frameon=False)
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
        ax.annotate(str(row["label"]), (row["x"], row["y"]), xytext=(3, 3),
                    textcoords="offset points", fontsize=8)  # fmt: skip
    slope, intercept = np.polyfit(points["x"].astype(float), points["y"].astype(float), 1)
    xs = np.linspace(float(points["x"].min()), float(points["x"].max()), 20)
    ax.plot(xs, intercept + slope * xs, color="#b2182b", linewidth=1)
    ax.axhline(0, color="0.6", linewidth=0.6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    return _png(fig)
