"""Terminal rendering for the CLI: tables and the progress display (rich)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from alignbf.engine.plan import EndpointPlan, Plan
from alignbf.engine.runner import Progress, RunResult

console = Console()
err_console = Console(stderr=True)


def money(value: float | None) -> str:
    """Dollars, or "unknown" (never $0 for an unknown price)."""
    return "unknown" if value is None else f"${value:,.2f}"


FULL_GRID = 12
"""Grids of at most this many cells are shown cell by cell; larger ones factor by factor."""
GRID_FACTORS = (
    ("language", "language"),
    ("alignment", "alignment_ratio"),
    ("individuation", "individuation_ratio"),
    ("model", "model"),
)


def render_plan(plan: Plan) -> None:
    """The plan as tables that fit an 80-column terminal."""
    console.print(_grid(plan))
    cost = Table(title="Per endpoint (estimates)")
    cost.add_column("endpoint / model", no_wrap=True)
    for col in ("calls", "in tok", "out tok", "cost", "worst"):
        cost.add_column(col, justify="right", no_wrap=True)
    for e in plan.endpoints:
        cost.add_row(
            _who(e),
            f"{e.calls:,}",
            _tokens(e.input_tokens),
            _tokens(e.output_tokens),
            money(e.cost_usd),
            money(e.worst_cost_usd),
        )
    console.print(cost)
    console.print(_cache_and_time(plan))
    for e in plan.endpoints:
        if e.wall_time_bounds:
            console.print(_bounds_line(e))
    for e in plan.endpoints:
        if e.batch_rounds is not None and e.role == "simulation":
            console.print(_batch_line(e))
    if plan.judge_calls:
        console.print(
            f"judge: about {plan.judge_calls:,} calls, one per utterance of the hit channels "
            "(whispers assumed in 1 reply of 5; the worst case asks each channel "
            "judge.max_attempts times)"
        )
    console.print(f"[dim]{plan.estimate_note}[/dim]")
    for warning in plan.warnings():
        console.print(f"[bold yellow]warning: {warning}[/]")


def _grid(plan: Plan) -> Table:
    """The cells one per row when there are few; otherwise each factor with its levels,
    since the grid is their full crossing (``--json`` lists every cell)."""
    title = f"{plan.study}: {plan.simulations:,} simulations, {plan.calls:,} LLM calls"
    if len(plan.cells) <= FULL_GRID:
        table = Table(title=title)
        for col, _ in GRID_FACTORS:
            table.add_column(col, justify="left" if col in ("language", "model") else "right")
        table.add_column("simulations", justify="right")
        for c in plan.cells:
            table.add_row(*(_level(c[key]) for _, key in GRID_FACTORS), str(c["simulations"]))
        return table
    per_cell = sorted({c["simulations"] for c in plan.cells})
    each = (
        f"{per_cell[0]} simulations each"
        if len(per_cell) == 1
        else f"{per_cell[0]}-{per_cell[-1]} simulations each"
    )
    table = Table(title=f"{title}\n{len(plan.cells)} cells, {each}")
    table.add_column("factor")
    table.add_column("levels", justify="right")
    table.add_column("values", overflow="fold")
    for name, key in GRID_FACTORS:
        values = list(dict.fromkeys(_level(c[key]) for c in plan.cells))
        table.add_row(name, str(len(values)), " ".join(values))
    return table


def _level(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float | int) else str(value)


def _who(e: EndpointPlan) -> str:
    """An endpoint's name over its model (``(judge)`` for the judge's)."""
    model = e.model if e.role == "simulation" else f"{e.model} (judge)"
    return e.endpoint if model == e.endpoint else f"{e.endpoint}\n[dim]{model}[/dim]"


def _tokens(n: int) -> str:
    """A token estimate to three significant figures: 987, 12.3k, 1.36M, 2.05B."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:.3g}{suffix}"
    return f"{n:,}"


def _batch_line(e: EndpointPlan) -> str:
    """What ``alignbf run --batch`` changes for one endpoint: rounds and cost."""
    saving = ""
    if e.cost_usd is not None and e.batch_cost_usd is not None:
        saved = e.cost_usd - e.batch_cost_usd
        share = saved / e.cost_usd if e.cost_usd else 0.0
        saving = f", saves {money(saved)} ({share:.0%})"
    return (
        f"batch ({e.model} via {e.endpoint}, alignbf run --batch): {e.batch_rounds} rounds, "
        "one job per speaking step of the simulations in flight (each waits for its job, "
        f"up to 24 h); cost {money(e.batch_cost_usd)} instead of {money(e.cost_usd)}{saving}"
    )


