"""Parameter recovery against known truth (not part of ``make test``; several minutes).

For each of the 16 languages of Study 2, the CPI contrast 100% vs 0% aligned:

* **Truth** comes from the synthetic oracle, not from the pipeline: simulate a pool of
  ``POOL`` replicates per cell on the world, label every sentence with the kind the
  generator wrote (:func:`alignbf.engine.synthetic.oracle_sentences`), build CPI from the
  oracle counts (same units, reference and weights as the lexicon's CPI) and take Hedges'
  g on the whole pool.
* **Replications**: ``REPS`` times, draw 15 replicates per cell (the planned design)
  without replacement from the pool, recompute the lexicon-based indices on the draw
  (the reference comes from the sample, as in a real study) and compute g with its 95%
  noncentral-t CI.
* Per language: **bias** (mean lexicon g minus the oracle g), **coverage** (share of CIs
  containing the oracle g; below 0.95 where the lexicon attenuates or inflates the
  effect) and, on the null world, the **rejection rate** at alpha = .05 (target 3-7%).

Last line: ``bias_max_abs=... coverage_min=... coverage_median=... reject_max=...
pool=... reps=...``
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

POOL = int(os.environ.get("RECOVERY_POOL", "60"))
REPS = int(os.environ.get("RECOVERY_REPS", "300"))
PLANNED = 15


def _run_shard(job: tuple[str, str | None, str, str]) -> str:
    """Run one shard of the pool study."""
    from alignbf.engine.runner import run_study
    from alignbf.engine.synthetic import SyntheticBackend, load_world

    config, world, shard, run_dir = job
    w = load_world(world)
    result = run_study(
        config,
        backend=SyntheticBackend(w),
        backend_name=f"synthetic:{w.name}",
        run_dir=Path(run_dir),
        shard_text=shard,
    )
    if not result.complete:
        raise RuntimeError(f"pool shard {shard} did not complete: {result.stopped}")
    return run_dir


def simulate_pool(
    config_path: Path, world: str | None, directory: Path, workers: int, tick: Callable[[], None]
) -> Path:
    """Run the pool study sharded over ``workers`` processes and merge it."""
    from alignbf.store.merge import merge_runs

    jobs = [
        (str(config_path), world, f"{k}/{workers}", str(directory / f"shard{k}"))
        for k in range(1, workers + 1)
    ]
    shards = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(_run_shard, jobs):
            shards.append(Path(done))
            tick()
    merge_runs(shards, directory / "pool")
    return directory / "pool"


def _pool(world: str, directory: Path):  # type: ignore[no-untyped-def]
    """Lexicon scores and oracle scores of a pool run of Study 2 at ratios 0 and 1."""
    from alignbf.analysis.validity import _messages, _oracle_scores, label_sentences
    from alignbf.config import assets
    from alignbf.config.study import load_study
    from alignbf.config.yamlfile import load_yaml
    from alignbf.scoring.scores import score_run
    from alignbf.store.store import Store

    config = assets.find_config("study2")
    data = load_yaml(config)
    data["factors"]["alignment_ratios"] = [0.0, 1.0]
    data.update(replicates=POOL, budget={}, prereg=None)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "study2.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    study = load_study(path)
    run = simulate_pool(path, world, directory, os.cpu_count() or 1, lambda: None)
    sims = score_run(run).simulations
    store = Store(run, readonly=True)
    try:
        sentences = label_sentences(_messages(store, list(study.scoring.hit_channels)), study)
    finally:
        store.close()
    return sims, _oracle_scores(sentences, sims, study), study.scoring


def _g(frame, language: str, column: str = "cpi"):  # type: ignore[no-untyped-def]
    from alignbf.analysis.stats import hedges_g

    cell = frame[frame["language"] == language]
    high = cell[cell["alignment_ratio"] == 1.0][column]
    low = cell[cell["alignment_ratio"] == 0.0][column]
    return hedges_g(high, low).iloc[0]


def _draws(sims, scoring, seed: int):  # type: ignore[no-untyped-def]
    from alignbf.scoring.indices import add_indices

    rng = random.Random(seed)
    for _ in range(REPS):
        keep = set(rng.sample(range(POOL), PLANNED))
        yield add_indices(sims[sims["replicate"].isin(keep)], scoring)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paper, oracle, scoring = _pool("paper", Path(tmp) / "paper")
        null, _, _ = _pool("null", Path(tmp) / "null")
    languages = sorted(set(paper["language"]))
    truth = {lang: float(_g(oracle, lang)["estimate"]) for lang in languages}
    estimates: dict[str, list[float]] = {lang: [] for lang in languages}
    covered = dict.fromkeys(languages, 0)
    for draw in _draws(paper, scoring, 1):
        for lang in languages:
            row = _g(draw, lang)
            estimates[lang].append(float(row["estimate"]))
            covered[lang] += row["ci_low"] <= truth[lang] <= row["ci_high"]
    rejected = dict.fromkeys(languages, 0)
    for draw in _draws(null, scoring, 2):
        for lang in languages:
            rejected[lang] += _g(draw, lang)["p_val"] < 0.05
    print(f"pool {POOL} per cell; {REPS} replications of {PLANNED} per cell; Study 2, CPI g")
    print("language  oracle_g  mean_lexicon_g    bias  coverage  null_reject")
    bias = {}
    for lang in languages:
        bias[lang] = statistics.fmean(estimates[lang]) - truth[lang]
        print(
            f"{lang:<8}  {truth[lang]:8.3f}  {statistics.fmean(estimates[lang]):14.3f}  "
            f"{bias[lang]:6.3f}  {covered[lang] / REPS:8.3f}  {rejected[lang] / REPS:11.3f}"
        )
    coverage = [covered[lang] / REPS for lang in languages]
    print(
        f"bias_max_abs={max(abs(b) for b in bias.values()):.3f} "
        f"coverage_min={min(coverage):.3f} coverage_median={statistics.median(coverage):.3f} "
        f"reject_max={max(rejected.values()) / REPS:.3f} pool={POOL} reps={REPS}"
    )


if __name__ == "__main__":
    main()
