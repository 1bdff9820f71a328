"""Agreement of the two instruments, per language and category: lexicon against judge.

For a run scored with ``scoring.instrument: both`` (or judge), each judged utterance has
the judge's labels and the lexicon's verdict (a hit, echoes left out). Per language and
category this module reports Cohen's kappa of ``lexicon_vs_judge``; on synthetic runs,
whose oracle knows every sentence's category, also ``judge_vs_oracle`` and
``lexicon_vs_oracle`` (each instrument against known truth), each with a percentile-
bootstrap 95% CI (the language's utterances resampled, seeded; the seed and the number of
resamples are columns of the table). Unlabelled utterances are left out of the
comparisons and counted (``context_length`` of them because they exceed the judge's
context). Written to ``RUN/analysis/judge_agreement.csv``.

:func:`expected_kappa` gives the kappa a judge that flips each label with probability
``e`` has against the truth, for a category whose base rate is ``p``: the judge says 1
with probability ``q = p(1-e) + (1-p)e``; observed agreement is ``1 - e`` and chance
agreement ``pq + (1-p)(1-q)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from alignbf.analysis.agreement import bootstrap_ci
from alignbf.config.rubric import JUDGE_CATEGORIES
from alignbf.config.study import Study
from alignbf.engine.synthetic import oracle_labels
from alignbf.scoring.judge import CONTEXT_LENGTH, utterances
from alignbf.store.store import Store, write_atomic

AGREEMENT_COLUMNS = ["language", "category", "comparison", "n", "unlabelled",
                     "context_length", "rate_a", "rate_b", "agreement", "kappa", "kappa_low",
                     "kappa_high", "ci_level", "reps", "seed"]  # fmt: skip
"""``comparison`` is ``A_vs_B``; ``rate_a``/``rate_b`` are the shares of 1 each gives,
``agreement`` the share of equal codes, ``n`` the utterances compared; ``unlabelled`` the
utterances of the language left out (``context_length`` of them too long for the judge);
``kappa_low``/``kappa_high`` the percentile-bootstrap CI at ``ci_level`` from ``reps``
resamples of the language's utterances drawn with ``seed``."""
CI_LEVEL = 0.95
_KEYS = ["sim_id", "turn", "agent", "channel"]


def expected_kappa(p: float, e: float) -> float:
    """Cohen's kappa of truth with base rate ``p`` against labels flipped at rate ``e``."""
    q = p * (1 - e) + (1 - p) * e
    chance = p * q + (1 - p) * (1 - q)
    return (1 - e - chance) / (1 - chance) if chance < 1 else math.nan


def with_oracle(labels: pd.DataFrame, store: Store, study: Study) -> pd.DataFrame:
    """``labels`` plus ``oracle_<category>``: the synthetic generator's categories."""
    rows = []
    for sim_id, turn, agent, channel, language, text in utterances(store, study):
        truth = oracle_labels(language, text)
        rows.append((sim_id, turn, agent, channel, *(truth[c] for c in JUDGE_CATEGORIES)))
    oracle = pd.DataFrame(rows, columns=[*_KEYS, *(f"oracle_{c}" for c in JUDGE_CATEGORIES)])
    return labels.merge(oracle, on=_KEYS, how="left")


def binary_kappas(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Cohen's kappa of each column pair of two 0/1 matrices (items x pairs), each item
    counted ``weights`` times: the kappa of a bootstrap resample without copying it.

    With unit weights this is :func:`alignbf.analysis.agreement.cohen_kappa` of each
    pair; NaN where chance agreement is 1 (both raters give one value throughout).
    """
    total = float(weights.sum())
    px, py = weights @ x / total, weights @ y / total
    observed = weights @ (x == y) / total
    chance = px * py + (1 - px) * (1 - py)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - chance) / (1 - chance)
    return np.asarray(np.where(chance < 1, kappa, math.nan), dtype=float)


def _kappas(
    x: np.ndarray, y: np.ndarray, names: list[str]
) -> Callable[[np.ndarray], dict[str, float]]:
    """The kappas of a resample, given the indices of its items."""

    def statistic(pick: np.ndarray) -> dict[str, float]:
        weights = np.bincount(pick, minlength=len(x)).astype(float)
        return dict(zip(names, map(float, binary_kappas(x, y, weights)), strict=True))

    return statistic


def agreement_table(labels: pd.DataFrame, reps: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Kappa with its bootstrap CI per language, category and comparison (see the module
    docstring).

    ``labels`` has ``language``, ``labelled``, the judge's category columns, ``lex_<c>``
    and, for synthetic runs, ``oracle_<c>``; ``reason`` (``context_length`` counted) may
    be absent.
    """
    sources = {"judge": "{}", "lexicon": "lex_{}"}
    pairs = [("lexicon", "judge")]
    if f"oracle_{JUDGE_CATEGORIES[0]}" in labels.columns:
        sources["oracle"] = "oracle_{}"
        pairs += [("judge", "oracle"), ("lexicon", "oracle")]
    cells = [(c, a, b) for c in JUDGE_CATEGORIES for a, b in pairs]
    names = [f"{c}|{a}|{b}" for c, a, b in cells]
    rows = []
    for language, part in labels.groupby("language", sort=True):
        labelled = part[part["labelled"].astype(bool)]
        x = np.column_stack([labelled[sources[a].format(c)].to_numpy(dtype=float)
                             for c, a, _ in cells])  # fmt: skip
        y = np.column_stack([labelled[sources[b].format(c)].to_numpy(dtype=float)
                             for c, _, b in cells])  # fmt: skip
        n = len(labelled)
        statistic = _kappas(x, y, names)
        point = statistic(np.arange(n)) if n else {}
        bounds = bootstrap_ci(n, statistic, reps, seed) if n else {}
        too_long = int((part["reason"] == CONTEXT_LENGTH).sum()) if "reason" in part else 0
        for j, (category, a, b) in enumerate(cells):
            low, high = bounds.get(names[j], (math.nan, math.nan))
            rows.append({
                "language": language, "category": category, "comparison": f"{a}_vs_{b}",
                "n": n, "unlabelled": int(len(part) - n), "context_length": too_long,
                "rate_a": float(np.mean(x[:, j])) if n else math.nan,
                "rate_b": float(np.mean(y[:, j])) if n else math.nan,
                "agreement": float(np.mean(x[:, j] == y[:, j])) if n else math.nan,
                "kappa": point.get(names[j], math.nan), "kappa_low": low, "kappa_high": high,
                "ci_level": CI_LEVEL, "reps": reps, "seed": seed,
            })  # fmt: skip
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def write_agreement(
    run_dir: Path,
    labels: pd.DataFrame,
    study: Study,
    synthetic: bool,
    reps: int = 1000,
    seed: int = 0,
) -> Path:
    """Compute the table (with the oracle on synthetic runs) and write it."""
    if synthetic:
        store = Store(run_dir, readonly=True)
        try:
            labels = with_oracle(labels, store, study)
        finally:
            store.close()
    out = run_dir / "analysis" / "judge_agreement.csv"
    out.parent.mkdir(exist_ok=True)
    write_atomic(out, agreement_table(labels, reps, seed).to_csv(index=False))
    return out
