"""Linear mixed models (statsmodels MixedLM, REML by default) with tested fixed effects.

:func:`fit_mixed` fits with optimiser fallbacks, refines the optimum over lme4's variance
parameters and tests fixed effects with Satterthwaite's degrees of freedom (as R's
lmerTest), with G - 1 df or with Wald z; :func:`mixed` and :func:`mixed_variance` give the
tidy frames of :mod:`alignbf.analysis.regression`. The likelihood machinery is in
:mod:`alignbf.analysis.reml`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from alignbf.analysis.regression import _check_frame, _fit, _tidy
from alignbf.analysis.reml import (
    _Estimates,
    _estimates,
    _NoSatterthwaite,
    _satterthwaite_parts,
)
from alignbf.errors import AnalysisError

DF_METHODS = ("satterthwaite", "between", "wald")
"""Degrees of freedom of mixed-model fixed-effect tests: Satterthwaite's (the default),
G - 1 for G groups ("between"), or none (Wald z)."""


@dataclass(frozen=True, eq=False)
class FixedEffects:
    """Fixed-effect estimates of a mixed model with what tests of their contrasts need.

    Attributes:
        names: the coefficient names, in model order.
        estimate: the estimates.
        vcov: their covariance matrix at the estimated variance parameters.
        n_groups: the number of groups G.
        df_method: "satterthwaite", "between" (G - 1) or "wald".
        nobs: the rows the model used.
        jacobian: with Satterthwaite df, the derivative of ``vcov`` in each variance
            parameter (k x p x p); else None.
        varpar_cov: with Satterthwaite df, the asymptotic covariance (k x k) of the
            variance parameters (inverse observed REML, or ML, information); else None.
    """

    names: tuple[str, ...]
    estimate: np.ndarray
    vcov: np.ndarray
    n_groups: int
    df_method: str
    nobs: int = 0
    jacobian: np.ndarray | None = None
    varpar_cov: np.ndarray | None = None

    def weights(self, contrast: Mapping[str, float] | Sequence[float]) -> np.ndarray:
        """``contrast`` (term -> weight, or one weight per coefficient) as a vector."""
        if isinstance(contrast, Mapping):
            unknown = sorted(set(contrast) - set(self.names))
            if unknown:
                raise AnalysisError(
                    f"contrast names unknown terms {unknown}; terms: {', '.join(self.names)}"
                )
            return np.array([float(contrast.get(name, 0.0)) for name in self.names])
        vector = np.asarray(contrast, dtype=float).ravel()
        if vector.shape != (len(self.names),):
            raise AnalysisError(f"a contrast needs {len(self.names)} weights, got {vector.size}")
        return vector

    def df(self, c: np.ndarray) -> float:
        """Denominator df of the t test of ``c' beta`` under :attr:`df_method`.

        Satterthwaite (1946): ``2 (c' V c)^2 / (g' A g)``, with V the fixed effects'
        covariance as a function of the variance parameters, g the gradient of ``c' V c``
        in those parameters and A their asymptotic covariance (as in Kuznetsova, Brockhoff
        and Christensen 2017, J. Stat. Softw. 82(13)).
        """
        if self.df_method == "wald":
            return math.inf
        if self.df_method == "between" or self.jacobian is None or self.varpar_cov is None:
            return float(self.n_groups - 1)
        variance = float(c @ self.vcov @ c)
        gradient = np.einsum("i,kij,j->k", c, self.jacobian, c)
        spread = float(gradient @ self.varpar_cov @ gradient)
        if not (spread > 0 and variance > 0):
            return math.inf  # c' V c does not depend on the variance parameters
        return 2.0 * variance**2 / spread

    def contrast(
        self,
        contrast: Mapping[str, float] | Sequence[float],
        ci: float = 0.95,
        label: str = "contrast",
    ) -> pd.DataFrame:
        """t test and CI of one linear combination ``c' beta`` of the fixed effects.

        Returns:
            One row with the columns of :data:`COLUMNS` (``model`` "mixed"), ``p_method``
            and ``df_method``.
        """
        c = self.weights(contrast)
        estimate = float(c @ self.estimate)
        se = math.sqrt(max(float(c @ self.vcov @ c), 0.0))
        series = pd.Series([estimate], index=[label])
        frame = _tidy(series, [se], self.df(c), ci, self.nobs, "mixed")
        frame["df_method"] = self.df_method
        return frame

    def joint_test(self, rows: Sequence[Mapping[str, float] | Sequence[float]]) -> JointTest:
        """F test of ``L beta = 0`` for the q rows of L (each a contrast).

        With Satterthwaite df the denominator df follow Fai and Cornelius (1996, J. Stat.
        Comput. Simul. 54, 363-378): rotate L by the eigenvectors of ``L V L'`` into q
        independent t statistics with df ``nu_m``, let ``E = sum nu_m / (nu_m - 2)`` over
        the ``nu_m > 2``, and take ``2 E / (E - q)``; when that is undefined (E <= q) the
        G - 1 df are used. One row is the t test squared, with its df.
        """
        matrix = np.vstack([self.weights(row) for row in rows])
        q = matrix.shape[0]
        estimate = matrix @ self.estimate
        cov = matrix @ self.vcov @ matrix.T
        values, vectors = np.linalg.eigh(cov)
        if values.min() <= 1e-10 * max(values.max(), 0.0) or values.max() <= 0:
            raise AnalysisError("the rows of the joint test are linearly dependent")
        rotated = vectors.T @ estimate
        f_value = float(np.sum(rotated**2 / values)) / q
        note = ""
        if q == 1:
            ddf = self.df(matrix[0])
        elif self.df_method == "satterthwaite" and self.jacobian is not None:
            nus = np.array([self.df(vectors[:, m] @ matrix) for m in range(q)])
            big = nus[nus > 2]
            expected = float(np.sum(big / (big - 2))) if big.size else 0.0
            if expected > q:
                ddf = 2 * expected / (expected - q)
            else:
                ddf = float(self.n_groups - 1)
                note = "Satterthwaite df undefined (E <= q); G - 1 used"
        else:
            ddf = self.df(matrix[0])
        p_val = float(sps.chi2.sf(f_value * q, q) if math.isinf(ddf) else sps.f.sf(f_value, q, ddf))
        return JointTest(f_value, q, float(ddf), p_val, note)


@dataclass(frozen=True)
class JointTest:
    """F test of several contrasts: ``F(num_df, den_df)`` and its p-value."""

    f_value: float
    num_df: int
    den_df: float
    p_val: float
    note: str = ""


@dataclass(frozen=True)
class MixedFit:
    """A fitted linear mixed model as two tidy frames.

    Attributes:
        coefficients: fixed effects, as returned by :func:`mixed`.
        variance: variance components, as returned by :func:`mixed_variance`.
        converged: whether an optimiser reported convergence with finite SEs at a
            maximum of the likelihood.
        warnings: distinct warning messages raised while fitting.
        df_method: the df the tests used: "satterthwaite", "between" (G - 1) or "wald".
        df_note: why Satterthwaite df were asked for but not used (else empty).
        fixed: estimates, covariance and df machinery for contrasts of the fixed effects.
    """

    coefficients: pd.DataFrame
    variance: pd.DataFrame
    converged: bool
    warnings: tuple[str, ...]
    df_method: str = "between"
    df_note: str = ""
    fixed: FixedEffects | None = field(default=None, repr=False, compare=False)


def _finite_se(res: Any) -> bool:
    """Whether every fixed-effect SE is finite (a singular fit gives NaN, quietly)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(np.all(np.isfinite(res.bse_fe)))


