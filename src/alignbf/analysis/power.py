"""``alignbf power``: power of each preregistered hypothesis, by simulation.

1. Simulate a *pool* of ``pool`` replicates per cell of the study on a synthetic world
   (default: twice the planned replicates, at least 30), sharded over every core.
2. Score the pool once.
3. For each of ``sims`` draws, shuffle the pool's replicates once (seeded by ``seed`` and
   the draw) and, for each candidate number of replicates per cell ``r``, take the first
   ``r``: the sizes share their random numbers, so a larger study contains the smaller
   one. Recompute the indices on the subsample (z-scores depend on the sample) and run
   the preregistered analysis.
4. Power(h, r) = share of draws where hypothesis ``h`` is *supported*, with its
   Monte-Carlo standard error sqrt(p (1 - p) / sims). True power does not fall with
   ``r``; the reported ``power`` is the isotonic (pool-adjacent-violators) fit of the
   raw shares over ``r``, and ``power_raw`` keeps the shares themselves.

Subsampling from a finite pool slightly understates sampling variance as ``r`` nears
the pool size, so candidates stop at half the pool. Hypotheses that need another run
(Study 4's Llama cells) or are descriptive are not powered here and say so.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from alignbf.config import assets
from alignbf.config.study import Study, load_study
from alignbf.config.yamlfile import parse_yaml, read_text


@dataclass
class PowerResult:
    """Power per hypothesis and candidate replicates per cell."""

    study: str
    world: str
    pool: int
    sims: int
    table: pd.DataFrame
    """Rows: ``id, replicates, power`` (non-decreasing in ``replicates``), ``power_raw``,
    ``mc_se`` (Monte-Carlo SE of the raw share) and ``cost_usd`` (the whole study)."""
    needed: pd.DataFrame
    """Rows: ``id, planned_power, replicates_80, cost_80, replicates_90, cost_90``."""
    skipped: dict[str, str]
    """Hypothesis id -> why it is not powered."""


def _pool_config(config_path: Path, study: Study, pool: int, directory: Path) -> Path:
    data = parse_yaml(read_text(config_path), config_path)
    data["replicates"] = pool
    data["budget"] = {}
    data["prereg"] = None  # the pool is not a registered run; its analysis is done here
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{study.name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _run_shard(job: tuple[str, str | None, str, str]) -> str:
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


def _subsample(frame: pd.DataFrame, keep: set[int]) -> pd.DataFrame:
    return frame[frame["replicate"].isin(keep)]


def _draw(job: tuple[Any, ...]) -> list[tuple[str, int, bool]]:
    """Evaluate every powered hypothesis at every size on draws ``first..first+n-1``."""
    from alignbf.analysis.verdicts import Source, decide_all, evaluate
    from alignbf.config.study import load_languages
    from alignbf.scoring.indices import add_indices
    from alignbf.scoring.scores import Scores

    sims, agents, prereg, scoring, pool, sizes, first, n, seed = job
    languages = load_languages()
    out: list[tuple[str, int, bool]] = []
    for draw in range(first, first + n):
        order = random.Random(f"{seed}:{draw}").sample(range(pool), pool)
        for r in sizes:
            keep = set(order[:r])
            scores = Scores(
                add_indices(_subsample(sims, keep), scoring),
                add_indices(_subsample(agents, keep), scoring),
                [],
            )
            source = Source(None, scores)
            pairs = [evaluate(h, source, languages) for h in prereg.hypotheses]
            rows = [p[0] for p in pairs]
            decide_all(prereg, rows, [p[1] for p in pairs])
            out.extend((row["id"], r, row["verdict"] == "supported") for row in rows)
    return out


def isotonic(values: list[float]) -> list[float]:
    """The non-decreasing sequence closest to ``values`` in least squares (PAVA)."""
    blocks: list[list[float]] = []  # [mean, weight]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, w1), (m2, w2) = blocks[-2], blocks[-1]
            blocks[-2:] = [[(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2]]
    return [m for m, w in blocks for _ in range(int(w))]


def _cost(study: Study, config_path: Path, replicates: int) -> float | None:
    from alignbf.engine.plan import make_plan

    plan = make_plan(study.model_copy(update={"replicates": replicates}), config_path)
    costs = [e.cost_usd for e in plan.endpoints]
    return None if any(c is None for c in costs) else float(sum(c for c in costs if c is not None))


def estimate_power(
    config: str | Path,
    *,
    world: str | None = None,
    sims: int = 100,
    pool: int | None = None,
    workers: int | None = None,
    seed: int = 0,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> PowerResult:
    """Estimate the power of every confirmatory hypothesis of a study (see module docstring)."""
    from alignbf.analysis.prereg import prereg_path
    from alignbf.config.hypotheses import load_prereg
    from alignbf.engine.synthetic import load_world
    from alignbf.scoring.scores import score_run

    config_path = assets.find_config(config)
    study = load_study(config_path)
    path = prereg_path(study, config_path)
    if path is None:
        from alignbf.errors import ConfigError

        raise ConfigError(f"{config_path}: names no preregistration; nothing to power")
    prereg = load_prereg(path)
    workers = workers or os.cpu_count() or 1
    pool = pool or max(2 * study.replicates, 30)
    report = on_progress or (lambda stage, done, total: None)
    skipped = {
        h.id: "needs another run" if h.input else "descriptive or exploratory"
        for h in prereg.hypotheses
        if h.input or h.exploratory or h.decision != "significance"
    }
    powered = prereg.model_copy(
        update={"hypotheses": [h for h in prereg.hypotheses if h.id not in skipped]}
    )
    candidates = sorted(
        {r for r in (3, 5, 8, 10, 15, 20, 25, 30, 40, 50, study.replicates) if 2 <= r <= pool // 2}
        | {min(study.replicates, pool // 2)}
    )
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        pool_config = _pool_config(config_path, study, pool, directory)
        done = [0]

        def tick() -> None:
            done[0] += 1
            report("simulating", done[0], workers)

        scores = score_run(simulate_pool(pool_config, world, directory, workers, tick))
    per_job = max(1, sims // (2 * workers))
    jobs = [
        (
            scores.simulations,
            scores.agents,
            powered,
            study.scoring,
            pool,
            candidates,
            start,
            min(per_job, sims - start),
            seed,
        )
        for start in range(0, sims, per_job)
    ]
    results: list[tuple[str, int, bool]] = []
    with ProcessPoolExecutor(max_workers=workers) as executor:
        for i, chunk in enumerate(executor.map(_draw, jobs), start=1):
            results.extend(chunk)
            report("analysing", i, len(jobs))
    frame = pd.DataFrame(results, columns=["id", "replicates", "supported"])
    table = frame.groupby(["id", "replicates"], as_index=False)["supported"].mean()
    table = table.rename(columns={"supported": "power_raw"}).sort_values(["id", "replicates"])
    table["power"] = table.groupby("id")["power_raw"].transform(
        lambda v: pd.Series(isotonic(list(v)), index=v.index)
    )
    table["mc_se"] = (table["power_raw"] * (1 - table["power_raw"]) / sims) ** 0.5
    table = table[["id", "replicates", "power", "power_raw", "mc_se"]].reset_index(drop=True)
    costs = {r: _cost(study, config_path, r) for r in candidates}
    table["cost_usd"] = table["replicates"].map(costs)
    return PowerResult(
        study.name, load_world(world).name, pool, sims, table, _needed(table, study), skipped
    )


def _needed(table: pd.DataFrame, study: Study) -> pd.DataFrame:
    rows = []
    for hid, group in table.groupby("id"):
        group = group.sort_values("replicates")
        planned = group.loc[group["replicates"] == study.replicates, "power"]
        row: dict[str, Any] = {
            "id": hid,
            "planned_power": planned.iloc[0] if len(planned) else None,
        }
        for level in (80, 90):
            reached = group[group["power"] >= level / 100]
            row[f"replicates_{level}"] = (
                int(reached["replicates"].iloc[0]) if len(reached) else None
            )
            row[f"cost_{level}"] = reached["cost_usd"].iloc[0] if len(reached) else None
        rows.append(row)
    return pd.DataFrame(rows)
