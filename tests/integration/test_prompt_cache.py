"""Cached prompt tokens end to end on the loopback server, and ``prompt_cache_key``."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from alignbf.config import assets
from alignbf.config.endpoints import Endpoint
from alignbf.report.provenance import models_used
from alignbf.store.export import run_status
from alignbf.store.schema import MIGRATIONS, columns
from alignbf.store.store import Store
from tests.conftest import cli
from tests.integration.conftest import FAST_ENV, Server

PRICES = {"price_input_per_mtok": 0.15, "price_cached_input_per_mtok": 0.075,
          "price_output_per_mtok": 0.6}  # fmt: skip


def study_for(tmp_path: Path, url: str, cache_key: bool) -> Path:
    """The smoke study (8 simulations of 3 agents, 3 turns) on one loopback endpoint."""
    endpoint = {"base_url": url, "model": "local", "serves": "llama-3.3-70b",
                "prompt_cache_key": cache_key, **PRICES}  # fmt: skip
    (tmp_path / "endpoints.yaml").write_text(json.dumps({"endpoints": {"loop": endpoint}}))
    text = assets.path("configs", "smoke.yaml").read_text().replace("local-llamacpp", "loop")
    path = tmp_path / "study.yaml"
    path.write_text(text + f"endpoints_file: {tmp_path}/endpoints.yaml\n")
    return path


def run(config: Path, run_dir: Path) -> tuple[int, str, str]:
    done = cli("run", str(config), "--backend", "endpoints", "--run-dir", str(run_dir),
               "--quiet", env=FAST_ENV, timeout=120)  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def _calls(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        return conn.execute(
            "SELECT cache_key, prompt_tokens, completion_tokens, cached_tokens, cost_usd "
            "FROM calls ORDER BY cache_key"
        ).fetchall()


def test_cached_tokens_are_recorded_priced_and_shown(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("--prefix-cache-tokens", "1000000")
    code, out, err = run(study_for(tmp_path, server.url, True), tmp_path / "run")
    assert code == 0, err
    calls = _calls(tmp_path / "run")
    assert len(calls) == 72 and all(c[3] is not None for c in calls)
    prompt, cached = sum(c[1] for c in calls), sum(c[3] for c in calls)
    assert 0.3 < cached / prompt < 1.0
    price = Endpoint(base_url=server.url, model="local", serves="x", **PRICES)
    for _, p, c, k, cost in calls:
        assert cost == pytest.approx(price.cost(p, c, k))
    assert sum(c[4] for c in calls) < sum(price.cost(c[1], c[2]) or 0 for c in calls)
    assert f"prompt cache: {cached:,} of {prompt:,} prompt tokens ({cached / prompt:.1%})" in out
    status = run_status(tmp_path / "run")
    assert status["cached_tokens"] == cached
    assert status["cache_share"] == pytest.approx(cached / prompt)
    shown = cli("status", str(tmp_path / "run"))
    assert f"prompt cache: {cached:,} prompt tokens cached ({cached / prompt:.1%}" in shown.stdout
    assert models_used(tmp_path / "run")["cache_hit_share"].tolist() == [f"{cached / prompt:.1%}"]
    keys = [e["prompt_cache_key"] for e in server.ledger()]
    assert len(keys) == 72 and len(set(keys)) == 8 * 3 and all(keys)


def test_an_endpoint_that_rejects_prompt_cache_key_is_sent_none(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    strict = serve("--reject-prompt-cache-key")
    (tmp_path / "a").mkdir()
    code, out, err = run(study_for(tmp_path / "a", strict.url, True), tmp_path / "run-a")
    assert code == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "rejected prompt_cache_key" in warnings[0], out
    ledger = strict.ledger()
    assert [e["status"] for e in ledger] == [400] + [200] * 72
    assert ledger[0]["prompt_cache_key"] and not any(e["prompt_cache_key"] for e in ledger[1:])
    # the key never reaches the identity of a response: the same run without it stores the same keys
    plain = serve()
    (tmp_path / "b").mkdir()
    code, _, err = run(study_for(tmp_path / "b", plain.url, False), tmp_path / "run-b")
    assert code == 0, err
    assert not any(e["prompt_cache_key"] for e in plain.ledger())
    a, b = _calls(tmp_path / "run-a"), _calls(tmp_path / "run-b")
    assert [row[:3] for row in a] == [row[:3] for row in b]
    assert all(row[3] is None for row in a)  # this server reports no cache


def test_a_run_made_before_cached_tokens_opens_and_migrates(tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        conn.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at REAL)")
        for name, sql in MIGRATIONS[:2]:
            conn.executescript(sql)
            conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))
        conn.execute(
            "INSERT INTO calls (cache_key, sim_id, agent, turn, endpoint, model, response, "
            "prompt_tokens, completion_tokens, cost_usd, created_at) "
            "VALUES ('k', 's', 0, 1, 'e', 'm', 'hi', 100, 10, 0.001, 0)"
        )
    status = run_status(run_dir)
    assert status["calls"] == 1 and status["cached_tokens"] is None
    assert status["cache_share"] is None
    assert models_used(run_dir)["cache_hit_share"].tolist() == ["not reported"]
    with Store(run_dir) as store:
        assert {"cached_tokens", "cache_write_tokens"} <= columns(store.conn, "calls")
        assert store.cached("k") is not None
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        assert conn.execute("SELECT cached_tokens, cache_write_tokens FROM calls").fetchall() == [
            (None, None)
        ]
