"""Agreement statistics against published worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alignbf.analysis.agreement import cohen_kappa, krippendorff_alpha

nan = math.nan


def test_krippendorff_alpha_matches_irr() -> None:
    # R irr 0.84.1, ?kripp.alpha: nmm <- matrix(c(1,1,NA,1, 2,2,3,2, 3,3,3,3, 3,3,3,3,
    #   2,2,2,2, 1,2,3,4, 4,4,4,4, 1,1,2,1, 2,2,2,2, NA,5,5,5, NA,NA,1,1, NA,NA,3,NA),
    #   nrow = 4); kripp.alpha(nmm) -> alpha = 0.743 (nominal; 0.743421 unrounded).
    values = [1, 1, nan, 1, 2, 2, 3, 2, 3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 1, 2, 3, 4,
              4, 4, 4, 4, 1, 1, 2, 1, 2, 2, 2, 2, nan, 5, 5, 5,
              nan, nan, 1, 1, nan, nan, 3, nan]  # fmt: skip
    codes = np.array(values, dtype=float).reshape(12, 4).T  # coders x units
    assert krippendorff_alpha(codes) == pytest.approx(0.743421, abs=1e-6)


def test_krippendorff_alpha_matches_the_wikipedia_example() -> None:
    # Wikipedia "Krippendorff's alpha" (3 coders x 15 units, * = missing): nominal 0.691358
    # (also asserted by the krippendorff package's tests).
    rows = ["* * * * * 3 4 1 2 1 1 3 3 * 3", "1 * 2 1 3 3 4 3 * * * * * * *",
            "* * 2 1 3 4 4 * 2 1 1 3 3 * 4"]  # fmt: skip
    codes = np.array([[nan if v == "*" else float(v) for v in r.split()] for r in rows])
    assert krippendorff_alpha(codes) == pytest.approx(0.691358, abs=1e-6)


def test_cohen_kappa_matches_fmsb() -> None:
    # R fmsb: Kappa.test(matrix(c(10, 1, 1, 10), 2)) -> kappa = 0.8181818.
    a = np.array([1] * 10 + [1] + [0] + [0] * 10)
    b = np.array([1] * 10 + [0] + [1] + [0] * 10)
    assert cohen_kappa(a, b) == pytest.approx(0.8181818, abs=1e-7)
    # Two coders who always agree on a single value: kappa is undefined.
    assert math.isnan(cohen_kappa(np.ones(5), np.ones(5)))


def test_the_judge_rows_compare_the_utterances_it_labelled() -> None:
    import pandas as pd

    from alignbf.analysis.agreement import agreement_table
    from alignbf.scoring.lexicon import CATEGORIES

    truth = [1, 0, 1, 0, 1, 0, 1]
    key = pd.DataFrame({"id": [f"u{i}" for i in range(7)], "language": "en"})
    coder = pd.DataFrame({"id": key["id"]})
    judge = pd.DataFrame({"judged": [True] * 6 + [False],  # the last: a monologue
                          "labelled": [True] * 5 + [False, pd.NA]})  # fmt: skip
    for c in CATEGORIES:
        key[f"lex_{c}"], coder[c] = [1] * 7, truth
        judge[c] = [1, 0, 0, 0, 1, nan, nan]
    table = agreement_table(key, [coder], reps=50, judge=judge).set_index("instrument")
    row = table.loc["judge"].iloc[0]
    assert (row["n"], row["unlabelled"], row["positives"]) == (5, 1, 3)
    assert row["kappa"] == pytest.approx(
        cohen_kappa(np.array(truth[:5]), np.array([1, 0, 0, 0, 1]))
    )
    assert row["precision"] == 1.0 and row["recall"] == pytest.approx(2 / 3)
    lexicon = table.loc["lexicon"].iloc[0]
    assert (lexicon["n"], lexicon["unlabelled"], lexicon["precision"]) == (7, 0, 4 / 7)
