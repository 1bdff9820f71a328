"""Read-only views of a run: status per cell, and exports (JSONL, CSV, Parquet).

Exports are derived from ``run.sqlite`` and can be rebuilt at any time. Transcripts
carry no wall-clock fields, so the same run gives byte-identical JSONL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignbf.store.schema import columns
from alignbf.store.store import Store, write_atomic

if TYPE_CHECKING:
    import pandas as pd


def run_status(run_dir: Path) -> dict[str, Any]:
    """Per-cell counts of statuses, plus calls, tokens and cost of the run.

    ``cached_tokens`` is None when no call reported its prompt-cache reads, and
    ``cache_share`` is cached / prompt tokens over the calls that did.
    """
    with Store(run_dir, readonly=True) as store:
        c = store.conn
        cells = [
            dict(
                zip(
                    ("language", "alignment_ratio", "individuation_ratio", "model", "status", "n"),
                    row,
                    strict=True,
                )
            )
            for row in c.execute(
                "SELECT language, alignment_ratio, individuation_ratio, model, status, count(*) "
                "FROM simulations GROUP BY 1, 2, 3, 4, 5 ORDER BY model, language, "
                "individuation_ratio, alignment_ratio, status"
            )
        ]
        calls, tokens_in, tokens_out, cost, unknown = c.execute(
            "SELECT count(*), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),"
            " coalesce(sum(cost_usd), 0), sum(cost_usd IS NULL) FROM calls"
        ).fetchone()
        cached, reported = None, None
        if "cached_tokens" in columns(c, "calls"):
            cached, reported = c.execute(
                "SELECT sum(cached_tokens), "
                "sum(prompt_tokens) FILTER (WHERE cached_tokens IS NOT NULL) FROM calls"
            ).fetchone()
        failed = c.execute("SELECT count(*) FROM attempts").fetchone()[0]
        totals = dict(c.execute("SELECT status, count(*) FROM simulations GROUP BY status"))
        study = store.get("study")
        backend = store.get("backend")
    return {
        "run_dir": str(run_dir),
        "study": study,
        "backend": backend,
        "simulations": totals,
        "cells": cells,
        "calls": calls,
        "failed_attempts": failed,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": cost if not unknown else None,
        "calls_with_unknown_cost": unknown or 0,
        "cached_tokens": cached,
        "cache_share": cached / reported if reported else None,
    }


def transcripts(store: Store) -> list[dict[str, Any]]:
    """One object per simulation: spec, status and messages in turn order."""
    out = []
    sims = store.conn.execute(
        "SELECT sim_id, spec, status FROM simulations ORDER BY idx"
    ).fetchall()
    for sim_id, spec, status in sims:
        rows = store.conn.execute(
            "SELECT turn, agent, channel, recipient, text FROM messages WHERE sim_id = ? "
            "ORDER BY turn, agent, channel",
            (sim_id,),
        ).fetchall()
        out.append(
            {
                "sim_id": sim_id,
                "status": status,
                "spec": json.loads(spec),
                "messages": [
                    {"turn": t, "agent": a, "channel": ch, "recipient": r, "text": x}
                    for t, a, ch, r, x in rows
                ],
            }
        )
    return out


def write_tables(frame: pd.DataFrame, out: Path, name: str) -> list[Path]:
    """Write a frame as ``<name>.csv`` and ``<name>.parquet`` under ``out``."""
    csv, parquet = out / f"{name}.csv", out / f"{name}.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet, index=False)
    return [csv, parquet]


def export_run(run_dir: Path, out: Path | None = None) -> list[Path]:
    """Write ``transcripts.jsonl``, ``messages.csv/.parquet`` and ``calls.csv/.parquet``."""
    import pandas as pd

    out = out or run_dir / "export"
    with Store(run_dir, readonly=True) as store:
        out.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(t, ensure_ascii=False, sort_keys=True) for t in transcripts(store)]
        paths = [out / "transcripts.jsonl"]
        write_atomic(paths[0], "".join(line + "\n" for line in lines))
        for table, order in (
            ("messages", "sim_id, turn, agent, channel"),
            ("calls", "sim_id, turn, agent"),
        ):
            frame = pd.read_sql_query(f"SELECT * FROM {table} ORDER BY {order}", store.conn)
            paths += write_tables(frame, out, table)
    return paths
