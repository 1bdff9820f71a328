"""Core entry points behind the CLI commands (the same calls work from a notebook)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignbf.config.assets import find_config
from alignbf.config.endpoints import check_endpoints
from alignbf.config.hypotheses import load_prereg
from alignbf.config.prompts import check_prompts
from alignbf.config.study import load_study, resolve_relative
from alignbf.engine.grid import expand
from alignbf.engine.plan import Plan, make_plan
from alignbf.engine.runner import Progress, RunResult, run_study
from alignbf.transport.backend import Backend

if TYPE_CHECKING:
    import pandas as pd

    from alignbf.scoring.scores import Scores


def validate_study(config: str | Path) -> str:
    """Validate a study config and everything it refers to; return a one-paragraph summary."""
    path = find_config(config)
    study = load_study(path)
    check_endpoints(study, path)
    check_prompts(study.factors.languages)
    if study.prereg is not None:
        load_prereg(resolve_relative(path, study.prereg, "prereg"))
    specs = expand(study)
    f = study.factors
    return (
        f"{path}: ok — study {study.name!r}: {len(specs)} simulations = "
        f"{len(f.languages)} language(s) x {len(f.alignment_ratios)} alignment ratio(s) x "
        f"{len(f.individuation_ratios)} individuation level(s) x {len(f.models)} model(s) x "
        f"{study.replicates} replicates"
        + (f" - {len(study.exclusions)} exclusion rule(s)" if study.exclusions else "")
        + f"; {study.agents.count} agents x {study.conversation.turns} turns"
    )


def plan_study(config: str | Path) -> Plan:
    """The plan (cells, calls, tokens, cost) of a study."""
    path = find_config(config)
    return make_plan(load_study(path), path)


def make_backend(
    config: str | Path,
    backend: str,
    world: str | None,
    base_url: str | None,
    batch: bool = False,
) -> tuple[Backend, str, dict[str, object]]:
    """Build the backend a run asks for; returns it, its recorded name and manifest facts."""
    from alignbf.errors import ConfigError

    if batch and backend != "endpoints":
        raise ConfigError("--batch: batch jobs go to endpoints; add --backend endpoints")
    if backend == "synthetic":
        from alignbf.engine.synthetic import SyntheticBackend, load_world

        w = load_world(world)
        return SyntheticBackend(w), f"synthetic:{w.name}", {"world": w.model_dump()}
    if backend == "endpoints":
        from alignbf.transport.client import endpoints_backend

        return endpoints_backend(find_config(config), base_url, batch)
    raise ConfigError(f"--backend {backend!r}: accepted: synthetic, endpoints")


def run_command(
    config: str | Path,
    *,
    backend: str = "synthetic",
    world: str | None = None,
    run_dir: Path | None = None,
    limit: int | None = None,
    shard: str | None = None,
    concurrency: int = 64,
    base_url: str | None = None,
    deviation: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    retry_failed: bool = False,
    batch: bool = False,
) -> RunResult:
    """Check the preregistration lock, build the backend and run (or resume) the study;
    ``batch`` sends the calls of endpoints with ``batch: true`` as batch jobs."""
    from alignbf.analysis.prereg import gate

    path = find_config(config)
    study = load_study(path)
    check_endpoints(study, path)  # the synthetic backend too: same design
    check_prompts(study.factors.languages)
    if backend == "synthetic":
        from alignbf.engine.synthetic import check_synthetic

        check_synthetic(study.factors.languages)
    salt, deviations = gate(config, deviation)
    instance, name, extra = make_backend(config, backend, world, base_url, batch)
    return run_study(
        config,
        backend=instance,
        backend_name=name,
        run_dir=run_dir,
        concurrency=concurrency,
        shard_text=shard,
        limit=limit,
        manifest_extra=extra,
        on_progress=on_progress,
        seed_salt=salt,
        deviations=deviations,
        retry_failed=retry_failed,
    )


def judge_backend(run_dir: Path, base_url: str | None = None) -> Backend:
    """The backend that answers a run's judge calls: the run's own backend (the synthetic
    model of its world, or its study's endpoints), or ``base_url`` for every model."""
    import json

    from alignbf.config.yamlfile import read_text
    from alignbf.errors import ConfigError, StoreError
    from alignbf.store.store import Store

    with Store(run_dir, readonly=True) as store:
        backend, config = store.get("backend") or "", store.get("config")
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if backend.startswith("synthetic") and base_url is None:
        from alignbf.engine.synthetic import SyntheticBackend, World

        if "world" not in manifest:
            raise StoreError(f"{manifest_path}: no synthetic world recorded")
        return SyntheticBackend(World.model_validate(manifest["world"]))
    from alignbf.transport.client import endpoints_backend

    path = Path(manifest.get("config_path", ""))
    if not path.is_file() or read_text(path) != config:
        raise ConfigError(
            f"{run_dir}: the study config the run was made from ({path}) is missing or has "
            "changed; the judge's endpoints are read from it"
        )
    return endpoints_backend(path, base_url)[0]


def score_command(run_dir: Path, *, base_url: str | None = None, concurrency: int = 16) -> Scores:
    """Score a run; with a judge in its scoring, judge the utterances not judged yet."""
    from alignbf.scoring.scores import score_run, study_of
    from alignbf.store.store import Store

    if not (run_dir / "run.sqlite").exists():
        from alignbf.errors import AnalysisError

        raise AnalysisError(f"{run_dir}: not a run directory (no run.sqlite)")
    with Store(run_dir, readonly=True) as store:
        judged = study_of(store).scoring.instrument != "lexicon"
    backend = judge_backend(run_dir, base_url) if judged else None
    return score_run(run_dir, backend=backend, concurrency=concurrency)


class Run:
    """A run directory opened read-only: its tables as pandas DataFrames.

    Nothing is locked or written, so it works while another process is running the study
    and on a read-only copy. Build it with :func:`open_run`.
    """

    def __init__(self, run_dir: Path) -> None:
        from alignbf.store.store import Store

        self.dir = Path(run_dir)
        self._store = Store(self.dir, readonly=True)

    def close(self) -> None:
        """Close the database connection."""
        self._store.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def simulations(self) -> pd.DataFrame:
        """One row per simulation: ``sim_id, idx, language, alignment_ratio,
        individuation_ratio, model, replicate, status, format_failures, replies, error,
        runs, finished_at``."""
        from alignbf.store.reader import simulation_frame

        return simulation_frame(self._store)

    def messages(self) -> pd.DataFrame:
        """One row per stored message: ``sim_id, language, turn, agent, agent_name``
        (``facility`` for the facility's announcements), ``aligned, individuated, channel,
        recipient, recipient_name, text``."""
        import json

        from alignbf.config.prompts import load_prompts
        from alignbf.store.reader import message_frame

        frame = message_frame(self._store)
        names = {
            lang: [p.name for p in load_prompts(lang).personas] for lang in set(frame["language"])
        }
        specs = {
            sim: json.loads(spec) for sim, spec in zip(frame["sim_id"], frame["spec"], strict=True)
        }

        def name(language: str, agent: Any) -> str | None:
            if agent is None or agent != agent:
                return None
            return "facility" if int(agent) < 0 else names[language][int(agent)]

        def flag(sim: str, agent: int, key: str) -> bool | None:
            return None if agent < 0 else bool(specs[sim][key][agent])

        rows = list(zip(frame["sim_id"], frame["language"], frame["agent"], strict=True))
        frame["agent_name"] = [name(lang, a) for _, lang, a in rows]
        frame["recipient_name"] = [
            name(lang, r) for lang, r in zip(frame["language"], frame["recipient"], strict=True)
        ]
        frame["aligned"] = [flag(s, a, "aligned") for s, _, a in rows]
        frame["individuated"] = [flag(s, a, "individuated") for s, _, a in rows]
        columns = ["sim_id", "language", "turn", "agent", "agent_name", "aligned", "individuated",
                   "channel", "recipient", "recipient_name", "text"]  # fmt: skip
        return frame[columns]

    def calls(self) -> pd.DataFrame:
        """One row per paid response: ``cache_key, sim_id, agent, turn, endpoint, model,
        resolved_model, finish_reason, prompt_tokens, completion_tokens, latency_s,
        attempts, cost_usd`` (the response text is in :meth:`messages`)."""
        from alignbf.store.reader import call_frame

        return call_frame(self._store)

    def scores(self, level: str = "simulation") -> pd.DataFrame:
        """Scores per ``simulation`` or per ``agent``: the stored ones while they match the
        transcripts and scoring settings, else computed in memory (nothing is written)."""
        from alignbf.scoring.scores import compute_scores, stored_scores

        scores = stored_scores(self._store) or compute_scores(self._store)
        return scores.simulations if level == "simulation" else scores.agents

    def verdicts(self) -> pd.DataFrame:
        """The verdicts ``alignbf analyze`` wrote (``analysis/verdicts.csv``), one row per
        hypothesis; empty when the run has not been analysed."""
        import pandas as pd

        from alignbf.analysis.verdicts import VERDICT_COLUMNS

        path = self.dir / "analysis" / "verdicts.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=VERDICT_COLUMNS)


def open_run(run_dir: str | Path) -> Run:
    """Open a run directory read-only (see :class:`Run`)."""
    return Run(Path(run_dir))


def live_progress(run_dir: Path) -> tuple[Progress, bool, bool]:
    """The counters of a run's progress display, read from its store while another
    process may be running it (read-only). Returns the counters, whether every
    simulation is finished and whether a runner holds the run now.

    Calls and tokens are those of every stored response (earlier sessions included);
    elapsed time runs from the first one (to the last one once no runner is active).
    Replays and requests in flight are known only inside the runner and stay 0.
    """
    import time

    from alignbf.store.reader import live_counts

    c = live_counts(run_dir)
    now = c["read_at"]
    started = c["started"] if c["started"] is not None else now
    until = now if c["running"] or c["last"] is None else c["last"]
    progress = Progress(
        total=c["total"],
        done=c["finished"],
        calls=c["calls"],
        tokens=c["tokens"],
        cost_usd=c["cost_usd"],
        cost_unknown=c["cost_unknown"],
        retries=c["retries"],
        failures=c["failures"],
        statuses=c["statuses"],
        started=time.monotonic() - max(0.0, until - started),
        calls_total=c["calls_total"],
        attempts_failed=c["attempts_failed"],
    )
    return progress, c["complete"], c["running"]


async def arun_study(config: str | Path, **options: Any) -> RunResult:
    """:func:`run_command` from async code (a notebook cell with ``await``): the run goes
    on a worker thread with its own event loop, so the caller's loop keeps serving."""
    import asyncio
    import functools

    return await asyncio.get_running_loop().run_in_executor(
        None, functools.partial(run_command, config, **options)
    )