def _cache_and_time(plan: Plan) -> Table:
    """Per endpoint: expected prompt-cache share and cost with it; expected wall time."""
    table = Table(
        title=f"Prompt caching and wall time (estimates; run ~{_hours(plan.wall_time_s)})"
    )
    table.add_column("endpoint / model", no_wrap=True)
    for col in ("cached in tok", "share", "cost cached", "wall time"):
        table.add_column(col, justify="right", no_wrap=True)
    for e in plan.endpoints:
        table.add_row(
            _who(e),
            _tokens(e.cached_input_tokens),
            "-" if e.cache_share is None else f"{e.cache_share:.1%}",
            money(e.cached_cost_usd),
            _hours(e.wall_time_s),
        )
    return table


def _bounds_line(e: EndpointPlan) -> str:
    """What limits an endpoint's wall time: each bound, the largest first."""
    (first, most), *rest = sorted(e.wall_time_bounds.items(), key=lambda kv: -kv[1])
    line = f"wall time of {e.endpoint}: limited by {first.replace('_', ' ')} ({_hours(most)})"
    others = ", ".join(f"{name.replace('_', ' ')} {_hours(seconds)}" for name, seconds in rest)
    return f"{line}; the other bounds: {others}" if others else line


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else _duration(seconds)


def _bar(done: int, total: int, width: int = 20) -> str:
    filled = int(width * done / total) if total else width
    return "█" * filled + "░" * (width - filled)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _count(n: float) -> str:
    """A count in at most six characters: 987, 12.3k, 4.56M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:.3g}{suffix}"
    return f"{n:,.0f}"


def _progress_table(p: Progress, remote: bool = False) -> Table:
    """Bars of simulations and calls and the counters, in lines that fit 80 columns
    (``remote``: read from another process's store, without in-flight and replay counts)."""
    elapsed = time.monotonic() - p.started
    sims_done = p.skipped + p.done
    calls_done = p.calls + p.cache_hits
    rate = p.calls / elapsed if elapsed > 0 else 0.0
    left = p.calls_total - calls_done
    eta = _duration(left / rate) if rate > 0 and left > 0 else "-"
    cost = money(p.cost_usd) if not p.cost_unknown else "unknown"
    if p.budget_usd is not None:
        cost += f" / {money(p.budget_usd)}"
    table = Table.grid()
    table.add_column(no_wrap=True, overflow="ellipsis")
    table.add_row(
        f"sims  {_bar(sims_done, p.total, 12)} {sims_done:,}/{p.total:,}   "
        f"calls {_bar(calls_done, p.calls_total, 12)} {_count(calls_done)}/{_count(p.calls_total)}"
    )
    flight = "" if remote else f"  {p.in_flight} in flight"
    table.add_row(f"{rate:,.1f} calls/s{flight}  elapsed {_duration(elapsed)}  ETA {eta}")
    replayed = "" if remote else f"  replayed {_count(p.cache_hits)}"
    table.add_row(f"tokens {_count(p.tokens)}  cost {cost}{replayed}")
    table.add_row(
        f"retries {p.retries}  failed attempts {p.attempts_failed}  failed sims {p.failures}"
    )
    return table


@contextmanager
def progress_display(quiet: bool) -> Iterator[Callable[[Progress], None]]:
    """A live one-line display on stderr, refreshed at most 4 times a second."""
    if quiet or not err_console.is_terminal:
        yield lambda p: None
        return
    last = [0.0]
    with Live(console=err_console, refresh_per_second=4, transient=False) as live:

        def update(p: Progress) -> None:
            now = time.monotonic()
            if now - last[0] > 0.25 or p.done + p.skipped >= p.total:
                last[0] = now
                live.update(_progress_table(p))

        yield update


def watch_progress(read: Callable[[], tuple[Progress, bool, bool]], every_s: float = 1.0) -> None:
    """Redraw a run's counters from ``read`` every ``every_s`` seconds until it reports the
    run complete (or Ctrl-C); ``read`` returns counters, complete, a runner is active."""
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        try:
            while True:
                progress, complete, running = read()
                table = _progress_table(progress, remote=True)
                statuses = ", ".join(f"{k} {v}" for k, v in sorted(progress.statuses.items()))
                state = "complete" if complete else "running" if running else "no runner active"
                table.add_row(f"{state}: {statuses or 'no simulations'}")
                live.update(table)
                if complete:
                    return
                time.sleep(every_s)
        except KeyboardInterrupt:
            return


def render_run(result: RunResult) -> None:
    """Summary after ``alignbf run``."""
    p = result.progress
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(p.statuses.items())) or "nothing to do"
    console.print(
        f"{result.run_dir}: {p.total} simulations ({p.skipped} already finished; this run: "
        f"{statuses}); {p.calls:,} calls, {p.cache_hits:,} replayed from cache, "
        f"{p.tokens:,} tokens, cost {money(p.cost_usd) if not p.cost_unknown else 'unknown'}"
    )
    if p.cache_share is not None:
        console.print(
            f"prompt cache: {p.cached_tokens:,} of {p.cache_reported_tokens:,} prompt tokens "
            f"({p.cache_share:.1%}) read from the providers' caches"
        )
    for endpoint, t in result.throttled.items():
        console.print(
            f"[yellow]{endpoint}: rate-limited (HTTP 429); concurrency was cut {t.cuts} time(s), "
            f"from {t.maximum} to as low as {t.lowest:g}, and was {t.final:.3g} at the end[/]"
        )
    for line in result.notices:
        console.print(f"[yellow]warning: {line}[/]", highlight=False)
    if result.stopped:
        console.print(
            f"[yellow]stopped early ({result.stopped}); run the same command again to resume[/]"
        )


