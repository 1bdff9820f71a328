"""The run store: ``runs/<name>/run.sqlite`` (the source of truth) and ``manifest.json``.

Tables: ``run`` (key/value facts about the run), ``simulations`` (spec and status),
``messages`` (turn, agent, channel, recipient, text), ``calls`` (every successful
response, which is also the response cache), ``attempts`` (failed attempts, for
accounting), ``deviations`` and ``judge_unlabelled`` (judge requests that can never be
answered, so a resume does not send them again). WAL journal, ``synchronous=FULL``, one
writer. The schema moves forward only through the named migrations of
:mod:`alignbf.store.schema`.

A response is committed before the conversation uses it (group commit): every
response that arrives in one turn of the event loop goes into one transaction,
committed on the loop's thread at the start of the next turn. With WAL and
``synchronous=FULL`` a commit is one fsync of the WAL (well under a millisecond on
a local SSD, and the whole batch shares it). A worker thread was tried and was
slower: handing the GIL back and forth cost more than the fsync it overlapped.
One lock serialises every use of the single writer connection. A finished
simulation's messages and status are committed in one transaction.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignbf.errors import StoreError
from alignbf.store.rows import AttemptRow, CallRow, names, values
from alignbf.store.schema import check_database, columns, migrate
from alignbf.testing import crashpoints

if TYPE_CHECKING:
    import pandas as pd

TERMINAL = ("ok", "invalid_output", "context_length", "failed")
"""Statuses a resume does not run again (``failed``: see ``Store.strike``)."""
CALL_COLUMNS = ", ".join(names(CallRow))
_CALL_SLOTS = ", ".join("?" * len(names(CallRow)))


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open a run database with the pragmas every connection needs."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    else:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Store:
    """A run directory opened for writing by exactly one process, or with ``readonly`` for
    reading by any number (no lock, nothing written). A context manager: ``with Store(dir)
    as store:`` closes it. Every SQL statement on a run lives in :mod:`alignbf.store`:
    here, in :mod:`alignbf.store.reader` (the read-only queries) and in the batch, merge
    and export modules beside them; rows go in and out as :mod:`alignbf.store.rows`."""

    def __init__(self, run_dir: Path, *, readonly: bool = False) -> None:
        self.dir = run_dir
        self.path = run_dir / "run.sqlite"
        self._lock_fh: Any = None
        self._mutex = threading.Lock()
        if readonly:
            if not self.path.exists():
                raise StoreError(f"{run_dir}: not a run directory (no run.sqlite)")
            check_database(self.path)
            self.conn = connect(self.path, readonly=True)
            return
        if self.path.exists():
            check_database(self.path)
        try:
            if not run_dir.exists():
                run_dir.mkdir(parents=True)
                os.chmod(run_dir, 0o700)  # only a directory alignbf made is narrowed
        except OSError as exc:
            raise StoreError(f"{run_dir}: cannot create run directory ({exc.strerror})") from None
        self._lock()
        try:
            self.conn = connect(self.path)
            migrate(self.conn)
        except sqlite3.DatabaseError as exc:
            if self._lock_fh is not None:
                self._lock_fh.close()
                self._lock_fh = None
            raise StoreError(f"{self.path} is not an alignbf run database ({exc})") from None
        self._pending: list[tuple[CallRow, asyncio.Future[None]]] = []

    def _lock(self) -> None:
        lock_path = self.dir / ".lock"
        fh = open(lock_path, "a+")  # noqa: SIM115 - held for the store's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise StoreError(
                f"{self.dir}: locked by pid {holder}; one runner per run directory"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Checkpoint, close the database and release the lock."""
        try:
            with self._mutex:
                self.conn.close()
        finally:
            if self._lock_fh is not None:
                self._lock_fh.close()
                self._lock_fh = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the connection lock."""
        with self._mutex:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # -- run facts -------------------------------------------------------------------
    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._mutex:
            return self.conn.execute(sql, params).fetchall()

    def get(self, key: str) -> str | None:
        """A fact about the run, or None."""
        rows = self._query("SELECT value FROM run WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0])

    def set_fact(self, key: str, value: str) -> None:
        """Record a fact about the run."""
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO run VALUES (?, ?)", (key, value))

    def clear_fact(self, key: str) -> None:
        """Forget a fact about the run (nothing happens when it is not recorded)."""
        with self.transaction() as c:
            c.execute("DELETE FROM run WHERE key = ?", (key,))

    def add_deviation(self, kind: str, detail: str) -> None:
        """Record a deviation from the plan, with a timestamp (once per kind and detail)."""
        with self.transaction() as c:
            seen = c.execute(
                "SELECT 1 FROM deviations WHERE kind = ? AND detail = ?", (kind, detail)
            ).fetchone()
            if seen:
                return
            c.execute(
                "INSERT INTO deviations (at, kind, detail) VALUES (?, ?, ?)",
                (time.time(), kind, detail),
            )

    # -- simulations -----------------------------------------------------------------
    def register(self, specs: Iterable[Any]) -> None:
        """Insert specs not yet known, as ``pending``."""
        rows = [
            (
                s.sim_id,
                s.index,
                s.language,
                s.alignment_ratio,
                s.individuation_ratio,
                s.model,
                s.replicate,
                s.to_json(),
            )
            for s in specs
        ]
        with self.transaction() as c:
            c.executemany(
                "INSERT OR IGNORE INTO simulations (sim_id, idx, language, alignment_ratio, "
                "individuation_ratio, model, replicate, spec) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def statuses(self) -> dict[str, str]:
        """sim_id -> status."""
        return dict(self._query("SELECT sim_id, status FROM simulations"))

    def sims_with_calls(self) -> set[str]:
        """Simulations that have at least one cached response."""
        return {row[0] for row in self._query("SELECT DISTINCT sim_id FROM calls")}

    def finish(
        self,
        sim_id: str,
        status: str,
        rows: list[tuple[int, int, str, int | None, str]],
        *,
        format_failures: int = 0,
        replies: int = 0,
        error: str | None = None,
    ) -> None:
        """Commit a simulation's transcript and status in one transaction."""
        with self.transaction() as c:
            crashpoints.reached("sim_commit_begin")
            c.execute("DELETE FROM messages WHERE sim_id = ?", (sim_id,))
            c.executemany(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                [(sim_id, *row) for row in rows],
            )
            c.execute(
                "UPDATE simulations SET status = ?, format_failures = ?, replies = ?, error = ?, "
                "runs = runs + 1, finished_at = ? WHERE sim_id = ?",
                (status, format_failures, replies, error, time.time(), sim_id),
            )
            crashpoints.reached("sim_insert_before_commit")

    def mark(self, sim_id: str, status: str, error: str | None = None) -> None:
        """Set a non-terminal status (``stopped``, ``infra_error``) without a transcript."""
        with self.transaction() as c:
            c.execute(
                "UPDATE simulations SET status = ?, error = ?, runs = runs + 1 WHERE sim_id = ?",
                (status, error, sim_id),
            )

    def strike(self, sim_ids: list[str], limit: int) -> list[str]:
        """Count one more run in which each simulation failed while its endpoint worked.

        A simulation with ``limit`` strikes becomes ``failed``: terminal, so a resume
        stops paying for a request that fails every time. Returns those simulations.
        """
        failed: list[str] = []
        with self.transaction() as c:
            for sim_id in sim_ids:
                c.execute(
                    "UPDATE simulations SET strikes = strikes + 1 WHERE sim_id = ?", (sim_id,)
                )
                row = c.execute(
                    "SELECT strikes, error FROM simulations WHERE sim_id = ?", (sim_id,)
                ).fetchone()
                if row is not None and row[0] >= limit:
                    c.execute(
                        "UPDATE simulations SET status = 'failed', error = ? WHERE sim_id = ?",
                        (f"gave up after {row[0]} runs that failed while the endpoint answered "
                         f"other requests (alignbf run --retry-failed tries again); last: {row[1]}",
                         sim_id),
                    )  # fmt: skip
                    failed.append(sim_id)
        return failed

    def strikes(self, sim_ids: list[str]) -> dict[str, int]:
        """sim_id -> strikes so far."""
        rows = self._query("SELECT sim_id, strikes FROM simulations WHERE strikes > 0")
        wanted = set(sim_ids)
        return {sim: n for sim, n in rows if sim in wanted}

    def retry_failed(self) -> int:
        """Make every ``failed`` simulation pending again, with no strikes; returns how many."""
        with self.transaction() as c:
            cursor = c.execute(
                "UPDATE simulations SET status = 'pending', strikes = 0 WHERE status = 'failed'"
            )
            return cursor.rowcount

    # -- the response cache ----------------------------------------------------------
    def cached(self, cache_key: str) -> CallRow | None:
        """The stored call for a key, or None."""
        rows = self._query(f"SELECT {CALL_COLUMNS} FROM calls WHERE cache_key = ?", (cache_key,))
        return CallRow(*rows[0]) if rows else None

    def flagged_responses(self, flag: str) -> dict[str, str]:
        """cache_key -> response of every stored call whose flags include ``flag``."""
        rows = self._query(
            "SELECT cache_key, response FROM calls WHERE ',' || flags || ',' LIKE ?",
            (f"%,{flag},%",),
        )
        return dict(rows)

    async def put_call(self, row: CallRow) -> None:
        """Commit one successful response; returns once it is durable (group commit)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((row, future))
        await future

    def _commit_calls(self, rows: list[CallRow]) -> None:
        with self.transaction() as c:
            c.executemany(
                f"INSERT OR IGNORE INTO calls ({CALL_COLUMNS}) VALUES ({_CALL_SLOTS})",
                [values(row) for row in rows],
            )

    def _flush(self) -> None:
        """Commit every response received in this turn of the event loop, in one transaction."""
        batch, self._pending = self._pending, []
        try:
            self._commit_calls([row for row, _ in batch])
        except sqlite3.Error as exc:
            error = StoreError(f"{self.path}: cannot write ({exc})")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        crashpoints.reached("after_commit_before_use")
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    def record_unlabelled(
        self, cache_key: str, utterance: tuple[str, int, int, str], reason: str, detail: str
    ) -> None:
        """Record that a judge request can never be answered (``reason``, e.g.
        ``context_length``): ``utterance`` is (sim_id, turn, agent, channel)."""
        sim_id, turn, agent, channel = utterance
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO judge_unlabelled (cache_key, sim_id, agent, turn, "
                "channel, reason, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (cache_key, sim_id, agent, turn, channel, reason, detail, time.time()),
            )

    def unlabelled_requests(self) -> dict[str, str]:
        """cache_key -> reason of every judge request recorded as never answerable (empty
        for a run made before such records existed)."""
        with self._mutex:
            present = columns(self.conn, "judge_unlabelled")
        if not present:
            return {}
        return dict(self._query("SELECT cache_key, reason FROM judge_unlabelled"))

    def log_attempt(self, row: AttemptRow) -> None:
        """Record a failed attempt, stamped with the time."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO attempts (sim_id, agent, turn, endpoint, status, detail, latency_s, "
                "at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*values(row), time.time()),
            )

    # -- derived tables --------------------------------------------------------------
    def replace_tables(self, tables: Sequence[tuple[str, pd.DataFrame]]) -> None:
        """Replace each named table by a frame (its columns, its rows; NaN stored as NULL),
        all in one transaction. For derived tables such as the scores."""
        with self.transaction() as c:
            for name, frame in tables:
                c.execute(f"DROP TABLE IF EXISTS {name}")
                header = ", ".join(f'"{col}"' for col in frame.columns)
                c.execute(f"CREATE TABLE {name} ({header})")
                c.executemany(
                    f"INSERT INTO {name} VALUES ({', '.join('?' * len(frame.columns))})",
                    frame.astype(object).where(frame.notna(), None).itertuples(index=False),
                )


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` atomically."""
    write_atomic(run_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
