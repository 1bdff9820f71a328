"""Preregistration lock: a one-character change is named, refused, and recorded as a deviation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import cli

MINI = """
name: mini
agents: {count: 3, target: 3}
conversation: {turns: 3}
factors:
  alignment_ratios: [0.0, 1.0]
  languages: [en, ja]
  models: [llama-3.3-70b]
replicates: 3
endpoints: {llama-3.3-70b: local-llamacpp}
prereg: ../prereg/study1.yaml
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    assert cli("init", "proj", cwd=tmp_path).returncode == 0
    root = tmp_path / "proj"
    (root / "configs" / "mini.yaml").write_text(MINI)
    locked = cli("prereg", "lock", "configs/mini.yaml", cwd=root)
    assert locked.returncode == 0, locked.stderr
    assert (root / "prereg" / "study1.lock.json").exists()
    assert cli("prereg", "verify", "configs/mini.yaml", cwd=root).returncode == 0
    return root


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


EDITS = {
    "prompt": ("data/prompts/ja.yaml", "。", "．"),
    "lexicon": ("data/lexicons/en.yaml", "comply", "complY"),
    "hypothesis": ("prereg/study1.yaml", "In English", "In english"),
}


@pytest.mark.parametrize("kind", sorted(EDITS))
def test_one_character_is_named_refused_and_recorded(project: Path, kind: str) -> None:
    name, old, new = EDITS[kind]
    _edit(project / name, old, new)
    verify = cli("prereg", "verify", "configs/mini.yaml", cwd=project)
    assert verify.returncode == 1
    assert f"{name}: changed since the lock" in verify.stdout
    run = ("run", "configs/mini.yaml", "--run-dir", "runs/r", "--quiet")
    refused = cli(*run, cwd=project)
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "differs from its preregistration lock" in refused.stderr
    assert not (project / "runs" / "r").exists()
    allowed = cli(*run, "--deviation", f"fixed a typo in {kind}", cwd=project)
    assert allowed.returncode == 0, allowed.stderr
    conn = sqlite3.connect(project / "runs" / "r" / "run.sqlite")
    rows = conn.execute("SELECT kind, detail FROM deviations ORDER BY id").fetchall()
    assert ("deviation", f"fixed a typo in {kind}") in rows
    assert any(k == "drift" and d.startswith(f"{name}: changed since the lock") for k, d in rows)


def test_locked_seeds_follow_the_lock(project: Path) -> None:
    from alignbf.analysis.prereg import read_lock
    from alignbf.config.study import load_study
    from alignbf.engine.grid import expand

    run = cli("run", "configs/mini.yaml", "--run-dir", "runs/r", "--quiet", cwd=project)
    assert run.returncode == 0, run.stderr
    root = read_lock(project / "prereg" / "study1.lock.json").root
    conn = sqlite3.connect(project / "runs" / "r" / "run.sqlite")
    stored = dict(conn.execute("SELECT key, value FROM run"))
    assert stored["seed_salt"] == root
    import os

    cwd = os.getcwd()
    os.chdir(project)
    try:
        specs = expand(load_study("configs/mini.yaml"), seed_salt=root)
    finally:
        os.chdir(cwd)
    seeds = dict(conn.execute("SELECT sim_id, json_extract(spec, '$.seed') FROM simulations"))
    assert seeds == {s.sim_id: s.seed for s in specs}
