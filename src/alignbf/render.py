"""Terminal rendering for the CLI: tables and the progress display (rich)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from alignbf.plan import Plan
from alignbf.runner import Progress, RunResult

console = Console()
err_console = Console(stderr=True)


def money(value: float | None) -> str:
    """Dollars, or "unknown" (never $0 for an unknown price)."""
    return "unknown" if value is None else f"${value:,.2f}"


def render_plan(plan: Plan) -> None:
    """The plan as tables."""
    cells = Table(title=f"{plan.study}: {plan.simulations} simulations, {plan.calls:,} LLM calls")
    for col in ("language", "alignment", "individuation", "model", "simulations"):
        cells.add_column(col, justify="right" if col != "language" else "left")
    for c in plan.cells:
        cells.add_row(
            c["language"], f"{c['alignment_ratio']:g}", f"{c['individuation_ratio']:g}",
            c["model"], str(c["simulations"]),
        )
    console.print(cells)
    cost = Table(title="Per endpoint (estimates)")
    for col in ("model", "endpoint", "calls", "input tok", "output tok", "cost", "worst case"):
        cost.add_column(col, justify="left" if col in ("model", "endpoint") else "right")
    for e in plan.endpoints:
        cost.add_row(
            e.model, e.endpoint, f"{e.calls:,}", f"{e.input_tokens:,}", f"{e.output_tokens:,}",
            money(e.cost_usd), money(e.worst_cost_usd),
        )
    console.print(cost)
    console.print(f"[dim]{plan.estimate_note}[/dim]")


def _progress_table(p: Progress) -> Table:
    elapsed = time.monotonic() - p.started
    finished = p.done
    remaining = p.total - p.skipped - finished
    rate = finished / elapsed if elapsed > 0 else 0.0
    eta = f"{remaining / rate:,.0f}s" if rate > 0 and remaining > 0 else "-"
    table = Table.grid(padding=(0, 2))
    table.add_row(
        f"simulations {p.skipped + finished}/{p.total}",
        f"calls {p.calls:,} ({p.calls / elapsed if elapsed else 0:,.0f}/s)",
        f"cached {p.cache_hits:,}",
        f"tokens {p.tokens:,}",
        f"cost {money(p.cost_usd) if not p.cost_unknown else 'unknown'}",
        f"retries {p.retries}",
        f"failures {p.failures}",
        f"ETA {eta}",
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


def render_run(result: RunResult) -> None:
    """Summary after ``alignbf run``."""
    p = result.progress
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(p.statuses.items())) or "nothing to do"
    console.print(
        f"{result.run_dir}: {p.total} simulations ({p.skipped} already finished; this run: "
        f"{statuses}); {p.calls:,} calls, {p.cache_hits:,} replayed from cache, "
        f"{p.tokens:,} tokens, cost {money(p.cost_usd) if not p.cost_unknown else 'unknown'}"
    )
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
            c["language"], f"{c['alignment_ratio']:g}", f"{c['individuation_ratio']:g}",
            c["model"], c["status"], str(c["n"]),
        )
    console.print(table)
    totals = ", ".join(f"{k} {v}" for k, v in sorted(status["simulations"].items()))
    console.print(
        f"simulations: {totals}; calls {status['calls']:,} "
        f"(failed attempts {status['failed_attempts']}); tokens in {status['input_tokens']:,} "
        f"out {status['output_tokens']:,}; cost {money(status['cost_usd'])}"
    )
