"""Batch jobs of a run (``alignbf run --batch``): what was submitted, and what came back.

A job is written in three steps, each committed before the next network call:

1. ``record_upload``: the uploaded input file's id and every ``custom_id`` it holds
   (status ``uploaded``), before the job is created;
2. ``record_submitted``: the provider's batch id (status ``submitted``), before the
   first poll;
3. ``record_outcome``: the output lines that answered a request of the job, and the
   job's final status, in one transaction, before any line is used.

A resumed run reads the jobs still ``uploaded`` or ``submitted`` (``open_jobs``) and
polls them instead of paying for their requests again; answers already stored are
read back with ``stored_results``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from alignbf.store.store import Store

OPEN = ("uploaded", "submitted")
"""Statuses of a job whose requests may still be answered."""


@dataclass(frozen=True)
class BatchJob:
    """One stored batch job."""

    id: int
    endpoint: str
    input_file_id: str
    batch_id: str | None
    status: str
    custom_ids: tuple[str, ...]


def record_upload(
    store: Store, endpoint: str, input_file_id: str, items: list[tuple[str, str, int, int]]
) -> int:
    """Record an uploaded input file and its requests ``(custom_id, sim_id, agent, turn)``;
    returns the job's local id."""
    with store.transaction() as c:
        cursor = c.execute(
            "INSERT INTO batches (endpoint, input_file_id, status, requests, created_at) "
            "VALUES (?, ?, 'uploaded', ?, ?)",
            (endpoint, input_file_id, len(items), time.time()),
        )
        job = int(cursor.lastrowid or 0)
        c.executemany(
            "INSERT INTO batch_requests VALUES (?, ?, ?, ?, ?)",
            [(job, *item) for item in items],
        )
    return job


def record_submitted(store: Store, job: int, batch_id: str) -> None:
    """The provider created the job: keep its id before polling it."""
    with store.transaction() as c:
        c.execute(
            "UPDATE batches SET batch_id = ?, status = 'submitted' WHERE id = ?", (batch_id, job)
        )


def record_outcome(
    store: Store, job: int, status: str, results: dict[str, str], detail: str | None = None
) -> None:
    """Store a finished job's answered lines (``custom_id -> body JSON``) and its status."""
    now = time.time()
    with store.transaction() as c:
        c.executemany(
            "INSERT OR IGNORE INTO batch_results VALUES (?, ?, ?, ?)",
            [(custom_id, job, body, now) for custom_id, body in results.items()],
        )
        c.execute(
            "UPDATE batches SET status = ?, finished_at = ?, detail = ? WHERE id = ?",
            (status, now, detail, job),
        )


def open_jobs(store: Store, endpoint: str) -> list[BatchJob]:
    """Jobs of ``endpoint`` still ``uploaded`` or ``submitted``, oldest first."""
    rows = store._query(
        "SELECT id, endpoint, input_file_id, batch_id, status FROM batches "
        "WHERE endpoint = ? AND status IN (?, ?) ORDER BY id",
        (endpoint, *OPEN),
    )
    jobs = []
    for job, name, file_id, batch_id, status in rows:
        ids = store._query(
            "SELECT custom_id FROM batch_requests WHERE batch = ? ORDER BY custom_id", (job,)
        )
        jobs.append(BatchJob(job, name, file_id, batch_id, status, tuple(r[0] for r in ids)))
    return jobs


def stored_results(store: Store, custom_ids: list[str]) -> dict[str, str]:
    """The stored answer line body of each of ``custom_ids`` that has one."""
    found: dict[str, str] = {}
    for start in range(0, len(custom_ids), 500):
        chunk = custom_ids[start : start + 500]
        slots = ", ".join("?" * len(chunk))
        rows = store._query(
            f"SELECT custom_id, body FROM batch_results WHERE custom_id IN ({slots})",
            tuple(chunk),
        )
        found.update(dict(rows))
    return found


def job_counts(store: Store) -> dict[str, int]:
    """Jobs per status (``completed``, ``expired``, ``failed``, ``not_created``, ...)."""
    return dict(store._query("SELECT status, count(*) FROM batches GROUP BY status"))
