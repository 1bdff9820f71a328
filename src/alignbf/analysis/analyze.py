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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from alignbf.analysis.attrition import attrition
from alignbf.analysis.estimators import Estimate, at_level, estimate
from alignbf.analysis.stats import p_adjust
from alignbf.config import assets
from alignbf.config.hypotheses import Hypothesis, InputRun, Prereg, load_prereg
from alignbf.config.study import Study, load_languages, parse_study, resolve_relative
from alignbf.errors import AlignbfError, AnalysisError, ConfigError
from alignbf.scoring.indices import COMPONENTS, SCOPES
from alignbf.scoring.scores import Scores, load_scores
from alignbf.store.store import Store, write_atomic
from alignbf.testing import crashpoints

MAIN = "main"
VERDICT_COLUMNS = [
    "id",
    "statement",
    "exploratory",
    "outcome",
    "estimator",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "ci_level",
    "statistic",
    "df",
    "p_val",
    "p_adj",
    "family",
    "alpha",
    "equivalence_bound",
    "null",
    "n",
    "expected",
    "verdict",
    "reference",
    "note",
    "driver",
    "sensitivity",
    "verdict_changes",
]
SENSITIVITY_COLUMNS = [
    "id",
    "scope",
    "primary",
    "estimate",
    "ci_low",
    "ci_high",
    "p_adj",
    "verdict",
]
COMPONENT_COLUMNS = ["id", "outcome", "component", "weight", "estimate", "ci_low", "ci_high"]
INDEX_OUTCOMES = ("cpi", "di")


@dataclass
class Source:
    """Scores of one run used by the analysis, or why they are missing."""

    run_dir: Path | None
    scores: Scores | None
    note: str = ""


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
    store = Store(run_dir, readonly=True)
    try:
        return {key: store.get(key) for key in ("study", "backend", "config")}
    finally:
        store.close()


def _manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def prereg_path(run_dir: Path, study: Study) -> Path:
    """The preregistration a run's study names: beside its config, else built-in.

    A study that names none falls back to the built-in ``prereg/<study name>.yaml``.
    """
    name = study.prereg or f"{study.name}.yaml"
    config_path = Path(_manifest(run_dir).get("config_path") or run_dir / "run.sqlite")
    if study.prereg is None and not assets.path("prereg", name).exists():
        raise ConfigError(
            f"{run_dir}: study {study.name!r} names no preregistration (prereg:) and there is "
            f"no built-in prereg/{name}; nothing to analyse"
        )
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
    run_dir: Path, scores: Scores, prereg: Prereg, backend: str, given: dict[str, Path]
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
    return sources


def select_rows(scores: Scores, hypothesis: Hypothesis) -> pd.DataFrame:
    """The rows a hypothesis uses: its level's table restricted to its subset.

    Boolean design columns (``aligned``, ``individuated``) are coded 0/1 so formulas
    name them plainly.
    """
    frame = scores.simulations if hypothesis.level == "simulation" else scores.agents
    flags = [c for c in frame.columns if pd.api.types.is_bool_dtype(frame[c])]
    frame = frame.assign(**{c: frame[c].astype(int) for c in flags})
    for column, wanted in hypothesis.subset.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        frame = pd.concat([at_level(frame, column, v) for v in values])
    if frame.empty:
        where = ", ".join(f"{k} = {v}" for k, v in hypothesis.subset.items())
        raise AnalysisError(f"no {hypothesis.level} rows with {where or 'any value'}")
    return frame.reset_index(drop=True)


def _row(h: Hypothesis, est: Estimate | None, note: str) -> dict[str, Any]:
    numbers = {
        "estimate": math.nan,
        "se": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "ci_level": h.ci,
        "statistic": math.nan,
        "df": math.nan,
        "p_val": math.nan,
        "n": 0,
    }
    if est is not None:
        numbers = {k: getattr(est, k) for k in numbers}
    numbers["null"] = est.null if est is not None else math.nan
    return {
        "id": h.id,
        "statement": h.statement,
        "exploratory": h.exploratory,
        "outcome": h.outcome,
        "estimator": h.estimator.type,
        **numbers,
        "p_adj": math.nan,
        "family": h.family,
        "alpha": h.alpha,
        "equivalence_bound": h.equivalence_bound,
        "expected": h.expected,
        "verdict": "inconclusive",
        "reference": h.reference.render(),
        "note": note,
    }


