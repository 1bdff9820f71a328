"""bench/fpr.py and ``alignbf power``: the in-memory path (``scoring.memory``) scores a
study exactly as ``alignbf run`` + ``alignbf score`` do, a smaller study is the first
replicates of a larger one, and the bench's core returns rates with Monte-Carlo SEs (the
false-positive floor itself is measured by the benchmark, not asserted here)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from alignbf.config import assets
from alignbf.config.study import load_study
from alignbf.engine.runner import run_study
from alignbf.engine.synthetic import SyntheticBackend, SyntheticModel, load_world
from alignbf.scoring.memory import simulate_scores
from alignbf.scoring.scores import score_run

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_fpr", ROOT / "bench" / "fpr.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def small_study2(tmp_path: Path) -> Path:
    """Study 2 with its preregistration, made small: 4 agents, 4 turns, 4 languages."""
    config = tmp_path / "study2.yaml"
    config.write_text(
        "name: study2\nagents: {count: 4, target: 4}\nconversation: {turns: 4}\n"
        "factors: {alignment_ratios: [0.0, 0.3, 0.5, 0.7, 1.0], languages: [en, ja, de, th], "
        "models: [llama-3.3-70b]}\n"
        "replicates: 2\nendpoints: {llama-3.3-70b: together-llama-3.3-70b}\n"
        f"endpoints_file: {assets.path('configs', 'endpoints.yaml')}\n"
        f"prereg: {assets.path('prereg', 'study2.yaml')}\n"
    )
    return config


def test_in_memory_scores_equal_a_stored_run(small_study2: Path, tmp_path: Path) -> None:
    bench = _bench()
    world = load_world("null")
    mine = bench.simulate_scores(load_study(small_study2), SyntheticModel(world), "fpr:test:0")
    result = run_study(
        small_study2,
        backend=SyntheticBackend(world),
        backend_name="synthetic:null",
        run_dir=tmp_path / "run",
        seed_salt="fpr:test:0",
    )
    assert result.complete
    stored = score_run(tmp_path / "run").simulations
    assert len(mine.simulations) == len(stored) == 40
    theirs = stored[mine.simulations.columns].sort_values("sim_id").reset_index(drop=True)
    ours = mine.simulations.sort_values("sim_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


def test_a_smaller_study_is_the_first_replicates_of_a_larger_one(small_study2: Path) -> None:
    # What ``alignbf power`` relies on: the study of size r is a subset of each draw, and
    # draws with different salts share no simulation.
    study = load_study(small_study2)
    model = SyntheticModel(load_world("paper"))
    large = simulate_scores(study.model_copy(update={"replicates": 3}), model, "power:0:0")
    small = simulate_scores(study, model, "power:0:0").simulations
    other = simulate_scores(study, model, "power:0:1").simulations
    measured = ["sim_id", "units_talk", "coercive", "protective", "monologue_ratio"]
    first = large.simulations[large.simulations["replicate"] < 2][measured]
    pd.testing.assert_frame_equal(
        first.sort_values("sim_id").reset_index(drop=True),
        small[measured].sort_values("sim_id").reset_index(drop=True),
    )
    assert not small[measured[1:]].equals(other[measured[1:]])


def test_core_returns_rates_with_their_errors(
    small_study2: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _bench()
    out = tmp_path / "fpr"
    bench.main(["--config", str(small_study2), "--analyses", "2", "--out", str(out)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    figures = dict(part.split("=") for part in last.split())
    assert figures["analyses"] == "2" and figures["replicates"] == "2"
    rates = bench.rates(pd.read_csv(out / "tests.csv"))
    ids = {"s2_di_pooled", "s2_di_count", "s2_cpi_interaction", "s2_cpi_amplified_count"}
    assert ids <= set(rates["id"])
    # every analysis is decided with each binomial test; the headline leads with the
    # preregistration's own (mid-p) and adds the counts on the exact test
    assert set(rates["test"]) == {"exact", "midp"} and figures["count_test"] == "midp"
    assert "fpr_s2_cpi_amplified_count_exact" in figures
    for column in ("rejection", "supported"):
        assert rates[column].between(0, 1).all()
        se = rates[f"{column}_se"]
        assert (se == (rates[column] * (1 - rates[column]) / 2) ** 0.5).all()
    assert all(math.isfinite(float(figures[f"fpr_{i}_se"])) for i in ids)
    # the saved runs pool without simulating again, to the same figures
    bench.main(["--summarise", str(out)])
    again = dict(
        part.split("=") for part in capsys.readouterr().out.strip().split("\n")[-1].split()
    )
    assert {k: v for k, v in again.items() if k not in ("wall_s", "world")} == {
        k: v for k, v in figures.items() if k not in ("wall_s", "world")
    }
