"""Benchmark: page times of ``alignbf view`` on the synthetic Study 2 run (1,200 simulations).

Creates once (reused under /tmp) the synthetic Study 2 run, serves it with the viewer on
127.0.0.1 and times, over real HTTP:

* ``warm_s``: what ``alignbf view`` does in the background once it listens, with nothing
  stored: the scores computed in memory, every language's lexicon and echo index loaded;
* ``list_s``: the whole list page (1,200 rows, sorted by CPI; median of 5);
* ``conversation_s``: the slowest of 32 conversation pages (two per language), with
  ``conversation_median_s`` beside it;
* ``list_first_s``: the first list page of a fresh viewer, not warmed, after
  ``alignbf score`` (stored scores read from disk on that request).

Last line: ``list_s=... conversation_s=... conversation_median_s=... list_first_s=...
warm_s=...``
"""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import sys
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RUN = Path("/tmp/alignbf-bench/viewer-study2")


def _get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as response:
        body = response.read()
        assert response.status == 200 and body, url
    return time.perf_counter() - start


def _serve(run_dir: Path) -> tuple[Any, str, ThreadingHTTPServer]:
    from alignbf.report.viewer import RunView, make_server

    view = RunView(run_dir)
    server = make_server(view, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return view, f"http://127.0.0.1:{server.server_address[1]}", server


def main() -> None:
    from alignbf.api import run_command
    from alignbf.scoring.scores import score_run

    if not (RUN / "run.sqlite").exists():
        print(f"creating the synthetic Study 2 run under {RUN} (once, ~2 min) ...", flush=True)
    assert run_command("study2", run_dir=RUN, concurrency=128).complete
    shutil.rmtree(RUN / "scores", ignore_errors=True)  # the cold case: nothing stored
    conn = sqlite3.connect(RUN / "run.sqlite")
    conn.execute("DELETE FROM run WHERE key = 'scores_fingerprint'")
    conn.commit()
    n = conn.execute("SELECT count(*) FROM simulations").fetchone()[0]
    sims = [
        sim
        for (lang,) in conn.execute("SELECT DISTINCT language FROM simulations ORDER BY 1")
        for (sim,) in conn.execute(
            "SELECT sim_id FROM simulations WHERE language = ? ORDER BY idx DESC LIMIT 2", (lang,)
        )
    ]
    conn.close()

    view, base, server = _serve(RUN)
    start = time.perf_counter()
    view.warm()
    warm = time.perf_counter() - start
    list_warm = statistics.median(_get(f"{base}/sims?sort=cpi") for _ in range(5))
    talks = [_get(f"{base}/sim/{sim}") for sim in sims]
    server.shutdown()

    score_run(RUN)
    _, base, server = _serve(RUN)
    list_first = _get(f"{base}/sims?sort=cpi")
    server.shutdown()
    print(f"{n} simulations; {len(talks)} conversations timed")
    print(
        f"list_s={list_warm:.3f} conversation_s={max(talks):.3f} "
        f"conversation_median_s={statistics.median(talks):.3f} list_first_s={list_first:.3f} "
        f"warm_s={warm:.1f}"
    )


if __name__ == "__main__":
    main()
