"""The estimators a preregistration can name, each turning a tidy frame into one Estimate.

``estimate(spec, data, outcome, ci, attributes)`` dispatches on ``spec.type``:

* ``g_contrast``: Hedges' g of ``outcome`` at ``factor == high`` minus ``factor == low``.
* ``slope``: one OLS coefficient.
* ``mixed_term``: one fixed effect of a linear mixed model, t test with Satterthwaite's
  df (``df: between``: G - 1 for G groups).
* ``interaction``: joint F test of a model against its ``null_formula``; the estimate is
  the SD of the per-group slopes of ``factor``, or (``summary: rest_minus_reference``)
  the mean slope of the other groups minus the reference group's, with its CI.

``per`` (mixed_term, interaction) rescales a coefficient, its SE and CI to "per ``per``
units of the predictor"; test statistics and p-values do not change.
* ``count_languages``: groups whose effect is positive (or significantly positive),
  with a binomial test against ``p_null``: exact, or mid-p (``test: midp``).
* ``correlation``: Pearson r of the per-group effects with a group attribute.
* ``mean_vs``: one-sample t test of the mean of ``outcome`` against ``value``.
* ``ratio``: (sum numerator / sum denominator at ``high``) over the same at ``low``,
  with a percentile-bootstrap CI over simulations; no p-value.

Rows with a missing outcome are dropped and counted in the note. Statistics come from
:mod:`alignbf.analysis.stats` and :mod:`alignbf.analysis.regression`; nothing here reads a store.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from alignbf.analysis import mixedlm, regression, stats
from alignbf.config.hypotheses import (
    Correlation,
    CountLanguages,
    Estimator,
    GContrast,
    Interaction,
    MeanVs,
    MixedTerm,
    PerGroup,
    Ratio,
    Scalar,
    Slope,
)
from alignbf.errors import AnalysisError

EFFECT_COLUMNS = list(stats.COLUMNS)


@dataclass(frozen=True)
class Estimate:
    """One estimate with its uncertainty, as the verdict table shows it.

    ``null`` is the value the estimate is compared with (0 for effects, the tested
    value for ``mean_vs``, ``p_null`` for counts, 1 for ratios).
    """

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    ci_level: float
    statistic: float
    df: float
    p_val: float
    n: int
    null: float = 0.0
    note: str = ""

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, null: float = 0.0, note: str = "") -> Estimate:
        """The first row of a tidy stats/regression frame."""
        row = frame.iloc[0]
        values = {c: float(row[c]) for c in EFFECT_COLUMNS[:-1]}
        return cls(**values, n=int(row["n"]), null=null, note=note)


def at_level(data: pd.DataFrame, column: str, value: Scalar) -> pd.DataFrame:
    """Rows where ``column`` equals ``value`` (floats compared with a tolerance)."""
    if column not in data.columns:
        raise AnalysisError(f"column {column!r} is not in the scores")
    series = data[column]
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if numeric and pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return data[np.isclose(series.astype(float), float(value))]
    return data[series == value]


def finite(data: pd.DataFrame, column: str) -> tuple[pd.DataFrame, int]:
    """Rows with a finite ``column`` and how many were dropped."""
    if column not in data.columns:
        raise AnalysisError(f"outcome {column!r} is not in the scores")
    values = pd.to_numeric(data[column], errors="coerce").astype(float)
    keep = np.isfinite(values)
    return data[keep], int((~keep).sum())


def _dropped(count: int) -> str:
    return f"; {count} row(s) without a value dropped" if count else ""


def g_contrast(spec: GContrast, data: pd.DataFrame, outcome: str, ci: float) -> Estimate:
    """Hedges' g of ``outcome`` (high minus low level of ``spec.factor``)."""
    rows, dropped = finite(data, outcome)
    high = at_level(rows, spec.factor, spec.high)[outcome]
    low = at_level(rows, spec.factor, spec.low)[outcome]
    if len(high) < 2 or len(low) < 2:
        raise AnalysisError(
            f"{spec.factor} = {spec.high} has {len(high)} and = {spec.low} has {len(low)} "
            "rows; Hedges' g needs at least 2 in each"
        )
    note = f"n = {len(high)} at {spec.high} vs {len(low)} at {spec.low}{_dropped(dropped)}"
    return Estimate.from_frame(stats.hedges_g(high, low, ci=ci), note=note)


def _term(frame: pd.DataFrame, term: str) -> pd.DataFrame:
    match = frame[frame["term"] == term]
    if match.empty:
        raise AnalysisError(f"term {term!r} is not in the model; terms: {', '.join(frame['term'])}")
    return match


def slope(spec: Slope, data: pd.DataFrame, outcome: str, ci: float) -> Estimate:
    """One coefficient of an OLS model."""
    rows, dropped = finite(data, outcome)
    frame = regression.ols(spec.formula, rows, robust=spec.robust, ci=ci)
    return Estimate.from_frame(_term(frame, spec.term), note=f"OLS{_dropped(dropped)}".strip())


