"""Benchmark: does the differential-attrition check flag what it should, and only that?

Simulates a pool of ``POOL`` replicates per cell of Study 1 on two synthetic worlds:
``format`` (alignment-instructed agents break the reply format twice as often) and
``null`` (no condition effect), then ``REPS`` times draws the planned 15 replicates per
cell and runs :func:`alignbf.analysis.attrition.differential_table` on the draw. A run
counts as flagged when any language is. Targets: >= 0.90 on ``format``, <= 0.07 on
``null``.

Last line: ``flagged_format=... flagged_null=... reps=... pool=...``
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

POOL = int(os.environ.get("ATTRITION_POOL", "45"))
REPS = int(os.environ.get("ATTRITION_REPS", "200"))
PLANNED = 15


def _pool(world: str, directory: Path):  # type: ignore[no-untyped-def]
    import pandas as pd

    from alignbf.analysis.power import _pool_config, simulate_pool
    from alignbf.config import assets
    from alignbf.config.study import load_study

    config = assets.find_config("study1")
    pool_config = _pool_config(config, load_study(config), POOL, directory)
    run = simulate_pool(pool_config, world, directory, os.cpu_count() or 1, lambda: None)
    with sqlite3.connect(run / "run.sqlite") as conn:
        return pd.read_sql_query(
            "SELECT language, model, alignment_ratio, replicate, format_failures, replies, "
            "status FROM simulations",
            conn,
        )


def _flag_rate(frame, seed: int) -> float:  # type: ignore[no-untyped-def]
    from alignbf.analysis.attrition import differential_table

    rng = random.Random(seed)
    flagged = 0
    for _ in range(REPS):
        keep = set(rng.sample(range(POOL), PLANNED))
        flagged += bool(differential_table(frame[frame["replicate"].isin(keep)])["flagged"].any())
    return flagged / REPS


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rates = {w: _flag_rate(_pool(w, Path(tmp) / w), 1) for w in ("format", "null")}
    print(f"Study 1, {PLANNED} of {POOL} replicates per cell, {REPS} draws per world")
    print(
        f"flagged_format={rates['format']:.3f} flagged_null={rates['null']:.3f} "
        f"reps={REPS} pool={POOL}"
    )


if __name__ == "__main__":
    main()
