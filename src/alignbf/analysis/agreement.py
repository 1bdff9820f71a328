"""``alignbf code agree``: lexicon and judge against human coders, and coder reliability.

Reads the coded files of a run's coding sample (:mod:`alignbf.scoring.coding`) and, per
language, category and instrument, reports with percentile-bootstrap 95% CIs (utterances
resampled, seeded):

* the human reference: the adjudicated file when given, else the majority of the coders
  (a tie counts as 0, as the codebook says "when unsure, 0");
* ``precision``, ``recall``, ``f1`` and ``kappa`` (Cohen's) of the instrument's verdict
  against that reference: the instrument's validity. ``instrument`` is ``lexicon`` (a
  hit, echoes left out, on the sampled utterances of the channels whose hits count,
  ``scoring.hit_channels``) for every run and also ``judge`` when the run has judge labels
  (``scoring.instrument`` judge or both): the judge's rows compare the sampled utterances
  it labelled (those of the hit channels), and ``unlabelled`` counts the ones it left
  unlabelled;
* ``coder_kappa``: Cohen's kappa between the first two coders, and ``alpha``:
  Krippendorff's alpha (nominal) over all coders: the reliability of the human codes on
  the utterances of that row.

Written to ``RUN/analysis/validity.csv``; the report shows it as "Measurement validity".
Krippendorff (2019), "Content Analysis", ch. 12, defines the alpha computed here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from alignbf.errors import AnalysisError
from alignbf.scoring.coding import judge_codes, read_codes, read_key
from alignbf.scoring.lexicon import CATEGORIES
from alignbf.scoring.scores import study_of
from alignbf.store.store import Store, write_atomic

VALIDITY_COLUMNS = [
    "language", "category", "instrument", "n", "unlabelled", "positives", "coders",
    "precision", "precision_low", "precision_high",
    "recall", "recall_low", "recall_high",
    "f1", "f1_low", "f1_high",
    "kappa", "kappa_low", "kappa_high",
    "coder_kappa", "coder_kappa_low", "coder_kappa_high",
    "alpha", "alpha_low", "alpha_high",
]  # fmt: skip


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two raters' nominal codes of the same items."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) == 0:
        return math.nan
    labels = np.union1d(a, b)
    observed = float(np.mean(a == b))
    expected = float(sum(np.mean(a == k) * np.mean(b == k) for k in labels))
    return (observed - expected) / (1 - expected) if expected < 1 else math.nan


def krippendorff_alpha(codes: np.ndarray) -> float:
    """Krippendorff's alpha for nominal data; ``codes`` is coders x units, NaN = missing.

    Units coded by fewer than two coders are not pairable and are left out.
    """
    codes = np.asarray(codes, dtype=float)
    values = np.unique(codes[~np.isnan(codes)])
    counts = np.stack([(codes == v).sum(axis=0) for v in values], axis=1).astype(float)
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    if not len(m):
        return math.nan
    weighted = counts / (m - 1)[:, None]
    coincidence = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    disagree = coincidence.sum() - np.trace(coincidence)
    expected = (n**2 - (n_c**2).sum()) / (n - 1) if n > 1 else 0.0
    return float(1 - disagree / expected) if expected > 0 else math.nan


def _scores(truth: np.ndarray, lexicon: np.ndarray) -> dict[str, float]:
    tp = float(np.sum(truth & lexicon))
    pos, pred = float(truth.sum()), float(lexicon.sum())
    return {
        "precision": tp / pred if pred else math.nan,
        "recall": tp / pos if pos else math.nan,
        "f1": 2 * tp / (pos + pred) if pos + pred else math.nan,
        "kappa": cohen_kappa(truth, lexicon),
    }


def _cell(
    truth: np.ndarray, verdict: np.ndarray, raters: np.ndarray, pick: np.ndarray
) -> dict[str, float]:
    """Every statistic of one language x category cell on the utterances ``pick``."""
    out = _scores(truth[pick], verdict[pick])
    if len(raters) >= 2:
        out["coder_kappa"] = cohen_kappa(raters[0][pick], raters[1][pick])
        out["alpha"] = krippendorff_alpha(raters[:, pick])
    return out


def bootstrap_ci(
    n: int, statistic: Callable[[np.ndarray], dict[str, float]], reps: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap 95% CIs of named statistics of ``n`` items.

    ``statistic`` maps the indices of a resample (``n`` draws with replacement from
    ``default_rng(seed)``) to its values; a statistic undefined (NaN) in half of the
    ``reps`` resamples or more gets NaN bounds.
    """
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(reps):
        for key, value in statistic(rng.integers(0, n, n)).items():
            draws.setdefault(key, []).append(value)
    out = {}
    for key, values in draws.items():
        finite = np.array([v for v in values if math.isfinite(v)])
        out[key] = (
            (float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975)))
            if len(finite) >= reps // 2
            else (math.nan, math.nan)
        )
    return out


