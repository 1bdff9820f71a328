"""Benchmark: ``alignbf analyze`` on the synthetic Study 2 run (1,200 simulations).

Creates the run once under bench/.cache/ (in a subprocess, so its memory does not
count), then times, in this process, what ``alignbf analyze RUN_DIR`` does: scoring,
the five Study 2 hypotheses (mixed model, interaction F test, per-language slopes, sign
tests, PDI correlation), attrition, and the Markdown/HTML report with its figures.
Peak memory is this process's maximum resident set size (``ru_maxrss``).
``analyze_s`` is a first analysis after a run (scoring included); ``reanalyze_s``
is the next one, which reuses the stored scores.

Last line: ``analyze_s=... peak_mb=... reanalyze_s=...``
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
CACHE = ROOT / "bench" / ".cache" / "study2-synthetic"


def ensure_run() -> None:
    """Run (or resume) the synthetic Study 2 into the cache directory."""
    if not (CACHE / "run.sqlite").exists():
        print("creating the synthetic Study 2 run (once, a few minutes) ...", flush=True)
    command = [
        sys.executable,
        "-m",
        "alignbf",
        "run",
        "study2",
        "--run-dir",
        str(CACHE),
        "--concurrency",
        "128",
        "--quiet",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"creating the run failed: {done.stderr.strip()[-500:]}")


def main() -> None:
    ensure_run()
    from alignbf.analysis.analyze import analyze_run
    from alignbf.report.report import write_report
    from alignbf.scoring.scores import score_run

    start = time.perf_counter()
    score_run(CACHE)  # what the first ``alignbf analyze`` after a run does first
    scored = time.perf_counter()
    analysis = analyze_run(CACHE)  # reuses the scores just made
    analysed = time.perf_counter()
    write_report(CACHE, analysis)
    done = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    write_report(CACHE, analyze_run(CACHE))  # analyze again: nothing to score
    again = time.perf_counter() - done
    counts = analysis.verdicts["verdict"].value_counts().to_dict()
    sims = len(analysis.scores.simulations)
    print(
        f"simulations={sims} hypotheses={len(analysis.verdicts)} verdicts={counts} "
        f"score_s={scored - start:.2f} analysis_s={analysed - scored:.2f} "
        f"report_s={done - analysed:.2f}"
    )
    print(f"analyze_s={done - start:.2f} peak_mb={peak_mb:.0f} reanalyze_s={again:.2f}")


if __name__ == "__main__":
    main()