MIXED_METHODS = ("bfgs", "lbfgs", "cg", "powell", "nm")
"""Optimisers tried in turn until one converges: statsmodels' default bfgs first, then
lbfgs (which converges on random-slope models where bfgs stops short, such as dietox's)."""


def fit_mixed(
    formula: str,
    data: pd.DataFrame,
    groups: str,
    re_formula: str | None = None,
    reml: bool = True,
    ci: float = 0.95,
    require_convergence: bool = False,
    df: str = "satterthwaite",
) -> MixedFit:
    """Fit a linear mixed model and return fixed effects and variance components.

    The optimisers of :data:`MIXED_METHODS` are tried in turn until one converges with
    finite standard errors (the gradient ones first, then the derivative-free powell and
    nm). The converged fit is then refined: the (restricted) likelihood is maximised from
    it over lme4's variance parameters with lme4's bounds, with analytic derivatives, so a
    fit that statsmodels stops short of a boundary (a correlation of random effects near
    +-1, a variance near 0) is located exactly; fixed effects, SEs and variance components
    are reported at the refined estimate. A fit whose likelihood keeps rising as the
    residual variance goes to zero has no maximum and is reported as not converged.

    Args:
        formula: patsy formula for the fixed effects, e.g. ``"di ~ ratio"``.
        data: one row per observation; rows with missing model variables are dropped.
        groups: column of ``data`` with the grouping factor (e.g. ``"language"``).
        re_formula: random-effects formula; ``None`` or ``"1"`` gives a random intercept,
            ``"~ratio"`` a correlated random intercept and slope (lme4's ``(ratio | g)``).
        reml: REML (default, as lme4) or maximum likelihood.
        ci: confidence level of the intervals.
        require_convergence: raise AnalysisError instead of returning ``converged`` False.
        df: degrees of freedom of the t tests and intervals. ``satterthwaite`` (default):
            Satterthwaite's df for each coefficient, as R's lmerTest computes them (see
            :meth:`FixedEffects.df`); they fall back to G - 1, with the reason in
            :attr:`MixedFit.df_note`, when the fit did not converge, is not at a maximum
            of the likelihood, or the variance parameters' information matrix is not
            positive definite. ``between``: G - 1 for G groups
            (the df of a between-group comparison; equal to Satterthwaite's for a
            balanced design with a random slope, conservative for a within-group effect
            of a random-intercept model). ``wald``: Wald z (no small-sample df).

    Returns:
        A :class:`MixedFit`.
    """
    import statsmodels.formula.api as smf

    if df not in DF_METHODS:
        raise AnalysisError(f"df must be one of {DF_METHODS}, got {df!r}")
    _check_frame(data, ci)
    if groups not in data.columns:
        raise AnalysisError(f"groups column {groups!r} is not in the data")
    model_label = f"mixed model {formula!r} by {groups!r}"
    best: Any = None
    fallback = True  # best is an unconverged fit, kept only to report it
    messages: list[str] = []
    for method in MIXED_METHODS:
        if best is not None and not fallback:
            break

        def build(method: str = method) -> Any:
            model = smf.mixedlm(formula, data, groups=groups, re_formula=re_formula, missing="drop")
            return model.fit(reml=reml, method=method)

        try:
            res, found = _fit(build, model_label)
        except (AnalysisError, np.linalg.LinAlgError, ValueError) as exc:
            messages.append(f"{method}: {exc}")
            continue
        messages += [f"{method}: {m}" for m in found]
        ok = bool(res.converged) and _finite_se(res)
        if ok and (best is None or fallback or res.llf > best.llf):
            best, fallback = res, False
        elif best is None or fallback:
            best, fallback = res, True
    if best is None:
        raise AnalysisError(f"{model_label} could not be fitted: " + "; ".join(messages))
    est, degenerate = _estimates(best, reml, bool(best.converged) and _finite_se(best))
    if degenerate:
        messages.append(degenerate)
    converged = est.converged
    if require_convergence and not converged:
        detail = "; ".join(messages) or "optimizer reported no convergence"
        raise AnalysisError(f"{model_label} did not converge: {detail}")
    n_groups = int(best.model.n_groups)
    fixed, note = _fixed_effects(est, n_groups, df, int(best.nobs))
    dof = np.array([fixed.df(row) for row in np.eye(len(fixed.names))])
    se = np.sqrt(np.clip(np.diag(est.vcov), 0.0, None)) if est.refined else best.bse_fe
    coefficients = _tidy(est.fe_params, se, dof, ci, int(best.nobs), "mixed")
    coefficients["n_groups"] = n_groups
    coefficients["converged"] = converged
    coefficients["df_method"] = fixed.df_method
    variance = _variance_components(est, groups, converged)
    messages_seen = tuple(dict.fromkeys(messages))
    return MixedFit(coefficients, variance, converged, messages_seen, fixed.df_method, note, fixed)


