"""Benchmark: scoring throughput over the synthetic Study 2 run.

Creates (once, cached under bench/.cache/) the synthetic Study 2 run, then measures
(a) messages counted per second by the lexicon matcher over every agent reply, with the
echo filter at the study's settings (and without it, for comparison): as scoring counts
them (``msgs_per_s``: forked workers, one per core, ``workers=``) and in one process
(``..._1proc``); the best of ``REPEATS`` runs each, every lexicon compiled beforehand, and
(b) the wall time of a full ``alignbf score`` of the run (read, count, aggregate,
index, write). Last line:
``replies=... messages=... msgs_per_s=... msgs_per_s_no_echo=... msgs_per_s_1proc=...
msgs_per_s_no_echo_1proc=... workers=... score_s=...``
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
CACHE = ROOT / "bench" / ".cache" / "study2-synthetic"
REPEATS = 3


def _rate(count: Callable[..., object], rows: list[Any], **kwargs: Any) -> float:
    """Messages per second of the fastest of ``REPEATS`` counts of ``rows``."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        count(rows, **kwargs)
        best = min(best, time.perf_counter() - start)
    return len(rows) / best


def main() -> None:
    from alignbf.api import run_command
    from alignbf.config.study import load_study
    from alignbf.scoring.lexicon import load_lexicon
    from alignbf.scoring.measures import count_messages
    from alignbf.scoring.scores import score_run

    if not (CACHE / "run.sqlite").exists():
        print("creating the synthetic Study 2 run (once) ...", flush=True)
    result = run_command("study2", run_dir=CACHE, concurrency=128)
    assert result.complete, result.stopped
    conn = sqlite3.connect(CACHE / "run.sqlite")
    rows = conn.execute(
        "SELECT m.sim_id, m.agent, m.channel, s.language, m.text FROM messages m "
        "JOIN simulations s USING (sim_id) WHERE s.status = 'ok' AND m.agent >= 0"
    ).fetchall()
    replies = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
    conn.close()
    echo = load_study("study2").scoring.echo.table()
    for language in sorted({row[3] for row in rows}):  # compile every lexicon before timing
        load_lexicon(language).prepare()
    workers = os.cpu_count() or 1
    rates = {
        "msgs_per_s": _rate(count_messages, rows, echo=echo),
        "msgs_per_s_no_echo": _rate(count_messages, rows),
        "msgs_per_s_1proc": _rate(count_messages, rows, echo=echo, workers=1),
        "msgs_per_s_no_echo_1proc": _rate(count_messages, rows, workers=1),
    }
    start = time.perf_counter()
    score_run(CACHE)
    scoring = time.perf_counter() - start
    figures = " ".join(f"{key}={value:.0f}" for key, value in rates.items())
    print(
        f"replies={replies} messages={len(rows)} {figures} workers={workers} score_s={scoring:.1f}"
    )


if __name__ == "__main__":
    main()