def evaluate(
    h: Hypothesis, source: Source, attributes: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], Estimate | None]:
    """One verdict row (before adjustment) and its estimate (None when not estimable)."""
    if source.scores is None:
        return _row(h, None, source.note), None
    try:
        rows = select_rows(source.scores, h)
        est = estimate(h.estimator, rows, h.outcome, h.ci, attributes)
    except AnalysisError as exc:
        return _row(h, None, "; ".join(filter(None, [f"not estimable: {exc}", source.note]))), None
    return _row(h, est, "; ".join(filter(None, [est.note, source.note]))), est


def decide_all(prereg: Prereg, rows: list[dict[str, Any]], ests: list[Estimate | None]) -> None:
    """Adjust p-values within each planned family, then apply each decision rule.

    A family holds the directional hypotheses (expected positive or negative) decided by
    significance; one that could not be estimated counts with p = 1, so a family never
    shrinks because a test failed. Hypotheses decided by their CI (``equivalent``,
    ``not_positive``) keep their own p-value.
    """
    for name, family in prereg.families.items():
        members = [
            i
            for i, h in enumerate(prereg.hypotheses)
            if h.family == name
            and h.decision == "significance"
            and h.expected in ("positive", "negative")
        ]
        if members:
            pvals = [rows[i]["p_val"] if math.isfinite(rows[i]["p_val"]) else 1.0 for i in members]
            adjusted = p_adjust(pvals, method=family.method)
            for i, p in zip(members, adjusted["p_adj"], strict=True):
                if math.isfinite(rows[i]["p_val"]):
                    rows[i]["p_adj"] = float(p)
    for h, row in zip(prereg.hypotheses, rows, strict=True):
        if h.expected not in ("positive", "negative") and math.isfinite(row["p_val"]):
            row["p_adj"] = row["p_val"]
    for h, row, est in zip(prereg.hypotheses, rows, ests, strict=True):
        if est is not None:
            row["verdict"] = h.decide(est.estimate, est.ci_low, est.ci_high, row["p_adj"], est.null)


def _write(run_dir: Path, analysis: Analysis, prereg: Prereg) -> list[Path]:
    out = run_dir / "analysis"
    out.mkdir(exist_ok=True)
    paths = [out / "verdicts.csv", out / "verdicts.json", out / "attrition.csv"]
    paths += [out / "sensitivity.csv", out / "components.csv"]
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
    return paths


def _replaced(sources: dict[str, Source], columns: dict[str, str]) -> dict[str, Source]:
    """The sources with score columns replaced (``{"cpi": "cpi__pooled"}``)."""
    out = {}
    for name, source in sources.items():
        scores = source.scores
        if scores is not None:
            frames = [
                frame.assign(**{new: frame[old] for new, old in columns.items()})
                if all(old in frame.columns for old in columns.values())
                else frame
                for frame in (scores.simulations, scores.agents)
            ]
            scores = Scores(frames[0], frames[1], scores.paths)
        out[name] = Source(source.run_dir, scores, source.note)
    return out


