"""Benchmark: all four studies (1,610 simulations) on the synthetic backend.

Runs the studies in two worker processes (one per core) into fresh run directories,
Study 2 split in two shards with ``--shard`` as a user would split it over machines
(the shards merge into one run with ``alignbf merge``), and reports simulations per
second over the whole set and the peak resident memory of each worker.

Memory is compared between Study 2 limited to 300 simulations and all 1,200, each in a
fresh process: with 128 simulations in flight, peak memory should not grow with the
number of simulations once there are more than that.

Last line: ``sims=1610 wall_s=... sims_per_s=... peak_mb_1200=... peak_mb_300=... mem_ratio=...``
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _run(job: tuple[str, str, int | None, str | None]) -> tuple[str, int, float, float]:
    from alignbf.api import run_command

    study, run_dir, limit, shard = job
    start = time.perf_counter()
    result = run_command(study, run_dir=Path(run_dir), limit=limit, shard=shard, concurrency=128)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ok = result.progress.statuses.get("ok", 0)
    return study, ok, wall, peak_mb


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [
            ("study2", f"{tmp}/study2-1", None, "1/2"),
            ("study2", f"{tmp}/study2-2", None, "2/2"),
            ("study3", f"{tmp}/study3", None, None),
            ("study1", f"{tmp}/study1", None, None),
            ("study4", f"{tmp}/study4", None, None),
        ]
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(_run, jobs))
        wall = time.perf_counter() - start
        for study, ok, seconds, peak in results:
            print(f"{study}: {ok} ok in {seconds:.1f}s, peak {peak:.0f} MB")
        sims = sum(r[1] for r in results)
        with ProcessPoolExecutor(max_workers=1) as pool:
            small = pool.submit(_run, ("study2", f"{tmp}/small", 300, None)).result()
            whole = pool.submit(_run, ("study2", f"{tmp}/whole", None, None)).result()
    print(f"study2 limited to 300: peak {small[3]:.0f} MB; all 1200: {whole[3]:.0f} MB")
    print(
        f"sims={sims} wall_s={wall:.1f} sims_per_s={sims / wall:.1f} "
        f"peak_mb_1200={whole[3]:.0f} peak_mb_300={small[3]:.0f} "
        f"mem_ratio={whole[3] / small[3]:.2f}"
    )


if __name__ == "__main__":
    main()
