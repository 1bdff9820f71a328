"""``alignbf analyze``: evaluate every preregistered hypothesis of a run into verdicts.

``analyze_run(run_dir, inputs)`` scores the run (:func:`alignbf.scoring.scores.load_scores`),
reads the study config stored in it and the preregistration that config names,
evaluates each hypothesis with its estimator (:mod:`alignbf.analysis.estimators`), adjusts
p-values within each correction family, applies each hypothesis' decision rule and
writes ``RUN_DIR/analysis/verdicts.csv``, ``verdicts.json`` and ``attrition.csv``.

Hypotheses that need cells of another study's run (``input`` in the prereg) take them
from ``--input NAME=DIR`` or, failing that, from the most recent run of that study with
the same backend in the analysed run's parent directory. When no such run exists those
hypotheses are *inconclusive* with a note; the analysis itself never fails for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from alignbf.analysis.attrition import attrition, differential_attrition
from alignbf.analysis.descriptives import cell_descriptives
from alignbf.analysis.exploratory import HOW_TO, write_default_prereg
from alignbf.analysis.gate import apply_gate
from alignbf.analysis.sensitivity import (
    COMPONENT_COLUMNS,
    SENSITIVITY_COLUMNS,
    annotate,
    component_analysis,
    sensitivity_analysis,
)
from alignbf.analysis.verdicts import (
    MAIN,
    VERDICT_COLUMNS,
    Source,
    evaluate_all,
    languages_of,
    source_key,
)
from alignbf.config import assets
from alignbf.config.hypotheses import InputRun, Prereg, load_prereg
from alignbf.config.study import Scoring, Study, load_languages, resolve_relative
from alignbf.errors import AlignbfError, AnalysisError, ConfigError
from alignbf.scoring.indices import add_indices
from alignbf.scoring.scores import Scores, load_scores, study_of
from alignbf.store import reader
from alignbf.store.store import Store, write_atomic
from alignbf.testing import crashpoints


@dataclass
class Analysis:
    """The result of :func:`analyze_run`.

    Attributes:
        run_dir: The analysed run.
        study: The study config recorded in the run.
        backend: The run's backend (``synthetic:<world>`` or ``endpoints``).
        prereg_path: The preregistration file evaluated.
        verdicts: One row per hypothesis with the columns ``id``, ``statement``,
            ``exploratory``, ``outcome``, ``estimator`` (type), ``estimate``, ``se``,
            ``ci_low``, ``ci_high``, ``ci_level``, ``statistic``, ``df``, ``p_val``,
            ``p_adj`` (within the family), ``family``, ``alpha``, ``equivalence_bound``,
            ``null`` (the value the estimate is tested against), ``n``, ``expected``
            (direction),
            ``verdict`` (supported, not_supported, inconclusive or descriptive),
            ``reference`` (what the paper reported), ``note``, ``driver`` (for CPI and DI:
            the component whose weighted part of the estimate is largest), ``sensitivity``
            (the verdict under every other z-score reference) and ``verdict_changes``
            (True when one of those verdicts differs from the primary one).
        sensitivity: One row per CPI/DI hypothesis and z-score reference: ``id``,
            ``scope``, ``primary`` (bool), ``estimate``, ``ci_low``, ``ci_high``,
            ``p_adj``, ``verdict``.
        components: One row per CPI/DI hypothesis and component (monologue ratio,
            coercive, protective): the same estimator applied to the weighted component
            alone (``weight`` x z), so for slopes and mean differences the three parts sum
            to the index estimate.
        attrition: Per-cell attrition of the run and of its inputs (see
            :func:`alignbf.analysis.attrition.attrition`).
        scores: The run's scores.
        inputs: Input name -> run directory used (None when not found).
        paths: Files written.
    """

    run_dir: Path
    study: Study
    backend: str
    prereg_path: Path
    verdicts: pd.DataFrame
    attrition: pd.DataFrame
    scores: Scores
    sensitivity: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    )
    components: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=COMPONENT_COLUMNS)
    )
    differential: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Differential attrition per language and model (see
    :func:`alignbf.analysis.attrition.differential_attrition`)."""
    notice: str = ""
    """What the reader must know first (a study analysed without a preregistration)."""
    locked: bool = False
    """Whether the run was made under a preregistration lock (``alignbf prereg lock``);
    without one, even confirmatory verdicts are shown as exploratory."""
    inputs: dict[str, Path | None] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)

    @property
    def synthetic(self) -> bool:
        """True when the data come from the synthetic backend."""
        return self.backend.startswith("synthetic")


