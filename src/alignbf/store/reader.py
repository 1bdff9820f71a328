"""Read-only queries on a run: what viewers, watchers, scoring, analysis, reports and
exports read from a store, one named function per question.

A runner in another process may be writing while these run: the viewers' and watchers'
calls open the database read-only (no lock, nothing written), and an unreadable
database or a directory that is not a run is one :class:`~alignbf.errors.StoreError`
line. The other functions take an open :class:`~alignbf.store.store.Store` (read-only
or not) and return typed tuples, row dataclasses (:mod:`alignbf.store.rows`) or pandas
DataFrames whose columns are named in their docstrings.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignbf.errors import StoreError
from alignbf.store.rows import Deviation
from alignbf.store.schema import columns
from alignbf.store.store import TERMINAL, Store

if TYPE_CHECKING:
    import pandas as pd

SIM_COLUMNS = (
    "sim_id", "idx", "language", "alignment_ratio", "individuation_ratio", "model",
    "replicate", "status", "format_failures", "replies", "error", "runs", "finished_at",
)  # fmt: skip
CELL_COLUMNS = ("language", "alignment_ratio", "individuation_ratio", "model")
"""The factors that make a cell of the design."""
DESIGN_COLUMNS = ("sim_id", *CELL_COLUMNS, "replicate")
"""A simulation's place in the design: its id, its cell and its replicate."""


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


