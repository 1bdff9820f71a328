"""Replication outcomes: small telescopes (d33), TOST by the 90% CI, and the rule table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from alignbf.analysis.replicate import _ci90, _judge, d33

ORIGINAL = {"statistic": "g", "estimate": -1.844, "n": [15, 15], "direction": "negative"}


def test_d33_matches_pwr() -> None:
    # Lakens, "Improving Your Statistical Inferences", ch. 9 (Zhong & Liljenquist, 2006):
    # pwr::pwr.t.test(n = 30, sig.level = 0.05, power = 1/3, type = "two.sample",
    #   alternative = "two.sided") -> d = 0.401303 (uniroot tolerance about 1e-4).
    assert d33(30, 30) == pytest.approx(0.401303, abs=1e-4)
    # TOSTER vignette: n = 21 per cell gives d33 = 0.48 (two decimals).
    assert d33(21, 21) == pytest.approx(0.48, abs=0.005)


def test_the_90_percent_ci_is_the_tost_interval() -> None:
    # TOSTER: t_TOST(extra ~ group, data = sleep, eqb = .5) (Welch): mean difference
    # -1.5800, SE 0.8491, df 17.78, 90% CI [-3.0534, -0.1066].
    row = pd.Series({"estimate": -1.58, "se": 0.849091, "df": 17.77647})
    low, high = _ci90(row)  # type: ignore[misc]
    assert low == pytest.approx(-3.0534, abs=1e-4) and high == pytest.approx(-0.1066, abs=1e-4)


def _row(
    estimate: float, low: float, high: float, verdict: str, p: float, **kw: object
) -> pd.Series:
    base = {"estimate": estimate, "ci_low": low, "ci_high": high, "verdict": verdict}
    base |= {"p_adj": p, "alpha": 0.05, "se": math.nan, "df": math.nan, "n": 30}
    base |= {"expected": "negative", "null": 0.0, "equivalence_bound": None, "note": ""}
    return pd.Series(base | kw)


@pytest.mark.parametrize(
    ("row", "outcome", "words"),
    [
        (_row(-1.9, -2.7, -1.0, "supported", 1e-5), "replicated", "original's direction"),
        (_row(-3.5, -4.6, -2.3, "supported", 1e-9), "replicated", "larger than original"),
        (_row(1.2, 0.4, 2.0, "not_supported", 0.003), "not_replicated", "opposite"),
        (_row(0.2, -0.5, 0.9, "inconclusive", 0.6), "not_replicated", "d33"),
        (_row(-0.6, -1.3, 0.1, "inconclusive", 0.09), "inconclusive", "not shown to be small"),
        (_row(-1.2, -2.0, -0.4, "inconclusive", 0.07), "inconclusive", "contains the original"),
    ],
)
def test_outcomes_with_their_reasons(row: pd.Series, outcome: str, words: str) -> None:
    got, reason, _ = _judge(row, ORIGINAL)
    assert got == outcome and words in reason


def test_equivalence_to_none_by_tost() -> None:
    reference = {"statistic": "beta", "estimate": 0.0684, "direction": "positive"}
    row = _row(0.001, -0.02, 0.022, "inconclusive", 0.9, se=0.01, df=math.inf)
    row["expected"], row["equivalence_bound"] = "positive", 0.03
    got, reason, _ = _judge(row, reference)
    assert got == "not_replicated" and "TOST" in reason
    row["equivalence_bound"] = 0.01
    assert _judge(row, reference)[0] == "inconclusive"
