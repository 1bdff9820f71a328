"""``alignbf score``: a separate pass over stored transcripts, never calling a model.

Reads the ``ok`` simulations of a run, counts every message with the language's
lexicon, aggregates measures per simulation and per agent, adds CPI and DI, and
writes ``scores_sim`` / ``scores_agent`` into ``run.sqlite`` and as CSV and Parquet
under ``RUN_DIR/scores/``. Re-scoring replaces those tables: it is idempotent.

The scores record a fingerprint of what they depend on: the scored simulations
(ids, runs, finish times: every write of a transcript changes them), the number
and total length of the messages, the study's scoring settings, the measure,
index and package versions and the bytes of each lexicon and prompt file (the
echo filter reads the prompts). ``alignbf
analyze`` reuses the stored scores while the fingerprint matches and scores again
otherwise; ``alignbf score`` always scores again (after editing a transcript by
hand, say).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alignbf import __version__
from alignbf.config.prompts import prompt_file
from alignbf.config.study import Study, parse_study
from alignbf.errors import AnalysisError
from alignbf.scoring.indices import INDICES_VERSION, add_indices
from alignbf.scoring.lexicon import lexicon_file, load_lexicon
from alignbf.scoring.measures import (
    MEASURES_NAME,
    MEASURES_VERSION,
    agent_measures,
    count_messages,
    simulation_measures,
)
from alignbf.store.export import write_tables
from alignbf.store.store import Store
from alignbf.testing import crashpoints

SCORED_STATUSES = ("ok",)
DESIGN_COLUMNS = [
    "sim_id",
    "language",
    "alignment_ratio",
    "individuation_ratio",
    "model",
    "replicate",
]


@dataclass
class Scores:
    """Scores of one run."""

    simulations: pd.DataFrame
    agents: pd.DataFrame
    paths: list[Path]


def study_of(store: Store) -> Study:
    """The study config recorded in a run (one-line error when there is none)."""
    import yaml

    text = store.get("config")
    if text is None:
        raise AnalysisError(f"{store.dir}: run has no recorded config")
    return parse_study(yaml.safe_load(text), store.dir / "run.sqlite")


def _design(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    sims = pd.read_sql_query(
        f"SELECT {', '.join(DESIGN_COLUMNS)}, spec FROM simulations WHERE status IN "
        f"({', '.join('?' * len(SCORED_STATUSES))}) ORDER BY idx",
        store.conn,
        params=SCORED_STATUSES,
    )
    agents = []
    for sim_id, spec in zip(sims["sim_id"], sims["spec"], strict=True):
        parsed = json.loads(spec)
        for i, (aligned, individuated) in enumerate(
            zip(parsed["aligned"], parsed["individuated"], strict=True)
        ):
            agents.append((sim_id, i, aligned, individuated))
    agent_frame = pd.DataFrame(agents, columns=["sim_id", "agent", "aligned", "individuated"])
    return sims.drop(columns="spec"), agent_frame


def fingerprint(store: Store, study: Study, languages: list[str]) -> str:
    """sha256 of everything the scores of a run depend on."""
    placeholders = ", ".join("?" * len(SCORED_STATUSES))
    sims = store.conn.execute(
        f"SELECT count(*), total(finished_at), total(runs), group_concat(sim_id) FROM "
        f"(SELECT * FROM simulations WHERE status IN ({placeholders}) ORDER BY sim_id)",
        SCORED_STATUSES,
    ).fetchone()
    messages = store.conn.execute("SELECT count(*), total(length(text)) FROM messages").fetchone()
    inputs = {
        "simulations": list(sims),
        "messages": list(messages),
        "scoring": study.scoring.model_dump(mode="json"),
        "versions": [__version__, MEASURES_NAME, MEASURES_VERSION, INDICES_VERSION],
        "lexicons": {
            lang: hashlib.sha256(lexicon_file(lang).read_bytes()).hexdigest()
            for lang in sorted(languages)
        },
        "prompts": {
            lang: hashlib.sha256(prompt_file(lang).read_bytes()).hexdigest()
            for lang in sorted(languages)
        },
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _stored(store: Store, digest: str) -> Scores | None:
    """The scores written earlier, if they were made from the same inputs."""
    out = store.dir / "scores"
    paths = [
        out / f"{name}.{ext}" for name in ("simulations", "agents") for ext in ("csv", "parquet")
    ]
    if store.get("scores_fingerprint") != digest or not all(p.exists() for p in paths):
        return None
    try:
        sims, agents = (pd.read_parquet(out / f"{n}.parquet") for n in ("simulations", "agents"))
    except (OSError, ValueError):
        return None
    return Scores(sims, agents, paths)


def compute_scores(store: Store, study: Study | None = None) -> Scores:
    """Score the run held by a store in memory (nothing is written; a read-only store
    will do)."""
    study = study or study_of(store)
    sims, agent_design = _design(store)
    if sims.empty:
        raise AnalysisError(f"{store.dir}: no simulation with status ok to score")
    rows = store.conn.execute(
        "SELECT m.sim_id, m.agent, m.channel, s.language, m.text FROM messages m "
        "JOIN simulations s USING (sim_id) WHERE s.status = 'ok' AND m.agent >= 0"
    )
    messages = count_messages(rows, study.scoring.echo.table())
    crashpoints.reached("during_scoring")
    hit = list(study.scoring.hit_channels)
    sim_scores = add_indices(
        sims.merge(simulation_measures(messages, hit), on="sim_id"), study.scoring
    )
    agent_scores = sims.merge(agent_design, on="sim_id").merge(
        agent_measures(messages, hit), on=["sim_id", "agent"], how="left"
    )
    agent_scores = add_indices(agent_scores, study.scoring)
    versions = {
        "measures": f"{MEASURES_NAME} {MEASURES_VERSION}",
        "indices": INDICES_VERSION,
        "lexicons": json.dumps(
            {lang: load_lexicon(lang).version for lang in sorted(set(sims["language"]))}
        ),
    }
    for frame in (sim_scores, agent_scores):
        for key, value in versions.items():
            frame[f"{key}_version"] = value
    return Scores(sim_scores, agent_scores, [])


def stored_scores(store: Store) -> Scores | None:
    """The scores written earlier, if they were made from the run's current inputs."""
    study = study_of(store)
    sims, _ = _design(store)
    if sims.empty:
        return None
    return _stored(store, fingerprint(store, study, sorted(set(sims["language"]))))


