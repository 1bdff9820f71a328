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
from alignbf.config.rubric import JUDGE_CATEGORIES, load_rubric
from alignbf.config.study import Study, parse_study
from alignbf.errors import AnalysisError
from alignbf.scoring.indices import INDICES_VERSION, add_indices
from alignbf.scoring.judge import (
    JUDGE_FLAG,
    JUDGE_VERSION,
    JudgeResult,
    complete_labels,
    judge_messages,
    judge_rates,
    judge_store,
)
from alignbf.scoring.lexicon import lexicon_file, load_lexicon
from alignbf.scoring.measures import (
    MEASURES_NAME,
    MEASURES_VERSION,
    agent_measures,
    count_messages,
    simulation_measures,
)
from alignbf.scoring.refusals import REFUSALS_VERSION, refusal_hashes, refusal_scores
from alignbf.store import reader
from alignbf.store.export import write_tables
from alignbf.store.store import Store
from alignbf.testing import crashpoints
from alignbf.transport.backend import Backend

SCORED_STATUSES = ("ok",)


@dataclass
class Scores:
    """Scores of one run.

    ``simulations`` and ``agents`` come from ``instrument``. With a judge (study
    ``scoring.instrument`` judge or both) they also carry ``alternate``: the same tables
    from the other instrument (the judge's labels, or the lexicon's hits), and ``labels``:
    one row per judged utterance with the judge's labels and the lexicon's verdicts
    (``lex_<category>``, 1 when the lexicon finds a hit, echoes left out).
    """

    simulations: pd.DataFrame
    agents: pd.DataFrame
    paths: list[Path]
    instrument: str = "lexicon"
    alternate: Scores | None = None
    labels: pd.DataFrame | None = None
    judging: JudgeResult | None = None
    """What the judge pass of this scoring did (None when no judge was called)."""

    def of(self, instrument: str) -> Scores:
        """The scores from one instrument (``lexicon`` or ``judge``)."""
        if instrument == self.instrument:
            return self
        other = self.alternate
        if other is not None and other.instrument == instrument:
            return Scores(other.simulations, other.agents, self.paths, instrument,
                          self, self.labels)  # fmt: skip
        raise AnalysisError(
            f"no {instrument} scores: the run's scoring.instrument is {self.instrument!r}"
            + ("" if instrument != "judge" else " (set it to judge or both, then alignbf score)")
        )


def study_of(store: Store) -> Study:
    """The study config recorded in a run (one-line error when there is none)."""
    from alignbf.config.yamlfile import parse_yaml

    text = store.get("config")
    if text is None:
        raise AnalysisError(f"{store.dir}: run has no recorded config")
    return parse_study(parse_yaml(text, store.dir / "run.sqlite"), store.dir / "run.sqlite")


def _design(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    sims = reader.design_frame(store, SCORED_STATUSES)
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
    sims = reader.finished_state(store, SCORED_STATUSES)
    messages = reader.message_totals(store)
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
        "refusals": [REFUSALS_VERSION, refusal_hashes(languages)],
    }
    if study.scoring.instrument != "lexicon":
        judge_calls = reader.flagged_call_totals(store, JUDGE_FLAG)
        inputs["judge"] = {
            "version": JUDGE_VERSION,
            "calls": list(judge_calls),
            "endpoint": store.get("judge_endpoint"),
            "unanswerable": len(store.unlabelled_requests()),
            "rubrics": {lang: load_rubric(lang).digest for lang in sorted(languages)},
        }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _stored(store: Store, digest: str) -> Scores | None:
    """The scores written earlier, if they were made from the same inputs."""
    out = store.dir / "scores"
    names = ["simulations", "agents"]
    study = study_of(store)
    judged = study.scoring.instrument != "lexicon"
    if judged:
        names += ["judge_simulations", "judge_agents", "judge_labels"]
    paths = [out / f"{name}.{ext}" for name in names for ext in ("csv", "parquet")]
    if store.get("scores_fingerprint") != digest or not all(p.exists() for p in paths):
        return None
    try:
        frames = [pd.read_parquet(out / f"{n}.parquet") for n in names]
    except (OSError, ValueError):
        return None
    if not judged:
        return Scores(frames[0], frames[1], paths)
    return _assemble(study, frames[0], frames[1], frames[2], frames[3], frames[4], paths)


def _assemble(
    study: Study,
    sims: pd.DataFrame,
    agents: pd.DataFrame,
    judge_sims: pd.DataFrame,
    judge_agents: pd.DataFrame,
    labels: pd.DataFrame,
    paths: list[Path],
) -> Scores:
    judge = Scores(judge_sims, judge_agents, paths, "judge")
    both = Scores(sims, agents, paths, "lexicon", judge, labels)
    return both.of("judge") if study.scoring.instrument == "judge" else both


