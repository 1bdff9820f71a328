"""The run database's schema: named forward-only migrations, and the check that a file is
an alignbf run database before anything opens it for writing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from alignbf.errors import StoreError

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE simulations (
            sim_id TEXT PRIMARY KEY,
            idx INTEGER NOT NULL,
            language TEXT NOT NULL,
            alignment_ratio REAL NOT NULL,
            individuation_ratio REAL NOT NULL,
            model TEXT NOT NULL,
            replicate INTEGER NOT NULL,
            spec TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            format_failures INTEGER,
            replies INTEGER,
            error TEXT,
            runs INTEGER NOT NULL DEFAULT 0,
            finished_at REAL
        );
        CREATE TABLE messages (
            sim_id TEXT NOT NULL REFERENCES simulations(sim_id),
            turn INTEGER NOT NULL,
            agent INTEGER NOT NULL,
            channel TEXT NOT NULL,
            recipient INTEGER,
            text TEXT NOT NULL,
            PRIMARY KEY (sim_id, turn, agent, channel)
        ) WITHOUT ROWID;
        CREATE TABLE calls (
            cache_key TEXT PRIMARY KEY,
            sim_id TEXT NOT NULL,
            agent INTEGER NOT NULL,
            turn INTEGER NOT NULL,
            endpoint TEXT NOT NULL,
            model TEXT NOT NULL,
            resolved_model TEXT,
            response TEXT NOT NULL,
            finish_reason TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            latency_s REAL,
            attempts INTEGER,
            cost_usd REAL,
            system_fingerprint TEXT,
            flags TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX calls_sim ON calls(sim_id);
        CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            sim_id TEXT,
            agent INTEGER,
            turn INTEGER,
            endpoint TEXT,
            status TEXT NOT NULL,
            detail TEXT,
            latency_s REAL,
            at REAL NOT NULL
        );
        CREATE TABLE deviations (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        """,
    ),
    (
        "0002_strikes",
        """
        ALTER TABLE simulations ADD COLUMN strikes INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        "0003_cached_tokens",
        # NULL: the provider did not report it (and every call stored before this migration)
        """
        ALTER TABLE calls ADD COLUMN cached_tokens INTEGER;
        ALTER TABLE calls ADD COLUMN cache_write_tokens INTEGER;
        """,
    ),
    (
        "0004_batches",
        # batch jobs (store/batches.py): a job is recorded before it is created, its id as
        # soon as it exists, and its output lines before any of them is used
        """
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            endpoint TEXT NOT NULL,
            input_file_id TEXT NOT NULL,
            batch_id TEXT,
            status TEXT NOT NULL,
            requests INTEGER NOT NULL,
            created_at REAL NOT NULL,
            finished_at REAL,
            detail TEXT
        );
        CREATE TABLE batch_requests (
            batch INTEGER NOT NULL REFERENCES batches(id),
            custom_id TEXT NOT NULL,
            sim_id TEXT NOT NULL,
            agent INTEGER NOT NULL,
            turn INTEGER NOT NULL,
            PRIMARY KEY (batch, custom_id)
        ) WITHOUT ROWID;
        CREATE TABLE batch_results (
            custom_id TEXT PRIMARY KEY,
            batch INTEGER NOT NULL REFERENCES batches(id),
            body TEXT NOT NULL,
            at REAL NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
    (
        "0005_judge_unlabelled",
        # a judge request that can never be answered (the utterance does not fit the judge's
        # context): recorded under the request's cache key so a resume does not send it again
        """
        CREATE TABLE judge_unlabelled (
            cache_key TEXT PRIMARY KEY,
            sim_id TEXT NOT NULL,
            agent INTEGER NOT NULL,
            turn INTEGER NOT NULL,
            channel TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT,
            at REAL NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the named migrations not yet applied; returns their names."""
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        conn.execute("BEGIN")
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))
        conn.execute("COMMIT")
        applied.append(name)
    return applied


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """Column names of a table (a read-only view of an older run may lack newer ones)."""
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


SQLITE_MAGIC = b"SQLite format 3\x00"
RUN_TABLES = frozenset({"migrations", "run", "simulations", "messages", "calls"})


def _damage(path: Path) -> str | None:
    """Why ``path`` is not a readable SQLite file, from its size and 100-byte header alone."""
    with open(path, "rb") as fh:
        header = fh.read(100)
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return "not an SQLite file"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    declared_valid = header[24:28] == header[92:96]
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0  # a checkpoint may be half done
    if declared_valid and not pending and size < pages * page_size:
        return f"truncated: {size:,} of {pages * page_size:,} bytes"
    return None


def check_database(path: Path) -> None:
    """Refuse a ``run.sqlite`` that is empty, not SQLite, truncated or not alignbf's.

    Reads only: the file is left exactly as it was.

    Raises:
        StoreError: ``PATH is not an alignbf run database (why)``.
    """
    try:
        why = _damage(path)
        if why is None:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                missing = RUN_TABLES - {row[0] for row in rows}
            finally:
                conn.close()
            if missing:
                why = f"no {', '.join(sorted(missing))} table"
    except OSError as exc:
        raise StoreError(f"{path}: cannot read ({exc.strerror})") from None
    except sqlite3.DatabaseError as exc:
        why = str(exc)
    if why is not None:
        raise StoreError(f"{path} is not an alignbf run database ({why})")
