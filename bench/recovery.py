"""Parameter recovery on the synthetic worlds (not part of ``make test``; minutes).

For Study 1's two preregistered CPI contrasts (English and Japanese, 100% vs 0% aligned):

* **Planted value**: simulate a pool of ``POOL`` replicates per cell of Study 1 on the
  world, score it (pooled z-scores over the whole pool) and take Hedges' g of the
  contrast on the whole pool; with 300 per cell this is the world's population value
  up to about +-0.08.
* **Replications**: ``REPS`` times, draw 15 replicates per cell (the planned design)
  without replacement from the pool, recompute the indices on the draw (z-scores come
  from the sample, as in a real study) and compute g with its 95% noncentral-t CI.
* **Coverage** on the paper world: the share of CIs that contain the planted value
  (target 93-97%; drawing 15 of 300 without replacement makes intervals slightly
  conservative). **Rejection rate** on the null world: the share of draws where each
  primary test rejects at alpha = .05 (target 3-7%).

Last line: ``coverage_en=... coverage_ja=... planted_en=... planted_ja=... reject_en=...
reject_ja=... reps=...``
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

POOL = int(os.environ.get("RECOVERY_POOL", "300"))
REPS = int(os.environ.get("RECOVERY_REPS", "400"))
PLANNED = 15


def _pool_scores(world: str, directory: Path):  # type: ignore[no-untyped-def]
    from alignbf.analysis.power import _pool_config, simulate_pool
    from alignbf.config import assets
    from alignbf.config.study import load_study
    from alignbf.scoring.scores import score_run

    config = assets.find_config("study1")
    pool_config = _pool_config(config, load_study(config), POOL, directory)
    run = simulate_pool(pool_config, world, directory, os.cpu_count() or 1, lambda: None)
    return score_run(run).simulations, load_study(config).scoring


def _g(frame, language):  # type: ignore[no-untyped-def]
    from alignbf.analysis.stats import hedges_g

    cell = frame[frame["language"] == language]
    high = cell[cell["alignment_ratio"] == 1.0]["cpi"]
    low = cell[cell["alignment_ratio"] == 0.0]["cpi"]
    return hedges_g(high, low).iloc[0]


def _replications(sims, scoring, seed: int):  # type: ignore[no-untyped-def]
    from alignbf.scoring.indices import add_indices

    rng = random.Random(seed)
    for _ in range(REPS):
        keep = set(rng.sample(range(POOL), PLANNED))
        yield add_indices(sims[sims["replicate"].isin(keep)], scoring)


def main() -> None:
    from alignbf.scoring.indices import add_indices

    with tempfile.TemporaryDirectory() as tmp:
        paper, scoring = _pool_scores("paper", Path(tmp) / "paper")
        null, _ = _pool_scores("null", Path(tmp) / "null")
    full = add_indices(paper, scoring)
    planted = {lang: float(_g(full, lang)["estimate"]) for lang in ("en", "ja")}
    covered = {"en": 0, "ja": 0}
    for draw in _replications(paper, scoring, 1):
        for lang in covered:
            row = _g(draw, lang)
            covered[lang] += row["ci_low"] <= planted[lang] <= row["ci_high"]
    rejected = {"en": 0, "ja": 0}
    for draw in _replications(null, scoring, 2):
        for lang in rejected:
            rejected[lang] += _g(draw, lang)["p_val"] < 0.05
    print(f"pool {POOL} per cell; {REPS} replications of {PLANNED} per cell")
    print(
        f"coverage_en={covered['en'] / REPS:.3f} coverage_ja={covered['ja'] / REPS:.3f} "
        f"planted_en={planted['en']:.3f} planted_ja={planted['ja']:.3f} "
        f"reject_en={rejected['en'] / REPS:.3f} reject_ja={rejected['ja'] / REPS:.3f} reps={REPS}"
    )


if __name__ == "__main__":
    main()