def _frame(store: Store, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
    import pandas as pd

    return pd.read_sql_query(sql, store.conn, params=params)


# -- simulations -------------------------------------------------------------------------
def simulation_frame(store: Store) -> pd.DataFrame:
    """Every simulation (``SIM_COLUMNS``), in grid order."""
    return _frame(store, f"SELECT {', '.join(SIM_COLUMNS)} FROM simulations ORDER BY idx")


def design_frame(store: Store, statuses: Sequence[str]) -> pd.DataFrame:
    """``DESIGN_COLUMNS`` and ``spec`` (JSON) of the simulations in ``statuses``, in grid
    order."""
    return _frame(
        store,
        f"SELECT {', '.join(DESIGN_COLUMNS)}, spec FROM simulations WHERE status IN "
        f"({', '.join('?' * len(statuses))}) ORDER BY idx",
        statuses,
    )


def finished_state(store: Store, statuses: Sequence[str]) -> tuple[int, float, float, str | None]:
    """Of the simulations in ``statuses``: how many, the sums of their ``finished_at`` and
    of their ``runs``, and their ids joined by commas in id order (None when there is
    none). Changes whenever one of them is run again."""
    row = store.conn.execute(
        f"SELECT count(*), total(finished_at), total(runs), group_concat(sim_id) FROM "
        f"(SELECT * FROM simulations WHERE status IN ({', '.join('?' * len(statuses))}) "
        "ORDER BY sim_id)",
        tuple(statuses),
    ).fetchone()
    return row[0], row[1], row[2], row[3]


def cell_status_counts(store: Store) -> pd.DataFrame:
    """Simulations per cell and status: ``CELL_COLUMNS``, ``status`` and ``n``."""
    cell = ", ".join(CELL_COLUMNS)
    return _frame(
        store,
        f"SELECT {cell}, status, count(*) AS n FROM simulations GROUP BY {cell}, status",
    )


def cell_replies(store: Store) -> pd.DataFrame:
    """Every simulation that ran (status not ``pending``): ``sim_id``, ``CELL_COLUMNS``,
    ``format_failures`` and ``replies``."""
    return _frame(
        store,
        f"SELECT sim_id, {', '.join(CELL_COLUMNS)}, format_failures, replies FROM simulations "
        "WHERE status != 'pending'",
    )


def ran_simulations(store: Store) -> pd.DataFrame:
    """Every simulation that ran (status not ``pending``): ``language, model,
    alignment_ratio, format_failures, replies, status``."""
    return _frame(
        store,
        "SELECT language, model, alignment_ratio, format_failures, replies, status "
        "FROM simulations WHERE status != 'pending'",
    )


# -- messages ----------------------------------------------------------------------------
def message_frame(store: Store) -> pd.DataFrame:
    """Every stored message with its simulation's language and spec (JSON): ``sim_id,
    language, turn, agent, channel, recipient, text, spec``, in grid, turn and agent order."""
    return _frame(
        store,
        "SELECT m.sim_id, s.language, m.turn, m.agent, m.channel, m.recipient, m.text, "
        "s.spec FROM messages m JOIN simulations s USING (sim_id) "
        "ORDER BY s.idx, m.turn, m.agent",
    )


def message_totals(store: Store) -> tuple[int, float]:
    """How many messages are stored, and their total length in characters."""
    row = store.conn.execute("SELECT count(*), total(length(text)) FROM messages").fetchone()
    return row[0], row[1]


def scored_messages(store: Store) -> list[tuple[str, int, str, str, str, int]]:
    """``(sim_id, agent, channel, language, text, turn)`` of every agent's message (not
    the facility's) in an ``ok`` simulation, in storage order."""
    return store.conn.execute(
        "SELECT m.sim_id, m.agent, m.channel, s.language, m.text, m.turn FROM messages m "
        "JOIN simulations s USING (sim_id) WHERE s.status = 'ok' AND m.agent >= 0"
    ).fetchall()


def judge_utterances(
    store: Store, channels: Sequence[str]
) -> list[tuple[str, int, int, str, str, str]]:
    """``(sim_id, turn, agent, channel, language, text)`` of every agent's message in
    ``channels`` of an ``ok`` simulation, in grid, turn, agent and channel order."""
    rows = store.conn.execute(
        "SELECT m.sim_id, m.turn, m.agent, m.channel, s.language, m.text FROM messages m "
        "JOIN simulations s USING (sim_id) WHERE s.status = 'ok' AND m.agent >= 0 AND "
        f"m.channel IN ({', '.join('?' * len(channels))}) ORDER BY s.idx, m.turn, m.agent, "
        "m.channel",
        list(channels),
    )
    return [(str(a), int(b), int(c), str(d), str(e), str(f)) for a, b, c, d, e, f in rows]


def hit_message_frame(store: Store, channels: Sequence[str]) -> pd.DataFrame:
    """Every agent's message in ``channels`` of an ``ok`` simulation: ``sim_id, agent,
    channel, text, language, spec`` (JSON), in storage order."""
    return _frame(
        store,
        "SELECT m.sim_id, m.agent, m.channel, m.text, s.language, s.spec FROM messages m "
        "JOIN simulations s USING (sim_id) WHERE s.status = 'ok' AND m.agent >= 0 "
        f"AND m.channel IN ({', '.join('?' * len(channels))})",
        list(channels),
    )


def coding_messages(store: Store) -> pd.DataFrame:
    """Every message of an ``ok`` simulation with its cell and spec (JSON): ``sim_id, turn,
    agent, channel, text, language, alignment_ratio, individuation_ratio, model, spec``,
    in id, turn and agent order."""
    return _frame(
        store,
        "SELECT m.sim_id, m.turn, m.agent, m.channel, m.text, s.language, s.alignment_ratio, "
        "s.individuation_ratio, s.model, s.spec FROM messages m JOIN simulations s "
        "USING (sim_id) WHERE s.status = 'ok' ORDER BY m.sim_id, m.turn, m.agent",
    )


def agent_texts(store: Store) -> dict[tuple[str, int, int, str], str]:
    """``(sim_id, turn, agent, channel) -> text`` of every agent's message (not the
    facility's)."""
    return {
        (s, t, a, c): x
        for s, t, a, c, x in store.conn.execute(
            "SELECT sim_id, turn, agent, channel, text FROM messages WHERE agent >= 0"
        )
    }


def reply_texts(store: Store) -> list[tuple[str, str, str]]:
    """``(sim_id, language, reply)`` of every reply: one agent's messages of one turn
    joined by newlines (the facility's are left out)."""
    return store.conn.execute(
        "SELECT m.sim_id, s.language, group_concat(m.text, char(10)) FROM messages m "
        "JOIN simulations s USING (sim_id) WHERE m.agent >= 0 "
        "GROUP BY m.sim_id, m.turn, m.agent"
    ).fetchall()


# -- calls -------------------------------------------------------------------------------
def call_frame(store: Store) -> pd.DataFrame:
    """Every stored call without its response text: ``cache_key, sim_id, agent, turn,
    endpoint, model, resolved_model, finish_reason, prompt_tokens, completion_tokens,
    latency_s, attempts, cost_usd``, in id, turn and agent order."""
    return _frame(
        store,
        "SELECT cache_key, sim_id, agent, turn, endpoint, model, resolved_model, "
        "finish_reason, prompt_tokens, completion_tokens, latency_s, attempts, cost_usd "
        "FROM calls ORDER BY sim_id, turn, agent",
    )


def flagged_call_totals(store: Store, flag: str) -> tuple[int, float]:
    """How many stored calls carry ``flag``, and the total length of their responses."""
    row = store.conn.execute(
        "SELECT count(*), total(length(response)) FROM calls WHERE ',' || flags || ',' LIKE ?",
        (f"%,{flag},%",),
    ).fetchone()
    return row[0], row[1]


def content_filter_calls(store: Store) -> dict[str, int]:
    """sim_id -> calls whose ``finish_reason`` is ``content_filter`` (simulations with
    none are left out)."""
    return dict(
        store.conn.execute(
            "SELECT sim_id, count(*) FROM calls WHERE finish_reason = 'content_filter' "
            "GROUP BY sim_id"
        ).fetchall()
    )


def synthetic_calls(store: Store) -> tuple[int, int]:
    """How many calls are stored, and how many of them the synthetic model answered (its
    system fingerprint starts ``synthetic-``)."""
    total, synthetic = store.conn.execute(
        "SELECT count(*), total(system_fingerprint LIKE 'synthetic-%') FROM calls"
    ).fetchone()
    return int(total), int(synthetic)


def model_versions(store: Store) -> list[tuple[str, str | None, str | None]]:
    """Distinct ``(model, resolved_model, system_fingerprint)`` of the stored calls."""
    return store.conn.execute(
        "SELECT DISTINCT model, resolved_model, system_fingerprint FROM calls"
    ).fetchall()


def usage_by_model(store: Store) -> pd.DataFrame:
    """One row per model, resolved model and endpoint that answered calls: ``model,
    resolved_model`` ('' when unknown), ``endpoint, system_fingerprints`` (distinct,
    comma-separated), ``calls, prompt_tokens, completion_tokens, cached`` (prompt tokens
    read from the prompt cache), ``reported`` (prompt tokens of the calls that said how
    many were cached; both NULL for a run made before such counts were stored),
    ``cost`` (sum of known prices) and ``unpriced`` (calls with no price)."""
    cache = (
        "sum(cached_tokens) AS cached, "
        "sum(prompt_tokens) FILTER (WHERE cached_tokens IS NOT NULL) AS reported, "
        if "cached_tokens" in columns(store.conn, "calls")
        else "NULL AS cached, NULL AS reported, "
    )
    return _frame(
        store,
        "SELECT model, coalesce(resolved_model, '') AS resolved_model, endpoint, "
        "coalesce(group_concat(DISTINCT system_fingerprint), '') AS system_fingerprints, "
        "count(*) AS calls, coalesce(sum(prompt_tokens), 0) AS prompt_tokens, "
        f"coalesce(sum(completion_tokens), 0) AS completion_tokens, {cache}"
        "sum(cost_usd) AS cost, sum(cost_usd IS NULL) AS unpriced "
        "FROM calls GROUP BY model, resolved_model, endpoint ORDER BY model, endpoint",
    )


# -- deviations --------------------------------------------------------------------------
def deviations(store: Store) -> list[Deviation]:
    """The recorded deviations from the plan, oldest first."""
    rows = store.conn.execute("SELECT at, kind, detail FROM deviations ORDER BY at")
    return [Deviation(at, kind, detail) for at, kind, detail in rows]


# -- watching a run ----------------------------------------------------------------------
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