def render_status(status: dict[str, Any]) -> None:
    """``alignbf status`` tables."""
    table = Table(title=f"{status['run_dir']} ({status['study']}, backend {status['backend']})")
    for col in ("language", "alignment", "individuation", "model", "status", "n"):
        table.add_column(col)
    for c in status["cells"]:
        table.add_row(
            c["language"],
            f"{c['alignment_ratio']:g}",
            f"{c['individuation_ratio']:g}",
            c["model"],
            c["status"],
            str(c["n"]),
        )
    console.print(table)
    totals = ", ".join(f"{k} {v}" for k, v in sorted(status["simulations"].items()))
    console.print(
        f"simulations: {totals}; calls {status['calls']:,} "
        f"(failed attempts {status['failed_attempts']}); tokens in {status['input_tokens']:,} "
        f"out {status['output_tokens']:,}; cost {money(status['cost_usd'])}"
    )
    share = status.get("cache_share")
    if share is not None:
        console.print(
            f"prompt cache: {status['cached_tokens']:,} prompt tokens cached "
            f"({share:.1%} of the prompt tokens of the calls that report it)"
        )


def _num(value: Any) -> str:
    return "-" if value is None or value != value else f"{value:.3g}"


def render_replication(result: Any) -> None:
    """``alignbf replicate`` table, each outcome's reason, and the summary line."""
    table = Table(title=f"Replication against {result.reference}")
    table.add_column("id", overflow="fold")
    for col in ("estimate", "95% CI", "original", "outcome"):
        table.add_column(col, overflow="fold")
    colour = {"replicated": "green", "not_replicated": "red", "drift": "yellow"}
    reasons = []
    for r in result.table.to_dict("records"):
        ref = "-" if r["ref_estimate"] is None else _num(r["ref_estimate"])
        if r["ref_ci_low"] is not None:
            ref += f" [{_num(r['ref_ci_low'])}, {_num(r['ref_ci_high'])}]"
        label = r["outcome"] + (" (exploratory)" if r["exploratory"] else "")
        table.add_row(
            r["id"],
            _num(r["estimate"]),
            f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
            ref,
            f"[{colour.get(r['outcome'], 'white')}]{label}[/]",
        )
        if r["note"]:
            reasons.append(f"{r['id']}: {r['outcome']}: {r['note']}")
    console.print(table)
    for line in reasons:
        console.print(line, highlight=False)
    for line in result.drift:
        console.print(f"[yellow]provider drift: {line}[/]")
    meaning = {0: "replicated", 1: "not replicated", 2: "inconclusive"}[result.exit_code]
    console.print(f"overall: {meaning} (exit {result.exit_code})")


