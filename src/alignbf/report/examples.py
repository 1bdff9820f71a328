"""The report's way into the transcripts: per cell, the highest- and lowest-CPI simulation.

Each row names the simulation, its CPI and the first line it said; when the viewer's
pages were exported beside the report (``alignbf view RUN --export RUN/viewer``), the id
links to that simulation's page.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from alignbf.report.transcript import excerpt
from alignbf.store import reader

CELL = ["language", "alignment_ratio", "individuation_ratio", "model"]
VIEWER_DIR = "viewer"
"""Where the report looks for exported viewer pages, beside ``report/`` in the run."""


def extremes(run_dir: Path, sims: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per cell and end (``highest``, ``lowest``): ``cell``, ``end``, ``sim_id``,
    ``cpi``, ``excerpt`` and ``href`` (relative to ``report/``, or None)."""
    if "cpi" not in sims.columns:
        return []
    scored = sims.dropna(subset=["cpi"])
    if scored.empty:
        return []
    picks = []
    for key, group in scored.groupby(CELL, sort=True):
        ordered = group.sort_values("cpi")
        ends = [("highest", ordered.iloc[-1])]
        if len(ordered) > 1:
            ends.append(("lowest", ordered.iloc[0]))
        cell = f"{key[0]} · alignment {key[1]:g} · individuation {key[2]:g} · {key[3]}"
        picks += [(cell, end, row) for end, row in ends]
    ids = [str(row["sim_id"]) for _, _, row in picks]
    with reader.reading(run_dir) as store:
        first = reader.first_talk(store, ids)
    pages = run_dir / VIEWER_DIR
    linked = (pages / "index.html").exists()
    return [
        {
            "cell": cell,
            "end": end,
            "sim_id": sim_id,
            "cpi": float(row["cpi"]),
            "excerpt": excerpt(first[sim_id][2], 140) if sim_id in first else "",
            "href": f"../{VIEWER_DIR}/sim/{sim_id}.html"
            if linked and (pages / "sim" / f"{sim_id}.html").exists()
            else None,
        }
        for (cell, end, row), sim_id in zip(picks, ids, strict=True)
    ]


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


def examples_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, ids linked where the page exists."""
    out = ["| cell | CPI | simulation | first line |", "|---|---|---|---|"]
    for r in rows:
        sim = f"[{r['sim_id']}]({r['href']})" if r["href"] else f"`{r['sim_id']}`"
        out.append(
            f"| {_md(r['cell'])} ({r['end']}) | {r['cpi']:.2f} | {sim} | {_md(r['excerpt'])} |"
        )
    return "\n".join(out)


def examples_html(rows: list[dict[str, Any]]) -> str:
    """The rows as an HTML table, every text escaped, ids linked where the page exists."""
    body = []
    for r in rows:
        sim_id = html.escape(r["sim_id"])
        sim = f'<a href="{html.escape(r["href"])}">{sim_id}</a>' if r["href"] else sim_id
        body.append(
            f"<tr><td>{html.escape(r['cell'])} ({r['end']})</td><td>{r['cpi']:.2f}</td>"
            f'<td>{sim}</td><td dir="auto">{html.escape(r["excerpt"])}</td></tr>'
        )
    head = "<tr><th>cell</th><th>CPI</th><th>simulation</th><th>first line</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