def _evaluate_all(
    prereg: Prereg, sources: dict[str, Source], languages: dict[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[Estimate | None]]:
    pairs = [evaluate(h, sources[h.input or MAIN], languages) for h in prereg.hypotheses]
    rows, ests = [r for r, _ in pairs], [e for _, e in pairs]
    decide_all(prereg, rows, ests)
    return rows, ests


def sensitivity_analysis(
    prereg: Prereg,
    sources: dict[str, Source],
    languages: dict[str, dict[str, Any]],
    rows: list[dict[str, Any]],
    primary: str,
) -> pd.DataFrame:
    """Every CPI/DI hypothesis under every z-score reference (the primary one included).

    The other references are the preregistered sensitivity analysis: the same
    hypotheses, estimators and families on indices standardised another way.
    """
    indexed = [i for i, h in enumerate(prereg.hypotheses) if h.outcome in INDEX_OUTCOMES]
    out = []
    for scope in SCOPES:
        if scope == primary:
            scoped = rows
        else:
            columns = {o: f"{o}__{scope}" for o in INDEX_OUTCOMES}
            columns.update({f"z_{c}": f"z_{c}__{scope}" for c in COMPONENTS})
            scoped, _ = _evaluate_all(prereg, _replaced(sources, columns), languages)
        for i in indexed:
            r = scoped[i]
            out.append(
                {"id": r["id"], "scope": scope, "primary": scope == primary}
                | {k: r[k] for k in ("estimate", "ci_low", "ci_high", "p_adj", "verdict")}
            )
    return pd.DataFrame(out, columns=SENSITIVITY_COLUMNS)


def component_analysis(
    prereg: Prereg,
    sources: dict[str, Source],
    languages: dict[str, dict[str, Any]],
    study: Study,
) -> pd.DataFrame:
    """Each CPI/DI hypothesis' estimator applied to each weighted component alone."""
    indexed = [i for i, h in enumerate(prereg.hypotheses) if h.outcome in INDEX_OUTCOMES]
    out = []
    for component in COMPONENTS:
        weights = {o: getattr(getattr(study.scoring, o), component) for o in INDEX_OUTCOMES}
        parts = {}
        for name, source in sources.items():
            scores = source.scores
            if scores is not None:
                frames = [
                    frame.assign(**{o: w * frame[f"z_{component}"] for o, w in weights.items()})
                    for frame in (scores.simulations, scores.agents)
                ]
                scores = Scores(frames[0], frames[1], scores.paths)
            parts[name] = Source(source.run_dir, scores, source.note)
        rows, _ = _evaluate_all(prereg, parts, languages)
        for i in indexed:
            h, r = prereg.hypotheses[i], rows[i]
            out.append(
                {"id": h.id, "outcome": h.outcome, "component": component}
                | {"weight": weights[h.outcome]}
                | {k: r[k] for k in ("estimate", "ci_low", "ci_high")}
            )
    return pd.DataFrame(out, columns=COMPONENT_COLUMNS)


def _annotate(
    rows: list[dict[str, Any]], sensitivity: pd.DataFrame, components: pd.DataFrame
) -> None:
    """Add the driver, the other references' verdicts and whether one differs."""
    for row in rows:
        row["driver"], row["sensitivity"], row["verdict_changes"] = "", "", False
        mine = components[components["id"] == row["id"]]
        if not mine.empty and mine["estimate"].notna().any():
            sign = 1.0 if not math.isfinite(row["estimate"]) or row["estimate"] >= 0 else -1.0
            row["driver"] = str(mine.loc[(sign * mine["estimate"]).idxmax(), "component"])
        others = sensitivity[(sensitivity["id"] == row["id"]) & ~sensitivity["primary"]]
        if not others.empty:
            row["sensitivity"] = "; ".join(
                f"{s}: {v}" for s, v in zip(others["scope"], others["verdict"], strict=True)
            )
            row["verdict_changes"] = bool((others["verdict"] != row["verdict"]).any())


def _attrition(sources: dict[str, Source]) -> pd.DataFrame:
    import yaml

    frames = []
    for name, source in sources.items():
        if source.run_dir is None or source.scores is None:
            continue
        store = Store(source.run_dir, readonly=True)
        try:
            study = parse_study(yaml.safe_load(store.get("config") or ""), source.run_dir)
            frames.append(attrition(store, study, source.scores.simulations, name))
        finally:
            store.close()
    return pd.concat(frames, ignore_index=True)


def analyze_run(run_dir: Path | None = None, inputs: dict[str, Path] | None = None) -> Analysis:
    """Score a run and evaluate its preregistered hypotheses.

    Args:
        run_dir: The run directory; default the most recent run under ``./runs``.
        inputs: Input name -> run directory for hypotheses that use another run.

    Returns:
        The :class:`Analysis`, after writing ``RUN_DIR/analysis/verdicts.csv``,
        ``verdicts.json`` and ``attrition.csv``.
    """
    import yaml

    run_dir = run_dir or latest_run()
    scores = load_scores(run_dir)
    facts = _facts(run_dir)
    study = parse_study(yaml.safe_load(facts["config"] or ""), run_dir / "run.sqlite")
    backend = facts["backend"] or "unknown"
    path = prereg_path(run_dir, study)
    prereg = load_prereg(path)
    sources = _sources(run_dir, scores, prereg, backend, inputs or {})
    languages = load_languages()
    rows, _ = _evaluate_all(prereg, sources, languages)
    sensitivity = sensitivity_analysis(prereg, sources, languages, rows, study.scoring.zscore_scope)
    components = component_analysis(prereg, sources, languages, study)
    _annotate(rows, sensitivity, components)
    crashpoints.reached("during_stats")
    analysis = Analysis(
        run_dir=run_dir,
        study=study,
        backend=backend,
        prereg_path=path,
        verdicts=pd.DataFrame(rows, columns=VERDICT_COLUMNS),
        attrition=_attrition(sources),
        scores=scores,
        sensitivity=sensitivity,
        components=components,
        inputs={k: s.run_dir for k, s in sources.items() if k != MAIN},
    )
    analysis.paths = _write(run_dir, analysis, prereg)
    return analysis
