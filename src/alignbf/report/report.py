"""The analysis report: ``RUN_DIR/report/report.md`` and a self-contained ``report.html``.

Both are rendered from one list of blocks: attrition (CONSORT flow and per-cell table),
verdicts, figures (per-language Hedges' g forest plot, CPI and DI against the alignment
ratio per language, per-language effect against Power Distance), provenance and
deviations. Markdown links the figures as PNG files beside it; HTML embeds them as
base64. When the run's backend is synthetic, the first line of both files says so.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import pandas as pd

from alignbf.analysis.analyze import Analysis
from alignbf.analysis.attrition import EXCLUDED, flow
from alignbf.analysis.descriptives import cell_descriptives
from alignbf.report.examples import examples_html, examples_markdown, extremes
from alignbf.report.figures import report_figures
from alignbf.report.provenance import deviations, models_used, run_facts
from alignbf.report.tables import (
    attrition_view,
    component_view,
    echo_found,
    echo_view,
    fmt,
    sensitivity_view,
    verdict_view,
)
from alignbf.store.store import write_atomic

SYNTHETIC = (
    "SYNTHETIC DATA: these results come from alignbf's synthetic backend (world {world}), "
    "not from language models; they test the pipeline, not the hypotheses."
)
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.86em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2}
.banner{background:#fff3cd;border:2px solid #e0a800;padding:0.7em 1em;font-weight:bold}
.supported{background:#d9f0d3}.not_supported{background:#f4cccc}
.inconclusive{background:#eeeeee}.descriptive{background:#e8eef8}
figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}
img{max-width:100%}
"""


Block = tuple[str, Any]


def _verdict_blocks(analysis: Analysis) -> list[Block]:
    table = verdict_view(analysis.verdicts, locked=analysis.locked)
    notes = [f"{r.id}: {r.note}" for r in analysis.verdicts.itertuples() if r.note]
    blocks: list[Block] = [("h2", "Verdicts"), ("table", table), ("list", notes)]
    if not analysis.locked and not analysis.notice:
        blocks.insert(
            1,
            (
                "p",
                "This run was made without a preregistration lock "
                "(`alignbf prereg lock`): its verdicts are exploratory.",
            ),
        )
    return blocks


def _measurement_blocks(analysis: Analysis) -> list[Block]:
    scoring = analysis.study.scoring
    echo = scoring.echo
    lines = [
        f"z-score reference: {scoring.zscore_scope} (the others are the sensitivity analysis "
        "below); counts per 1,000 units"
        + (" (words; characters for ja, zh, th)" if scoring.normalisation != "raw" else " (raw)"),
        f"lexicon hits counted in the channels: {', '.join(scoring.hit_channels)}; the "
        "monologue ratio uses every channel",
        f"echo filter: a hit inside a run of {echo.words} words ({echo.chars} letters in ja "
        "and zh"
        + "".join(f", {n} in {lang}" for lang, n in echo.languages.items())
        + ") repeated from the language's instructions, personas or events is not counted"
        if echo.words or echo.chars
        else "echo filter: off",
    ]
    blocks: list[Block] = [("h2", "Measurement"), ("list", lines)]
    components = component_view(analysis.components, analysis.verdicts)
    if not components.empty:
        blocks += [
            (
                "p",
                "CPI and DI with their three weighted components (the same estimator "
                "applied to each weighted z-score alone; for slopes and mean differences the "
                "parts add up to the estimate) and the component that drives each:",
            ),
            ("table", components),
        ]
    sensitivity = sensitivity_view(analysis.sensitivity)
    if not sensitivity.empty:
        changed = int((sensitivity["changes"] == "yes").sum())
        blocks += [
            (
                "p",
                f"Sensitivity to the z-score reference (* primary): the verdict changes for "
                f"{changed} of {len(sensitivity)} CPI/DI hypotheses.",
            ),
            ("table", sensitivity),
        ]
    sims = analysis.scores.simulations
    per_sim = echo_found(sims)
    if per_sim is not None and not sims.empty:
        echoed, found = int(sims["echoed"].sum()), int(per_sim.sum())
        overall = f"{100 * echoed / found:.2f}%" if found else "–"
        blocks += [
            (
                "p",
                f"Hits left out as echoes of the instructions: {echoed:,} of {found:,} found "
                f"({overall}); per cell, in % of the cell's hits:",
            )
        ]
        blocks += [("table", echo_view(sims))]
    return blocks + _validity_blocks(analysis)


