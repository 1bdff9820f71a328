"""End to end over HTTP: transient faults and SIGKILLs change nothing that was said or paid.

The smoke study runs through ``--backend endpoints`` against the loopback server;
the server's ledger is the ground truth for requests sent, attempts and billing.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alignbf.config import assets
from alignbf.store.export import export_run
from tests.conftest import cli
from tests.integration.conftest import FAST_ENV, STALL, Server, running_server

MAX_ATTEMPTS = 5
LOST_FAULTS = {"billed_lost", "truncated", "nonutf8", "huge"}


def run_smoke(server: Server, run_dir: Path, **env: str) -> tuple[int, str, str]:
    """``alignbf run smoke --backend endpoints --base-url URL``; (exit code, stdout, stderr)."""
    done = cli(
        "run", "smoke", "--backend", "endpoints", "--base-url", server.url,
        "--run-dir", str(run_dir), "--quiet", env={**FAST_ENV, **env}, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def transcripts(run_dir: Path) -> bytes:
    export_run(run_dir)
    return (run_dir / "export" / "transcripts.jsonl").read_bytes()


def db(run_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """``--world`` pinned to a copy, so every server of this module answers alike."""
    path = tmp_path_factory.mktemp("world") / "paper.yaml"
    shutil.copy(assets.path("configs", "synthetic", "paper.yaml"), path)
    return ("--world", str(path))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, world: tuple[str, str]) -> Iterator[bytes]:
    """Transcripts of the smoke study from a fault-free server."""
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    with running_server(*world) as server:
        code, _, err = run_smoke(server, run_dir)
        assert code == 0, err
        assert len(server.ledger()) == 72
    yield transcripts(run_dir)


def test_faults_leave_transcripts_unchanged(
    reference: bytes, world: tuple[str, str], serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("--fault-rate", "0.2", "--fault-seed", "7", *STALL, *world)
    code, _, err = run_smoke(server, tmp_path / "run")
    assert code == 0, err
    conn = db(tmp_path / "run")
    assert dict(conn.execute("SELECT status, count(*) FROM simulations GROUP BY 1")) == {"ok": 8}
    assert transcripts(tmp_path / "run") == reference

    ledger = server.ledger()
    per_request = Counter(e["fingerprint"] for e in ledger)
    faults = Counter(e["fault"] for e in ledger if e["fault"])
    assert len(per_request) == 72 and max(per_request.values()) <= MAX_ATTEMPTS
    assert len(faults) >= 6, faults
    calls = conn.execute("SELECT max(attempts), sum(attempts) FROM calls").fetchone()
    failed = conn.execute("SELECT count(*) FROM attempts").fetchone()[0]
    assert calls[1] == len(ledger) and failed == len(ledger) - 72 and calls[0] <= MAX_ATTEMPTS
    # every delivered completion is recorded with the usage the server billed
    delivered = [e for e in ledger if e["delivered"]]
    recorded = conn.execute("SELECT sum(prompt_tokens + completion_tokens) FROM calls").fetchone()
    assert len(delivered) == 72 and recorded[0] == sum(e["billed_tokens"] for e in delivered)
    lost = [e for e in ledger if e["billed_tokens"] and not e["delivered"]]
    assert {e["fault"] for e in lost} <= LOST_FAULTS
    # a 429's hint is waited out: retry-after-ms 200, or the larger x-ratelimit-reset (2 s)
    hints = {"429": 0.2, "429_reset": 2.0}
    by_request: dict[str, list[dict[str, Any]]] = {}
    for e in ledger:
        by_request.setdefault(e["fingerprint"], []).append(e)
    waits = [
        (earlier["fault"], later["time"] - earlier["answered"])
        for attempts in by_request.values()
        for earlier, later in itertools.pairwise(attempts)
        if earlier["fault"] in hints
    ]
    assert {fault for fault, _ in waits} == set(hints)
    assert all(wait >= hints[fault] - 0.002 for fault, wait in waits), waits
    print(
        f"\nfaults {dict(faults)}; attempts max {max(per_request.values())} "
        f"mean {len(ledger) / 72:.2f}; paid-but-lost {len(lost)} completions, "
        f"{sum(e['billed_tokens'] for e in lost)} tokens"
    )


@pytest.mark.parametrize(
    "point",
    [
        "before_send:20",
        "http_response_headers:35",
        "after_response_before_commit:50",
        "after_commit_before_use:6",
        "sim_insert_before_commit:3",
    ],
)
def test_sigkill_over_http_then_resume(
    reference: bytes,
    world: tuple[str, str],
    serve: Callable[..., Server],
    tmp_path: Path,
    point: str,
) -> None:
    server = serve("--fault-rate", "0.2", "--fault-seed", "3", *STALL, *world)
    run_dir = tmp_path / "run"
    code, _, err = run_smoke(server, run_dir, ALIGNBF_TEST_CRASHPOINT=point)
    killed_at = time.time()
    assert code == -9, err
    conn = db(run_dir)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cached = {
        hashlib.sha256(text.encode()).hexdigest()
        for (text,) in conn.execute("SELECT response FROM calls")
    }
    conn.close()
    before = [e for e in server.ledger() if e["time"] < killed_at]
    paid = {e["fingerprint"] for e in before if e["delivered"] and e["content_sha256"] in cached}
    assert paid, "the kill came before any response was committed"

    code, _, err = run_smoke(server, run_dir)
    assert code == 0, err
    after = [e for e in server.ledger() if e["time"] >= killed_at]
    assert not paid & {e["fingerprint"] for e in after}, "a cached request was sent again"
    assert transcripts(run_dir) == reference
    conn = db(run_dir)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert dict(conn.execute("SELECT status, count(*) FROM simulations GROUP BY 1")) == {"ok": 8}


def test_429_storm_cuts_concurrency_pauses_and_recovers(
    reference: bytes, world: tuple[str, str], serve: Callable[..., Server], tmp_path: Path
) -> None:
    """P-storm: every request gets 429 (Retry-After: 1) for 3 s in mid-run, then none."""
    server = serve("--latency-ms", "150", "--storm-at-s", "0.4", "--storm-s", "3",
                   "--storm-retry-after-s", "1", *world)  # fmt: skip
    code, out, err = run_smoke(server, tmp_path / "run")
    assert code == 0, err
    assert transcripts(tmp_path / "run") == reference
    ledger = server.ledger()
    storm = [e for e in ledger if e["fault"] == "storm"]
    assert storm, "the run ended before the storm"

    # no attempt is sent before the Retry-After of the 429 before it has passed
    by_request: dict[str, list[dict[str, Any]]] = {}
    for e in ledger:
        by_request.setdefault(e["fingerprint"], []).append(e)
    gaps = [
        later["time"] - earlier["answered"]
        for attempts in by_request.values()
        for earlier, later in itertools.pairwise(attempts)
        if earlier["fault"] == "storm"
    ]
    assert gaps and min(gaps) >= 1.0 - 0.002, min(gaps)

    # AIMD: 4 requests are in flight when the storm starts (the endpoint's
    # max_connections). A 429 is taken for a rate limit once 429s are half of the last 8
    # answers, so the slots freed by the first 3 are refilled by waiting simulations (3
    # more); then each round of 429s halves the limit and the endpoint waits out
    # Retry-After: the 3 s storm sees 4 + 3 + 2 + 1 requests. Without the cut and the
    # pause it sees 24.
    assert len(storm) <= 4 + 3 + 2 + 1, len(storm)
    with db(tmp_path / "run") as conn:
        throttled = json.loads(
            conn.execute("SELECT value FROM run WHERE key = 'throttled'").fetchone()[0]
        )
    (summary,) = throttled.values()
    assert summary["cuts"] >= 2 and summary["lowest"] <= 4
    assert summary["final"] > summary["lowest"], "the limit did not recover after the storm"
    assert "rate-limited (HTTP 429)" in out
    windows = Counter(int(e["time"] * 10) for attempts in by_request.values() for e in attempts[1:])
    print(
        f"\nstorm: {len(storm)} requests answered 429; concurrency {summary}; "
        f"most retries arriving in one 100 ms window: {max(windows.values())} "
        f"of {sum(windows.values())}"
    )
