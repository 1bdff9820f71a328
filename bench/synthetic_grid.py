"""Benchmark: all four studies (1,610 simulations) on the synthetic backend.

Runs each study in its own process (two at a time, one per core), into fresh run
directories, and reports simulations per second over the whole set and the peak
resident memory of the largest worker. To show memory is flat in the number of
simulations, it also runs Study 2 limited to 100 simulations and compares peaks.

Last line: ``sims=1610 wall_s=... sims_per_s=... peak_mb_1200=... peak_mb_100=... mem_ratio=...``
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _run(job: tuple[str, str, int | None]) -> tuple[str, int, float, float]:
    from alignbf.commands import run_command

    study, run_dir, limit = job
    start = time.perf_counter()
    result = run_command(study, run_dir=Path(run_dir), limit=limit, concurrency=128)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ok = result.progress.statuses.get("ok", 0)
    return study, ok, wall, peak_mb


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(s, f"{tmp}/{s}", None) for s in ("study2", "study3", "study1", "study4")]
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(_run, jobs))
        wall = time.perf_counter() - start
        for study, ok, seconds, peak in results:
            print(f"{study}: {ok} ok in {seconds:.1f}s, peak {peak:.0f} MB")
        sims = sum(r[1] for r in results)
        with ProcessPoolExecutor(max_workers=1) as pool:
            small = pool.submit(_run, ("study2", f"{tmp}/small", 100)).result()
    peak_full = next(r[3] for r in results if r[0] == "study2")
    print(f"study2 limited to 100: peak {small[3]:.0f} MB")
    print(
        f"sims={sims} wall_s={wall:.1f} sims_per_s={sims / wall:.1f} "
        f"peak_mb_1200={peak_full:.0f} peak_mb_100={small[3]:.0f} "
        f"mem_ratio={peak_full / small[3]:.2f}"
    )


if __name__ == "__main__":
    main()