def _fixed_effects(
    est: _Estimates, n_groups: int, df: str, nobs: int = 0
) -> tuple[FixedEffects, str]:
    """The fixed effects with the df method asked for, or G - 1 and the reason when
    Satterthwaite df cannot be had."""
    names = tuple(str(name) for name in est.fe_params.index)
    estimate = est.fe_params.to_numpy(dtype=float)
    method = "wald" if df == "wald" or n_groups < 2 else df
    if method != "satterthwaite":
        return FixedEffects(names, estimate, est.vcov, n_groups, method, nobs), ""
    try:
        if not est.converged:
            raise _NoSatterthwaite("the fit did not converge")
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            jacobian, varpar_cov = _satterthwaite_parts(est)
    except (_NoSatterthwaite, np.linalg.LinAlgError, FloatingPointError) as exc:
        reason = f"Satterthwaite df not computable ({exc}); t(G - 1) used"
        return FixedEffects(names, estimate, est.vcov, n_groups, "between", nobs), reason
    fixed = FixedEffects(names, estimate, est.vcov, n_groups, method, nobs, jacobian, varpar_cov)
    return fixed, ""


def _re_names(res: Any, groups: str) -> list[str]:
    """Random-effect term names; statsmodels labels the random intercept with the group name."""
    return ["Intercept" if str(name) == groups else str(name) for name in res.cov_re.index]


