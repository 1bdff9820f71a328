"""The Python API as a notebook uses it: inside a running event loop, and read-only."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

import alignbf
from alignbf.config import assets
from alignbf.store.store import Store


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "study1.yaml"
    path.write_text(
        "name: study1\nagents: {count: 3, target: 3}\nconversation: {turns: 3}\n"
        "factors: {alignment_ratios: [0.0, 1.0], languages: [en, ja], models: [llama-3.3-70b]}\n"
        "replicates: 2\nendpoints: {llama-3.3-70b: together-llama-3.3-70b}\n"
        f"endpoints_file: {assets.path('configs', 'endpoints.yaml')}\n"
        f"prereg: {assets.path('prereg', 'study1.yaml')}\n"
    )
    return path


def test_run_command_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    config = _config(tmp_path)

    async def cell() -> tuple[bool, bool]:
        blocking = alignbf.run_command(config, run_dir=tmp_path / "a")
        awaited = await alignbf.arun_study(config, run_dir=tmp_path / "b")
        return blocking.complete, awaited.complete

    assert asyncio.run(cell()) == (True, True)


def test_open_run_reads_without_writing_or_locking(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert alignbf.run_command(_config(tmp_path), run_dir=run_dir).complete
    before = sorted(p.name for p in run_dir.iterdir() if "sqlite-" not in p.name)
    database = hashlib.sha256((run_dir / "run.sqlite").read_bytes()).hexdigest()
    with alignbf.open_run(run_dir) as run, Store(run_dir) as writer:  # a writer holds the lock
        sims, messages, calls = run.simulations(), run.messages(), run.calls()
        scores, verdicts = run.scores(), run.verdicts()
        assert writer is not None
    assert len(sims) == 8 and set(sims["status"]) == {"ok"}
    assert {"agent_name", "aligned", "recipient_name"} <= set(messages.columns)
    facility = messages[messages["agent"] < 0]
    assert set(facility["agent_name"]) == {"facility"} and facility["aligned"].isna().all()
    english = messages[(messages["language"] == "en") & (messages["agent"] == 0)]
    assert set(english["agent_name"]) == {"Margaret Hale"}
    assert len(calls) == 8 * 3 * 3 and "cost_usd" in calls.columns
    assert len(scores) == 8 and "cpi" in scores.columns
    assert verdicts.empty and "verdict" in verdicts.columns
    assert sorted(p.name for p in run_dir.iterdir() if "sqlite-" not in p.name) == before
    assert hashlib.sha256((run_dir / "run.sqlite").read_bytes()).hexdigest() == database


def test_open_run_refuses_a_non_run(tmp_path: Path) -> None:
    with pytest.raises(alignbf.StoreError, match="not a run directory"):
        alignbf.open_run(tmp_path)
