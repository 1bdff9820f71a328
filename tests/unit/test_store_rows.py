"""The store's typed rows: field order is table order, and rows round-trip unchanged."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from alignbf.store import reader
from alignbf.store.rows import AttemptRow, CallRow, Deviation, names, values
from alignbf.store.store import Store

CALL = CallRow(
    cache_key="k1", sim_id="s1", agent=2, turn=3, endpoint="e", model="m",
    resolved_model="m-2024", response="[TALK] hi", finish_reason="stop", prompt_tokens=11,
    completion_tokens=4, latency_s=0.25, attempts=2, cost_usd=0.001,
    system_fingerprint="fp", flags="judge", created_at=1700000000.5, cached_tokens=8,
    cache_write_tokens=None,
)  # fmt: skip


def _table_columns(run_dir: Path, table: str) -> list[str]:
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_call_fields_are_the_calls_columns_in_order(tmp_path: Path) -> None:
    with Store(tmp_path / "run"):
        pass
    assert list(names(CallRow)) == _table_columns(tmp_path / "run", "calls")
    attempt_columns = _table_columns(tmp_path / "run", "attempts")
    assert list(names(AttemptRow)) == [c for c in attempt_columns if c not in ("id", "at")]


def test_rows_are_frozen_and_slotted() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CALL.response = "changed"  # type: ignore[misc]
    assert not hasattr(CALL, "__dict__")


def test_a_call_comes_back_as_it_was_put(tmp_path: Path) -> None:
    with Store(tmp_path / "run") as store:
        asyncio.run(store.put_call(CALL))
        assert store.cached("k1") == CALL
        assert store.cached("k2") is None
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as conn:
        assert conn.execute("SELECT * FROM calls").fetchall() == [values(CALL)]


def test_an_attempt_is_stored_with_a_time(tmp_path: Path) -> None:
    row = AttemptRow("s1", 0, 1, "e", "http_503", "busy", 0.5)
    with Store(tmp_path / "run") as store:
        store.log_attempt(row)
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as conn:
        stored = conn.execute("SELECT * FROM attempts").fetchall()
    assert [r[1:8] for r in stored] == [values(row)]
    assert stored[0][8] > 0


def test_deviations_read_back_oldest_first(tmp_path: Path) -> None:
    with Store(tmp_path / "run") as store:
        store.add_deviation("lock", "config changed")
        store.add_deviation("stopped", "budget")
        store.add_deviation("lock", "config changed")  # recorded once
    with Store(tmp_path / "run", readonly=True) as store:
        found = reader.deviations(store)
    assert [(d.kind, d.detail) for d in found] == [
        ("lock", "config changed"),
        ("stopped", "budget"),
    ]
    assert all(isinstance(d, Deviation) for d in found)
    assert found[0].at <= found[1].at


def test_replaced_tables_keep_columns_and_store_nan_as_null(tmp_path: Path) -> None:
    frame = pd.DataFrame({"sim_id": ["a", "b"], "cpi": [0.5, float("nan")], "n": [1, 2]})
    with Store(tmp_path / "run") as store:
        store.replace_tables([("scores_sim", frame.iloc[:1])])
        store.replace_tables([("scores_sim", frame)])
        store.set_fact("scores_fingerprint", "x")
        store.clear_fact("scores_fingerprint")
        assert store.get("scores_fingerprint") is None
    with sqlite3.connect(tmp_path / "run" / "run.sqlite") as conn:
        rows = conn.execute("SELECT * FROM scores_sim ORDER BY sim_id").fetchall()
    assert rows == [("a", 0.5, 1), ("b", None, 2)]


def test_a_read_only_store_closes_on_leaving_its_block(tmp_path: Path) -> None:
    with Store(tmp_path / "run"):
        pass
    with Store(tmp_path / "run", readonly=True) as store:
        assert reader.message_totals(store) == (0, 0.0)
    with pytest.raises(sqlite3.ProgrammingError):
        store.conn.execute("SELECT 1")
