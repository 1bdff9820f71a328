"""The runner against real SQLite: completion, resume, determinism, kill and resume."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from alignbf.api import run_command
from alignbf.config.study import load_study
from alignbf.engine.grid import expand
from alignbf.engine.runner import cache_key, run_study
from alignbf.store.export import export_run
from tests.conftest import cli

MINI = """
name: mini
agents: {count: 4, target: 4}
conversation: {turns: 5}
factors:
  alignment_ratios: [0.0, 1.0]
  languages: [en, ja]
  models: [llama-3.3-70b]
replicates: 3
endpoints: {llama-3.3-70b: local-llamacpp}
endpoints_file: ENDPOINTS
"""


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    from alignbf.config import assets

    path = tmp_path / "mini.yaml"
    path.write_text(MINI.replace("ENDPOINTS", str(assets.path("configs", "endpoints.yaml"))))
    return path


def _transcripts(run_dir: Path) -> bytes:
    export_run(run_dir)
    return (run_dir / "export" / "transcripts.jsonl").read_bytes()


def test_run_completes_and_rerun_makes_no_calls(mini: Path, tmp_path: Path) -> None:
    first = run_command(mini, run_dir=tmp_path / "r")
    assert first.progress.statuses == {"ok": 12}
    assert first.progress.calls == 12 * 4 * 5
    again = run_command(mini, run_dir=tmp_path / "r")
    assert again.progress.calls == 0 and again.progress.skipped == 12
    conn = sqlite3.connect(tmp_path / "r" / "run.sqlite")
    counts = conn.execute(
        "SELECT sim_id, count(DISTINCT turn), count(DISTINCT agent) FROM messages "
        "WHERE agent >= 0 GROUP BY sim_id"
    ).fetchall()
    assert len(counts) == 12 and all(t == 5 and a == 4 for _, t, a in counts)


def test_same_run_twice_is_byte_identical(mini: Path, tmp_path: Path) -> None:
    run_command(mini, run_dir=tmp_path / "a", concurrency=3)
    run_command(mini, run_dir=tmp_path / "b", concurrency=50)
    assert _transcripts(tmp_path / "a") == _transcripts(tmp_path / "b")


def test_replicates_differ(mini: Path, tmp_path: Path) -> None:
    run_command(mini, run_dir=tmp_path / "a")
    lines = [json.loads(x) for x in _transcripts(tmp_path / "a").splitlines()]
    by_cell: dict[tuple[str, float], list[str]] = {}
    for t in lines:
        spec = t["spec"]
        talk = " ".join(m["text"] for m in t["messages"] if m["channel"] == "talk")
        by_cell.setdefault((spec["language"], spec["alignment_ratio"]), []).append(talk)
    for talks in by_cell.values():
        assert len(set(talks)) == len(talks)


def test_cache_keys_carry_sample_identity(mini: Path) -> None:
    from alignbf.transport.backend import ChatRequest

    specs = expand(load_study(mini))
    a, b = specs[0], specs[1]
    msgs = ({"role": "system", "content": "x"},)

    def req(spec, agent=0, turn=1):
        return ChatRequest(spec.sim_id, agent, turn, spec.model, msgs, 0.9, 1.0, 768, spec.seed)

    keys = {
        cache_key("e", req(a), "d"),
        cache_key("e", req(b), "d"),
        cache_key("e", req(a, agent=1), "d"),
        cache_key("e", req(a, turn=2), "d"),
        cache_key("other", req(a), "d"),
        cache_key("e", req(a), "other-messages"),
    }
    assert len(keys) == 6


def test_refuses_other_config_in_same_run_dir(mini: Path, tmp_path: Path) -> None:
    run_command(mini, run_dir=tmp_path / "r", limit=1)
    changed = mini.read_text().replace("replicates: 3", "replicates: 4")
    mini.write_text(changed)
    with pytest.raises(Exception, match="different config"):
        run_command(mini, run_dir=tmp_path / "r")


def test_budget_stops_and_resume_finishes(mini: Path, tmp_path: Path) -> None:
    text = mini.read_text() + "budget: {calls: 50}\n"
    mini.write_text(text)
    stopped = run_command(mini, run_dir=tmp_path / "r", concurrency=2)
    assert stopped.stopped and "budget" in stopped.stopped
    assert stopped.progress.calls == 50
    conn = sqlite3.connect(tmp_path / "r" / "run.sqlite")
    assert conn.execute("SELECT count(*) FROM deviations WHERE kind='stopped'").fetchone()[0] == 1


def _summary_numbers(stdout: str) -> tuple[int, int]:
    found = re.search(r"([\d,]+) calls, ([\d,]+) replayed from cache", stdout)
    assert found, stdout
    return int(found.group(1).replace(",", "")), int(found.group(2).replace(",", ""))


@pytest.mark.parametrize(
    "point",
    [
        "after_commit_before_use:7",
        "before_send:40",
        "sim_insert_before_commit:2",
        "after_response_before_commit:90",
        "after_commit_before_use:25",
    ],
)
def test_sigkill_then_resume(mini: Path, tmp_path: Path, point: str) -> None:
    ref = tmp_path / "ref"
    run_command(mini, run_dir=ref, concurrency=4)
    killed = tmp_path / "killed"
    args = ("run", str(mini), "--run-dir", str(killed), "--concurrency", "4", "--quiet")
    first = cli(*args, env={"ALIGNBF_TEST_CRASHPOINT": point})
    assert first.returncode == -9, first.stderr
    conn = sqlite3.connect(f"file:{killed / 'run.sqlite'}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cached = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
    done_before = dict(conn.execute("SELECT sim_id, status FROM simulations WHERE status='ok'"))
    conn.close()
    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    calls, replayed = _summary_numbers(resumed.stdout)
    total = 12 * 4 * 5
    # every response cached before the kill is used, never requested again
    assert calls + cached == total
    assert replayed == cached - 4 * 5 * len(done_before)
    assert _transcripts(killed) == _transcripts(ref)
    conn = sqlite3.connect(killed / "run.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert dict(conn.execute("SELECT status, count(*) FROM simulations GROUP BY 1")) == {"ok": 12}


def test_second_runner_on_same_dir_is_refused(mini: Path, tmp_path: Path) -> None:
    from alignbf.errors import StoreError
    from alignbf.store.store import Store

    holder = Store(tmp_path / "r")
    try:
        with pytest.raises(StoreError, match="locked by pid"):
            run_study(mini, backend=None, backend_name="synthetic:paper", run_dir=tmp_path / "r")  # type: ignore[arg-type]
    finally:
        holder.close()


def test_shards_merge_into_the_unsharded_run(mini: Path, tmp_path: Path) -> None:
    from alignbf.store.merge import merge_runs

    run_command(mini, run_dir=tmp_path / "whole")
    for k in (1, 2):
        run_command(mini, run_dir=tmp_path / f"s{k}", shard=f"{k}/2")
    total = merge_runs([tmp_path / "s1", tmp_path / "s2"], tmp_path / "merged")
    assert total == 12
    assert _transcripts(tmp_path / "merged") == _transcripts(tmp_path / "whole")


def test_merge_refuses_different_studies(mini: Path, tmp_path: Path) -> None:
    from alignbf.errors import ConfigError
    from alignbf.store.merge import merge_runs

    run_command(mini, run_dir=tmp_path / "a", limit=1)
    other = tmp_path / "other.yaml"
    other.write_text(mini.read_text().replace("name: mini", "name: other"))
    run_command(other, run_dir=tmp_path / "b", limit=1)
    with pytest.raises(ConfigError, match="only shards of one study"):
        merge_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "m")


class Flaky:
    """The synthetic backend, except that every request of the ``poison`` simulations fails."""

    def __init__(self, poison: set[str], outage: bool = False, outage_after: int = -1) -> None:
        from alignbf.engine.synthetic import SyntheticBackend, load_world

        self.inner = SyntheticBackend(load_world(None))
        self.poison, self.outage, self.outage_after = poison, outage, outage_after
        self.sent: dict[str, int] = {}

    def endpoint_id(self, model: str) -> str:
        return self.inner.endpoint_id(model)

    async def complete(self, request: Any) -> Any:
        from alignbf.errors import TransientEndpointError

        self.sent[request.sim_id] = self.sent.get(request.sim_id, 0) + 1
        if self.outage_after == sum(self.sent.values()) - 1:
            self.outage = True
        if self.outage or request.sim_id in self.poison:
            raise TransientEndpointError("endpoint e: gave up after 5 attempt(s); last: http_500")
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _run_flaky(mini: Path, run_dir: Path, backend: Flaky, **kw: Any) -> Any:
    from alignbf.engine.runner import run_study

    name = "synthetic:paper"
    return run_study(mini, backend=backend, backend_name=name, run_dir=run_dir, **kw)


def test_a_simulation_that_fails_alone_is_given_up_after_three_runs(
    mini: Path, tmp_path: Path
) -> None:
    from alignbf.engine.runner import STRIKES

    run_dir = tmp_path / "r"
    poison = expand(load_study(mini))[5].sim_id
    # an outage (nothing answered) costs no strikes
    out = _run_flaky(mini, run_dir, Flaky(set(), outage=True))
    assert out.progress.statuses == {"infra_error": 12}
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        assert conn.execute("SELECT sum(strikes) FROM simulations").fetchone() == (0,)
    for n in range(1, STRIKES + 1):
        backend = Flaky({poison})
        result = _run_flaky(mini, run_dir, backend)
        assert backend.sent[poison] == 1  # the first request fails; nothing more is sent
        if n < STRIKES:
            assert result.progress.statuses.get("infra_error") == 1 and not result.complete
    assert result.progress.statuses == {"failed": 1} and result.complete
    conn = sqlite3.connect(run_dir / "run.sqlite")
    status, strikes, error = conn.execute(
        "SELECT status, strikes, error FROM simulations WHERE sim_id = ?", (poison,)
    ).fetchone()
    assert (status, strikes) == ("failed", STRIKES) and "--retry-failed" in error
    assert conn.execute("SELECT count(*) FROM simulations WHERE status = 'ok'").fetchone() == (11,)

    backend = Flaky({poison})
    again = _run_flaky(mini, run_dir, backend)
    assert backend.sent == {} and again.progress.skipped == 12  # failed is terminal

    healed = Flaky(set())
    retried = _run_flaky(mini, run_dir, healed, retry_failed=True)
    assert retried.progress.statuses == {"ok": 1} and set(healed.sent) == {poison}


def test_an_outage_that_begins_mid_run_costs_no_strikes(mini: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    for _ in range(4):
        result = _run_flaky(mini, run_dir, Flaky(set(), outage_after=30), concurrency=4)
        assert "failed" not in result.progress.statuses
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        assert conn.execute("SELECT sum(strikes) FROM simulations").fetchone() == (0,)
    assert _run_flaky(mini, run_dir, Flaky(set())).complete
