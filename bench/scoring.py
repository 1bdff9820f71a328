"""Benchmark: scoring throughput over the synthetic Study 2 run.

Creates (once, cached under bench/.cache/) the synthetic Study 2 run, then measures
(a) messages counted per second by the lexicon matcher over every agent reply, with the
echo filter at the study's settings (and without it, for comparison), and
(b) the wall time of a full ``alignbf score`` of the run (read, count, aggregate,
index, write). Last line:
``replies=... messages=... msgs_per_s=... msgs_per_s_no_echo=... score_s=...``
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
CACHE = ROOT / "bench" / ".cache" / "study2-synthetic"


def main() -> None:
    from alignbf.api import run_command
    from alignbf.config.study import load_study
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
    count_messages(rows[:1000], echo)  # compile every lexicon before timing
    start = time.perf_counter()
    count_messages(rows)
    plain = time.perf_counter() - start
    start = time.perf_counter()
    count_messages(rows, echo)
    counting = time.perf_counter() - start
    start = time.perf_counter()
    score_run(CACHE)
    scoring = time.perf_counter() - start
    print(
        f"replies={replies} messages={len(rows)} msgs_per_s={len(rows) / counting:,.0f} "
        f"msgs_per_s_no_echo={len(rows) / plain:,.0f} score_s={scoring:.1f}".replace(",", "")
    )


if __name__ == "__main__":
    main()
