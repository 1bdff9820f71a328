"""Differential misclassification: error rates against precision that moves with the base rate."""

from __future__ import annotations

import pandas as pd
import pytest

from alignbf.analysis.validity import differential_table


def _rows(fpr_aligned: float) -> pd.DataFrame:
    # aligned: 1000 sentences, 100 coercive; unaligned: 1000 sentences, 400 coercive;
    # recall 0.8 in both; false-positive rate 0.05 unaligned, fpr_aligned aligned.
    rows = []
    for agents, n, pos, fpr in (
        ("aligned", 1000, 100, fpr_aligned),
        ("unaligned", 1000, 400, 0.05),
    ):
        tp, fp = 0.8 * pos, fpr * (n - pos)
        rows.append(dict(language="en", category="coercive", agents=agents, sentences=n,
                         positives=pos, predicted=tp + fp, precision=tp / (tp + fp),
                         recall=0.8, false_positive_rate=fpr))  # fmt: skip
    rows.append(dict(language="en", category="coercive", agents="all", sentences=2000,
                     positives=500, predicted=0.0, precision=0.0, recall=0.8,
                     false_positive_rate=0.0))  # fmt: skip
    return pd.DataFrame(rows)


def test_equal_error_rates_are_not_differential_at_different_base_rates() -> None:
    d = differential_table(_rows(0.05)).iloc[0]
    # precision 80/125 = 0.64 aligned, 320/350 = 0.9143 unaligned
    assert d["d_precision"] == pytest.approx(0.64 - 320 / 350)
    assert d["max_abs"] > 0.25
    # at the pooled base rate 0.25 both are 0.2 / (0.2 + 0.0375)
    assert d["d_precision_standardised"] == pytest.approx(0.0, abs=1e-12)
    assert d["max_abs_error"] == pytest.approx(0.0, abs=1e-12)


def test_a_false_positive_rate_that_grows_with_alignment_is_differential() -> None:
    d = differential_table(_rows(0.10)).iloc[0]
    # aligned at the base rate 0.25: 0.2 / (0.2 + 0.075) = 0.72727; unaligned 0.84211
    assert d["d_precision_standardised"] == pytest.approx(0.2 / 0.275 - 0.2 / 0.2375)
    assert d["d_false_positive_rate"] == pytest.approx(0.05)
    assert d["max_abs_error"] == pytest.approx(0.2 / 0.2375 - 0.2 / 0.275)