def _judge_blocks(analysis: Analysis) -> list[Block]:
    """The instrument the verdicts use and, with a judge, lexicon-judge agreement."""
    instrument = analysis.scores.instrument
    blocks: list[Block] = [("p", f"Verdicts are computed from the {instrument}'s counts.")]
    path = analysis.run_dir / "analysis" / "judge_agreement.csv"
    if analysis.scores.labels is None or not path.exists():
        return blocks
    table = pd.read_csv(path)
    view = pd.DataFrame(
        {
            "language": table["language"],
            "category": table["category"],
            "comparison": table["comparison"].str.replace("_vs_", " vs ", regex=False),
            "n": table["n"].astype(str),
            "unlabelled": table["unlabelled"].astype(str),
            "agreement": [fmt(float(v)) for v in table["agreement"]],
            "kappa": [_ci(r, "kappa") for r in table.itertuples()],
        }
    )
    oracle = table["comparison"].str.contains("oracle").any()
    text = (
        "Cohen's kappa per language and category between the lexicon (a hit, echoes left "
        "out) and the judge model, per judged utterance"
        + (", and of each against the synthetic oracle" if oracle else "")
        + ", with 95% bootstrap CIs; unlabelled utterances (judge replies that never had the "
        "expected JSON shape, or utterances too long for the judge's context) are left out "
        "and counted:"
    )
    return [*blocks, ("p", text), ("table", view)]


def _validity_blocks(analysis: Analysis) -> list[Block]:
    path = analysis.run_dir / "analysis" / "validity.csv"
    blocks: list[Block] = [("h2", "Measurement validity"), *_judge_blocks(analysis)]
    if not path.exists():
        return [
            *blocks,
            (
                "p",
                "No human codes yet: `alignbf code sample RUN` draws utterances for coders "
                "and `alignbf code agree RUN CODES...` compares the lexicon with their codes.",
            ),
        ]
    table = pd.read_csv(path)
    instrument = table.get("instrument", pd.Series("lexicon", index=table.index))
    view = pd.DataFrame(
        {
            "language": table["language"],
            "category": table["category"],
            "instrument": instrument,
            "n": table["n"].astype(str),
            "F1": [_ci(r, "f1") for r in table.itertuples()],
            "kappa (vs coders)": [_ci(r, "kappa") for r in table.itertuples()],
            "coder kappa": [_ci(r, "coder_kappa") for r in table.itertuples()],
            "alpha": [_ci(r, "alpha") for r in table.itertuples()],
        }
    )
    return [
        *blocks,
        (
            "p",
            "The lexicon (and the judge model, where the run has one) against human codes "
            "(the coders' majority or an adjudicated file), and the coders' reliability, "
            "with 95% bootstrap CIs:",
        ),
        ("table", view),
    ]


def _ci(row: Any, name: str) -> str:
    value, low, high = (getattr(row, name + s) for s in ("", "_low", "_high"))
    return f"{fmt(float(value))} [{fmt(float(low))}, {fmt(float(high))}]"


REFUSAL_NOTE = (
    "Over the simulations that ran: format_failures is the share of replies that broke the "
    "channel format; refusals the share that refuse the task or step out of role (patterns in "
    "data/refusals/, awaiting native review), counted as data and still scored; "
    "content_filter the responses that ended with finish_reason content_filter."
)


ATTRITION_ROWS = 20
"""Above this many cells the attrition section shows one row per language and the
per-cell table is folded below the figures."""


def _attrition_detail(analysis: Analysis) -> list[Block]:
    if len(analysis.attrition) <= ATTRITION_ROWS:
        return []
    summary = f"Attrition per cell ({len(analysis.attrition)} cells)"
    return [("details", (summary, attrition_view(analysis.attrition)))]


