"""alignbf.analysis.regression against coefficients published from R (lm, glm, lme4, lmerTest).

Reference values with six decimals come from the tidystats test fixtures
(github.com/WillemSleegers/tidystats, tests/data/*.json), which store R output rounded to
six decimals; the producing R call is quoted next to each.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alignbf.analysis import regression
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
def slopes(sleepstudy: pd.DataFrame) -> regression.MixedFit:
    return regression.fit_mixed("Reaction ~ Days", sleepstudy, "Subject", re_formula="~Days")


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


def test_mixed_random_slopes_fixed_effects(slopes: regression.MixedFit) -> None:
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
    # lmerTest's Satterthwaite df for this balanced design: 17.000 for both terms; Days
    # p = 3.26e-06 (printed precision). The default df is G - 1 = 17.
    assert set(fit["df"]) == {17.0}
    assert fit.loc["Days", "p_val"] == pytest.approx(3.26e-06, abs=5e-9)
    assert set(fit["p_method"]) == {"t"}
    assert set(fit["n"]) == {180} and set(fit["n_groups"]) == {18}
    assert slopes.converged and fit["converged"].all()


def test_mixed_random_slopes_variance_components(slopes: regression.MixedFit) -> None:
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
    fit = by_term(regression.mixed("Reaction ~ Days", sleepstudy, "Subject"))
    var = by_component(regression.mixed_variance("Reaction ~ Days", sleepstudy, "Subject"))
    # R lme4 1.1-32: lmer(Reaction ~ Days + (1 | Subject), sleepstudy)
    # -> SE 9.746716 and 0.804221; Subject var 1378.178514; Residual var 960.456579.
    assert fit.loc["Intercept", "se"] == pytest.approx(9.746716, rel=1e-5)
    assert fit.loc["Days", "se"] == pytest.approx(0.804221, rel=1e-5)
    assert var["var(Intercept)"] == pytest.approx(1378.178514, rel=1e-3)
    assert var["var(Residual)"] == pytest.approx(960.456579, rel=1e-3)
    assert list(var.index) == ["var(Intercept)", "sd(Intercept)", "var(Residual)", "sd(Residual)"]


def test_mixed_maximum_likelihood_matches_lme4(sleepstudy: pd.DataFrame) -> None:
    fit = regression.fit_mixed("Reaction ~ Days", sleepstudy, "Subject", reml=False)
    se = by_term(fit.coefficients)["se"]
    var = by_component(fit.variance)
    # R lme4 1.1-32: lmer(Reaction ~ Days + (1 | Subject), sleepstudy, REML = FALSE)
    # -> SE 9.506185 and 0.801735; Subject var 1296.870045; Residual var 954.527834.
    # statsmodels stops the ML optimiser earlier than REML: SEs to 1e-4 relative.
    assert se["Intercept"] == pytest.approx(9.506185, rel=1e-4)
    assert se["Days"] == pytest.approx(0.801735, rel=1e-4)
    assert var["var(Intercept)"] == pytest.approx(1296.870045, rel=1e-3)
    assert var["var(Residual)"] == pytest.approx(954.527834, rel=1e-3)


def test_mixed_drops_rows_with_missing_values(sleepstudy: pd.DataFrame) -> None:
    holes = sleepstudy.copy()
    holes.loc[[3, 50], "Reaction"] = np.nan
    holes.loc[120, "Subject"] = None
    gappy = regression.fit_mixed("Reaction ~ Days", holes, "Subject", re_formula="~Days")
    dropped = regression.fit_mixed("Reaction ~ Days", holes.dropna(), "Subject", re_formula="~Days")
    pd.testing.assert_frame_equal(gappy.coefficients, dropped.coefficients)
    assert set(gappy.coefficients["n"]) == {177}


# y constant within each group: the random slope variance cannot be estimated, and no
# optimiser of regression.MIXED_METHODS converges.
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
    fit = regression.fit_mixed("Weight ~ Time", dietox, "Pig", re_formula="~Time")
    time = by_term(fit.coefficients).loc["Time"]
    assert fit.converged
    assert time["se"] == pytest.approx(0.0798, abs=5e-5)
    assert time["df"] == 71.0


def test_mixed_non_convergence_is_reported() -> None:
    fit = regression.fit_mixed("y ~ x", TINY, "g", re_formula="~x")
    assert not fit.converged
    assert not fit.coefficients["converged"].any()
    assert not fit.variance["converged"].any()
    assert any("converge" in message for message in fit.warnings)


def test_mixed_non_convergence_can_raise() -> None:
    with pytest.raises(AnalysisError, match="did not converge"):
        regression.mixed("y ~ x", TINY, "g", re_formula="~x", require_convergence=True)


def test_mixed_rejects_unknown_groups(sleepstudy: pd.DataFrame) -> None:
    with pytest.raises(AnalysisError, match="groups column"):
        regression.mixed("Reaction ~ Days", sleepstudy, "Nope")


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
