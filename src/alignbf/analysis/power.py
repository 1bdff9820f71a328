"""``alignbf power``: power of each preregistered hypothesis, by simulation.

1. Each of ``sims`` draws is a whole study of the largest candidate size (``max_replicates``
   per cell; default twice the planned replicates) made afresh on a synthetic world and
   scored in memory (:func:`alignbf.scoring.memory.simulate_scores`), its seeds salted
   with ``power:<seed>:<draw>``: no two draws share a simulation, so the draws are
   independent and the Monte-Carlo error of a share is the binomial one.
2. For each candidate number of replicates per cell ``r``, the draw's first ``r``
   replicates are the study of size ``r`` (a simulation's seed depends on its cell, its
   replicate and the salt only): the sizes share their random numbers, so a larger study
   contains the smaller one. The indices are recomputed on that subset (z-scores depend
   on the sample) and the preregistered analysis is run on it.
3. Power(h, r) = share of draws where hypothesis ``h`` is *supported*, with its
   Monte-Carlo standard error sqrt(p (1 - p) / sims). True power does not fall with
   ``r``; the reported ``power`` is the isotonic (pool-adjacent-violators) fit of the
   raw shares over ``r``, and ``power_raw`` keeps the shares themselves.

Hypotheses that need another run (Study 4's Llama cells) or are descriptive are not
powered here and say so. Draws are spread over every core.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from alignbf.config import assets
from alignbf.config.study import Study, load_study


@dataclass
class PowerResult:
    """Power per hypothesis and candidate replicates per cell."""

    study: str
    world: str
    max_replicates: int
    """Replicates per cell of each simulated study (the largest size)."""
    sims: int
    table: pd.DataFrame
    """Rows: ``id, replicates, power`` (non-decreasing in ``replicates``), ``power_raw``,
    ``mc_se`` (Monte-Carlo SE of the raw share) and ``cost_usd`` (the whole study)."""
    needed: pd.DataFrame
    """Rows: ``id, planned_power, replicates_80, cost_80, replicates_90, cost_90``."""
    skipped: dict[str, str]
    """Hypothesis id -> why it is not powered."""


def _subsample(frame: pd.DataFrame, keep: set[int]) -> pd.DataFrame:
    return frame[frame["replicate"].isin(keep)]


def _draw(job: tuple[Any, ...]) -> list[tuple[str, int, bool]]:
    """Simulate draws ``first..first+n-1`` afresh and evaluate every powered hypothesis at
    every size on each."""
    from alignbf.analysis.verdicts import Source, decide_all, evaluate
    from alignbf.config.study import load_languages
    from alignbf.engine.synthetic import SyntheticModel, load_world
    from alignbf.scoring.indices import add_indices
    from alignbf.scoring.memory import simulate_scores
    from alignbf.scoring.scores import Scores

    study, world, prereg, sizes, first, n, seed = job
    languages = load_languages()
    model = SyntheticModel(load_world(world))
    agents = any(h.level == "agent" for h in prereg.hypotheses)
    out: list[tuple[str, int, bool]] = []
    for draw in range(first, first + n):
        drawn = simulate_scores(study, model, f"power:{seed}:{draw}", agents)
        for r in sizes:
            keep = set(range(r))
            scores = Scores(
                add_indices(_subsample(drawn.simulations, keep), study.scoring),
                add_indices(_subsample(drawn.agents, keep), study.scoring)
                if agents
                else pd.DataFrame(),
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
    max_replicates: int | None = None,
    workers: int | None = None,
    seed: int = 0,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> PowerResult:
    """Estimate the power of every confirmatory hypothesis of a study (see module docstring)."""
    from alignbf.analysis.prereg import prereg_path
    from alignbf.config.hypotheses import load_prereg
    from alignbf.engine.synthetic import load_world
    from alignbf.errors import ConfigError

    config_path = assets.find_config(config)
    study = load_study(config_path)
    path = prereg_path(study, config_path)
    if path is None:
        raise ConfigError(f"{config_path}: names no preregistration; nothing to power")
    if study.scoring.instrument != "lexicon":
        raise ConfigError(f"{config_path}: power simulates lexicon scores; set instrument: lexicon")
    prereg = load_prereg(path)
    workers = workers or os.cpu_count() or 1
    largest = max_replicates or 2 * study.replicates
    if largest < 2:
        raise ConfigError(f"max_replicates must be at least 2, not {largest}")
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
        {r for r in (3, 5, 8, 10, 15, 20, 25, 30, 40, 50) if 2 <= r <= largest}
        | {min(study.replicates, largest), largest}
    )
    drawn = study.model_copy(update={"replicates": largest})
    name = load_world(world).name
    per_job = max(1, -(-sims // (4 * workers)))
    jobs = [
        (drawn, world, powered, candidates, start, min(per_job, sims - start), seed)
        for start in range(0, sims, per_job)
    ]
    results: list[tuple[str, int, bool]] = []
    report("simulating and analysing", 0, len(jobs))
    with ProcessPoolExecutor(max_workers=workers) as executor:
        for i, chunk in enumerate(executor.map(_draw, jobs), start=1):
            results.extend(chunk)
            report("simulating and analysing", i, len(jobs))
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
    return PowerResult(study.name, name, largest, sims, table, _needed(table, study), skipped)


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
