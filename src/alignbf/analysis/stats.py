"""Two-group effect sizes, tests, correlations and multiplicity adjustment as tidy frames.

Every estimator returns a :class:`pandas.DataFrame` with one row per estimate and the
columns ``estimate, se, ci_low, ci_high, ci_level, statistic, df, p_val, n`` in that
order, followed by method-specific extras. Nothing is rounded. Bad input (fewer than two
observations per group, missing or infinite values, constant data) raises
:class:`alignbf.errors.AnalysisError` with a one-line message.

Sign convention for two-group comparisons: ``x`` minus ``y``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy import stats as sps

from alignbf.errors import AnalysisError

Alternative = Literal["two-sided", "greater", "less"]

COLUMNS = ["estimate", "se", "ci_low", "ci_high", "ci_level", "statistic", "df", "p_val", "n"]
_ALTERNATIVES = ("two-sided", "greater", "less")
_ADJUST_METHODS = ("holm", "bh", "bonferroni", "none")


def _sample(values: Iterable[float], name: str, minimum: int = 2) -> np.ndarray:
    """Return ``values`` as a finite 1-D float array with at least ``minimum`` entries."""
    try:
        arr = np.asarray(list(values), dtype=float)
    except (TypeError, ValueError) as exc:
        raise AnalysisError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise AnalysisError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise AnalysisError(f"{name} contains NaN or infinite values; drop or impute them first")
    if arr.size < minimum:
        raise AnalysisError(f"{name} needs at least {minimum} observations, got {arr.size}")
    return arr


def _check_ci(ci: float) -> None:
    if not 0.0 < ci < 1.0:
        raise AnalysisError(f"ci must be strictly between 0 and 1, got {ci}")


def _check_alternative(alternative: str) -> None:
    if alternative not in _ALTERNATIVES:
        raise AnalysisError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")


def _row(core: Sequence[float], **extras: object) -> pd.DataFrame:
    """One-row frame: the nine standard values in ``COLUMNS`` order, then ``extras``."""
    return pd.DataFrame([[*core, *extras.values()]], columns=COLUMNS + list(extras))


def hedges_j(df: float) -> float:
    """Exact small-sample bias correction J(df) = Γ(df/2) / (sqrt(df/2) Γ((df-1)/2)).

    Computed on the log scale with ``gammaln`` so large ``df`` does not overflow.
    """
    if df <= 1:
        raise AnalysisError(f"Hedges' correction needs df > 1, got {df}")
    log_j = special.gammaln(df / 2) - 0.5 * math.log(df / 2) - special.gammaln((df - 1) / 2)
    return math.exp(log_j)


def _ncp_bound(t: float, df: float, prob: float) -> float:
    """Noncentrality ``ncp`` with ``P(T <= t | df, ncp) = prob`` (the CDF falls as ncp grows)."""

    def gap(ncp: float) -> float:
        value = float(sps.nct.cdf(t, df, ncp))
        if math.isnan(value):  # far tails: the CDF tends to 1 below t and to 0 above it
            value = 0.0 if ncp > t else 1.0
        return value - prob

    width = 1.0
    for _ in range(60):
        low, high = t - width, t + width
        if gap(low) > 0 > gap(high):
            return float(optimize.brentq(gap, low, high, xtol=1e-12, rtol=1e-12, maxiter=500))
        width *= 1.5
    raise AnalysisError(f"could not bracket the noncentral-t interval for t={t}, df={df}")


def _pooled_d(x: np.ndarray, y: np.ndarray, ci: float) -> dict[str, float]:
    """Cohen's d with pooled SD, its Student t, and the noncentral-t CI for d."""
    n1, n2 = x.size, y.size
    df = n1 + n2 - 2
    pooled_var = ((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / df
    if pooled_var <= 0:
        raise AnalysisError("both groups are constant; a standardized difference is undefined")
    d = (x.mean() - y.mean()) / math.sqrt(pooled_var)
    scale = math.sqrt(1 / n1 + 1 / n2)
    t = d / scale
    alpha = 1 - ci
    return {
        "d": d,
        "t": t,
        "df": float(df),
        "n": n1 + n2,
        "p": float(2 * sps.t.sf(abs(t), df)),
        "d_low": _ncp_bound(t, df, 1 - alpha / 2) * scale,
        "d_high": _ncp_bound(t, df, alpha / 2) * scale,
        "se_d": math.sqrt((n1 + n2) / (n1 * n2) + d**2 / (2 * (n1 + n2))),
    }


def cohens_d(x: Iterable[float], y: Iterable[float], ci: float = 0.95) -> pd.DataFrame:
    """Cohen's d for two independent groups with pooled SD and a noncentral-t CI.

    ``d = (mean(x) - mean(y)) / s_pooled``. The CI inverts the noncentral t distribution
    at the observed Student t (as R ``effectsize::cohens_d`` does) and rescales the
    noncentrality bounds by ``sqrt(1/n1 + 1/n2)``.

    Returns:
        One row with columns ``estimate`` (d), ``se`` (large-sample SE,
        ``sqrt((n1+n2)/(n1 n2) + d^2 / (2 (n1+n2)))``), ``ci_low``, ``ci_high``,
        ``ci_level``, ``statistic`` (Student t), ``df`` (n1 + n2 - 2), ``p_val``
        (two-sided), ``n`` (n1 + n2), ``method`` ("cohens_d"), ``n1``, ``n2``.
    """
    _check_ci(ci)
    a, b = _sample(x, "x"), _sample(y, "y")
    r = _pooled_d(a, b, ci)
    core = [r["d"], r["se_d"], r["d_low"], r["d_high"], ci, r["t"], r["df"], r["p"], r["n"]]
    return _row(core, method="cohens_d", n1=a.size, n2=b.size)


def hedges_g(x: Iterable[float], y: Iterable[float], ci: float = 0.95) -> pd.DataFrame:
    """Hedges' g: Cohen's d times the exact small-sample correction J(n1 + n2 - 2).

    The CI is the noncentral-t CI of d (see :func:`cohens_d`) multiplied by J, as R
    ``effectsize::hedges_g`` computes it.

    Returns:
        One row with columns ``estimate`` (g), ``se`` (J times the large-sample SE of d),
        ``ci_low``, ``ci_high``, ``ci_level``, ``statistic`` (Student t), ``df``
        (n1 + n2 - 2), ``p_val`` (two-sided), ``n`` (n1 + n2), ``method`` ("hedges_g"),
        ``n1``, ``n2``, ``j`` (the correction factor), ``cohens_d``, ``cohens_d_ci_low``,
        ``cohens_d_ci_high``.
    """
    _check_ci(ci)
    a, b = _sample(x, "x"), _sample(y, "y")
    r = _pooled_d(a, b, ci)
    j = hedges_j(r["df"])
    scaled = [j * r[key] for key in ("d", "se_d", "d_low", "d_high")]
    core = [*scaled, ci, r["t"], r["df"], r["p"], r["n"]]
    return _row(
        core,
        method="hedges_g",
        n1=a.size,
        n2=b.size,
        j=j,
        cohens_d=r["d"],
        cohens_d_ci_low=r["d_low"],
        cohens_d_ci_high=r["d_high"],
    )


def _t_p_value(t: float, df: float, alternative: str) -> float:
    if alternative == "greater":
        return float(sps.t.sf(t, df))
    if alternative == "less":
        return float(sps.t.cdf(t, df))
    return float(2 * sps.t.sf(abs(t), df))


def _t_interval(est: float, se: float, df: float, ci: float, alt: str) -> tuple[float, float]:
    """Two-sided interval, or the one-sided bound matching ``alt`` (as R ``t.test``)."""
    if alt == "two-sided":
        half = float(sps.t.ppf(1 - (1 - ci) / 2, df)) * se
        return est - half, est + half
    reach = float(sps.t.ppf(ci, df)) * se
    return (est - reach, math.inf) if alt == "greater" else (-math.inf, est + reach)


def ttest(
    x: Iterable[float],
    y: Iterable[float],
    welch: bool = True,
    alternative: Alternative = "two-sided",
    ci: float = 0.95,
) -> pd.DataFrame:
    """Two-sample t test on ``mean(x) - mean(y)``: Welch (default) or Student (pooled).

    Welch uses the Welch–Satterthwaite degrees of freedom. For a one-sided
    ``alternative`` the CI is one-sided too (the other bound is infinite), as in R
    ``t.test``.

    Returns:
        One row with columns ``estimate`` (mean difference), ``se``, ``ci_low``,
        ``ci_high``, ``ci_level``, ``statistic`` (t), ``df``, ``p_val``, ``n`` (n1 + n2),
        ``method`` ("welch" or "student"), ``alternative``, ``n1``, ``n2``, ``mean_x``,
        ``mean_y``.
    """
    _check_ci(ci)
    _check_alternative(alternative)
    a, b = _sample(x, "x"), _sample(y, "y")
    n1, n2 = a.size, b.size
    v1, v2 = a.var(ddof=1) / n1, b.var(ddof=1) / n2
    if welch:
        se = math.sqrt(v1 + v2)
        df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1)) if se > 0 else math.nan
    else:
        df = n1 + n2 - 2
        pooled = ((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / df
        se = math.sqrt(pooled * (1 / n1 + 1 / n2))
    if se <= 0:
        raise AnalysisError("both groups are constant; the t statistic is undefined")
    est = float(a.mean() - b.mean())
    t = est / se
    low, high = _t_interval(est, se, df, ci, alternative)
    core = [est, se, low, high, ci, t, float(df), _t_p_value(t, df, alternative), n1 + n2]
    return _row(
        core,
        method="welch" if welch else "student",
        alternative=alternative,
        n1=n1,
        n2=n2,
        mean_x=float(a.mean()),
        mean_y=float(b.mean()),
    )


def pearson(x: Iterable[float], y: Iterable[float], ci: float = 0.95) -> pd.DataFrame:
    """Pearson correlation with its t test and a Fisher-z confidence interval.

    The CI is ``tanh(atanh(r) ± z_{1-α/2} / sqrt(n - 3))``, as R ``cor.test``; with
    n = 3 it is undefined and reported as NaN.

    Returns:
        One row with columns ``estimate`` (r), ``se`` (``sqrt((1 - r^2) / (n - 2))``, the
        SE in the t statistic), ``ci_low``, ``ci_high``, ``ci_level``, ``statistic`` (t),
        ``df`` (n - 2), ``p_val`` (two-sided), ``n``, ``method`` ("pearson").
    """
    _check_ci(ci)
    a, b = _sample(x, "x", minimum=3), _sample(y, "y", minimum=3)
    if a.size != b.size:
        raise AnalysisError(f"x and y must have the same length, got {a.size} and {b.size}")
    if a.std() == 0 or b.std() == 0:
        raise AnalysisError("a constant variable has no correlation")
    n = a.size
    r = float(np.clip(np.corrcoef(a, b)[0, 1], -1.0, 1.0))
    df = n - 2
    with np.errstate(divide="ignore"):
        se = math.sqrt((1 - r**2) / df)
        t = r / se if se > 0 else math.copysign(math.inf, r)
        low = high = math.nan
        if n > 3:
            half = float(sps.norm.ppf(1 - (1 - ci) / 2)) / math.sqrt(n - 3)
            z = float(np.arctanh(r))
            low, high = math.tanh(z - half), math.tanh(z + half)
    p_val = float(2 * sps.t.sf(abs(t), df))
    return _row([r, se, low, high, ci, t, float(df), p_val, n], method="pearson")


def p_adjust(pvals: Iterable[float] | pd.Series, method: str = "holm") -> pd.DataFrame:
    """Adjust a family of p-values for multiple comparisons (as R ``p.adjust``).

    Args:
        pvals: p-values in [0, 1]; a Series keeps its index in the result.
        method: ``"holm"`` (step-down, family-wise), ``"bh"`` (Benjamini–Hochberg false
            discovery rate), ``"bonferroni"`` or ``"none"``. Case-insensitive.

    Returns:
        One row per p-value with columns ``p_val`` (as given), ``p_adj`` (capped at 1) and
        ``method``. An empty input gives an empty frame with those columns.
    """
    key = method.lower()
    if key not in _ADJUST_METHODS:
        raise AnalysisError(f"method must be one of {_ADJUST_METHODS}, got {method!r}")
    index = pvals.index if isinstance(pvals, pd.Series) else None
    p = _sample(pvals, "pvals", minimum=0)
    if np.any((p < 0) | (p > 1)):
        raise AnalysisError("p-values must lie in [0, 1]")
    adjusted = _ADJUSTERS[key](p) if p.size else p
    frame = pd.DataFrame({"p_val": p, "p_adj": adjusted, "method": key}, index=index)
    return frame


def _holm(p: np.ndarray) -> np.ndarray:
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    m = p.size
    order = np.argsort(p, kind="stable")[::-1]
    ranks = np.arange(m, 0, -1)
    stepped = np.minimum.accumulate(m / ranks * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def _bonferroni(p: np.ndarray) -> np.ndarray:
    adjusted: np.ndarray = np.minimum(p * p.size, 1.0)
    return adjusted


def _unadjusted(p: np.ndarray) -> np.ndarray:
    return p.copy()


_ADJUSTERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "holm": _holm,
    "bh": _bh,
    "bonferroni": _bonferroni,
    "none": _unadjusted,
}


BinomialMethod = Literal["exact", "midp"]
_BINOMIAL_METHODS = ("exact", "midp")


def _midp_greater(k: int, n: int, p: float) -> float:
    """Mid-p of ``X >= k``: ``P(X > k) + P(X = k) / 2`` for X ~ Binomial(n, p)."""
    return float(sps.binom.sf(k, n, p) + 0.5 * sps.binom.pmf(k, n, p))


def _midp_less(k: int, n: int, p: float) -> float:
    """Mid-p of ``X <= k``: ``P(X < k) + P(X = k) / 2``."""
    return float(sps.binom.cdf(k - 1, n, p) + 0.5 * sps.binom.pmf(k, n, p))


def midp_value(successes: int, n: int, p: float, alternative: Alternative) -> float:
    """Lancaster's mid-p value of a binomial count: the exact tail with only half the
    probability of the observed count. Two-sided: twice the smaller one-sided mid-p,
    capped at 1 (the "central" two-sided p, as R ``exactci::binom.exact(midp = TRUE)``
    and ``contingencytables::MidP_binomial_test_1x2``)."""
    if alternative == "greater":
        return _midp_greater(successes, n, p)
    if alternative == "less":
        return _midp_less(successes, n, p)
    smaller = min(_midp_greater(successes, n, p), _midp_less(successes, n, p))
    return min(1.0, 2.0 * smaller)


def _midp_bound(tail: Callable[[float], float], level: float) -> float:
    """The success probability at which a mid-p tail (increasing in it) equals ``level``."""
    return float(optimize.brentq(lambda q: tail(q) - level, 0.0, 1.0, xtol=1e-14, rtol=1e-12))


def midp_interval(
    successes: int, n: int, ci: float = 0.95, alternative: Alternative = "two-sided"
) -> tuple[float, float]:
    """The mid-p confidence interval of a binomial proportion (Berry & Armitage 1995):
    the success probabilities the mid-p test does not reject. Two-sided, each bound
    leaves (1 - ci) / 2; a one-sided ``alternative`` gives ``[low, 1]`` ("greater") or
    ``[0, high]`` ("less") with 1 - ci on its one side, as :func:`sign_test` does for the
    Clopper-Pearson interval."""
    k, total = int(successes), int(n)
    level = (1 - ci) / 2 if alternative == "two-sided" else 1 - ci
    low, high = 0.0, 1.0
    if alternative != "less" and k > 0:
        low = _midp_bound(lambda q: _midp_greater(k, total, q), level)
    if alternative != "greater" and k < total:
        high = _midp_bound(lambda q: -_midp_less(k, total, q), -level)
    return low, high


def sign_test(
    successes: int,
    n: int,
    p: float = 0.5,
    alternative: Alternative = "greater",
    ci: float = 0.95,
    method: BinomialMethod = "exact",
) -> pd.DataFrame:
    """Binomial (sign) test of ``successes`` out of ``n`` against probability ``p``.

    ``method="exact"``: the exact test; its two-sided p-value sums the probabilities of
    outcomes no more likely than the observed one (as R ``binom.test``), and the CI is
    Clopper–Pearson. ``method="midp"``: Lancaster's mid-p test (:func:`midp_value`)
    with the matching mid-p CI (:func:`midp_interval`). The exact test never rejects
    more often than alpha, and with few trials far less often (16 trials at p = 0.025:
    it rejects at 3 or more, probability 0.0067 when p is true); the mid-p test's
    rejection rate is closer to alpha on average but can exceed it (there: it rejects
    at 2 or more, probability 0.059). The CI is one-sided for a one-sided
    ``alternative`` (``[low, 1]`` for "greater", ``[0, high]`` for "less"), as in R.

    Returns:
        One row with columns ``estimate`` (successes / n), ``se``
        (``sqrt(phat (1 - phat) / n)``), ``ci_low``, ``ci_high``, ``ci_level``,
        ``statistic`` (successes), ``df`` (NaN), ``p_val``, ``n``, ``method``
        ("exact_binomial" or "midp_binomial"), ``alternative``, ``p_null``.
    """
    _check_ci(ci)
    _check_alternative(alternative)
    if method not in _BINOMIAL_METHODS:
        raise AnalysisError(f"method must be one of {_BINOMIAL_METHODS}, got {method!r}")
    if int(n) != n or int(successes) != successes:
        raise AnalysisError(f"successes and n must be integers, got {successes} and {n}")
    if n < 1 or not 0 <= successes <= n:
        raise AnalysisError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    if not 0.0 < p < 1.0:
        raise AnalysisError(f"p must be strictly between 0 and 1, got {p}")
    k, total = int(successes), int(n)
    if method == "midp":
        p_val = midp_value(k, total, p, alternative)
        low, high = midp_interval(k, total, ci, alternative)
    else:
        result = sps.binomtest(k, total, p=p, alternative=alternative)
        interval = result.proportion_ci(confidence_level=ci, method="exact")
        p_val, low, high = float(result.pvalue), float(interval.low), float(interval.high)
    phat = k / total
    se = math.sqrt(phat * (1 - phat) / total)
    core = [phat, se, low, high, ci, float(k), math.nan, p_val, total]
    name = "midp_binomial" if method == "midp" else "exact_binomial"
    return _row(core, method=name, alternative=alternative, p_null=p)


def p_from_g(g: float, n1: int, n2: int) -> float:
    """Two-sided p-value implied by a reported Hedges' g for two independent groups.

    The small-sample correction is inverted first (``d = g / J(n1 + n2 - 2)``), then
    ``t = d * sqrt(n1 n2 / (n1 + n2))`` is referred to Student t with n1 + n2 - 2 df.
    Used to check that a paper's g, group sizes and p-value agree.
    """
    if n1 < 2 or n2 < 2:
        raise AnalysisError(f"each group needs at least 2 observations, got {n1} and {n2}")
    if not math.isfinite(g):
        raise AnalysisError(f"g must be finite, got {g}")
    df = n1 + n2 - 2
    t = g / hedges_j(df) * math.sqrt(n1 * n2 / (n1 + n2))
    return float(2 * sps.t.sf(abs(t), df))


def p_from_r(r: float, n: int) -> float:
    """Two-sided p-value of a Pearson correlation ``r`` from ``n`` pairs (t with n - 2 df)."""
    if n < 3:
        raise AnalysisError(f"a correlation test needs at least 3 pairs, got {n}")
    if not -1.0 <= r <= 1.0:
        raise AnalysisError(f"r must lie in [-1, 1], got {r}")
    if abs(r) == 1.0:
        return 0.0
    t = r * math.sqrt((n - 2) / (1 - r**2))
    return float(2 * sps.t.sf(abs(t), n - 2))


def g_interval(g: float, n1: int, n2: int, ci: float = 0.95) -> tuple[float, float]:
    """Noncentral-t confidence interval of a reported Hedges' g from its group sizes.

    Inverts J, forms the Student t of the implied d and inverts the noncentral t at it,
    exactly as :func:`hedges_g` does for data; used to put a CI on a published g.
    """
    _check_ci(ci)
    if n1 < 2 or n2 < 2:
        raise AnalysisError(f"each group needs at least 2 observations, got {n1} and {n2}")
    df = n1 + n2 - 2
    j = hedges_j(df)
    scale = math.sqrt(1 / n1 + 1 / n2)
    t = g / j / scale
    alpha = 1 - ci
    return (
        _ncp_bound(t, df, 1 - alpha / 2) * scale * j,
        _ncp_bound(t, df, alpha / 2) * scale * j,
    )
