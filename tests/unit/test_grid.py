import subprocess
import sys
from pathlib import Path

import yaml

from alignbf.config.study import load_study, parse_study
from alignbf.engine.grid import count_of, expand, parse_shard, shard

ROOT = Path(__file__).resolve().parents[2]


def _study(**changes):
    data = yaml.safe_load((ROOT / "configs" / "study1.yaml").read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return parse_study(data, "test")


def test_counts_match_paper():
    sizes = {
        name: len(expand(load_study(name))) for name in ("study1", "study2", "study3", "study4")
    }
    assert sizes == {"study1": 150, "study2": 1200, "study3": 180, "study4": 80}


def test_sim_ids_are_unique_and_seeded_from_identity():
    specs = expand(load_study("study2"))
    assert len({s.sim_id for s in specs}) == len(specs)
    assert len({s.seed for s in specs}) > len(specs) * 0.99


def test_alignment_assignment_follows_ratio():
    for spec in expand(load_study("study1")):
        assert sum(spec.aligned) == count_of(spec.alignment_ratio, 10)
    assert count_of(0.5, 3) == 2 and count_of(0.3, 10) == 3 and count_of(0.7, 10) == 7


def test_sim_ids_stable_across_processes():
    code = (
        "from alignbf.engine.grid import expand; from alignbf.config.study import load_study; "
        "print(' '.join(f'{s.sim_id}:{s.seed}' for s in expand(load_study('study1'))))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(outs) == 1
    here = " ".join(f"{s.sim_id}:{s.seed}" for s in expand(load_study("study1")))
    assert outs == {here + "\n"}


def test_runtime_settings_do_not_change_identity_but_temperature_does():
    base = [(s.sim_id, s.seed) for s in expand(_study())]
    assert base == [(s.sim_id, s.seed) for s in expand(_study(**{"budget.usd": 1.0}))]
    assert base == [
        (s.sim_id, s.seed)
        for s in expand(_study(**{"endpoints": {"llama-3.3-70b": "groq-llama-3.3-70b"}}))
    ]
    hotter = [(s.sim_id, s.seed) for s in expand(_study(**{"sampling.temperature": 0.7}))]
    assert all(a[0] != b[0] and a[1] != b[1] for a, b in zip(base, hotter, strict=True))


def test_seed_salt_changes_seeds_not_ids():
    a, b = expand(_study()), expand(_study(), seed_salt="lock-root")
    assert [s.sim_id for s in a] == [s.sim_id for s in b]
    assert all(x.seed != y.seed for x, y in zip(a, b, strict=True))


def test_shards_are_disjoint_and_complete():
    specs = expand(load_study("study1"))
    parts = [shard(specs, k, 4) for k in range(1, 5)]
    ids = [s.sim_id for part in parts for s in part]
    assert sorted(ids) == sorted(s.sim_id for s in specs)
    assert parse_shard("2/4") == (2, 4)
