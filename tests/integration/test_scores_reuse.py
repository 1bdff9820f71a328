"""Stored scores are reused while their inputs are unchanged, and made again when not."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from alignbf.api import run_command
from alignbf.config import assets
from alignbf.scoring import scores as scoring
from tests.integration.test_analysis import write_config


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    assert run_command(write_config(tmp_path, "study2"), world="paper", run_dir=run_dir).complete
    return run_dir


def test_scores_are_reused_until_a_transcript_or_lexicon_changes(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = scoring.score_run(run_dir)
    counted = 0
    count = scoring.count_messages

    def counting(rows, echo=None):  # type: ignore[no-untyped-def]
        nonlocal counted
        counted += 1
        return count(rows, echo)

    monkeypatch.setattr(scoring, "count_messages", counting)
    again = scoring.load_scores(run_dir)
    assert counted == 0
    pd.testing.assert_frame_equal(again.simulations, fresh.simulations)
    pd.testing.assert_frame_equal(again.agents, fresh.agents)

    # a simulation's transcript is written again (as a resume or a merge does): scored again
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        conn.execute("UPDATE simulations SET finished_at = finished_at + 1 WHERE idx = 0")
    scoring.load_scores(run_dir)
    assert counted == 1
    scoring.load_scores(run_dir)
    assert counted == 1

    # a project's own copy of a lexicon, edited: scored again
    project = tmp_path / "project"
    for part in ("configs", "data", "prereg"):
        shutil.copytree(assets.path(part), project / part)
    de = project / "data" / "lexicons" / "de.yaml"
    de.write_text(de.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    monkeypatch.setenv("ALIGNBF_HOME", str(project))
    assets._root_for.cache_clear()
    try:
        scoring.load_scores(run_dir)
        assert counted == 2
    finally:
        monkeypatch.delenv("ALIGNBF_HOME")
        assets._root_for.cache_clear()

    # ``alignbf score`` (score_run) always scores
    scoring.score_run(run_dir)
    assert counted == 3