def _variance_components(res: Any, groups: str, converged: bool) -> pd.DataFrame:
    """Tidy variance, SD, covariance and correlation of random effects, plus residual."""
    names = _re_names(res, groups)
    cov = np.asarray(res.cov_re, dtype=float)
    rows: list[tuple[str, float]] = []
    for i, name in enumerate(names):
        rows += [(f"var({name})", cov[i, i]), (f"sd({name})", math.sqrt(max(cov[i, i], 0.0)))]
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            pair = f"{names[i]},{names[j]}"
            denom = math.sqrt(cov[i, i] * cov[j, j])
            rows.append((f"cov({pair})", cov[i, j]))
            rows.append((f"cor({pair})", cov[i, j] / denom if denom > 0 else math.nan))
    scale = float(res.scale)
    rows += [("var(Residual)", scale), ("sd(Residual)", math.sqrt(scale))]
    frame = pd.DataFrame(rows, columns=["component", "estimate"])
    frame["group"] = [groups] * (len(rows) - 2) + ["Residual", "Residual"]
    frame["converged"] = converged
    return frame


def mixed(
    formula: str,
    data: pd.DataFrame,
    groups: str,
    re_formula: str | None = None,
    reml: bool = True,
    ci: float = 0.95,
    require_convergence: bool = False,
    df: str = "satterthwaite",
) -> pd.DataFrame:
    """Fixed effects of a linear mixed model (statsmodels MixedLM) with t tests.

    See :func:`fit_mixed` for the arguments; use it directly to get fixed effects and
    variance components from a single fit, or to test contrasts.

    Returns:
        One row per fixed effect: ``term``, ``estimate``, ``se``, ``ci_low``, ``ci_high``,
        ``ci_level``, ``statistic`` (t, or z with ``df="wald"``), ``df`` (Satterthwaite's
        by default), ``p_val`` (two-sided), ``n`` (rows used), ``model`` ("mixed"),
        ``p_method`` ("t" or "wald_z"), ``n_groups``, ``converged``, ``df_method``.
    """
    fit = fit_mixed(formula, data, groups, re_formula, reml, ci, require_convergence, df)
    return fit.coefficients


def mixed_variance(
    formula: str,
    data: pd.DataFrame,
    groups: str,
    re_formula: str | None = None,
    reml: bool = True,
    require_convergence: bool = False,
) -> pd.DataFrame:
    """Variance components of a linear mixed model (see :func:`fit_mixed`).

    Returns:
        One row per component with columns ``component``, ``estimate``, ``group``
        (the grouping column, or "Residual") and ``converged``. Components, in order:
        ``var(T)`` and ``sd(T)`` for each random term T (``Intercept`` for the random
        intercept, then slope names), ``cov(A,B)`` and ``cor(A,B)`` for each pair, then
        ``var(Residual)`` and ``sd(Residual)``.
    """
    fit = fit_mixed(formula, data, groups, re_formula, reml, 0.95, require_convergence)
    return fit.variance