def compute_scores(store: Store, study: Study | None = None) -> Scores:
    """Score the run held by a store in memory (nothing is written; a read-only store
    will do)."""
    study = study or study_of(store)
    sims, agent_design = _design(store)
    if sims.empty:
        raise AnalysisError(f"{store.dir}: no simulation with status ok to score")
    rows = reader.scored_messages(store)
    messages = count_messages((r[:5] for r in rows), study.scoring.echo.table())
    crashpoints.reached("during_scoring")
    messages.insert(1, "turn", [r[5] for r in rows])
    hit = list(study.scoring.hit_channels)
    sim_scores = add_indices(
        sims.merge(simulation_measures(messages, hit), on="sim_id"), study.scoring
    )
    # refusals are counted beside the scores, never removed from them
    sim_scores = sim_scores.merge(refusal_scores(store), on="sim_id", how="left")
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
    if study.scoring.instrument == "lexicon":
        return Scores(sim_scores, agent_scores, [])
    labels = complete_labels(store, study)
    per_message = judge_messages(messages, labels)
    judge_sims = add_indices(
        sims.merge(
            judge_rates(simulation_measures(per_message, hit), per_message, ["sim_id"]),
            on="sim_id",
        ),
        study.scoring,
    )
    judge_agents = sims.merge(agent_design, on="sim_id").merge(
        judge_rates(agent_measures(per_message, hit), per_message, ["sim_id", "agent"]),
        on=["sim_id", "agent"],
        how="left",
    )
    judge_agents = add_indices(judge_agents, study.scoring)
    assert study.scoring.judge is not None
    for frame in (judge_sims, judge_agents):
        for key, value in versions.items():
            frame[f"{key}_version"] = value
        frame["judge_version"] = f"{JUDGE_VERSION} {study.scoring.judge.model}"
    keys = ["sim_id", "turn", "agent", "channel"]
    lexicon = messages[[*keys, *JUDGE_CATEGORIES]].rename(
        columns={c: f"lex_{c}" for c in JUDGE_CATEGORIES}
    )
    for c in JUDGE_CATEGORIES:
        lexicon[f"lex_{c}"] = (lexicon[f"lex_{c}"] > 0).astype("int64")
    labels = labels.merge(lexicon, on=keys, how="left")
    labels["labelled"] = labels["labelled"].astype(bool)
    return _assemble(study, sim_scores, agent_scores, judge_sims, judge_agents, labels, [])


def stored_scores(store: Store) -> Scores | None:
    """The scores written earlier, if they were made from the run's current inputs."""
    study = study_of(store)
    sims, _ = _design(store)
    if sims.empty:
        return None
    return _stored(store, fingerprint(store, study, sorted(set(sims["language"]))))


def score_store(
    store: Store, reuse: bool = False, backend: Backend | None = None, concurrency: int = 16
) -> Scores:
    """Score the run held by an open store and write the score tables into it.

    With ``reuse``, return the stored scores instead when their fingerprint matches.
    With a ``backend`` and a study whose instrument is judge or both, first judge every
    utterance not judged yet (``concurrency`` judge requests in flight).
    """
    study = study_of(store)
    sims, _ = _design(store)
    if sims.empty:
        raise AnalysisError(f"{store.dir}: no simulation with status ok to score")
    judging = None
    if backend is not None and study.scoring.instrument != "lexicon":
        judging = judge_store(store, study, backend, concurrency)
        if judging.unjudged:
            why = judging.stopped or "the judge's endpoint failed"
            raise AnalysisError(
                f"{store.dir}: {judging.unjudged} of {judging.utterances} utterances are not "
                f"judged yet ({why}); run `alignbf score` again to resume"
            )
    digest = fingerprint(store, study, sorted(set(sims["language"])))
    if reuse and (stored := _stored(store, digest)) is not None:
        return stored
    store.clear_fact("scores_fingerprint")
    scores = compute_scores(store, study)
    if scores.labels is None:
        scores.paths = _write(store, scores.simulations, scores.agents)
    else:
        judge, base = scores.of("judge"), scores.of("lexicon")
        tables = [
            ("scores_sim", "simulations", base.simulations),
            ("scores_agent", "agents", base.agents),
            ("scores_sim_judge", "judge_simulations", judge.simulations),
            ("scores_agent_judge", "judge_agents", judge.agents),
            ("judge_labels", "judge_labels", scores.labels),
        ]
        scores.paths = _write_tables(store, tables)
    store.set_fact("scores_fingerprint", digest)
    scores.judging = judging
    return scores


def _write(store: Store, sims: pd.DataFrame, agents: pd.DataFrame) -> list[Path]:
    return _write_tables(
        store, [("scores_sim", "simulations", sims), ("scores_agent", "agents", agents)]
    )


def _write_tables(store: Store, tables: list[tuple[str, str, pd.DataFrame]]) -> list[Path]:
    out = store.dir / "scores"
    out.mkdir(exist_ok=True)
    paths = []
    store.replace_tables([(name, frame) for name, _, frame in tables])
    for _, name, frame in tables:
        paths += write_tables(frame, out, name)
    return paths


def score_run(
    run_dir: Path, reuse: bool = False, backend: Backend | None = None, concurrency: int = 16
) -> Scores:
    """Score a run directory (takes the run's lock).

    With ``reuse``, stored scores made from the same inputs are returned as they are. No
    model is called unless a ``backend`` is given for a study with a judge.
    """
    if not (run_dir / "run.sqlite").exists():
        raise AnalysisError(f"{run_dir}: not a run directory (no run.sqlite)")
    with Store(run_dir) as store:
        return score_store(store, reuse, backend, concurrency)


def load_scores(run_dir: Path, instrument: str | None = None) -> Scores:
    """Scores of a run, scoring it first if needed (or if the transcripts changed).

    ``instrument`` (``lexicon`` or ``judge``) picks the instrument; None = the study's
    primary one (the judge when ``scoring.instrument`` is judge, else the lexicon).
    """
    scores = score_run(run_dir, reuse=True)
    return scores if instrument is None else scores.of(instrument)