def mixed_term(spec: MixedTerm, data: pd.DataFrame, outcome: str, ci: float) -> Estimate:
    """One fixed effect of a linear mixed model, t test with Satterthwaite's df (or, with
    ``df: between`` or when Satterthwaite's cannot be computed, G - 1).

    Raises:
        AnalysisError: no optimiser converged (the verdict is then inconclusive).
    """
    rows, dropped = finite(data, outcome)
    fit = mixedlm.fit_mixed(spec.formula, rows, spec.groups, spec.re_formula, ci=ci, df=spec.df)
    if not fit.converged:
        detail = "; ".join(fit.warnings) or "no detail"
        raise AnalysisError(f"the mixed model did not converge with any optimiser ({detail})")
    row = _term(fit.coefficients, spec.term)
    groups = int(row["n_groups"].iloc[0])
    dof = float(row["df"].iloc[0])
    if fit.df_method == "satterthwaite":
        test = f"Satterthwaite t({dof:.2f})"
    else:
        test = f"t({dof:g}) with G - 1 df" + (f"; {fit.df_note}" if fit.df_note else "")
    note = f"mixed model, {groups} groups of {spec.groups}, {test}{_dropped(dropped)}"
    return _per(Estimate.from_frame(row, note=note), spec.per, spec.term)


def _per(est: Estimate, per: float, term: str) -> Estimate:
    """``est`` with its coefficient, SE and CI expressed per ``per`` units of ``term``."""
    if per == 1.0:
        return est
    scaled = {k: getattr(est, k) * per for k in ("estimate", "se", "ci_low", "ci_high")}
    note = f"{est.note}; per {per:g} of {term} (x {per:g} the per-unit coefficient)"
    return dataclasses.replace(est, **scaled, note=note)


def group_effects(
    data: pd.DataFrame, outcome: str, spec: PerGroup, ci: float = 0.95
) -> tuple[pd.DataFrame, list[str]]:
    """The effect of ``spec.factor`` on ``outcome`` within each group of ``spec.by``.

    Returns:
        A frame with one row per group and the columns ``<by>`` (the group), ``estimate``
        (OLS slope, or Hedges' g high - low), ``se``, ``ci_low``, ``ci_high``,
        ``ci_level``, ``statistic``, ``df``, ``p_val``, ``n``; and the groups skipped
        because their effect could not be estimated (as ``"group: reason"``).
    """
    rows, _ = finite(data, outcome)
    if spec.by not in rows.columns:
        raise AnalysisError(f"grouping column {spec.by!r} is not in the scores")
    found, skipped = [], []
    for key, group in rows.groupby(spec.by, sort=True):
        try:
            found.append(_one_effect(group, outcome, spec, ci).assign(**{spec.by: key}))
        except AnalysisError as exc:
            skipped.append(f"{key}: {exc}")
    if not found:
        return pd.DataFrame(columns=[spec.by, *EFFECT_COLUMNS]), skipped
    return pd.concat(found, ignore_index=True)[[spec.by, *EFFECT_COLUMNS]], skipped


def _one_effect(group: pd.DataFrame, outcome: str, spec: PerGroup, ci: float) -> pd.DataFrame:
    if spec.effect == "g":
        high = at_level(group, spec.factor, spec.high)[outcome]
        low = at_level(group, spec.factor, spec.low)[outcome]
        return stats.hedges_g(high, low, ci=ci)
    if group[spec.factor].nunique() < 2:
        raise AnalysisError(f"{spec.factor} takes a single value")
    frame = regression.ols(f"{outcome} ~ {spec.factor}", group, ci=ci)
    return _term(frame, spec.factor)


def _effects_or_fail(
    data: pd.DataFrame, outcome: str, spec: PerGroup, ci: float, minimum: int
) -> tuple[pd.DataFrame, str]:
    effects, skipped = group_effects(data, outcome, spec, ci)
    if len(effects) < minimum:
        raise AnalysisError(f"{len(effects)} {spec.by} effect(s) estimable, need {minimum}")
    return effects, ("; skipped " + "; ".join(skipped)) if skipped else ""


def count_languages(spec: CountLanguages, data: pd.DataFrame, outcome: str, ci: float) -> Estimate:
    """Groups with a positive (or significantly positive) effect, binomial test against
    ``p_null`` (``spec.test``: exact, or mid-p)."""
    effects, skipped = _effects_or_fail(data, outcome, spec, ci, minimum=1)
    counted = effects["estimate"] > 0
    if spec.criterion == "significant_positive":
        counted &= effects["p_val"] < spec.alpha_each
    k, n = int(counted.sum()), len(effects)
    test = stats.sign_test(
        k, n, p=spec.p_null, alternative=spec.alternative, ci=ci, method=spec.test
    )
    names = ", ".join(map(str, effects.loc[counted, spec.by])) or "none"
    kind = "mid-p" if spec.test == "midp" else "exact"
    note = (
        f"{k}/{n} {spec.by} {spec.criterion.replace('_', ' ')} ({names}); {kind} binomial "
        f"test against {spec.p_null:g}{skipped}"
    )
    return Estimate.from_frame(test, null=spec.p_null, note=note)


