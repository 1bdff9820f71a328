"""``alignbf run --batch`` end to end against the loopback server's batch API.

The smoke design (2 languages x 2 ratios x 2 replicates, 3 agents x 3 turns: 8
simulations, 72 calls) runs once interactively for reference; batch runs, with batch
faults and with SIGKILLs at the batch crash points, must give byte-identical transcripts
and never pay for a request twice (the server's ``/_batches`` ledger).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alignbf.config import assets
from alignbf.store.export import export_run
from tests.conftest import cli
from tests.integration.conftest import BATCH_ENDPOINTS, FAST_ENV, Server, running_server

CALLS = 72
ROUNDS = 9
"""Speaking steps of a simulation (3 agents x 3 turns, sequential): one job each."""
BATCH_ENV = {**FAST_ENV, "ALIGNBF_BATCH_POLL_S": "0.01", "ALIGNBF_BATCH_IDLE_S": "0.5"}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke study mapped to an endpoint with ``batch: true``."""
    folder = tmp_path_factory.mktemp("study")
    text = assets.path("configs", "smoke.yaml").read_text(encoding="utf-8")
    (folder / "study.yaml").write_text(text.replace("local-llamacpp", "local-batch"))
    (folder / "endpoints.yaml").write_text(BATCH_ENDPOINTS)
    return folder / "study.yaml"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """``--world`` pinned to a copy, so every server of this module answers alike."""
    path = tmp_path_factory.mktemp("world") / "paper.yaml"
    shutil.copy(assets.path("configs", "synthetic", "paper.yaml"), path)
    return ("--world", str(path))


def run(study: Path, server: Server, run_dir: Path, *extra: str, **env: str) -> tuple[int, str]:
    """``alignbf run STUDY --backend endpoints --base-url URL [--batch]``: (exit code,
    stderr after stdout)."""
    done = cli(
        "run", str(study), "--backend", "endpoints", "--base-url", server.url,
        "--run-dir", str(run_dir), "--quiet", *extra, env={**BATCH_ENV, **env}, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def transcripts(run_dir: Path) -> bytes:
    export_run(run_dir)
    return (run_dir / "export" / "transcripts.jsonl").read_bytes()


def db(run_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)


def ledger(server: Server) -> dict[str, Any]:
    """The server's batch ledger: uploads and jobs with their lines."""
    with urllib.request.urlopen(server.root + "/_batches", timeout=10) as response:
        entries: dict[str, Any] = json.load(response)
    return entries


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, study: Path, world: tuple[str, str]
) -> Iterator[tuple[bytes, float]]:
    """Transcripts and total cost of the interactive run."""
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    with running_server(*world) as server:
        code, err = run(study, server, run_dir)
        assert code == 0, err
        assert len(server.ledger()) == CALLS
    conn = db(run_dir)
    cost = conn.execute("SELECT sum(cost_usd) FROM calls").fetchone()[0]
    conn.close()
    yield transcripts(run_dir), cost


def billed(entries: dict[str, Any]) -> Counter[str]:
    """Paid lines per request body, over every job: answered, or queued in a job that
    nobody polled (the provider runs it anyway)."""
    return Counter(
        line["fingerprint"]
        for job in entries["jobs"]
        for line in job["lines"]
        if line["outcome"] in ("answered", "queued")
    )


def test_batch_run_matches_interactive_and_advances_one_step_per_job(
    reference: tuple[bytes, float],
    study: Path,
    world: tuple[str, str],
    serve: Callable[..., Server],
    tmp_path: Path,
) -> None:
    server = serve(*world)
    code, err = run(study, server, tmp_path / "run", "--batch")
    assert code == 0, err
    assert transcripts(tmp_path / "run") == reference[0]
    assert server.ledger() == []  # no interactive call
    entries = ledger(server)
    assert [len(job["lines"]) for job in entries["jobs"]] == [8] * ROUNDS
    assert set(billed(entries).values()) == {1} and len(billed(entries)) == CALLS
    conn = db(tmp_path / "run")
    query = "SELECT sum(cost_usd), group_concat(DISTINCT flags) FROM calls"
    cost, flags = conn.execute(query).fetchone()
    assert cost == pytest.approx(reference[1] * 0.5) and flags == "batch"
    assert dict(conn.execute("SELECT status, count(*) FROM batches GROUP BY 1")) == {
        "completed": ROUNDS
    }


