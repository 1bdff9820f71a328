"""alignbf.analysis.regression against coefficients published from R (lm, glm, lme4, lmerTest).

Reference values with six decimals come from the tidystats test fixtures
(github.com/WillemSleegers/tidystats, tests/data/*.json), which store R output rounded to
six decimals; the producing R call is quoted next to each.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from alignbf.analysis import mixedlm, regression
from alignbf.errors import AnalysisError

# lme4::sleepstudy: Reaction (ms) on Days 0..9 for each of 18 subjects (rows), 180 rows.
SLEEP_SUBJECTS = [308, 309, 310, 330, 331, 332, 333, 334, 335, 337, 349, 350, 351, 352, 369,
                  370, 371, 372]  # fmt: skip
SLEEP_REACTION = """
249.5600 258.7047 250.8006 321.4398 356.8519 414.6901 382.2038 290.1486 430.5853 466.3535
222.7339 205.2658 202.9778 204.7070 207.7161 215.9618 213.6303 217.7272 224.2957 237.3142
199.0539 194.3322 234.3200 232.8416 229.3074 220.4579 235.4208 255.7511 261.0125 247.5153
321.5426 300.4002 283.8565 285.1330 285.7973 297.5855 280.2396 318.2613 305.3495 354.0487
287.6079 285.0000 301.8206 320.1153 316.2773 293.3187 290.0750 334.8177 293.7469 371.5811
234.8606 242.8118 272.9613 309.7688 317.4629 309.9976 454.1619 346.8311 330.3003 253.8644
283.8424 289.5550 276.7693 299.8097 297.1710 338.1665 332.0265 348.8399 333.3600 362.0428
265.4731 276.2012 243.3647 254.6723 279.0244 284.1912 305.5248 331.5229 335.7469 377.2990
241.6083 273.9472 254.4907 270.8021 251.4519 254.6362 245.4523 235.3110 235.7541 237.2466
312.3666 313.8058 291.6112 346.1222 365.7324 391.8385 404.2601 416.6923 455.8643 458.9167
236.1032 230.3167 238.9256 254.9220 250.7103 269.7744 281.5648 308.1020 336.2806 351.6451
256.2968 243.4543 256.2046 255.5271 268.9165 329.7247 379.4445 362.9184 394.4872 389.0527
250.5265 300.0576 269.8939 280.5891 271.8274 304.6336 287.7466 266.5955 321.5418 347.5655
221.6771 298.1939 326.8785 346.8555 348.7402 352.8287 354.4266 360.4326 375.6406 388.5417
271.9235 268.4369 257.2424 277.6566 314.8222 317.2135 298.1353 348.1229 340.2800 366.5131
225.2640 234.5235 238.9008 240.4730 267.5373 344.1937 281.1481 347.5855 365.1630 372.2288
269.8804 272.4428 277.8989 281.7895 279.1705 284.5120 259.2658 304.6306 350.7807 369.4692
269.4117 273.4740 297.5968 310.6316 287.1726 329.6076 334.4818 343.2199 369.1417 364.1236
"""


@pytest.fixture(scope="module")
def sleepstudy() -> pd.DataFrame:
    rows = [line.split() for line in SLEEP_REACTION.strip().splitlines()]
    records = [
        (float(value), day, str(subject))
        for subject, values in zip(SLEEP_SUBJECTS, rows, strict=True)
        for day, value in enumerate(values)
    ]
    return pd.DataFrame(records, columns=["Reaction", "Days", "Subject"])


@pytest.fixture(scope="module")
def slopes(sleepstudy: pd.DataFrame) -> mixedlm.MixedFit:
    return mixedlm.fit_mixed("Reaction ~ Days", sleepstudy, "Subject", re_formula="~Days")


def r6(value: float) -> object:
    """1e-6 relative, or half a unit in the sixth decimal when that is looser."""
    return pytest.approx(value, rel=1e-6, abs=5e-7)


def by_term(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("term")


def by_component(frame: pd.DataFrame) -> pd.Series:
    return frame.set_index("component")["estimate"]


# Dobson (1990) plant weights, from R's ?lm example.
CTL = [4.17, 5.58, 5.18, 6.11, 4.50, 4.61, 5.17, 4.53, 5.33, 5.14]
TRT = [4.81, 4.17, 4.41, 3.59, 5.87, 3.83, 6.03, 4.89, 4.32, 4.69]
PLANTS = pd.DataFrame({"weight": CTL + TRT, "group": ["Ctl"] * 10 + ["Trt"] * 10})


def test_sleepstudy_is_typed_correctly(sleepstudy: pd.DataFrame) -> None:
    # For balanced data the lme4 fixed effects equal OLS: 251.405105 and 10.467286 (below).
    assert sleepstudy.shape == (180, 3)
    fit = by_term(regression.ols("Reaction ~ Days", sleepstudy))
    assert fit.loc["Intercept", "estimate"] == r6(251.405105)
    assert fit.loc["Days", "estimate"] == r6(10.467286)


def test_ols_matches_lm() -> None:
    fit = by_term(regression.ols("weight ~ group", PLANTS))
    # R 4.2.2: summary(lm(weight ~ group)) (Dobson plant weights, ?lm)
    assert fit.loc["Intercept", "estimate"] == r6(5.032)
    assert fit.loc["Intercept", "se"] == r6(0.220218)
    assert fit.loc["Intercept", "statistic"] == r6(22.850117)
    assert fit.loc["Intercept", "p_val"] == pytest.approx(9.547128e-15, rel=1e-6)
    assert fit.loc["group[T.Trt]", "estimate"] == r6(-0.371)
    assert fit.loc["group[T.Trt]", "se"] == r6(0.311435)
    assert fit.loc["group[T.Trt]", "statistic"] == r6(-1.19126)
    assert fit.loc["group[T.Trt]", "p_val"] == r6(0.249023)
    assert set(fit["df"]) == {18.0}
    assert set(fit["n"]) == {20}
    assert set(fit["p_method"]) == {"t"}


def test_treatment_reference_level() -> None:
    term = regression.treatment("group", "Trt")
    assert term == 'C(group, Treatment(reference="Trt"))'
    fit = by_term(regression.ols(f"weight ~ {term}", PLANTS))
    # R 4.2.2: lm(weight ~ group - 1) gives the Trt mean 4.661 (SE 0.220218); with Trt as
    # reference the intercept is that mean and the Ctl contrast is +0.371 (SE 0.311435).
    assert fit.loc["Intercept", "estimate"] == r6(4.661)
    assert fit.loc["Intercept", "se"] == r6(0.220218)
    contrast = f"{term}[T.Ctl]"
    assert fit.loc[contrast, "estimate"] == r6(0.371)
    assert fit.loc[contrast, "se"] == r6(0.311435)
    assert regression.treatment("ratio", 0.5) == "C(ratio, Treatment(reference=0.5))"


def test_ols_frame_columns() -> None:
    frame = regression.ols("weight ~ group", PLANTS, ci=0.9)
    assert list(frame.columns[:11]) == regression.COLUMNS
    assert list(frame.columns[11:]) == ["p_method", "cov_type"]
    assert set(frame["model"]) == {"ols"} and set(frame["ci_level"]) == {0.9}


# R datasets::cars (speed in mph, stopping distance in ft).
SPEED = [4, 4, 7, 7, 8, 9, 10, 10, 10, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14,
         15, 15, 15, 16, 16, 17, 17, 17, 18, 18, 18, 18, 19, 19, 19, 20, 20, 20, 20, 20, 22,
         23, 24, 24, 24, 24, 25]  # fmt: skip
DIST = [2, 10, 4, 22, 16, 10, 18, 26, 34, 17, 28, 14, 20, 24, 28, 26, 34, 34, 46, 26, 36, 60,
        80, 20, 26, 54, 32, 40, 32, 40, 50, 42, 56, 76, 84, 36, 46, 68, 32, 48, 52, 56, 64,
        66, 54, 70, 92, 93, 120, 85]  # fmt: skip
CARS = pd.DataFrame({"speed": SPEED, "dist": DIST})


def test_ols_classical_matches_lm_on_cars() -> None:
    fit = by_term(regression.ols("speed ~ dist", CARS))
    # R: summary(lm(speed ~ dist, data = cars)) -> 8.28391 (0.87438), 0.16557 (0.01749);
    # "A Guide on Data Analysis" (bookdown.org/mike), section Standard Errors; printed
    # precision (five decimals).
    assert fit.loc["Intercept", "estimate"] == pytest.approx(8.28391, abs=5e-6)
    assert fit.loc["Intercept", "se"] == pytest.approx(0.87438, abs=5e-6)
    assert fit.loc["dist", "estimate"] == pytest.approx(0.16557, abs=5e-6)
    assert fit.loc["dist", "se"] == pytest.approx(0.01749, abs=5e-6)


def test_ols_hc1_matches_sandwich() -> None:
    fit = by_term(regression.ols("speed ~ dist", CARS, robust="HC1"))
    # R: lmtest::coeftest(model, vcov. = sandwich::vcovHC(model, type = "HC1")) for
    # lm(speed ~ dist, data = cars) -> 8.283906 (0.891860) t 9.2883 p 2.682e-12;
    # dist 0.165568 (0.019402) t 8.5335 p 3.482e-11 (same source; printed precision).
    assert fit.loc["Intercept", "se"] == pytest.approx(0.891860, abs=5e-7)
    assert fit.loc["Intercept", "statistic"] == pytest.approx(9.2883, abs=5e-5)
    assert fit.loc["Intercept", "p_val"] == pytest.approx(2.682e-12, abs=5e-16)
    assert fit.loc["dist", "estimate"] == pytest.approx(0.165568, abs=5e-7)
    assert fit.loc["dist", "se"] == pytest.approx(0.019402, abs=5e-7)
    assert fit.loc["dist", "statistic"] == pytest.approx(8.5335, abs=5e-5)
    assert fit.loc["dist", "p_val"] == pytest.approx(3.482e-11, abs=5e-15)
    assert set(fit["df"]) == {48.0} and set(fit["cov_type"]) == {"HC1"}


def test_ols_cluster_uses_clusters_minus_one_df(sleepstudy: pd.DataFrame) -> None:
    # No published reference was found for this one: checked for structure and alignment.
    fit = regression.ols("Reaction ~ Days", sleepstudy, cluster="Subject")
    assert set(fit["df"]) == {17.0} and set(fit["cov_type"]) == {"cluster"}
    holes = sleepstudy.copy()
    holes.loc[[3, 50, 120], "Reaction"] = np.nan
    holes.index = holes.index[::-1]
    gappy = regression.ols("Reaction ~ Days", holes, cluster="Subject")
    dropped = regression.ols("Reaction ~ Days", holes.dropna(), cluster="Subject")
    pd.testing.assert_frame_equal(gappy, dropped)
    assert set(gappy["n"]) == {177}


def test_ols_rejects_bad_options(sleepstudy: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="robust"):
        regression.ols("Reaction ~ Days", sleepstudy, robust="HC9")
    with pytest.raises(AnalysisError, match="not both"):
        regression.ols("Reaction ~ Days", sleepstudy, robust="HC3", cluster="Subject")
    with pytest.raises(AnalysisError, match="cluster column"):
        regression.ols("Reaction ~ Days", sleepstudy, cluster="Nope")
    with pytest.raises(AnalysisError, match="could not be fitted"):
        regression.ols("Reaction ~ Nope", sleepstudy)
    with pytest.raises(AnalysisError, match="level 'x' not found"):
        regression.ols(f"Reaction ~ {regression.treatment('Subject', 'x')}", sleepstudy)
    with pytest.raises(AnalysisError, match="non-empty"):
        regression.ols("Reaction ~ Days", sleepstudy.iloc[:0])


def test_mixed_random_slopes_fixed_effects(slopes: mixedlm.MixedFit) -> None:
    fit = by_term(slopes.coefficients)
    # R lmerTest 3.1-3: lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
    # -> 251.405105 (SE 6.824597), 10.467286 (SE 1.54579); t 36.83809, 6.771481.
    assert fit.loc["Intercept", "estimate"] == r6(251.405105)
    assert fit.loc["Days", "estimate"] == r6(10.467286)
    # SEs and Wald statistics depend on the variance estimates, which lme4 (bobyqa) and
    # statsmodels (BFGS) each locate only to their optimiser tolerance: 1e-5 relative.
    assert fit.loc["Intercept", "se"] == pytest.approx(6.824597, rel=1e-5)
    assert fit.loc["Days", "se"] == pytest.approx(1.54579, rel=1e-5)
    assert fit.loc["Intercept", "statistic"] == pytest.approx(36.83809, rel=1e-5)
    assert fit.loc["Days", "statistic"] == pytest.approx(6.771481, rel=1e-5)
    # Satterthwaite df, the default. R lmerTest 3.1-3, ?contest1D (Kuznetsova, Brockhoff
    # and Christensen 2017): fm <- lmer(Reaction ~ Days + (1 + Days|Subject), sleepstudy);
    # contest1D(fm, c(1, 0), confint=TRUE) -> df 16.99973, CI [237.0064, 265.8038],
    # p 1.171558e-17; contest1D(fm, c(0, 1), confint=TRUE) -> df 16.99998, t 6.771481,
    # CI [7.205955, 13.72862], p 3.263824e-06. For this balanced design the exact value is
    # G - 1 = 17; lme4's optimum is off by its tolerance, ours is refined: 2e-5 relative.
    assert fit.loc["Intercept", "df"] == pytest.approx(16.99973, rel=2e-5)
    assert fit.loc["Days", "df"] == pytest.approx(16.99998, rel=2e-5)
    assert fit["df"].to_numpy() == pytest.approx([17.0, 17.0], abs=1e-5)
    assert fit.loc["Intercept", "ci_low"] == pytest.approx(237.0064, rel=1e-5)
    assert fit.loc["Intercept", "ci_high"] == pytest.approx(265.8038, rel=1e-5)
    assert fit.loc["Days", "ci_low"] == pytest.approx(7.205955, rel=1e-5)
    assert fit.loc["Days", "ci_high"] == pytest.approx(13.72862, rel=1e-5)
    assert fit.loc["Days", "p_val"] == pytest.approx(3.263824e-06, rel=1e-4)
    # At t = 36.8 on 17 df, p moves ~17 times as much as t (relatively): 1e-3 relative.
    assert fit.loc["Intercept", "p_val"] == pytest.approx(1.171558e-17, rel=1e-3)
    assert set(fit["p_method"]) == {"t"} and set(fit["df_method"]) == {"satterthwaite"}
    assert slopes.df_method == "satterthwaite" and slopes.df_note == ""
    assert set(fit["n"]) == {180} and set(fit["n_groups"]) == {18}
    assert slopes.converged and fit["converged"].all()


def test_mixed_random_slopes_variance_components(slopes: mixedlm.MixedFit) -> None:
    var = by_component(slopes.variance)
    # R lmerTest 3.1-3: lmer(Reaction ~ Days + (Days | Subject), lme4::sleepstudy)
    # VarCorr: Subject (Intercept) var 612.100158 / sd 24.740658, corr 0.065551,
    # Residual var 654.940008 / sd 25.591796. Days var 35.07 / sd 5.922 as printed by
    # summary() in lme4's vignette (Bates et al. 2015, JSS 67(1)). Tolerance 1e-3 relative.
    assert var["var(Intercept)"] == pytest.approx(612.100158, rel=1e-3)
    assert var["sd(Intercept)"] == pytest.approx(24.740658, rel=1e-3)
    assert var["var(Days)"] == pytest.approx(35.07, rel=1e-3)
    assert var["sd(Days)"] == pytest.approx(5.922, rel=1e-3)
    assert var["cor(Intercept,Days)"] == pytest.approx(0.065551, rel=1e-3)
    assert var["var(Residual)"] == pytest.approx(654.940008, rel=1e-3)
    assert var["sd(Residual)"] == pytest.approx(25.591796, rel=1e-3)
    covariance = var["cor(Intercept,Days)"] * var["sd(Intercept)"] * var["sd(Days)"]
    assert var["cov(Intercept,Days)"] == pytest.approx(covariance, rel=1e-12)
    assert list(slopes.variance.columns) == ["component", "estimate", "group", "converged"]


def test_mixed_random_intercept_matches_lme4(sleepstudy: pd.DataFrame) -> None:
    fit = by_term(mixedlm.mixed("Reaction ~ Days", sleepstudy, "Subject"))
    var = by_component(mixedlm.mixed_variance("Reaction ~ Days", sleepstudy, "Subject"))
    # R lme4 1.1-32: lmer(Reaction ~ Days + (1 | Subject), sleepstudy)
    # -> SE 9.746716 and 0.804221; Subject var 1378.178514; Residual var 960.456579.
    assert fit.loc["Intercept", "se"] == pytest.approx(9.746716, rel=1e-5)
    assert fit.loc["Days", "se"] == pytest.approx(0.804221, rel=1e-5)
    assert var["var(Intercept)"] == pytest.approx(1378.178514, rel=1e-3)
    assert var["var(Residual)"] == pytest.approx(960.456579, rel=1e-3)
    assert list(var.index) == ["var(Intercept)", "sd(Intercept)", "var(Residual)", "sd(Residual)"]


def test_mixed_maximum_likelihood_matches_lme4(sleepstudy: pd.DataFrame) -> None:
    fit = mixedlm.fit_mixed("Reaction ~ Days", sleepstudy, "Subject", reml=False)
    se = by_term(fit.coefficients)["se"]
    var = by_component(fit.variance)
    # R lme4 1.1-32: lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE)
    # -> SE 9.506185 and 0.801735; Subject var 1296.870045; Residual var 954.527834.
    # statsmodels stops its ML optimiser short; the refined fit gives the SEs to 1e-5.
    assert se["Intercept"] == pytest.approx(9.506185, rel=1e-5)
    assert se["Days"] == pytest.approx(0.801735, rel=1e-5)
    assert var["var(Intercept)"] == pytest.approx(1296.870045, rel=1e-3)
    assert var["var(Residual)"] == pytest.approx(954.527834, rel=1e-3)


def test_mixed_drops_rows_with_missing_values(sleepstudy: pd.DataFrame) -> None:
    holes = sleepstudy.copy()
    holes.loc[[3, 50], "Reaction"] = np.nan
    holes.loc[120, "Subject"] = None
    gappy = mixedlm.fit_mixed("Reaction ~ Days", holes, "Subject", re_formula="~Days")
    dropped = mixedlm.fit_mixed("Reaction ~ Days", holes.dropna(), "Subject", re_formula="~Days")
    pd.testing.assert_frame_equal(gappy.coefficients, dropped.coefficients)
    assert set(gappy.coefficients["n"]) == {177}


# y constant within each group, two rows per group: random intercepts and slopes fit the
# data exactly, so the likelihood keeps rising as the residual variance goes to zero and
# has no maximum (an optimiser may still stop and report convergence).
TINY = pd.DataFrame(
    {"y": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0], "x": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0], "g": list("aabbcc")}
)


def test_mixed_falls_back_to_the_optimiser_that_converges() -> None:
    # statsmodels' dietox (Weight of 72 pigs over 12 weeks), random slope of Time:
    # R lme4: lmer(Weight ~ Time + (Time | Pig), data = dietox) gives SE(Time) 0.0798
    # (printed precision); statsmodels' default BFGS stops unconverged at 0.0853.
    import statsmodels

    path = Path(statsmodels.__file__).parent / "regression/tests/results/dietox.csv"
    dietox = pd.read_csv(path)
    fit = mixedlm.fit_mixed("Weight ~ Time", dietox, "Pig", re_formula="~Time")
    time = by_term(fit.coefficients).loc["Time"]
    assert fit.converged
    assert time["se"] == pytest.approx(0.0798, abs=5e-5)
    # 861 of the 72 x 12 weighings: nearly balanced, so Satterthwaite's df are close to
    # G - 1 = 71 without being it (no published figure; checked for range only).
    assert 70 < time["df"] < 72 and time["df"] != 71.0
    between = mixedlm.fit_mixed("Weight ~ Time", dietox, "Pig", re_formula="~Time", df="between")
    assert set(between.coefficients["df"]) == {71.0}


def test_mixed_non_convergence_is_reported() -> None:
    fit = mixedlm.fit_mixed("y ~ x", TINY, "g", re_formula="~x")
    assert not fit.converged
    assert not fit.coefficients["converged"].any()
    assert not fit.variance["converged"].any()
    assert any("converge" in message for message in fit.warnings)
    # No Satterthwaite df without a maximum: G - 1, with the reason.
    assert fit.df_method == "between" and set(fit.coefficients["df"]) == {2.0}
    assert "Satterthwaite df not computable (the fit did not converge)" in fit.df_note


def test_a_likelihood_without_a_maximum_is_not_converged() -> None:
    # TINY's groups are constant shifts of one pattern: y = group + 0 x, no residual
    # variation within a group once a random slope is free, so the REML likelihood keeps
    # rising as the residual variance goes to 0. Whether statsmodels' optimiser stops and
    # calls that converged depends on its version; refining such a stop must say so.
    import statsmodels.formula.api as smf

    from alignbf.analysis import reml

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = smf.mixedlm("y ~ x", TINY, groups="g", re_formula="~x").fit(method="lbfgs")
    est, note = reml._estimates(res, reml=True, converged=True)
    assert not est.converged
    assert "no maximum" in note


def test_mixed_non_convergence_can_raise() -> None:
    with pytest.raises(AnalysisError, match="did not converge"):
        mixedlm.mixed("y ~ x", TINY, "g", re_formula="~x", require_convergence=True)


def test_mixed_rejects_unknown_groups(sleepstudy: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="groups column"):
        mixedlm.mixed("Reaction ~ Days", sleepstudy, "Nope")


def test_mixed_df_options(sleepstudy: pd.DataFrame) -> None:
    between = mixedlm.fit_mixed("Reaction ~ Days", sleepstudy, "Subject", df="between")
    assert set(between.coefficients["df"]) == {17.0} and between.df_method == "between"
    assert set(between.coefficients["df_method"]) == {"between"}
    wald = mixedlm.mixed("Reaction ~ Days", sleepstudy, "Subject", df="wald")
    assert all(math.isinf(df) for df in wald["df"]) and set(wald["p_method"]) == {"wald_z"}
    with pytest.raises(AnalysisError, match="df must be one of"):
        mixedlm.fit_mixed("Reaction ~ Days", sleepstudy, "Subject", df="kenward-roger")


def test_mixed_random_intercept_df_are_satterthwaites_1946(sleepstudy: pd.DataFrame) -> None:
    # An independent computation (no published figure): in this balanced design the REML
    # estimates are the ANOVA ones and the df take Satterthwaite's (1946) classical form.
    # Days varies within subjects only: its variance sigma^2 / (G Sxx) is estimated by
    # the within-subject mean square on N - G - 1 = 161 df. The intercept (mean - 4.5 x
    # slope) has variance MS_between / N + 4.5^2 MS_within / (G Sxx), a sum a + b of two
    # independent mean squares on 17 and 161 df: nu = (a + b)^2 / (a^2 / 17 + b^2 / 161).
    fit = by_term(mixedlm.mixed("Reaction ~ Days", sleepstudy, "Subject"))
    y = sleepstudy.pivot(index="Subject", columns="Days", values="Reaction").to_numpy()
    g, n = y.shape
    centred = np.arange(n) - (n - 1) / 2
    sxx = float(centred @ centred)
    means = y.mean(axis=1)
    slope = float(((y - means[:, None]) @ centred).sum()) / (g * sxx)
    within = float(((y - means[:, None] - slope * centred) ** 2).sum()) / (g * n - g - 1)
    a = n * means.var(ddof=1) / (g * n)
    b = ((n - 1) / 2) ** 2 * within / (g * sxx)
    nu = (a + b) ** 2 / (a**2 / (g - 1) + b**2 / (g * n - g - 1))
    assert fit.loc["Days", "estimate"] == pytest.approx(slope, rel=1e-12)
    assert fit.loc["Intercept", "se"] ** 2 == pytest.approx(a + b, rel=1e-6)
    assert fit.loc["Intercept", "df"] == pytest.approx(nu, rel=1e-6)
    assert fit.loc["Days", "df"] == pytest.approx(g * n - g - 1, rel=1e-6)
    assert 22 < nu < 23


# lmerTest's potdata (inst/testdata/potdata.RData): biomass of 24 pots, 6 nutrient levels
# in each of 4 chambers, two chambers at each CO2 level; a split plot with CO2 between
# chambers. Values per chamber, nutrients 1..6.
POTS = {
    (350, 1): [13.3, 19.9, 24.5, 33.6, 38.9, 41.4],
    (350, 4): [12.4, 20.5, 22.1, 29.4, 36.9, 42.3],
    (675, 2): [15.8, 22.4, 26.9, 38.0, 44.8, 49.2],
    (675, 3): [13.9, 21.0, 27.5, 35.9, 46.8, 49.0],
}
POTDATA = pd.DataFrame(
    [
        (co2, chamber, nutrient, value)
        for (co2, chamber), values in POTS.items()
        for nutrient, value in enumerate(values, start=1)
    ],
    columns=["CO2", "chamber", "nutrients", "biomass"],
)


def test_mixed_satterthwaite_matches_lmertest_on_a_split_plot() -> None:
    fit = mixedlm.fit_mixed("biomass ~ C(CO2) * C(nutrients)", POTDATA, "chamber")
    co = by_term(fit.coefficients)
    co2, nut2 = "C(CO2)[T.675]", "C(nutrients)[T.2]"
    # R, lmerTest 3.2-0 (tests/zlmerTest_zeroDenom.Rout of its CRAN check, win-builder,
    # 2026-01-13): summary(lmer(biomass ~ CO2*nutrients + (1|chamber), data=potdata))
    # -> chamber variance 0.2437, residual 1.5797; (Intercept) 12.8500 (SE 0.9548, df
    # 11.0163, p 3.49e-08); CO2675 2.0000 (1.3503, 11.0163, p 0.166595); nutrients2 7.3500
    # (1.2568, 10.0000, p 0.000162); CO2675:nutrients2 -0.5000 (1.7775, 10.0000, p 0.784214);
    # nutrients6 29.0000 (p 5.28e-10). Printed precision.
    var = by_component(fit.variance)
    assert var["var(Intercept)"] == pytest.approx(0.2437, abs=5e-5)
    assert var["var(Residual)"] == pytest.approx(1.5797, abs=5e-5)
    assert co.loc["Intercept", "se"] == pytest.approx(0.9548, abs=5e-5)
    assert co.loc[co2, "se"] == pytest.approx(1.3503, abs=5e-5)
    assert co.loc[nut2, "se"] == pytest.approx(1.2568, abs=5e-5)
    assert co.loc[f"{co2}:{nut2}", "se"] == pytest.approx(1.7775, abs=5e-5)
    assert co.loc["Intercept", "df"] == pytest.approx(11.0163, abs=5e-5)
    assert co.loc[co2, "df"] == pytest.approx(11.0163, abs=5e-5)
    within = [term for term in co.index if "nutrients" in term]
    assert co.loc[within, "df"].to_numpy() == pytest.approx([10.0] * 10, abs=5e-5)
    assert co.loc["Intercept", "p_val"] == pytest.approx(3.49e-08, abs=5e-11)
    assert co.loc[co2, "p_val"] == pytest.approx(0.166595, abs=5e-7)
    assert co.loc[nut2, "p_val"] == pytest.approx(0.000162, abs=5e-7)
    assert co.loc[f"{co2}:{nut2}", "p_val"] == pytest.approx(0.784214, abs=5e-7)
    assert co.loc["C(nutrients)[T.6]", "p_val"] == pytest.approx(5.28e-10, abs=5e-13)
    # Same source, anova(lmerout) (type III), checked there to 1e-5: DenDF 2, 10, 10;
    # p for CO2 0.0224955602 and for CO2:nutrients 0.020905569. The CO2 row tests the CO2
    # difference averaged over the six nutrient levels (one contrast, on the two chambers
    # per level less the two CO2 means: 2 df); CO2:nutrients the five interaction terms.
    assert fit.fixed is not None
    interactions = [term for term in co.index if ":" in term]
    averaged = {co2: 1.0, **{term: 1 / 6 for term in interactions}}
    main = fit.fixed.contrast(averaged).iloc[0]
    assert main["df"] == pytest.approx(2.0, rel=1e-6)
    assert main["p_val"] == pytest.approx(0.0224955602, rel=1e-5)
    joint = fit.fixed.joint_test([{term: 1.0} for term in interactions])
    assert (joint.num_df, joint.den_df) == (5, pytest.approx(10.0, rel=1e-6))
    assert joint.p_val == pytest.approx(0.020905569, rel=1e-6)


def _carrots_design() -> pd.DataFrame:
    """lmerTest's carrots with R's model matrix of sens2*Frequency*Income under contr.SAS
    (the last level is the reference), rows with a missing value dropped and, as lme4
    does, each column dropped that is a linear combination of the columns before it."""
    raw = pd.read_csv(DATA / "carrots.csv", comment="#").dropna().reset_index(drop=True)
    sens2 = raw["sens2"].to_numpy(float)
    freq = {f"Frequency{a}": (raw["Frequency"] == a).to_numpy(float) for a in (1, 2, 3, 4)}
    income = {f"Income{b}": (raw["Income"] == b).to_numpy(float) for b in (1, 2, 3)}
    both = {f"{f}:{i}": freq[f] * income[i] for i in income for f in freq}
    columns = {"(Intercept)": np.ones(len(raw)), "sens2": sens2, **freq, **income}
    columns |= {f"sens2:{name}": sens2 * value for name, value in (freq | income).items()}
    columns |= both | {f"sens2:{name}": sens2 * value for name, value in both.items()}
    kept: list[str] = []
    for name in columns:
        trial = np.column_stack([columns[c] for c in [*kept, name]])
        if np.linalg.matrix_rank(trial, tol=1e-7 * np.linalg.norm(trial, 2)) == trial.shape[1]:
            kept.append(name)
    design = pd.DataFrame({f"x{i:02d}": columns[name] for i, name in enumerate(kept)})
    design.attrs["names"] = kept
    return design.assign(Preference=raw["Preference"], sens2=sens2, Consumer=raw["Consumer"])


DATA = Path(__file__).parent / "data"

# SAS PROC MIXED (DDFM=SATTERTHWAITE) p-values of the 28 estimable coefficients, in the
# order of lme4's coefficients, as quoted by lmerTest's tests/test_compare_sas.R
# (github.com/runehaubo/lmerTestR) for
#   lmer(Preference ~ sens2*Frequency*Income + (1+sens2|Consumer), data=carrots,
#        contrasts=list(Frequency="contr.SAS", Income="contr.SAS"))
# The first (the intercept's, "< .0001") is not a number and is left out.
CARROTS_SAS_P = [0.005061, 0.6865554, 0.342613, 0.129157, 0.088231, 0.846000, 0.354472,
                 0.526318, 0.020646, 0.010188, 0.031242, 0.055356, 0.694689, 0.099382,
                 0.28547, 0.977774, 0.855653, 0.427737, 0.321086, 0.417465, 0.204385,
                 0.784437, 0.681434, 0.106180, 0.149122, 0.390870, 0.273686]  # fmt: skip


def test_mixed_satterthwaite_matches_sas_on_unbalanced_random_slopes() -> None:
    # 97 consumers with an income (1,161 ratings; three missing), 14 of the 20 frequency x
    # income cells filled: an unbalanced design with a correlated random intercept and
    # slope, whose df are not integers (82.85 to 83.63).
    design = _carrots_design()
    terms = [c for c in design.columns if c.startswith("x")]
    assert len(terms) == 28 and design.attrs["names"][-1] == "sens2:Frequency1:Income3"
    formula = "Preference ~ 0 + " + " + ".join(terms)
    fit = mixedlm.fit_mixed(formula, design, "Consumer", re_formula="~sens2")
    co = fit.coefficients
    assert fit.df_method == "satterthwaite" and fit.converged
    assert co["df"].between(82.5, 84).all() and not np.allclose(co["df"], co["df"].round())
    # The p-values agree to 1.3e-5 relative (SAS prints 4 to 7 digits); G - 1 = 96 df
    # would be 0.3% to 3% off.
    assert co["p_val"].iloc[1:].to_numpy() == pytest.approx(CARROTS_SAS_P, rel=2e-5)
    between = 2 * sps.t.sf(co["statistic"].abs().iloc[1:], 96)
    assert not np.allclose(between, CARROTS_SAS_P, rtol=2e-3)


def test_mixed_contrasts_and_joint_tests(slopes: mixedlm.MixedFit) -> None:
    assert slopes.fixed is not None
    days = by_term(slopes.coefficients).loc["Days"]
    one = slopes.fixed.contrast({"Days": 1.0}, label="Days").iloc[0]
    for column in ("estimate", "se", "df", "p_val", "ci_low", "ci_high"):
        assert one[column] == pytest.approx(days[column], rel=1e-9)
    assert one["n"] == 180 and one["df_method"] == "satterthwaite"
    assert slopes.fixed.contrast([0.0, 1.0]).iloc[0]["estimate"] == one["estimate"]
    # A single row is the t test squared.
    joint = slopes.fixed.joint_test([{"Days": 1.0}])
    assert joint.f_value == pytest.approx(days["statistic"] ** 2)
    assert (joint.num_df, joint.den_df) == (1, pytest.approx(days["df"]))
    assert joint.p_val == pytest.approx(days["p_val"], rel=1e-9)
    both = slopes.fixed.joint_test([[1.0, 0.0], [0.0, 1.0]])
    assert both.num_df == 2 and 16 < both.den_df < 18 and both.p_val < 1e-10
    with pytest.raises(AnalysisError, match="unknown terms"):
        slopes.fixed.contrast({"Nope": 1.0})
    with pytest.raises(AnalysisError, match="needs 2 weights"):
        slopes.fixed.contrast([1.0])
    with pytest.raises(AnalysisError, match="linearly dependent"):
        slopes.fixed.joint_test([{"Days": 1.0}, {"Days": 2.0}])


def test_mixed_boundary_fit_is_refined_to_one_maximum() -> None:
    # No published figure: an internal check. Random slopes whose correlation with the
    # intercepts goes to -1 at the maximum; statsmodels' five optimisers stop at five
    # places short of it (REML log-likelihood -264.82 to -264.22; lbfgs reports
    # convergence at -264.27), where Satterthwaite's df for x would be 12 to 21. Refined,
    # every start gives the same maximum and the same df (20.36).
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(2)
    rows = [
        (group, x, intercept + 0.3 * x + rng.normal())
        for group, intercept in enumerate(rng.normal(size=10))
        for x in np.repeat([0.0, 0.5, 1.0], 6)
    ]
    data = pd.DataFrame(rows, columns=["g", "x", "y"])
    model = smf.mixedlm("y ~ x", data, groups="g", re_formula="~x")
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in ("lbfgs", "nm", "powell"):
            est, _ = mixedlm._estimates(model.fit(reml=True, method=method), True, True)
            fixed, note = mixedlm._fixed_effects(est, 10, "satterthwaite")
            found.append([fixed.df(row) for row in np.eye(2)] + [float(est.scale)])
    assert note == ""
    for other in found[1:]:
        assert other == pytest.approx(found[0], rel=1e-5)
    fit = mixedlm.fit_mixed("y ~ x", data, "g", re_formula="~x")
    assert by_component(fit.variance)["cor(Intercept,x)"] == pytest.approx(-1.0, abs=1e-6)
    assert fit.coefficients["df"].to_numpy() == pytest.approx(found[0][:2], rel=1e-5)


# Admissions example from the tidystats fixtures (prep_glm.R).
ADMISSION = pd.DataFrame(
    {
        "admit": [0, 1, 1, 1, 0, 1, 1, 0, 1, 0, 0],
        "gre": [380, 660, 800, 640, 520, 760, 560, 400, 540, 700, 800],
        "gpa": [3.61, 3.67, 4.00, 3.19, 2.93, 3.00, 2.98, 3.08, 3.39, 3.92, 4.00],
        "rank": [3, 3, 1, 4, 4, 2, 1, 2, 3, 2, 4],
    }
)


def test_logit_matches_glm() -> None:
    fit = by_term(regression.logit("admit ~ gre + gpa + rank", ADMISSION))
    # R 4.4.1: glm(admit ~ gre + gpa + rank, family = binomial(link = "logit"))
    expected = {
        "Intercept": (11.053666, 11.103166),
        "gre": (0.018708, 0.015009),
        "gpa": (-5.620877, 4.753587),
        "rank": (-1.039158, 1.072947),
    }
    for term, (estimate, se) in expected.items():
        assert fit.loc[term, "estimate"] == r6(estimate)
        # R's glm reports SEs from the IRLS weights of the step before its last update,
        # so they lag the MLE slightly (re-running that IRLS reproduces R exactly); ours
        # are evaluated at the MLE. Tolerance 1e-4 relative.
        assert fit.loc[term, "se"] == pytest.approx(se, rel=1e-4)
    assert all(math.isinf(df) for df in fit["df"])
    assert set(fit["p_method"]) == {"wald_z"} and fit["converged"].all()
    z = fit["estimate"] / fit["se"]
    assert fit["p_val"].to_numpy() == pytest.approx(2 * (1 - _normal_cdf(np.abs(z))))


def _normal_cdf(z: pd.Series) -> np.ndarray:
    return np.array([0.5 * (1 + math.erf(value / math.sqrt(2))) for value in z])


def test_logit_perfect_separation_raises() -> None:
    separated = ADMISSION.assign(admit=(ADMISSION["gre"] > 600).astype(int))
    with pytest.raises(AnalysisError, match="separation"):
        regression.logit("admit ~ gre", separated)
