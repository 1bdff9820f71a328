"""Read-only queries on a run directory for viewers and watchers.

A runner in another process may be writing while these run: every call opens the
database read-only (no lock, nothing written), and an unreadable database or a
directory that is not a run is one :class:`~alignbf.errors.StoreError` line.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alignbf.errors import StoreError
from alignbf.store.store import TERMINAL, Store

SIM_COLUMNS = (
    "sim_id", "idx", "language", "alignment_ratio", "individuation_ratio", "model",
    "replicate", "status", "format_failures", "replies", "error", "runs", "finished_at",
)  # fmt: skip


@contextmanager
def reading(run_dir: Path) -> Iterator[Store]:
    """A read-only store of ``run_dir``; SQLite errors become one-line ``StoreError``s."""
    if not run_dir.is_dir():
        raise StoreError(f"{run_dir}: not a run directory (no such directory)")
    store = Store(run_dir, readonly=True)
    try:
        yield store
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{store.path}: cannot read the run database ({exc})") from None
    finally:
        store.conn.close()


def check_run(run_dir: Path) -> str:
    """Raise ``StoreError`` unless ``run_dir`` holds a readable run (the read-only store
    checks the file and its tables); returns its study name."""
    with reading(run_dir) as store:
        return store.get("study") or "?"


def state(store: Store) -> tuple[Any, ...]:
    """A cheap token that changes whenever a simulation finishes or changes status."""
    row = store.conn.execute(
        "SELECT count(*), total(finished_at), total(runs), sum(status = 'ok'), "
        "group_concat(DISTINCT status) FROM simulations"
    ).fetchone()
    return tuple(row)


def simulations(store: Store) -> list[dict[str, Any]]:
    """Every simulation (``SIM_COLUMNS``), in grid order."""
    rows = store.conn.execute(f"SELECT {', '.join(SIM_COLUMNS)} FROM simulations ORDER BY idx")
    return [dict(zip(SIM_COLUMNS, row, strict=True)) for row in rows]


def simulation(store: Store, sim_id: str) -> dict[str, Any] | None:
    """One simulation with its parsed ``spec``, or None when the id is unknown."""
    row = store.conn.execute(
        f"SELECT {', '.join(SIM_COLUMNS)}, spec FROM simulations WHERE sim_id = ?", (sim_id,)
    ).fetchone()
    if row is None:
        return None
    out = dict(zip(SIM_COLUMNS, row[:-1], strict=True))
    out["spec"] = json.loads(row[-1])
    return out


def messages(store: Store, sim_id: str) -> list[tuple[int, int, str, int | None, str]]:
    """``(turn, agent, channel, recipient, text)`` of one simulation, in turn and agent
    order (agent -1 is the facility)."""
    return store.conn.execute(
        "SELECT turn, agent, channel, recipient, text FROM messages WHERE sim_id = ? "
        "ORDER BY turn, agent",
        (sim_id,),
    ).fetchall()


def first_talk(store: Store, sim_ids: list[str]) -> dict[str, tuple[int, int, str]]:
    """sim_id -> ``(turn, agent, text)`` of its first non-empty talk message."""
    out: dict[str, tuple[int, int, str]] = {}
    for sim_id in sim_ids:
        row = store.conn.execute(
            "SELECT turn, agent, text FROM messages WHERE sim_id = ? AND channel = 'talk' "
            "AND agent >= 0 AND length(text) > 0 ORDER BY turn, agent LIMIT 1",
            (sim_id,),
        ).fetchone()
        if row is not None:
            out[sim_id] = (int(row[0]), int(row[1]), str(row[2]))
    return out


def live_counts(run_dir: Path) -> dict[str, Any]:
    """What a progress display shows, read from the store of a run going on elsewhere.

    Keys: ``total``, ``finished`` (terminal statuses), ``statuses`` (status -> count),
    ``failures`` (``infra_error`` and ``failed``), ``calls_total`` (replies the grid
    needs), ``calls``, ``tokens``, ``cost_usd``, ``cost_unknown``, ``retries``,
    ``attempts_failed``, ``started`` and ``last`` (epoch seconds of the first and the
    last stored call, or None),
    ``running`` (a runner holds the run's lock) and ``complete`` (every simulation is
    in a terminal status).
    """
    with reading(run_dir) as store:
        c = store.conn
        statuses = dict(c.execute("SELECT status, count(*) FROM simulations GROUP BY status"))
        agents_turns = c.execute(
            "SELECT total(json_extract(spec, '$.n_agents') * json_extract(spec, '$.turns')) "
            "FROM simulations"
        ).fetchone()[0]
        calls, tokens, cost, unknown, retries, started, last = c.execute(
            "SELECT count(*), total(prompt_tokens) + total(completion_tokens), total(cost_usd), "
            "total(cost_usd IS NULL), total(max(coalesce(attempts, 1) - 1, 0)), "
            "min(created_at), max(created_at) FROM calls"
        ).fetchone()
        attempts_failed = c.execute("SELECT count(*) FROM attempts").fetchone()[0]
    total = sum(statuses.values())
    finished = sum(n for s, n in statuses.items() if s in TERMINAL)
    return {
        "total": total,
        "finished": finished,
        "statuses": statuses,
        "failures": statuses.get("infra_error", 0) + statuses.get("failed", 0),
        "calls_total": int(agents_turns),
        "calls": int(calls),
        "tokens": int(tokens),
        "cost_usd": float(cost),
        "cost_unknown": int(unknown),
        "retries": int(retries),
        "attempts_failed": int(attempts_failed),
        "started": started,
        "last": last,
        "running": runner_active(run_dir),
        "complete": total > 0 and finished == total,
        "read_at": time.time(),
    }


def runner_active(run_dir: Path) -> bool:
    """True while a process holds the run directory's lock (Linux ``/proc/locks``), else
    when the pid the lock file names is alive."""
    lock = run_dir / ".lock"
    if not lock.exists():
        return False
    try:
        info = lock.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return _pid_alive(lock)
    me = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    return any(
        "FLOCK" in fields and me in fields
        for fields in (line.split() for line in table.splitlines())
    )


def _pid_alive(lock: Path) -> bool:
    try:
        pid = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
