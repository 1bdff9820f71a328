"""Agreement of the two instruments, per language and category: lexicon against judge.

For a run scored with ``scoring.instrument: both`` (or judge), each judged utterance has
the judge's labels and the lexicon's verdict (a hit, echoes left out). Per language and
category this module reports Cohen's kappa of ``lexicon_vs_judge``; on synthetic runs,
whose oracle knows every sentence's category, also ``judge_vs_oracle`` and
``lexicon_vs_oracle`` (each instrument against known truth). Unlabelled utterances are
left out of the comparisons and counted. Written to ``RUN/analysis/judge_agreement.csv``.

:func:`expected_kappa` gives the kappa a judge that flips each label with probability
``e`` has against the truth, for a category whose base rate is ``p``: the judge says 1
with probability ``q = p(1-e) + (1-p)e``; observed agreement is ``1 - e`` and chance
agreement ``pq + (1-p)(1-q)``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from alignbf.analysis.agreement import cohen_kappa
from alignbf.config.rubric import JUDGE_CATEGORIES
from alignbf.config.study import Study
from alignbf.engine.synthetic import oracle_labels
from alignbf.scoring.judge import utterances
from alignbf.store.store import Store, write_atomic

AGREEMENT_COLUMNS = ["language", "category", "comparison", "n", "unlabelled", "rate_a",
                     "rate_b", "agreement", "kappa"]  # fmt: skip
"""``comparison`` is ``A_vs_B``; ``rate_a``/``rate_b`` are the shares of 1 each gives,
``agreement`` the share of equal codes, ``n`` the utterances compared."""
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


def agreement_table(labels: pd.DataFrame) -> pd.DataFrame:
    """Kappa per language, category and comparison (see the module docstring).

    ``labels`` has ``language``, ``labelled``, the judge's category columns, ``lex_<c>``
    and, for synthetic runs, ``oracle_<c>``.
    """
    sources = {"judge": "{}", "lexicon": "lex_{}"}
    pairs = [("lexicon", "judge")]
    if f"oracle_{JUDGE_CATEGORIES[0]}" in labels.columns:
        sources["oracle"] = "oracle_{}"
        pairs += [("judge", "oracle"), ("lexicon", "oracle")]
    rows = []
    for language, part in labels.groupby("language", sort=True):
        labelled = part[part["labelled"].astype(bool)]
        for category in JUDGE_CATEGORIES:
            for a, b in pairs:
                x = labelled[sources[a].format(category)].to_numpy(dtype=int)
                y = labelled[sources[b].format(category)].to_numpy(dtype=int)
                rows.append({
                    "language": language, "category": category, "comparison": f"{a}_vs_{b}",
                    "n": len(x), "unlabelled": int(len(part) - len(labelled)),
                    "rate_a": float(np.mean(x)) if len(x) else math.nan,
                    "rate_b": float(np.mean(y)) if len(y) else math.nan,
                    "agreement": float(np.mean(x == y)) if len(x) else math.nan,
                    "kappa": cohen_kappa(x, y),
                })  # fmt: skip
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def write_agreement(run_dir: Path, labels: pd.DataFrame, study: Study, synthetic: bool) -> Path:
    """Compute the table (with the oracle on synthetic runs) and write it."""
    if synthetic:
        store = Store(run_dir, readonly=True)
        try:
            labels = with_oracle(labels, store, study)
        finally:
            store.close()
    out = run_dir / "analysis" / "judge_agreement.csv"
    out.parent.mkdir(exist_ok=True)
    write_atomic(out, agreement_table(labels).to_csv(index=False))
    return out
