"""alignbf.analysis.stats against numbers published by R and by the paper.

Reference values with six decimals come from the tidystats test fixtures
(github.com/WillemSleegers/tidystats, tests/data/*.json), which store R output rounded to
six decimals; the producing R call is quoted next to each. "Printed precision" means half
a unit in the last printed digit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alignbf.analysis import stats
from alignbf.errors import AnalysisError

# R datasets::mtcars, columns mpg and am (0 = automatic, 1 = manual), in row order.
MPG = [21.0, 21.0, 22.8, 21.4, 18.7, 18.1, 14.3, 24.4, 22.8, 19.2, 17.8, 16.4, 17.3, 15.2,
       10.4, 10.4, 14.7, 32.4, 30.4, 33.9, 21.5, 15.5, 15.2, 13.3, 19.2, 27.3, 26.0, 30.4,
       15.8, 19.7, 15.0, 21.4]  # fmt: skip
AM = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1,
      1, 1, 1, 1]  # fmt: skip
AUTOMATIC = [m for m, a in zip(MPG, AM, strict=True) if a == 0]
MANUAL = [m for m, a in zip(MPG, AM, strict=True) if a == 1]

# R datasets::sleep, column extra for group 1 and group 2.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def rel6(value: float) -> object:
    """1e-6 relative, or half a unit in the sixth decimal when that is looser.

    tidystats stores six decimals, so values below 1 carry fewer than seven significant
    digits and are checked to their printed precision instead.
    """
    return pytest.approx(value, rel=1e-6, abs=5e-7)


def test_mtcars_groups_are_typed_correctly() -> None:
    # R: tapply(mtcars$mpg, mtcars$am, mean) gives 17.14737 and 24.39231
    assert (len(AUTOMATIC), len(MANUAL)) == (19, 13)
    assert np.mean(AUTOMATIC) == pytest.approx(17.14737, abs=5e-6)
    assert np.mean(MANUAL) == pytest.approx(24.39231, abs=5e-6)


def test_hedges_g_matches_effectsize() -> None:
    row = stats.hedges_g(AUTOMATIC, MANUAL).iloc[0]
    # R effectsize 0.8.3: hedges_g(mpg ~ am, data = mtcars) -> -1.440635 [-2.208767, -0.65364]
    # (effectsize's optimiser leaves up to ~1e-6 relative in the bounds; our brentq bound
    # agrees with an independent quadrature of the noncentral t to 1e-12.)
    assert row["estimate"] == rel6(-1.440635)
    assert row["ci_low"] == rel6(-2.208767)
    assert row["ci_high"] == rel6(-0.65364)
    # R effectsize 0.8.3: cohens_d(mpg ~ am, data = mtcars) -> -1.477947 [-2.265973, -0.670569]
    assert row["cohens_d"] == rel6(-1.477947)
    assert row["cohens_d_ci_low"] == rel6(-2.265973)
    assert row["cohens_d_ci_high"] == rel6(-0.670569)
    # R: t.test(mpg ~ am, data = mtcars, var.equal = TRUE) -> t = -4.1061, df = 30,
    # p-value = 0.000285 (printed precision)
    assert row["statistic"] == pytest.approx(-4.1061, abs=5e-5)
    assert row["df"] == 30
    assert row["p_val"] == pytest.approx(0.000285, abs=5e-7)
    assert (row["n"], row["n1"], row["n2"]) == (32, 19, 13)
    assert row["ci_level"] == 0.95


def test_hedges_g_two_decimal_vignette_values() -> None:
    # R effectsize vignette "Standardized Differences": hedges_g(mpg ~ am, data = mtcars)
    # prints -1.44 [-2.21, -0.65]; cohens_d prints -1.48 [-2.27, -0.67] (printed precision)
    g = stats.hedges_g(AUTOMATIC, MANUAL).iloc[0]
    d = stats.cohens_d(AUTOMATIC, MANUAL).iloc[0]
    assert [round(g[c], 2) for c in ("estimate", "ci_low", "ci_high")] == [-1.44, -2.21, -0.65]
    assert [round(d[c], 2) for c in ("estimate", "ci_low", "ci_high")] == [-1.48, -2.27, -0.67]


def test_cohens_d_frame_and_sign_convention() -> None:
    frame = stats.cohens_d(MANUAL, AUTOMATIC)
    assert list(frame.columns[:9]) == stats.COLUMNS
    assert list(frame.columns[9:]) == ["method", "n1", "n2"]
    # Swapping the groups flips the sign: g = (mean(x) - mean(y)) / s_pooled.
    assert frame["estimate"].iloc[0] == rel6(1.477947)
    assert frame["ci_low"].iloc[0] == rel6(0.670569)


def test_hedges_correction_factor() -> None:
    # J(df) -> 1 - 3 / (4 df - 1) is the classic approximation; exact and approximate agree
    # to O(df^-2), and J must stay finite for large df (computed on the log scale).
    for df in (10, 30, 100):
        assert stats.hedges_j(df) == pytest.approx(1 - 3 / (4 * df - 1), abs=2 / df**2)
    assert stats.hedges_j(1e7) == pytest.approx(1.0, abs=1e-7)
    # J(2) = Γ(1) / (1 * Γ(1/2)) = 1 / sqrt(pi)
    assert stats.hedges_j(2) == pytest.approx(1 / math.sqrt(math.pi), rel=1e-14)


def test_welch_t_matches_r() -> None:
    row = stats.ttest(SLEEP_1, SLEEP_2).iloc[0]
    # R 4.2.2: t.test(extra ~ group, data = sleep) -> t = -1.860813, df = 17.776474,
    # p = 0.079394, 95% CI [-3.365483, 0.205483], SE 0.849091, estimate -1.58
    assert row["estimate"] == pytest.approx(-1.58, rel=1e-12)
    assert row["statistic"] == rel6(-1.860813)
    assert row["df"] == rel6(17.776474)
    assert row["p_val"] == pytest.approx(0.079394, abs=5e-7)
    assert row["ci_low"] == rel6(-3.365483)
    assert row["ci_high"] == rel6(0.205483)
    assert row["se"] == rel6(0.849091)
    assert row["method"] == "welch"


def test_student_t_matches_r() -> None:
    row = stats.ttest(SLEEP_1, SLEEP_2, welch=False).iloc[0]
    # R 4.2.2: t.test(extra ~ group, data = sleep, var.equal = TRUE) -> t = -1.860813,
    # df = 18, p = 0.079187, 95% CI [-3.363874, 0.203874]
    assert row["df"] == 18
    assert row["statistic"] == rel6(-1.860813)
    assert row["p_val"] == pytest.approx(0.079187, abs=5e-7)
    assert row["ci_low"] == rel6(-3.363874)
    assert row["ci_high"] == rel6(0.203874)


def test_one_sided_t_halves_the_p_value_and_opens_the_interval() -> None:
    two = stats.ttest(SLEEP_1, SLEEP_2).iloc[0]
    less = stats.ttest(SLEEP_1, SLEEP_2, alternative="less").iloc[0]
    greater = stats.ttest(SLEEP_1, SLEEP_2, alternative="greater").iloc[0]
    assert less["p_val"] == pytest.approx(two["p_val"] / 2, rel=1e-12)
    assert greater["p_val"] == pytest.approx(1 - two["p_val"] / 2, rel=1e-12)
    assert less["ci_low"] == -math.inf and less["ci_high"] < two["ci_high"]
    assert greater["ci_high"] == math.inf and greater["ci_low"] > two["ci_low"]


def test_pearson_matches_cor_test() -> None:
    # R documentation ?cor.test (Hollander & Wolfe 1973, p. 187):
    x = [44.4, 45.9, 41.9, 53.3, 44.7, 44.1, 50.7, 45.2, 60.1]
    y = [2.6, 3.1, 2.5, 5.0, 3.6, 4.0, 5.2, 2.8, 3.8]
    row = stats.pearson(x, y).iloc[0]
    # R: cor.test(x, y, method = "pearson") -> cor 0.5711816, 95% CI -0.1497426 0.8955795,
    # t = 1.8411, df = 7, p-value = 0.1082; tidystats: t 1.841083, p 0.108173
    assert row["estimate"] == rel6(0.5711816)
    assert row["ci_low"] == rel6(-0.1497426)
    assert row["ci_high"] == rel6(0.8955795)
    assert row["statistic"] == rel6(1.841083)
    assert row["df"] == 7
    assert row["p_val"] == pytest.approx(0.108173, abs=5e-7)
    assert row["n"] == 9


# Rosetta Code task "P-value correction": its 50 p-values and the reference answers
# reproduced there from R's p.adjust (printed with 7 significant digits).
ROSETTA_P = [
    4.533744e-01, 7.296024e-01, 9.936026e-02, 9.079658e-02, 1.801962e-01, 8.752257e-01,
    2.922222e-01, 9.115421e-01, 4.355806e-01, 5.324867e-01, 4.926798e-01, 5.802978e-01,
    3.485442e-01, 7.883130e-01, 2.729308e-01, 8.502518e-01, 4.268138e-01, 6.442008e-01,
    3.030266e-01, 5.001555e-02, 3.194810e-01, 7.892933e-01, 9.991834e-01, 1.745691e-01,
    9.037516e-01, 1.198578e-01, 3.966083e-01, 1.403837e-02, 7.328671e-01, 6.793476e-02,
    4.040730e-03, 3.033349e-04, 1.125147e-02, 2.375072e-02, 5.818542e-04, 3.075482e-04,
    8.251272e-03, 1.356534e-03, 1.360696e-02, 3.764588e-04, 1.801145e-05, 2.504456e-07,
    3.310253e-02, 9.427839e-03, 8.791153e-04, 2.177831e-04, 9.693054e-04, 6.610250e-05,
    2.900813e-02, 5.735490e-03,
]  # fmt: skip
# R: p.adjust(p, method = "BH")
ROSETTA_BH = [
    6.126681e-01, 8.521710e-01, 1.987205e-01, 1.891595e-01, 3.217789e-01, 9.301450e-01,
    4.870370e-01, 9.301450e-01, 6.049731e-01, 6.826753e-01, 6.482629e-01, 7.253722e-01,
    5.280973e-01, 8.769926e-01, 4.705703e-01, 9.241867e-01, 6.049731e-01, 7.856107e-01,
    4.887526e-01, 1.136717e-01, 4.991891e-01, 8.769926e-01, 9.991834e-01, 3.217789e-01,
    9.301450e-01, 2.304958e-01, 5.832475e-01, 3.899547e-02, 8.521710e-01, 1.476843e-01,
    1.683638e-02, 2.562902e-03, 3.516084e-02, 6.250189e-02, 3.636589e-03, 2.562902e-03,
    2.946883e-02, 6.166064e-03, 3.899547e-02, 2.688991e-03, 4.502862e-04, 1.252228e-05,
    7.881555e-02, 3.142613e-02, 4.846527e-03, 2.562902e-03, 4.846527e-03, 1.101708e-03,
    7.252032e-02, 2.205958e-02,
]  # fmt: skip
# R: p.adjust(p, method = "holm"); the first 27 entries and entries 29, 30 are 1.
ROSETTA_HOLM_TAIL = {
    27: 4.632662e-01, 30: 1.575885e-01, 31: 1.395341e-02, 32: 3.938014e-01,
    33: 7.600230e-01, 34: 2.501973e-02, 35: 1.395341e-02, 36: 3.052971e-01,
    37: 5.426136e-02, 38: 4.626366e-01, 39: 1.656419e-02, 40: 8.825610e-04,
    41: 1.252228e-05, 42: 9.930759e-01, 43: 3.394022e-01, 44: 3.692284e-02,
    45: 1.023581e-02, 46: 3.974152e-02, 47: 3.172920e-03, 48: 8.992520e-01,
    49: 2.179486e-01,
}  # fmt: skip
# R: p.adjust(p, method = "bonferroni"), entries below 1.
ROSETTA_BONFERRONI_TAIL = {
    27: 7.019185e-01, 30: 2.020365e-01, 31: 1.516674e-02, 32: 5.625735e-01,
    34: 2.909271e-02, 35: 1.537741e-02, 36: 4.125636e-01, 37: 6.782670e-02,
    38: 6.803480e-01, 39: 1.882294e-02, 40: 9.005725e-04, 41: 1.252228e-05,
    43: 4.713920e-01, 44: 4.395577e-02, 45: 1.088915e-02, 46: 4.846527e-02,
    47: 3.305125e-03, 49: 2.867745e-01,
}  # fmt: skip


def _expand(tail: dict[int, float]) -> list[float]:
    return [tail.get(i, 1.0) for i in range(len(ROSETTA_P))]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("bh", ROSETTA_BH),
        ("holm", _expand(ROSETTA_HOLM_TAIL)),
        ("bonferroni", _expand(ROSETTA_BONFERRONI_TAIL)),
        ("none", ROSETTA_P),
    ],
)
def test_p_adjust_matches_r(method: str, expected: list[float]) -> None:
    frame = stats.p_adjust(ROSETTA_P, method=method)
    # Seven significant digits printed: 1e-6 relative covers the rounding.
    assert frame["p_adj"].to_list() == pytest.approx(expected, rel=1e-6)
    assert frame["p_val"].to_list() == ROSETTA_P
    assert set(frame["method"]) == {method}


def test_p_adjust_small_textbook_family() -> None:
    p = [0.01, 0.02, 0.03, 0.04, 0.05]
    # R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "holm") -> 0.05 0.08 0.09 0.09 0.09
    assert stats.p_adjust(p, "holm")["p_adj"].to_list() == pytest.approx(
        [0.05, 0.08, 0.09, 0.09, 0.09]
    )
    # R: p.adjust(c(0.01, 0.02, 0.03, 0.04, 0.05), "BH") -> 0.05 0.05 0.05 0.05 0.05
    assert stats.p_adjust(p, "BH")["p_adj"].to_list() == pytest.approx([0.05] * 5)


def test_p_adjust_keeps_series_index_and_order() -> None:
    p = pd.Series([0.04, 0.01, 0.03], index=["ja", "en", "de"])
    frame = stats.p_adjust(p, "holm")
    assert frame.index.to_list() == ["ja", "en", "de"]
    assert list(frame.columns) == ["p_val", "p_adj", "method"]
    assert frame["p_adj"].to_list() == pytest.approx([0.06, 0.03, 0.06])


def test_p_adjust_empty_family() -> None:
    frame = stats.p_adjust([], "bh")
    assert frame.empty and list(frame.columns) == ["p_val", "p_adj", "method"]


@pytest.mark.parametrize("bad", [[0.1, float("nan")], [0.1, 1.2], [-0.01]])
def test_p_adjust_rejects_invalid_p(bad: list[float]) -> None:
    with pytest.raises(AnalysisError):
        stats.p_adjust(bad)


def test_p_adjust_rejects_unknown_method() -> None:
    with pytest.raises(AnalysisError, match="method"):
        stats.p_adjust([0.1, 0.2], method="hommel")


def test_sign_test_matches_binom_test() -> None:
    # R documentation ?binom.test: 682 giant and 243 dwarf plants.
    row = stats.sign_test(682, 925, alternative="two-sided").iloc[0]
    # R 4.2.2: binom.test(c(682, 243)) -> estimate 0.737297, CI [0.707668, 0.765407],
    # p = 7.087291e-49
    assert row["estimate"] == pytest.approx(0.737297, abs=5e-7)
    assert row["ci_low"] == pytest.approx(0.707668, abs=5e-7)
    assert row["ci_high"] == pytest.approx(0.765407, abs=5e-7)
    assert row["p_val"] == rel6(7.087291e-49)
    assert (row["statistic"], row["n"]) == (682, 925)


def test_one_sided_sign_test_matches_binom_test() -> None:
    row = stats.sign_test(682, 925, p=3 / 4, alternative="less").iloc[0]
    # R 4.2.2: binom.test(c(682, 243), p = 3/4, alternative = "less") -> p = 0.196009,
    # CI [0, 0.761055]
    assert row["p_val"] == pytest.approx(0.196009, abs=5e-7)
    assert row["ci_low"] == 0.0
    assert row["ci_high"] == pytest.approx(0.761055, abs=5e-7)
    assert row["p_null"] == 0.75


def test_sign_test_across_languages() -> None:
    # 15 of 16 languages in one direction: P(X >= 15 | n = 16, 1/2) = 17 / 2^16
    row = stats.sign_test(15, 16).iloc[0]
    assert row["p_val"] == pytest.approx(17 / 2**16, rel=1e-12)
    assert row["ci_high"] == 1.0
    assert row["alternative"] == "greater"


def test_midp_binomial_test_matches_fagerland() -> None:
    # Fagerland, Lydersen & Laake (2017), "Statistical Analysis of Contingency Tables",
    # ch. 2, Ligarden et al. (2010) data, 13 of 16: R contingencytables 2.x,
    # MidP_binomial_test_1x2(X = 13, n = 16, pi0 = .5) -> "P = 0.01273";
    # Exact_binomial_test_1x2(X = 13, n = 16, pi0 = 0.5) -> "P = 0.02127";
    # ClopperPearson_midP_CI_1x2(X = 13, n = 16) -> "95% CI 0.5699 to 0.9500"
    # (the package's tests/testthat/test-ch2.R).
    row = stats.sign_test(13, 16, alternative="two-sided", method="midp").iloc[0]
    assert row["p_val"] == pytest.approx(0.01273, abs=5e-6)
    assert (row["ci_low"], row["ci_high"]) == (
        pytest.approx(0.5699, abs=5e-5),
        pytest.approx(0.9500, abs=5e-5),
    )
    assert row["method"] == "midp_binomial"
    exact = stats.sign_test(13, 16, alternative="two-sided").iloc[0]
    assert exact["p_val"] == pytest.approx(0.02127, abs=5e-6)
    # one-sided: half the two-sided value of this symmetric null, P(X > 13) + P(X = 13) / 2
    greater = stats.sign_test(13, 16, method="midp").iloc[0]
    assert greater["p_val"] == pytest.approx(0.01273 / 2, abs=3e-6)
    assert greater["p_val"] == pytest.approx((137 + 560 / 2) / 2**16, rel=1e-12)


@pytest.mark.parametrize(
    ("k", "n", "low", "high", "tol"),
    [
        # R stests: ci_p_mid_p(x = c(5, 10, 15), n = c(20, 30, 40)) -> 0.09786008 0.47022380,
        # 0.1833232 0.5141852, 0.2361295 0.5313959 (its documented example; 5/20 is Berry &
        # Armitage 1995, p. 420: 0.098 to 0.470)
        (5, 20, 0.09786008, 0.47022380, 5e-9),
        (10, 30, 0.1833232, 0.5141852, 5e-8),
        (15, 40, 0.2361295, 0.5313959, 5e-8),
        # Newcombe (1998), Stat Med 17, p. 861, Table I, mid-p column, as R coin's
        # tests/regtest_midpvalue.R checks them: coin:::confint_binom(81, 263, level = 0.95,
        # method = "mid-p") -> 0.2544 0.3658, and (15, 148), (0, 20), (1, 29)
        (81, 263, 0.2544, 0.3658, 5e-5),
        (15, 148, 0.0601, 0.1581, 5e-5),
        (0, 20, 0.0, 0.1391, 5e-5),
        (1, 29, 0.0017, 0.1585, 5e-5),
        # Agresti & Gottard (2001, p. 369), in the same coin test: 4 of 10 -> 0.142 0.709
        (4, 10, 0.142, 0.709, 5e-4),
    ],
)
def test_midp_interval_matches_published(
    k: int, n: int, low: float, high: float, tol: float
) -> None:
    got = stats.midp_interval(k, n, 0.95)
    assert got == (pytest.approx(low, abs=tol), pytest.approx(high, abs=tol))


def test_midp_one_sided_interval_and_rejection_regions() -> None:
    # one-sided bounds leave all of 1 - ci on their side: the "greater" lower bound at 95%
    # is the two-sided 90% lower bound
    row = stats.sign_test(5, 20, method="midp", ci=0.95).iloc[0]
    assert row["ci_low"] == pytest.approx(stats.midp_interval(5, 20, 0.90)[0], rel=1e-9)
    assert row["ci_high"] == 1.0
    less = stats.sign_test(5, 20, alternative="less", method="midp").iloc[0]
    assert less["ci_low"] == 0.0
    # 16 languages, p_null 0.025: the exact test rejects from 3 counted, P(X >= 3) = 0.0069;
    # the mid-p test from 2, P(X >= 2) = 0.0595 (R: 1 - pbinom(1, 16, 0.025))
    exact = [stats.sign_test(k, 16, p=0.025).iloc[0]["p_val"] < 0.05 for k in range(5)]
    midp = [
        stats.sign_test(k, 16, p=0.025, method="midp").iloc[0]["p_val"] < 0.05 for k in range(5)
    ]
    assert exact == [False, False, False, True, True]
    assert midp == [False, False, True, True, True]
    # the sign test (p_null 0.5) rejects from 12 of 16 either way
    for method in ("exact", "midp"):
        got = [stats.sign_test(k, 16, method=method).iloc[0]["p_val"] < 0.05 for k in (11, 12)]
        assert got == [False, True]


def test_sign_test_rejects_unknown_method() -> None:
    with pytest.raises(AnalysisError, match="method"):
        stats.sign_test(3, 4, method="blaker")  # type: ignore[arg-type]


@pytest.mark.parametrize(("k", "n"), [(5, 4), (-1, 4), (1, 0), (1.5, 4)])
def test_sign_test_rejects_bad_counts(k: float, n: int) -> None:
    with pytest.raises(AnalysisError):
        stats.sign_test(k, n)  # type: ignore[arg-type]


def test_paper_study1_english_p_value() -> None:
    # Paper (arXiv 2603.04904), Study 1 English: g = -1.844, n = 15 per group, p < .0001
    assert stats.p_from_g(-1.844, 15, 15) < 1e-4


def test_paper_study1_japanese_p_value() -> None:
    # Paper, Study 1 Japanese: g = +0.771, n = 15 per group, p = .038. Our exact value is
    # 0.0386 (the paper's three decimals look truncated); tolerance 0.001 on the printed
    # value. Without undoing J the p-value would be 0.044, outside the tolerance.
    p = stats.p_from_g(0.771, 15, 15)
    assert p == pytest.approx(0.038, abs=1e-3)
    assert p < 0.039


def test_paper_power_distance_correlation() -> None:
    # Paper, Study 2: r = 0.474 with n = 16 languages, p = .064 (rounded to 3 decimals)
    assert stats.p_from_r(0.474, 16) == pytest.approx(0.064, abs=5e-4)


def test_p_from_g_inverts_hedges_g() -> None:
    row = stats.hedges_g(AUTOMATIC, MANUAL).iloc[0]
    assert stats.p_from_g(row["estimate"], 19, 13) == pytest.approx(row["p_val"], rel=1e-10)


def test_p_from_r_inverts_pearson() -> None:
    x = [44.4, 45.9, 41.9, 53.3, 44.7, 44.1, 50.7, 45.2, 60.1]
    y = [2.6, 3.1, 2.5, 5.0, 3.6, 4.0, 5.2, 2.8, 3.8]
    row = stats.pearson(x, y).iloc[0]
    assert stats.p_from_r(row["estimate"], 9) == pytest.approx(row["p_val"], rel=1e-10)


@pytest.mark.parametrize(
    "call",
    [
        lambda: stats.hedges_g([1.0], [2.0, 3.0]),
        lambda: stats.cohens_d([1.0, float("nan")], [2.0, 3.0]),
        lambda: stats.ttest([1.0, 2.0], [2.0, float("inf")]),
        lambda: stats.hedges_g([1.0, 1.0], [2.0, 2.0]),
        lambda: stats.ttest([1.0, 1.0], [2.0, 2.0]),
        lambda: stats.pearson([1.0, 2.0], [2.0, 3.0]),
        lambda: stats.pearson([1.0, 2.0, 3.0], [2.0, 3.0]),
        lambda: stats.pearson([1.0, 1.0, 1.0], [2.0, 3.0, 4.0]),
        lambda: stats.hedges_g([1.0, 2.0], [2.0, 4.0], ci=1.0),
        lambda: stats.ttest([1.0, 2.0], [2.0, 4.0], alternative="bigger"),  # type: ignore[arg-type]
        lambda: stats.p_from_g(0.5, 1, 10),
        lambda: stats.p_from_r(1.5, 10),
        lambda: stats.hedges_g(["a", "b"], [1.0, 2.0]),  # type: ignore[list-item]
    ],
)
def test_invalid_input_raises_analysis_error(call: object) -> None:
    with pytest.raises(AnalysisError) as info:
        call()  # type: ignore[operator]
    assert "\n" not in str(info.value)


def test_accepts_series_and_arrays() -> None:
    from_lists = stats.hedges_g(AUTOMATIC, MANUAL)
    from_series = stats.hedges_g(pd.Series(AUTOMATIC), np.asarray(MANUAL))
    pd.testing.assert_frame_equal(from_lists, from_series)


def test_ci_level_is_recorded_and_narrows() -> None:
    wide = stats.hedges_g(AUTOMATIC, MANUAL, ci=0.99).iloc[0]
    narrow = stats.hedges_g(AUTOMATIC, MANUAL, ci=0.90).iloc[0]
    assert (wide["ci_level"], narrow["ci_level"]) == (0.99, 0.90)
    assert wide["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < wide["ci_high"]


def test_g_interval_matches_hedges_g_on_data() -> None:
    import numpy as np

    from alignbf.analysis.stats import g_interval, hedges_g

    rng = np.random.default_rng(3)
    x, y = rng.normal(1.0, 1.0, 15), rng.normal(0.0, 1.0, 15)
    row = hedges_g(x, y).iloc[0]
    low, high = g_interval(float(row["estimate"]), 15, 15)
    assert low == pytest.approx(row["ci_low"], rel=1e-9)
    assert high == pytest.approx(row["ci_high"], rel=1e-9)