@contextmanager
def stage_progress(quiet: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per stage (simulating, analysing) on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    if quiet:
        yield lambda stage, done, total: None
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def render_power(result: Any, budget: float | None) -> None:
    """``alignbf power`` tables."""
    sizes = sorted(result.table["replicates"].unique())
    table = Table(
        title=f"Power of {result.study} on world {result.world!r} "
        f"({result.sims} independent simulated studies; each size is the first r of "
        f"their {result.max_replicates} replicates per cell)"
    )
    table.add_column("hypothesis")
    for r in sizes:
        table.add_column(f"r={r}", justify="right")
    for hid, group in result.table.groupby("id"):
        by = dict(zip(group["replicates"], group["power"], strict=True))
        se = dict(zip(group["replicates"], group["mc_se"], strict=True))
        table.add_row(
            str(hid),
            *(f"{by.get(r, float('nan')):.2f} ±{se.get(r, float('nan')):.2f}" for r in sizes),
        )
    cost = result.table.drop_duplicates("replicates").set_index("replicates")["cost_usd"]
    table.add_row("[dim]study cost[/]", *(f"[dim]{money(cost.get(r))}[/]" for r in sizes))
    console.print(table)
    console.print(
        "[dim]power: non-decreasing fit over sizes that share their draws; "
        "± one Monte-Carlo standard error of the raw share[/]"
    )
    needed = Table(title="Replicates per cell needed")
    for col in ("hypothesis", "power at plan", "for 80%", "cost", "for 90%", "cost"):
        needed.add_column(col, justify="right" if col != "hypothesis" else "left")
    for r in result.needed.to_dict("records"):
        needed.add_row(
            r["id"],
            _num(r["planned_power"]),
            str(r["replicates_80"] or f"> {sizes[-1]}"),
            money(r["cost_80"]),
            str(r["replicates_90"] or f"> {sizes[-1]}"),
            money(r["cost_90"]),
        )
    console.print(needed)
    for hid, why in result.skipped.items():
        console.print(f"[dim]{hid}: not powered ({why})[/]")
    if budget is not None:
        affordable = [r for r in sizes if cost.get(r) is not None and cost[r] <= budget]
        if affordable:
            best = max(affordable)
            console.print(f"${budget:,.2f} buys {best} replicates per cell ({money(cost[best])}).")
        else:
            console.print(f"${budget:,.2f} buys none of the sizes shown (or prices are unknown).")


def render_validity(result: Any) -> None:
    """Lexicon-vs-oracle agreement: kappa per language and category, then the floors; the
    judge's figures when the run has judge labels."""
    _kappa_table(result.agreement, "Lexicon vs oracle: Cohen's kappa per sentence (all agents)")
    _differential_line(result.differential)
    if result.judge is not None:
        _kappa_table(result.judge, "Judge vs oracle: Cohen's kappa per utterance (all agents)")
        _differential_line(result.judge_differential)
    echo = result.echo
    if echo["echo_sentences"]:
        console.print(
            f"echo filter: {echo['removed_share']:.1%} of the hits inside "
            f"{int(echo['echo_sentences'])} restated instruction sentences removed"
        )
    att = result.attenuation
    if not att.empty:
        g = Table(title="Hedges' g, highest vs lowest alignment ratio: lexicon vs oracle")
        for col in ("language", "outcome", "g lexicon", "g oracle", "ratio", "lex - oracle [95%]"):
            g.add_column(col, justify="left" if col in ("language", "outcome") else "right")
        for row in att.itertuples(index=False):
            gap = (
                f"{_num(row.difference)} [{_num(row.difference_ci_low)}, "
                f"{_num(row.difference_ci_high)}]"
            )
            g.add_row(
                row.language,
                row.outcome,
                _num(row.g_lexicon),
                _num(row.g_oracle),
                _num(row.ratio),
                gap,
            )
        console.print(g)
    for path in result.paths:
        console.print(str(path))


def _kappa_table(table: Any, title: str) -> None:
    kappa = Table(title=title)
    kappa.add_column("language")
    categories = list(dict.fromkeys(table["category"]))
    for c in categories:
        kappa.add_column(c[:12], justify="right")
    mine = table[table["agents"] == "all"]
    for language, part in mine.groupby("language"):
        values = part.set_index("category")["kappa"]
        kappa.add_row(str(language), *(_num(values.get(c)) for c in categories))
    console.print(kappa)


def _differential_line(d: Any) -> None:
    if d.empty:
        return
    for column, what in (
        ("max_abs", "precision or recall"),
        ("max_abs_error", "recall, false-positive rate or precision at one base rate"),
    ):
        if d[column].isna().all():
            continue
        worst = d.loc[d[column].idxmax()]
        console.print(
            f"largest aligned-unaligned difference in {what}: {worst[column]:.3f} "
            f"({worst['language']}, {worst['category']}); "
            f"{int((d[column] > 0.10).sum())} of {len(d)} language x category pairs above 0.10"
        )


def render_agreement(result: Any) -> None:
    """``alignbf code agree``: one row per language, category and instrument."""
    table = Table(title="Instruments vs human codes, and coder reliability (95% bootstrap CIs)")
    left = ("language", "category", "instrument")
    for col in (*left, "n", "F1", "kappa", "coder kappa", "alpha"):
        table.add_column(col, justify="left" if col in left else "right")

    def ci(row: Any, name: str) -> str:
        return f"{_num(row[name])} [{_num(row[name + '_low'])}, {_num(row[name + '_high'])}]"

    for row in result.table.to_dict("records"):
        table.add_row(
            row["language"], row["category"], row["instrument"], str(row["n"]), ci(row, "f1"),
            ci(row, "kappa"), ci(row, "coder_kappa"), ci(row, "alpha"),
        )  # fmt: skip
    console.print(table)
    for path in result.paths:
        console.print(f"wrote {path}")