def _reference(coded: list[pd.DataFrame], adjudicated: pd.DataFrame | None) -> pd.DataFrame:
    if adjudicated is not None:
        return adjudicated
    stacked = np.stack([c[list(CATEGORIES)].to_numpy() for c in coded])
    majority = (stacked.sum(axis=0) * 2 > len(coded)).astype(int)
    return pd.DataFrame(majority, columns=list(CATEGORIES)).assign(id=coded[0]["id"].to_numpy())


@dataclass
class Validity:
    """The agreement table and the file it was written to."""

    table: pd.DataFrame
    paths: list[Path] = field(default_factory=list)


def _row(
    reference: pd.DataFrame,
    coded: list[pd.DataFrame],
    verdicts: pd.Series,
    mask: np.ndarray,
    category: str,
    reps: int,
    seed: int,
) -> dict[str, object]:
    """The statistics of one instrument's ``verdicts`` on the utterances ``mask``."""
    truth = reference[category].to_numpy()[mask].astype(bool)
    verdict = verdicts.to_numpy()[mask].astype(bool)
    raters = np.stack([c[category].to_numpy()[mask] for c in coded]).astype(float)
    statistic = partial(_cell, truth, verdict, raters)
    point = statistic(np.arange(len(truth))) if len(truth) else {}
    bounds = bootstrap_ci(len(truth), statistic, reps, seed) if len(truth) else {}
    row: dict[str, object] = dict(n=int(mask.sum()), positives=int(truth.sum()),
                                  coders=len(coded))  # fmt: skip
    for name in ("precision", "recall", "f1", "kappa", "coder_kappa", "alpha"):
        low, high = bounds.get(name, (math.nan, math.nan))
        row |= {name: point.get(name, math.nan), f"{name}_low": low, f"{name}_high": high}
    return row


def agreement_table(
    key: pd.DataFrame,
    coded: list[pd.DataFrame],
    adjudicated: pd.DataFrame | None = None,
    reps: int = 1000,
    seed: int = 0,
    judge: pd.DataFrame | None = None,
    counted: pd.Series | None = None,
) -> pd.DataFrame:
    """Validity and reliability per language, category and instrument (see the module
    docstring).

    ``counted``, in the order of ``key``: whether the utterance is in a channel whose hits
    the scores count (``scoring.hit_channels``); the lexicon's rows are computed on those
    alone, as its verdict elsewhere never reaches an index. None counts every utterance.

    ``judge``, in the order of ``key``: ``judged`` (the utterance is one the judge labels),
    ``labelled`` and the judge's 0/1 per category; None when the run has no judge.
    """
    reference = _reference(coded, adjudicated)
    rows = []
    for language in sorted(set(key["language"])):
        mask = (key["language"] == language).to_numpy()
        scored = mask if counted is None else mask & counted.to_numpy(dtype=bool)
        for category in CATEGORIES:
            lexicon = _row(reference, coded, key[f"lex_{category}"], scored, category, reps, seed)
            rows.append({"language": language, "category": category, "instrument": "lexicon",
                         "unlabelled": 0, **lexicon})  # fmt: skip
            if judge is None:
                continue
            judged = mask & judge["judged"].to_numpy(dtype=bool)
            labelled = judged & (judge["labelled"] == True).to_numpy()  # noqa: E712
            verdicts = judge[category].fillna(0)
            row = _row(reference, coded, verdicts, labelled, category, reps, seed)
            rows.append({"language": language, "category": category, "instrument": "judge",
                         "unlabelled": int((judged & ~labelled).sum()), **row})  # fmt: skip
    return pd.DataFrame(rows, columns=VALIDITY_COLUMNS)


def agree_run(
    run_dir: Path,
    files: list[Path],
    adjudicated: Path | None = None,
    reps: int = 1000,
    seed: int = 0,
) -> Validity:
    """Read the coded files of a run's sample and write ``analysis/validity.csv`` (with
    the judge's rows when the run has judge labels).

    Raises:
        AnalysisError: no coded file, no sample, or sampled utterances the judge has not
            labelled yet (``alignbf score`` first).
        ConfigError: a coded file that does not match the sample (one line).
    """
    if not files:
        raise AnalysisError("give at least one coded file")
    key = read_key(run_dir)
    ids = list(key["id"])
    coded = [read_codes(path, ids) for path in files]
    reference = read_codes(adjudicated, ids) if adjudicated is not None else None
    with Store(run_dir, readonly=True) as store:
        study = study_of(store)
        judge = judge_codes(store, study, key)
    counted = key["channel"].isin(list(study.scoring.hit_channels))
    table = agreement_table(key, coded, reference, reps, seed, judge, counted)
    out = run_dir / "analysis"
    out.mkdir(exist_ok=True)
    path = out / "validity.csv"
    write_atomic(path, table.to_csv(index=False))
    return Validity(table, [path])