def correlation(
    spec: Correlation,
    data: pd.DataFrame,
    outcome: str,
    ci: float,
    attributes: Mapping[str, Mapping[str, Any]],
) -> Estimate:
    """Pearson r between the per-group effects and a group attribute."""
    effects, skipped = _effects_or_fail(data, outcome, spec, ci, minimum=3)
    try:
        values = [float(attributes[str(g)][spec.attribute]) for g in effects[spec.by]]
    except KeyError as exc:
        raise AnalysisError(f"no {spec.attribute!r} for {spec.by} {exc}") from None
    test = stats.pearson(effects["estimate"], values, ci=ci)
    note = f"{len(effects)} {spec.by} effects vs {spec.attribute}{skipped}"
    return Estimate.from_frame(test, note=note)


def one_sample_t(values: Any, value: float, ci: float = 0.95) -> pd.DataFrame:
    """One-sample t test of ``mean(values)`` against ``value`` (two-sided).

    Returns:
        One row with columns ``estimate`` (the mean), ``se``, ``ci_low``, ``ci_high``
        (t interval of the mean), ``ci_level``, ``statistic`` (t of mean - value),
        ``df`` (n - 1), ``p_val``, ``n``, ``method`` ("one_sample_t"), ``null``.
    """
    x = np.asarray(values, dtype=float)
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise AnalysisError(f"a one-sample t test needs at least 2 finite values, got {x.size}")
    mean, se, df = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size)), x.size - 1
    if se == 0:
        raise AnalysisError("all values are equal; the t statistic is undefined")
    t = (mean - value) / se
    half = float(sps.t.ppf(1 - (1 - ci) / 2, df)) * se
    p = float(2 * sps.t.sf(abs(t), df))
    row = [mean, se, mean - half, mean + half, ci, t, float(df), p, x.size, "one_sample_t", value]
    return pd.DataFrame([row], columns=[*EFFECT_COLUMNS, "method", "null"])


def mean_vs(spec: MeanVs, data: pd.DataFrame, outcome: str, ci: float) -> Estimate:
    """Mean of ``outcome`` against a value."""
    rows, dropped = finite(data, outcome)
    frame = one_sample_t(rows[outcome], spec.value, ci)
    note = f"mean vs {spec.value:g}{_dropped(dropped)}"
    return Estimate.from_frame(frame, null=spec.value, note=note)


def _pooled_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio: np.ndarray = num.sum(axis=-1) / den.sum(axis=-1)
    return ratio