def parse_inputs(items: list[str]) -> dict[str, Path]:
    """``["study1=runs/s1"]`` -> ``{"study1": Path("runs/s1")}``; ValueError when malformed."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{item!r}: expected NAME=DIR, e.g. study1=runs/study1")
        out[name.strip()] = Path(value.strip())
    return out


def latest_run(root: Path = Path("runs")) -> Path:
    """The run directory under ``root`` whose ``run.sqlite`` changed last."""
    found = (
        sorted(root.glob("*/run.sqlite"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    )
    if not found:
        raise AnalysisError(f"no run directory given and no run found under {root}/")
    return found[-1].parent


def _facts(run_dir: Path) -> dict[str, str | None]:
    with Store(run_dir, readonly=True) as store:
        return {key: store.get(key) for key in ("study", "backend", "config")}


def _manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def prereg_path(run_dir: Path, study: Study) -> Path | None:
    """The preregistration a run's study names: beside its config, else built-in.

    A study that names none falls back to the built-in ``prereg/<study name>.yaml``;
    None when there is none (the analysis is then exploratory).
    """
    name = study.prereg or f"{study.name}.yaml"
    config_path = Path(_manifest(run_dir).get("config_path") or run_dir / "run.sqlite")
    if study.prereg is None and not assets.path("prereg", name).exists():
        return None
    path = resolve_relative(config_path, name, "prereg")
    if config_path.exists() and path.samefile(config_path):
        raise ConfigError(f"{config_path}: prereg {name!r} names the study config itself")
    return path


def find_input(run_dir: Path, spec: InputRun, backend: str) -> Path | None:
    """Most recent run of ``spec.study`` with ``backend`` beside ``run_dir``, or None."""
    here = run_dir.resolve()
    candidates = []
    for path in sorted(here.parent.glob("*/run.sqlite")):
        if path.parent == here:
            continue
        try:
            facts = _facts(path.parent)
        except (AlignbfError, OSError, ValueError):
            continue
        if facts["study"] == spec.study and facts["backend"] == backend:
            candidates.append(path)
    if not candidates:
        return None
    return max(candidates, key=lambda p: p.stat().st_mtime).parent


def _sources(
    run_dir: Path,
    scores: Scores,
    prereg: Prereg,
    backend: str,
    given: dict[str, Path],
    study: Study,
) -> dict[str, Source]:
    unknown = sorted(set(given) - set(prereg.inputs))
    if unknown:
        declared = ", ".join(prereg.inputs) or "none"
        raise AnalysisError(
            f"--input {unknown[0]}: the preregistration declares inputs: {declared}"
        )
    sources = {MAIN: Source(run_dir, scores)}
    for name, spec in prereg.inputs.items():
        path = given.get(name) or find_input(run_dir, spec, backend)
        if path is None:
            note = (
                f"input {name!r} not found: no {spec.study} run with backend {backend!r} beside "
                f"{run_dir}; pass --input {name}=DIR"
            )
            sources[name] = Source(None, None, note)
            continue
        if not (path / "run.sqlite").exists():
            raise AnalysisError(f"--input {name}={path}: not a run directory (no run.sqlite)")
        try:
            sources[name] = Source(path, load_scores(path), f"cells from input {name} ({path})")
        except AlignbfError as exc:
            sources[name] = Source(path, None, f"input {name} ({path}) unusable: {exc}")
    for h in prereg.hypotheses:
        if h.combine and source_key(h) not in sources:
            sources[source_key(h)] = combined(sources, h.combine, study.scoring)
    return sources


def combined(sources: dict[str, Source], names: list[str], scoring: Scoring) -> Source:
    """The analysed run's rows together with those of input runs, the indices recomputed
    on the union (every z-score reference then spans every run); a ``source`` column names
    the run of each row."""
    parts = [(MAIN, sources[MAIN])] + [(n, sources[n]) for n in names]
    missing = [source.note for _, source in parts if source.scores is None]
    if missing:
        return Source(None, None, "; ".join(missing))
    frames = {}
    for level in ("simulations", "agents"):
        rows = [getattr(s.scores, level).assign(source=n) for n, s in parts]
        frames[level] = add_indices(pd.concat(rows, ignore_index=True), scoring)
    runs = ", ".join(f"{n} ({s.run_dir})" for n, s in parts[1:])
    note = f"rows of this run and of {runs}, the indices recomputed on the union"
    paths = [p for _, s in parts for p in (s.scores.paths if s.scores else [])]
    return Source(
        sources[MAIN].run_dir, Scores(frames["simulations"], frames["agents"], paths), note
    )


def check_outcomes(prereg: Prereg, path: Path, sources: dict[str, Source]) -> None:
    """Refuse, with one line naming the hypothesis and field, an outcome that is not a
    column of the scores its level reads (a typo would otherwise read "not estimable")."""
    import difflib

    for i, h in enumerate(prereg.hypotheses):
        scores = sources[source_key(h)].scores
        if scores is None:
            continue
        frame = scores.simulations if h.level == "simulation" else scores.agents
        if h.outcome not in frame.columns:
            known = [c for c in frame.columns if frame[c].dtype.kind in "fiub"]
            near = difflib.get_close_matches(h.outcome, known, n=1)
            hint = f"did you mean {near[0]!r}?" if near else "e.g. cpi, di, monologue_ratio"
            raise ConfigError(
                f"{path}: hypotheses[{i}] ({h.id}).outcome {h.outcome!r} is not a "
                f"{h.level} score column; {hint}"
            )


def _write(run_dir: Path, analysis: Analysis, prereg: Prereg) -> list[Path]:
    out = run_dir / "analysis"
    out.mkdir(exist_ok=True)
    paths = [out / "verdicts.csv", out / "verdicts.json", out / "attrition.csv"]
    paths += [out / "sensitivity.csv", out / "components.csv", out / "differential_attrition.csv"]
    write_atomic(paths[0], analysis.verdicts.to_csv(index=False))
    payload = {
        "study": analysis.study.name,
        "run_dir": str(run_dir),
        "backend": analysis.backend,
        "prereg": {"path": str(analysis.prereg_path), "version": prereg.version},
        "inputs": {k: None if v is None else str(v) for k, v in analysis.inputs.items()},
        "verdicts": json.loads(analysis.verdicts.to_json(orient="records")),
    }
    write_atomic(paths[1], json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    write_atomic(paths[2], analysis.attrition.to_csv(index=False))
    write_atomic(paths[3], analysis.sensitivity.to_csv(index=False))
    write_atomic(paths[4], analysis.components.to_csv(index=False))
    write_atomic(paths[5], analysis.differential.to_csv(index=False))
    paths.append(out / "cells.csv")
    write_atomic(paths[6], cell_descriptives(analysis.scores.simulations).to_csv(index=False))
    return paths


def _differential(run_dir: Path) -> pd.DataFrame:
    with Store(run_dir, readonly=True) as store:
        return differential_attrition(store)


def flag_attrition(
    prereg: Prereg, rows: list[dict[str, Any]], differential: pd.DataFrame, study: Study
) -> None:
    """Note, on every confirmatory verdict that uses a language whose format failures
    depend on alignment, that its contrast may be biased by differential attrition."""
    flagged = sorted(set(differential.loc[differential["flagged"], "language"]))
    for h, row in zip(prereg.hypotheses, rows, strict=True):
        hit = [lang for lang in languages_of(h, list(study.factors.languages)) if lang in flagged]
        row["attrition_flag"] = bool(hit) and not h.exploratory
        if row["attrition_flag"]:
            note = (
                f"differential attrition: format failures depend on alignment in {', '.join(hit)}"
            )
            row["note"] = "; ".join(filter(None, [row["note"], note]))


def _attrition(sources: dict[str, Source]) -> pd.DataFrame:
    frames = []
    for name, source in sources.items():
        if source.run_dir is None or source.scores is None or "+" in name:
            continue
        with Store(source.run_dir, readonly=True) as store:
            study = study_of(store)
            frames.append(attrition(store, study, source.scores.simulations, name))
    return pd.concat(frames, ignore_index=True)


def _synthetic_text(run_dir: Path, backend: str) -> bool:
    """True when every transcript came from the synthetic model (in-process or served)."""
    if backend.startswith("synthetic"):
        return True
    with Store(run_dir, readonly=True) as store:
        total, synthetic = reader.synthetic_calls(store)
    return bool(total) and synthetic == total


def _judge_agreement(run_dir: Path, scores: Scores, study: Study, backend: str) -> list[Path]:
    if scores.labels is None:
        return []
    from alignbf.analysis.judge_agreement import write_agreement

    return [write_agreement(run_dir, scores.labels, study, _synthetic_text(run_dir, backend))]


def analyze_run(
    run_dir: Path | None = None,
    inputs: dict[str, Path] | None = None,
    instrument: str | None = None,
) -> Analysis:
    """Score a run and evaluate its preregistered hypotheses.

    Args:
        run_dir: The run directory; default the most recent run under ``./runs``.
        inputs: Input name -> run directory for hypotheses that use another run.
        instrument: ``lexicon`` or ``judge``: whose scores the hypotheses are tested on
            (None = the study's primary instrument). With a judge, lexicon-judge
            agreement is written to ``analysis/judge_agreement.csv``.

    Returns:
        The :class:`Analysis`, after writing ``RUN_DIR/analysis/verdicts.csv``,
        ``verdicts.json`` and ``attrition.csv``.
    """
    run_dir = run_dir or latest_run()
    scores = load_scores(run_dir, instrument)
    with Store(run_dir, readonly=True) as store:
        study, backend = study_of(store), store.get("backend") or "unknown"
    path = prereg_path(run_dir, study)
    how_to = ""
    if path is None:
        path = write_default_prereg(run_dir, study)
        how_to = HOW_TO.format(path=path)
    prereg = load_prereg(path)
    sources = _sources(run_dir, scores, prereg, backend, inputs or {}, study)
    check_outcomes(prereg, path, sources)
    languages = load_languages()
    rows, _ = evaluate_all(prereg, sources, languages)
    if prereg.validity is not None:
        apply_gate(prereg, rows, run_dir, study, scores.instrument)
    sensitivity = sensitivity_analysis(prereg, sources, languages, rows, study.scoring.zscore_scope)
    components = component_analysis(prereg, sources, languages, study)
    annotate(rows, sensitivity, components)
    differential = _differential(run_dir)
    flag_attrition(prereg, rows, differential, study)
    crashpoints.reached("during_stats")
    analysis = Analysis(
        run_dir=run_dir,
        study=study,
        backend=backend,
        prereg_path=path,
        verdicts=pd.DataFrame(rows, columns=VERDICT_COLUMNS),
        attrition=_attrition(sources),
        differential=differential,
        scores=scores,
        sensitivity=sensitivity,
        components=components,
        notice=how_to,
        locked=bool(_manifest(run_dir).get("lock_root")),
        inputs={k: s.run_dir for k, s in sources.items() if k != MAIN and "+" not in k},
    )
    analysis.paths = _write(run_dir, analysis, prereg)
    analysis.paths += _judge_agreement(run_dir, scores, study, backend)
    return analysis