def score_store(store: Store, reuse: bool = False) -> Scores:
    """Score the run held by an open store and write the score tables into it.

    With ``reuse``, return the stored scores instead when their fingerprint matches.
    """
    study = study_of(store)
    sims, _ = _design(store)
    if sims.empty:
        raise AnalysisError(f"{store.dir}: no simulation with status ok to score")
    digest = fingerprint(store, study, sorted(set(sims["language"])))
    if reuse and (stored := _stored(store, digest)) is not None:
        return stored
    with store.transaction() as conn:
        conn.execute("DELETE FROM run WHERE key = 'scores_fingerprint'")
    scores = compute_scores(store, study)
    scores.paths = _write(store, scores.simulations, scores.agents)
    store.set_fact("scores_fingerprint", digest)
    return scores


def _write(store: Store, sims: pd.DataFrame, agents: pd.DataFrame) -> list[Path]:
    out = store.dir / "scores"
    out.mkdir(exist_ok=True)
    paths = []
    with store.transaction() as conn:
        for name, frame in (("scores_sim", sims), ("scores_agent", agents)):
            conn.execute(f"DROP TABLE IF EXISTS {name}")
            columns = ", ".join(f'"{c}"' for c in frame.columns)
            conn.execute(f"CREATE TABLE {name} ({columns})")
            conn.executemany(
                f"INSERT INTO {name} VALUES ({', '.join('?' * len(frame.columns))})",
                frame.astype(object).where(frame.notna(), None).itertuples(index=False),
            )
    for name, frame in (("simulations", sims), ("agents", agents)):
        paths += write_tables(frame, out, name)
    return paths


def score_run(run_dir: Path, reuse: bool = False) -> Scores:
    """Score a run directory (takes the run's lock; no model is called).

    With ``reuse``, stored scores made from the same inputs are returned as they are.
    """
    if not (run_dir / "run.sqlite").exists():
        raise AnalysisError(f"{run_dir}: not a run directory (no run.sqlite)")
    store = Store(run_dir)
    try:
        return score_store(store, reuse)
    finally:
        store.close()


def load_scores(run_dir: Path) -> Scores:
    """Scores of a run, scoring it first if needed (or if the transcripts changed)."""
    return score_run(run_dir, reuse=True)