def test_batch_faults_are_retried_and_change_nothing_said(
    reference: tuple[bytes, float],
    study: Path,
    world: tuple[str, str],
    serve: Callable[..., Server],
    tmp_path: Path,
) -> None:
    """A failed line, an expired job, a partial output file, slow jobs and stray lines."""
    server = serve(
        "--batch-line-fail-rate", "0.2", "--batch-expire", "2", "--batch-partial", "3",
        "--batch-slow-polls", "2", "--batch-stray-lines", "--fault-seed", "5", *world,
    )  # fmt: skip
    code, err = run(study, server, tmp_path / "run", "--batch")
    assert code == 0, err
    assert transcripts(tmp_path / "run") == reference[0]
    entries = ledger(server)
    outcomes = Counter(line["outcome"] for job in entries["jobs"] for line in job["lines"])
    assert outcomes["failed"] >= 5 and outcomes["dropped"] >= 8 + 4, outcomes
    assert {job["fault"] for job in entries["jobs"]} >= {"expired", "partial"}
    assert all(job["polls"] == 3 for job in entries["jobs"])  # 2 slow polls, then done
    assert set(billed(entries).values()) == {1} and len(billed(entries)) == CALLS
    conn = db(tmp_path / "run")
    # every line sent is one attempt of a call; every unanswered one is a logged attempt
    lines = sum(outcomes.values())
    assert conn.execute("SELECT sum(attempts) FROM calls").fetchone()[0] == lines
    assert conn.execute("SELECT count(*) FROM attempts").fetchone()[0] == lines - CALLS
    assert dict(conn.execute("SELECT status, count(*) FROM simulations GROUP BY 1")) == {"ok": 8}
    assert "1 job(s) expired or failed" in err
    assert "batch output line(s) naming no request of the job ignored" in err


@pytest.mark.parametrize(
    ("point", "left"),
    [
        ("batch_before_submit:3", "uploaded"),
        ("batch_created_unrecorded:4", "uploaded"),
        ("batch_after_submit:5", "submitted"),
        ("batch_download:6", "submitted"),
    ],
)
def test_sigkill_at_a_batch_step_then_resume_pays_nothing_twice(
    reference: tuple[bytes, float],
    study: Path,
    world: tuple[str, str],
    serve: Callable[..., Server],
    tmp_path: Path,
    point: str,
    left: str,
) -> None:
    server = serve(*world)
    run_dir = tmp_path / "run"
    code, err = run(study, server, run_dir, "--batch", ALIGNBF_TEST_CRASHPOINT=point)
    assert code == -9, err
    conn = db(run_dir)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    last = conn.execute("SELECT status, batch_id FROM batches ORDER BY id DESC").fetchone()
    conn.close()
    assert last[0] == left and (last[1] is None) == (left == "uploaded")
    created = len(ledger(server)["jobs"])

    code, err = run(study, server, run_dir, "--batch")
    assert code == 0, err
    assert transcripts(run_dir) == reference[0]
    entries = ledger(server)
    submitted = Counter(line["custom_id"] for job in entries["jobs"] for line in job["lines"])
    assert set(submitted.values()) == {1} and len(submitted) == CALLS  # no request sent twice
    assert set(billed(entries).values()) == {1} and len(billed(entries)) == CALLS
    assert len(entries["jobs"]) == ROUNDS
    recovered = point.split(":")[0] != "batch_before_submit"
    assert ("1 job(s) of an earlier run polled" in err) == recovered, (created, err)


def test_preflight_refuses_an_endpoint_without_batch_api(
    study: Path, serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("--no-batch-api")
    code, err = run(study, server, tmp_path / "run", "--batch")
    assert code == 1
    assert err.count("\n") == 1 and "no batch API" in err and "Traceback" not in err, err
    assert err.startswith("alignbf: error: endpoint local-batch")
    assert server.ledger() == []
    assert not (tmp_path / "run" / "run.sqlite").exists()


def test_batch_needs_an_endpoint_that_declares_it(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve()
    code, err = run(Path("smoke"), server, tmp_path / "run", "--batch")
    assert code == 1 and err.count("\n") == 1 and "declares batch: true" in err, err
    done = cli("run", "smoke", "--batch", "--run-dir", str(tmp_path / "synthetic"))
    assert done.returncode == 1 and "--backend endpoints" in done.stderr, done.stderr
    assert server.ledger() == []