def ratio(spec: Ratio, data: pd.DataFrame, outcome: str, ci: float) -> Estimate:
    """Ratio of pooled ratios, high over low, with a percentile-bootstrap CI."""
    cells = [at_level(data, spec.factor, level) for level in (spec.high, spec.low)]
    arrays = [
        (c[spec.numerator].to_numpy(float), c[spec.denominator].to_numpy(float)) for c in cells
    ]
    if any(num.size < 2 for num, _ in arrays):
        raise AnalysisError("a ratio needs at least 2 simulations at each level")
    (nh, dh), (nl, dl) = arrays
    high, low = float(_pooled_ratio(nh, dh)), float(_pooled_ratio(nl, dl))
    if not (math.isfinite(high) and math.isfinite(low)) or low == 0:
        raise AnalysisError(f"{spec.numerator}:{spec.denominator} is undefined (zero counts)")
    rng = np.random.default_rng(spec.seed)
    ih = rng.integers(0, nh.size, size=(spec.bootstrap, nh.size))
    il = rng.integers(0, nl.size, size=(spec.bootstrap, nl.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = _pooled_ratio(nh[ih], dh[ih]) / _pooled_ratio(nl[il], dl[il])
    good = boot[np.isfinite(boot)]
    lo, hi = np.percentile(good, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])
    note = (
        f"{spec.numerator}:{spec.denominator} = {high:.1f}:1 at {spec.high} vs {low:.1f}:1 at "
        f"{spec.low}; {spec.bootstrap - good.size} of {spec.bootstrap} resamples undefined"
    )
    return Estimate(
        estimate=high / low,
        se=float(good.std(ddof=1)),
        ci_low=float(lo),
        ci_high=float(hi),
        ci_level=ci,
        statistic=math.nan,
        df=math.nan,
        p_val=math.nan,
        n=nh.size + nl.size,
        null=1.0,
        note=note,
    )


def _fit_ols(formula: str, data: pd.DataFrame) -> Any:
    import statsmodels.formula.api as smf

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            return smf.ols(formula, data).fit()
        except Exception as exc:
            data_error = isinstance(exc, (ValueError, KeyError, ArithmeticError))
            if not data_error and type(exc).__module__.split(".")[0] != "patsy":
                raise
            raise AnalysisError(f"OLS model {formula!r} could not be fitted: {exc}") from None


def _reference_contrast(full: Any, factor: str, by: str) -> tuple[Any, int]:
    """The mean of the ``factor`` x ``by`` interaction coefficients of a treatment-coded
    OLS fit: the mean slope of the non-reference groups minus the reference group's.

    Returns the statsmodels t-test result and the number of groups averaged.
    """
    names = list(full.params.index)
    terms = [n for n in names if ":" in n and factor in n.split(":") and by in n and "[T." in n]
    if not terms:
        raise AnalysisError(
            f"no {factor} x {by} interaction terms in the model (expected treatment coding, "
            f"e.g. {factor} * C({by}))"
        )
    weights = np.zeros(len(names))
    for name in terms:
        weights[names.index(name)] = 1.0 / len(terms)
    return full.t_test(weights), len(terms)


def interaction(spec: Interaction, data: pd.DataFrame, outcome: str, ci: float) -> Estimate:
    """Joint F test of the interaction terms; estimate = SD of per-group slopes, or the
    mean interaction coefficient (``rest_minus_reference``) with its t-based CI."""
    rows, dropped = finite(data, outcome)
    rows = rows.dropna(subset=[spec.factor, spec.by]).reset_index(drop=True)
    full, reduced = _fit_ols(spec.formula, rows), _fit_ols(spec.null_formula, rows)
    if full.nobs != reduced.nobs:
        raise AnalysisError("the interaction and null models use different rows")
    f_value, p_val, q = full.compare_f_test(reduced)
    per_group = PerGroup(factor=spec.factor, effect="slope", by=spec.by)
    effects, skipped = _effects_or_fail(rows, outcome, per_group, ci, minimum=2)
    slopes = effects["estimate"]
    omnibus = f"F({q:g}, {full.df_resid:g}) = {f_value:.3f}"
    spread = f"{len(slopes)} {spec.by} slopes, range {slopes.min():.3f} to {slopes.max():.3f}"
    if spec.summary == "sd_of_slopes":
        return Estimate(
            estimate=float(slopes.std(ddof=1)),
            se=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            ci_level=ci,
            statistic=float(f_value),
            df=float(full.df_resid),
            p_val=float(p_val),
            n=int(full.nobs),
            note=f"{omnibus}; SD of {spread}{skipped}{_dropped(dropped)}",
        )
    test, k = _reference_contrast(full, spec.factor, spec.by)
    low, high = (float(v) for v in np.asarray(test.conf_int(alpha=1 - ci)).ravel())
    beta, se = float(np.ravel(test.effect)[0]), float(np.ravel(test.sd)[0])
    t_value, t_p = float(np.ravel(test.tvalue)[0]), float(np.ravel(test.pvalue)[0])
    note = (
        f"p from the omnibus {omnibus}; estimate = mean slope of the {k} other {spec.by} "
        f"groups minus the reference group's (mean interaction coefficient), "
        f"t({full.df_resid:g}) = {t_value:.3f}, p = {t_p:.4g}; {spread}{skipped}"
        f"{_dropped(dropped)}"
    )
    est = Estimate(
        estimate=beta,
        se=se,
        ci_low=low,
        ci_high=high,
        ci_level=ci,
        statistic=float(f_value),
        df=float(full.df_resid),
        p_val=float(p_val),
        n=int(full.nobs),
        note=note,
    )
    return _per(est, spec.per, spec.factor)


_SIMPLE: dict[type, Callable[..., Estimate]] = {
    GContrast: g_contrast,
    Slope: slope,
    MixedTerm: mixed_term,
    Interaction: interaction,
    CountLanguages: count_languages,
    MeanVs: mean_vs,
    Ratio: ratio,
}


def estimate(
    spec: Estimator,
    data: pd.DataFrame,
    outcome: str,
    ci: float = 0.95,
    attributes: Mapping[str, Mapping[str, Any]] | None = None,
) -> Estimate:
    """Evaluate one estimator on a frame (already restricted to the hypothesis' subset).

    Raises:
        AnalysisError: the data cannot give this estimate (too few rows, unknown column,
            a model that cannot be fitted).
    """
    if data.empty:
        raise AnalysisError("no rows in the subset")
    if isinstance(spec, Correlation):
        return correlation(spec, data, outcome, ci, attributes or {})
    return _SIMPLE[type(spec)](spec, data, outcome, ci)