def _attrition_blocks(analysis: Analysis) -> list[Block]:
    totals = flow(analysis.attrition[analysis.attrition["source"] == "main"])
    excluded = ", ".join(f"{k} {totals[k]}" for k in EXCLUDED if totals[k]) or "none"
    line = (
        f"planned {totals['planned']} → run {totals['run']} → ok {totals['ok']} → analysed "
        f"{totals['analysed']}; excluded by status: {excluded}; pending {totals['pending']}, "
        f"not started {totals['not_started']}."
    )
    blocks: list[Block] = [("h2", "Attrition"), ("p", line)]
    view = attrition_view(analysis.attrition, max_rows=ATTRITION_ROWS)
    if len(view) < len(analysis.attrition):
        blocks.append(("p", f"Per language ({len(analysis.attrition)} cells in the detail below "
                            "the figures):"))  # fmt: skip
    blocks.append(("table", view))
    blocks.append(("p", REFUSAL_NOTE))
    d = analysis.differential
    if not d.empty:
        flagged = ", ".join(sorted(set(d.loc[d["flagged"], "language"]))) or "none"
        blocks.append(
            (
                "p",
                "Differential attrition: does breaking the reply format depend on alignment? "
                "Quasi-binomial slope of a reply's format failure on the alignment ratio, Holm "
                f"over languages; flagged (p_adj < .05): {flagged}. A flag is noted on every "
                "confirmatory verdict of that language.",
            )
        )
        view = d[["language", "model", "replies", "failure_share_low", "failure_share_high",
                  "excluded_low", "excluded_high", "slope", "p_adj", "flagged"]]  # fmt: skip
        blocks.append(("table", view))
    return blocks


def _descriptive_blocks(analysis: Analysis) -> list[Block]:
    cells = cell_descriptives(analysis.scores.simulations)
    if cells.empty:
        return []
    view = cells[["language", "alignment_ratio", "individuation_ratio", "model", "n"]].copy()
    for column in ("alignment_ratio", "individuation_ratio"):
        view[column] = view[column].map("{:g}".format)
    names = {"cpi": "CPI", "di": "DI", "monologue_ratio": "monologue ratio",
             "coercive_rate": "coercive /1k", "protective_rate": "protective /1k"}  # fmt: skip
    for outcome, name in names.items():
        if f"{outcome}_mean" in cells.columns:
            view[name] = [
                f"{fmt(float(m))} ({fmt(float(sd))})"
                for m, sd in zip(cells[f"{outcome}_mean"], cells[f"{outcome}_sd"], strict=True)
            ]
    note = (
        "Mean (SD) per cell over the analysed simulations: the indices, and the raw "
        "components they standardise (monologue ratio: share of an agent's units in the "
        "private monologue; coercive and protective: lexicon hits per 1,000 units of the "
        "counted channels). Also in analysis/cells.csv."
    )
    return [("h2", "Descriptives per cell"), ("p", note), ("table", view)]


def _provenance_blocks(analysis: Analysis) -> list[Block]:
    facts = pd.DataFrame(list(run_facts(analysis).items()), columns=["fact", "value"])
    blocks: list[Block] = [("h2", "Provenance"), ("table", facts)]
    models = models_used(analysis.run_dir)
    if not models.empty:
        blocks += [("p", "Models, system fingerprints, tokens and cost (calls table):")]
        blocks += [("table", models)]
    found = deviations(analysis.run_dir)
    blocks.append(("h2", "Deviations"))
    if found.empty:
        blocks.append(("p", "No deviation recorded in the run (deviations table is empty)."))
    else:
        blocks.append(("table", found))
    return blocks


def _figure_blocks(analysis: Analysis) -> list[Block]:
    made, skipped = report_figures(analysis)
    blocks: list[Block] = [("h2", "Figures")]
    blocks += [("figure", f) for f in made]
    if skipped:
        blocks.append(("list", skipped))
    return blocks


