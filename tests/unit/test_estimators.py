"""Estimators on hand-made frames with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from alignbf.analysis import mixedlm, stats
from alignbf.analysis.estimators import estimate, group_effects, one_sample_t
from alignbf.config.hypotheses import (
    Correlation,
    CountLanguages,
    GContrast,
    Interaction,
    MeanVs,
    MixedTerm,
    PerGroup,
    Ratio,
    Slope,
)
from alignbf.errors import AnalysisError


def _exact_slopes(slopes: dict[str, float], reps: int = 4) -> pd.DataFrame:
    """cpi = slope * ratio + noise whose mean is 0 at every ratio: OLS recovers slope exactly."""
    rows = []
    for language, b in slopes.items():
        for x in (0.0, 0.5, 1.0):
            for i in range(reps):
                noise = 0.3 * (1 if i % 2 else -1) * (1 + i // 2)
                rows.append((language, x, b * x + noise))
    return pd.DataFrame(rows, columns=["language", "alignment_ratio", "cpi"])


def test_g_contrast_is_hedges_g_high_minus_low() -> None:
    frame = pd.DataFrame(
        {"alignment_ratio": [0.0] * 4 + [1.0] * 4, "cpi": [1, 2, 3, 4, 0.5, 1, 1.5, 1]}
    )
    got = estimate(GContrast(type="g_contrast"), frame, "cpi")
    ref = stats.hedges_g([0.5, 1, 1.5, 1], [1, 2, 3, 4]).iloc[0]
    assert got.estimate == pytest.approx(ref["estimate"]) and got.estimate < 0
    assert (got.ci_low, got.ci_high) == pytest.approx((ref["ci_low"], ref["ci_high"]))
    assert got.n == 8 and got.df == 6


def test_g_contrast_needs_both_levels() -> None:
    frame = pd.DataFrame({"alignment_ratio": [0.0, 0.0, 0.5], "cpi": [1.0, 2.0, 3.0]})
    with pytest.raises(AnalysisError, match="needs at least 2 in each"):
        estimate(GContrast(type="g_contrast"), frame, "cpi")


def test_g_contrast_drops_missing_outcomes() -> None:
    frame = pd.DataFrame(
        {"alignment_ratio": [0.0] * 3 + [1.0] * 3, "cpi": [1.0, 2.0, np.nan, 3.0, 4.0, 6.0]}
    )
    got = estimate(GContrast(type="g_contrast"), frame, "cpi")
    assert got.n == 5 and "1 row(s) without a value dropped" in got.note


def test_slope_matches_polyfit() -> None:
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [1.0, 3.1, 4.9, 7.2]})
    got = estimate(Slope(type="slope", formula="y ~ x", term="x"), frame, "y")
    assert got.estimate == pytest.approx(np.polyfit(frame["x"], frame["y"], 1)[0])
    assert got.df == 2


def test_mixed_term_matches_regression_mixed() -> None:
    frame = _exact_slopes({"a": 1.0, "b": 2.0, "c": 0.5, "d": 1.5}, reps=6)
    spec = MixedTerm(
        type="mixed_term",
        formula="cpi ~ alignment_ratio",
        term="alignment_ratio",
        groups="language",
    )
    got = estimate(spec, frame, "cpi")
    ref = mixedlm.mixed("cpi ~ alignment_ratio", frame, "language")
    row = ref[ref["term"] == "alignment_ratio"].iloc[0]
    assert got.estimate == pytest.approx(row["estimate"]) and got.estimate == pytest.approx(1.25)
    # Satterthwaite's df (the default): a within-group slope of a balanced random-intercept
    # model has the within-group df, N - G - 1 = 72 - 4 - 1 = 67, exactly.
    assert got.df == pytest.approx(67.0, rel=1e-6) and got.df == pytest.approx(row["df"])
    assert "Satterthwaite t(67.00)" in got.note
    between = estimate(spec.model_copy(update={"df": "between"}), frame, "cpi")
    assert between.df == 3.0 and "t(3) with G - 1 df" in between.note  # G - 1 = 3
    assert (between.estimate, between.se) == pytest.approx((got.estimate, got.se))
    # per = 0.01 reports the slope per percentage point; t and p do not change.
    point = estimate(spec.model_copy(update={"per": 0.01}), frame, "cpi")
    assert (point.estimate, point.se) == pytest.approx((0.0125, got.se / 100))
    assert (point.ci_low, point.ci_high) == pytest.approx((got.ci_low / 100, got.ci_high / 100))
    assert (point.statistic, point.p_val) == (got.statistic, got.p_val)


def test_interaction_sd_of_slopes_and_f_test() -> None:
    frame = _exact_slopes({"en": 1.0, "ja": 2.0, "ko": 3.0})
    spec = Interaction(
        type="interaction",
        formula='cpi ~ alignment_ratio * C(language, Treatment(reference="en"))',
        null_formula='cpi ~ alignment_ratio + C(language, Treatment(reference="en"))',
    )
    got = estimate(spec, frame, "cpi")
    assert got.estimate == pytest.approx(1.0)
    # By hand: RSS(full) = 9 cells x (0.09 + 0.09 + 0.36 + 0.36) = 8.1 on 30 df; the
    # interaction SS = sum_L (b_L - 2)^2 x sum (x - 0.5)^2 = 2 x 2 = 4 on 2 df.
    assert got.statistic == pytest.approx((4 / 2) / (8.1 / 30))
    assert got.p_val == pytest.approx(sps.f.sf((4 / 2) / (8.1 / 30), 2, 30))
    assert got.df == 30
    assert got.note.startswith("F(2, 30)")


def test_interaction_rest_minus_reference_contrast_by_hand() -> None:
    frame = _exact_slopes({"en": 1.0, "ja": 2.0, "ko": 3.0})
    spec = Interaction(
        type="interaction",
        formula='cpi ~ alignment_ratio * C(language, Treatment(reference="en"))',
        null_formula='cpi ~ alignment_ratio + C(language, Treatment(reference="en"))',
        summary="rest_minus_reference",
    )
    got = estimate(spec, frame, "cpi")
    # By hand: (2 + 3) / 2 - 1 = 1.5. Each slope has variance s^2 / Sxx with s^2 = 8.1 / 30
    # and Sxx = 4 x (0.25 + 0 + 0.25) = 2 per language, so the contrast's variance is
    # 0.27 / 2 x (1/4 + 1/4 + 1) = 0.2025 and its SE 0.45, with t on 30 df.
    half = sps.t.ppf(0.975, 30) * 0.45
    assert got.estimate == pytest.approx(1.5) and got.se == pytest.approx(0.45)
    assert (got.ci_low, got.ci_high) == pytest.approx((1.5 - half, 1.5 + half))
    assert got.statistic == pytest.approx((4 / 2) / (8.1 / 30))  # p stays the omnibus F's
    assert "mean slope of the 2 other language groups" in got.note
    per_point = estimate(spec.model_copy(update={"per": 0.01}), frame, "cpi")
    assert (per_point.estimate, per_point.se) == pytest.approx((0.015, 0.0045))
    assert per_point.p_val == got.p_val and "per 0.01 of alignment_ratio" in per_point.note


# emmeans::fiber (Montgomery, Design and Analysis of Experiments, 8th ed., Table 15.10):
# breaking strength and diameter of five fibres from each of three machines.
FIBER_STRENGTH = {"A": [36, 41, 39, 42, 49], "B": [40, 48, 39, 45, 44], "C": [35, 37, 42, 34, 32]}
FIBER_DIAMETER = {"A": [20, 25, 24, 25, 32], "B": [22, 28, 22, 30, 28], "C": [21, 23, 26, 21, 15]}


def test_interaction_rest_minus_reference_matches_emtrends() -> None:
    fiber = pd.DataFrame(
        [
            (machine, float(x), float(y))
            for machine, ys in FIBER_STRENGTH.items()
            for x, y in zip(FIBER_DIAMETER[machine], ys, strict=True)
        ],
        columns=["machine", "diameter", "strength"],
    )
    machine = 'C(machine, Treatment(reference="A"))'
    spec = Interaction(
        type="interaction",
        formula=f"strength ~ diameter * {machine}",
        null_formula=f"strength ~ diameter + {machine}",
        factor="diameter",
        by="machine",
        summary="rest_minus_reference",
    )
    got = estimate(spec, fiber, "strength")
    # R, emmeans (reference page of emtrends and the "interactions" vignette):
    #   fiber.lm <- lm(strength ~ diameter*machine, data = fiber)
    #   pairs(emtrends(fiber.lm, "machine", var = "diameter"))
    # -> slopes A 1.104 (SE 0.194), B 0.857 (0.224), C 0.864 (0.208) on 9 df; contrasts
    # A - B 0.24714 (SE 0.296), A - C 0.24008 (SE 0.284). The estimate is the mean of
    # B - A and C - A: -(0.24714 + 0.24008) / 2 (5e-6 from the printed digits). Its SE is
    # not printed; from the printed ones, as Cov(B - A, C - A) = Var(slope A):
    # sqrt((0.296^2 + 0.284^2 + 2 x 0.194^2) / 4) = 0.2468, to 5e-4 (the SEs' 3 digits).
    assert got.estimate == pytest.approx(-(0.24714 + 0.24008) / 2, abs=5e-6)
    assert got.se == pytest.approx(math.sqrt((0.296**2 + 0.284**2 + 2 * 0.194**2) / 4), abs=5e-4)
    assert got.df == 9
    half = sps.t.ppf(0.975, 9) * got.se
    assert (got.ci_low, got.ci_high) == pytest.approx((got.estimate - half, got.estimate + half))
    assert "mean slope of the 2 other machine groups" in got.note


def test_interaction_contrast_needs_treatment_coded_terms() -> None:
    frame = _exact_slopes({"en": 1.0, "ja": 2.0})
    spec = Interaction(
        type="interaction",
        formula="cpi ~ alignment_ratio + C(language)",
        null_formula="cpi ~ C(language)",
        summary="rest_minus_reference",
    )
    with pytest.raises(AnalysisError, match="no alignment_ratio x language interaction terms"):
        estimate(spec, frame, "cpi")


def test_group_effects_slopes_are_exact() -> None:
    frame = _exact_slopes({"a": 1.0, "b": -2.0})
    effects, skipped = group_effects(frame, "cpi", PerGroup())
    assert list(effects["language"]) == ["a", "b"] and not skipped
    assert list(effects["estimate"]) == pytest.approx([1.0, -2.0])


def test_count_languages_sign_test() -> None:
    frame = _exact_slopes({"a": 1.0, "b": 2.0, "c": 3.0, "d": -1.0})
    got = estimate(CountLanguages(type="count_languages"), frame, "cpi")
    # R: binom.test(3, 4, alternative = "greater")$p.value == 0.3125
    assert got.estimate == 0.75 and got.p_val == pytest.approx(0.3125)
    assert got.null == 0.5 and got.note.startswith("3/4 language positive (a, b, c)")


def test_count_languages_midp_test() -> None:
    frame = _exact_slopes({"a": 1.0, "b": 2.0, "c": 3.0, "d": -1.0})
    got = estimate(CountLanguages(type="count_languages", test="midp"), frame, "cpi")
    # mid-p of 3 of 4 at 1/2: P(X = 4) + P(X = 3) / 2 = 1/16 + 4/32
    assert got.p_val == pytest.approx(3 / 16) and got.statistic == 3
    assert "mid-p binomial test against 0.5" in got.note


def test_count_languages_significant_positive() -> None:
    frame = _exact_slopes({"a": 1.0, "b": 0.01, "c": 3.0})
    spec = CountLanguages(type="count_languages", criterion="significant_positive", p_null=0.025)
    got = estimate(spec, frame, "cpi")
    assert got.statistic == 2 and got.n == 3


def test_correlation_with_language_attribute() -> None:
    frame = _exact_slopes({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0})
    attrs = {"a": {"pdi": 10}, "b": {"pdi": 20}, "c": {"pdi": 30}, "d": {"pdi": 45}}
    got = estimate(Correlation(type="correlation", attribute="pdi"), frame, "cpi", 0.95, attrs)
    assert got.estimate == pytest.approx(np.corrcoef([1, 2, 3, 4], [10, 20, 30, 45])[0, 1])


def test_correlation_needs_three_groups() -> None:
    frame = _exact_slopes({"a": 1.0, "b": 2.0})
    with pytest.raises(AnalysisError, match="need 3"):
        estimate(Correlation(type="correlation", attribute="pdi"), frame, "cpi", 0.95, {})


def test_one_sample_t_matches_r() -> None:
    # R 4.3: t.test(1:5, mu = 2) -> t = 1.4142, df = 4, p-value = 0.2302,
    #   95 percent CI 1.036757 4.963243, mean 3
    row = one_sample_t([1, 2, 3, 4, 5], 2.0).iloc[0]
    assert row["estimate"] == 3.0 and row["df"] == 4
    assert row["statistic"] == pytest.approx(1.414214, abs=1e-6)
    assert row["p_val"] == pytest.approx(0.2302, abs=1e-4)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((1.036757, 4.963243), abs=1e-6)


def test_mean_vs_reports_null_value() -> None:
    frame = pd.DataFrame({"conformity_pct": [1.0, 2.0, 3.0, 4.0, 5.0, np.nan]})
    got = estimate(MeanVs(type="mean_vs", value=2.0), frame, "conformity_pct")
    assert got.null == 2.0 and got.n == 5 and got.estimate == 3.0


def test_ratio_of_pooled_ratios() -> None:
    frame = pd.DataFrame(
        {
            "alignment_ratio": [1.0, 1.0, 0.0, 0.0],
            "conformity": [10, 20, 4, 6],
            "individuation": [1, 1, 2, 3],
        }
    )
    spec = Ratio(type="ratio", numerator="conformity", denominator="individuation")
    got = estimate(spec, frame, "conformity_ratio")
    assert got.estimate == pytest.approx(7.5) and got.null == 1.0
    assert got.ci_low <= got.estimate <= got.ci_high and math.isnan(got.p_val)
    assert got.note.startswith("conformity:individuation = 15.0:1 at 1.0 vs 2.0:1 at 0.0")


def test_empty_subset_is_an_analysis_error() -> None:
    with pytest.raises(AnalysisError, match="no rows"):
        estimate(GContrast(type="g_contrast"), pd.DataFrame({"cpi": []}), "cpi")