def document(analysis: Analysis) -> list[Block]:
    """The report as blocks: ``(kind, content)`` with kinds banner, h1, h2, p, list,
    table (a DataFrame of strings), details (a summary line and a table, folded in HTML),
    figure (a :class:`alignbf.report.figures.Figure`) and
    examples (rows of :func:`alignbf.report.examples.extremes`)."""
    blocks: list[Block] = []
    if analysis.synthetic:
        world = analysis.backend.partition(":")[2] or "default"
        blocks.append(("banner", SYNTHETIC.format(world=world)))
    blocks.append(("h1", f"Analysis of {analysis.study.name}"))
    blocks.append(
        (
            "p",
            f"Run {analysis.run_dir}; backend {analysis.backend}; "
            f"preregistration {analysis.prereg_path}.",
        )
    )
    if analysis.notice:
        blocks.append(("p", analysis.notice[0].upper() + analysis.notice[1:] + "."))
    blocks += _attrition_blocks(analysis)
    blocks += _verdict_blocks(analysis)
    blocks += _descriptive_blocks(analysis)
    blocks += _measurement_blocks(analysis)
    blocks += _figure_blocks(analysis)
    blocks += _attrition_detail(analysis)
    blocks += _example_blocks(analysis)
    blocks += _provenance_blocks(analysis)
    return blocks


def _example_blocks(analysis: Analysis) -> list[Block]:
    rows = extremes(analysis.run_dir, analysis.scores.simulations)
    if not rows:
        return []
    where = (
        "ids link to the viewer's pages exported beside this report"
        if any(r["href"] for r in rows)
        else "`alignbf view RUN` shows each conversation; "
        "`alignbf view RUN --export RUN/viewer` makes these ids links"
    )
    text = f"Per cell, the simulations with the highest and the lowest CPI ({where}):"
    return [("h2", "Examples"), ("p", text), ("examples", rows)]


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(_md_cell, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(_md_cell(fmt(v)) for v in row) + " |" for row in frame.values]
    return "\n".join([head, rule, *body])


def markdown(blocks: list[Block]) -> str:
    """Render blocks as Markdown (figures as links to ``<name>.png``)."""
    out = []
    for kind, content in blocks:
        if kind == "banner":
            out.append(f"> **{content}**")
        elif kind in ("h1", "h2"):
            out.append(("# " if kind == "h1" else "## ") + content)
        elif kind == "p":
            out.append(content)
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in content))
        elif kind == "table":
            out.append(_md_table(content))
        elif kind == "examples":
            out.append(examples_markdown(content))
        elif kind == "details":
            out.append(f"## {content[0]}\n\n{_md_table(content[1])}")
        elif kind == "figure":
            out.append(f"![{content.caption}]({content.name}.png)\n\n*{content.caption}*")
    return "\n\n".join(out) + "\n"


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cls = ""
        if "verdict" in frame.columns:
            cls = f' class="{html.escape(str(row.verdict))}"'
        cells = "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row)
        rows.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _html_block(kind: str, content: Any) -> str:
    if kind == "banner":
        return f'<p class="banner">{html.escape(content)}</p>'
    if kind in ("h1", "h2", "p"):
        return f"<{kind}>{html.escape(content)}</{kind}>"
    if kind == "list":
        return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in content) + "</ul>"
    if kind == "examples":
        return examples_html(content)
    if kind == "table":
        return _html_table(content)
    if kind == "details":
        summary, frame = content
        return f"<details><summary>{html.escape(summary)}</summary>{_html_table(frame)}</details>"
    data = base64.b64encode(content.png).decode("ascii")
    alt = html.escape(content.caption)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
        f"<figcaption>{alt}</figcaption></figure>"
    )


def to_html(blocks: list[Block]) -> str:
    """Render blocks as one self-contained HTML page (figures embedded as base64 PNG)."""
    first = "<!DOCTYPE html>"
    if blocks and blocks[0][0] == "banner":
        first += f"<!-- {html.escape(blocks[0][1])} -->"
    title = next((c for k, c in blocks if k == "h1"), "alignbf report")
    body = "\n".join(_html_block(kind, content) for kind, content in blocks)
    return (
        f'{first}\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def write_report(run_dir: Path, analysis: Analysis) -> list[Path]:
    """Write ``RUN_DIR/report/report.md`` (with its PNG figures) and ``report.html``.

    Returns:
        The files written: report.md, report.html, then one PNG per figure.
    """
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    blocks = document(analysis)
    paths = [out / "report.md", out / "report.html"]
    write_atomic(paths[0], markdown(blocks))
    write_atomic(paths[1], to_html(blocks))
    for kind, content in blocks:
        if kind == "figure":
            path = out / f"{content.name}.png"
            path.write_bytes(content.png)
            paths.append(path)
    return paths
