"""Regression models from formulas (statsmodels/patsy), returned as tidy coefficient frames.

Each fitting function returns one row per coefficient with the columns ``term, estimate,
se, ci_low, ci_high, ci_level, statistic, df, p_val, n, model`` followed by
model-specific extras. Nothing is rounded.

Reference levels are fixed in the formula, never left to alphabetical order:
``treatment("language", "en")`` gives ``C(language, Treatment(reference="en"))``.

Inference:
    * OLS uses Student t with the residual df (``p_method`` "t"); with ``cluster`` the df
      are the number of clusters minus one.
    * Mixed models and logistic regression use Wald z tests: ``df`` is ``inf`` and
      ``p_method`` is "wald_z". Mixed-model p-values are therefore anti-conservative in
      small samples compared with Satterthwaite or Kenward–Roger df.

Failures to fit (unknown variables, singular designs, perfect separation) raise
:class:`alignbf.errors.AnalysisError`. A mixed or logistic model that stops without
converging (or whose standard errors are not finite) is returned with ``converged``
False unless ``require_convergence=True``, which raises instead; :class:`MixedFit` also
keeps the optimizer's warning messages.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from alignbf.errors import AnalysisError

COLUMNS = [
    "term",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "ci_level",
    "statistic",
    "df",
    "p_val",
    "n",
    "model",
]
ROBUST_TYPES = ("HC0", "HC1", "HC2", "HC3")


def treatment(var: str, reference: str | float) -> str:
    """Patsy term coding ``var`` as treatment contrasts against ``reference``.

    >>> treatment("language", "en")
    'C(language, Treatment(reference="en"))'
    """
    literal = json.dumps(reference) if isinstance(reference, str) else repr(reference)
    return f"C({var}, Treatment(reference={literal}))"


def _check_frame(data: pd.DataFrame, ci: float) -> None:
    if not isinstance(data, pd.DataFrame) or data.empty:
        raise AnalysisError("data must be a non-empty pandas DataFrame")
    if not 0.0 < ci < 1.0:
        raise AnalysisError(f"ci must be strictly between 0 and 1, got {ci}")


def _is_data_error(exc: Exception) -> bool:
    """Errors caused by the formula or the data, as opposed to bugs."""
    if isinstance(exc, (ValueError, KeyError, ArithmeticError, np.linalg.LinAlgError)):
        return True
    return type(exc).__module__.split(".")[0] in ("patsy", "formulaic")


def _fit(build: Callable[[], Any], label: str) -> tuple[Any, list[str]]:
    """Run ``build()`` with warnings captured; turn formula or data errors into AnalysisError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = build()
        except Exception as exc:
            if isinstance(exc, AnalysisError) or not _is_data_error(exc):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AnalysisError(f"{label} could not be fitted: {message}") from None
    messages = sorted({str(w.message).strip().splitlines()[0] for w in caught if str(w.message)})
    return result, messages


def _tidy(params: pd.Series, bse: Any, df: float, ci: float, n: int, model: str) -> pd.DataFrame:
    """Coefficient table with t (finite ``df``) or z (``df`` = inf) inference."""
    estimate, se = params.to_numpy(dtype=float), np.asarray(bse, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = estimate / se
    dist = sps.norm if math.isinf(df) else sps.t(df)
    p_val = 2 * dist.sf(np.abs(statistic))
    half = dist.ppf(1 - (1 - ci) / 2) * se
    frame = pd.DataFrame(
        {
            "term": [str(term) for term in params.index],
            "estimate": estimate,
            "se": se,
            "ci_low": estimate - half,
            "ci_high": estimate + half,
            "ci_level": ci,
            "statistic": statistic,
            "df": float(df),
            "p_val": p_val,
            "n": n,
            "model": model,
        }
    )
    frame["p_method"] = "wald_z" if math.isinf(df) else "t"
    return frame.reset_index(drop=True)


def ols(
    formula: str,
    data: pd.DataFrame,
    robust: str | None = None,
    cluster: str | None = None,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Ordinary least squares with classical, heteroskedasticity-robust or clustered SEs.

    Args:
        formula: patsy formula, e.g. ``"cpi ~ ratio * " + treatment("language", "en")``.
        data: one row per observation; rows with missing model variables are dropped.
        robust: ``None`` (classical), or ``"HC0"``–``"HC3"`` (HC3 is the usual choice for
            small samples, HC1 matches Stata's ``robust``).
        cluster: column of ``data`` holding cluster labels for cluster-robust SEs
            (statsmodels' small-sample correction; df = clusters - 1). Excludes ``robust``.
        ci: confidence level.

    Returns:
        One row per coefficient: ``term``, ``estimate``, ``se``, ``ci_low``, ``ci_high``,
        ``ci_level``, ``statistic`` (t), ``df`` (residual df, or clusters - 1),
        ``p_val`` (two-sided), ``n`` (rows used), ``model`` ("ols"), ``p_method`` ("t"),
        ``cov_type`` ("nonrobust", the HC type or "cluster").
    """
    import statsmodels.formula.api as smf

    _check_frame(data, ci)
    if robust is not None and robust.upper() not in ROBUST_TYPES:
        raise AnalysisError(f"robust must be one of {ROBUST_TYPES} or None, got {robust!r}")
    if robust is not None and cluster is not None:
        raise AnalysisError("give either robust or cluster, not both")
    if cluster is not None and cluster not in data.columns:
        raise AnalysisError(f"cluster column {cluster!r} is not in the data")

    data = data.reset_index(drop=True)

    def build() -> Any:
        model = smf.ols(formula, data)
        if cluster is not None:
            labels = data.loc[model.data.row_labels, cluster]
            if labels.isna().any():
                raise AnalysisError(f"cluster column {cluster!r} has missing values")
            codes = pd.factorize(labels)[0]
            return model.fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)
        cov_type = "nonrobust" if robust is None else robust.upper()
        return model.fit(cov_type=cov_type, use_t=True)

    res, _ = _fit(build, "OLS model")
    df = float(getattr(res, "df_resid_inference", None) or res.df_resid)
    frame = _tidy(res.params, res.bse, df, ci, int(res.nobs), "ols")
    frame["cov_type"] = res.cov_type
    return frame


@dataclass(frozen=True)
class MixedFit:
    """A fitted linear mixed model as two tidy frames.

    Attributes:
        coefficients: fixed effects, as returned by :func:`mixed`.
        variance: variance components, as returned by :func:`mixed_variance`.
        converged: whether the optimizer reported convergence.
        warnings: distinct warning messages raised while fitting.
    """

    coefficients: pd.DataFrame
    variance: pd.DataFrame
    converged: bool
    warnings: tuple[str, ...]


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
    df: str = "groups",
) -> MixedFit:
    """Fit a linear mixed model and return fixed effects and variance components.

    The optimisers of :data:`MIXED_METHODS` are tried in turn until one converges with
    finite standard errors (the gradient ones first, then the derivative-free powell and
    nm); should two converge, the higher (REML) likelihood would win, so a fit that one
    optimiser leaves at a boundary is not taken for the answer when another does better.

    Args:
        formula: patsy formula for the fixed effects, e.g. ``"di ~ ratio"``.
        data: one row per observation; rows with missing model variables are dropped.
        groups: column of ``data`` with the grouping factor (e.g. ``"language"``).
        re_formula: random-effects formula; ``None`` or ``"1"`` gives a random intercept,
            ``"~ratio"`` a correlated random intercept and slope (lme4's ``(ratio | g)``).
        reml: REML (default, as lme4) or maximum likelihood.
        ci: confidence level of the intervals.
        require_convergence: raise AnalysisError instead of returning ``converged`` False.
        df: ``groups`` (default): t tests and intervals with G - 1 degrees of freedom, G
            the number of groups (equal to lmerTest's Satterthwaite df for a balanced
            design with a random slope, and conservative otherwise); ``wald``: Wald z.

    Returns:
        A :class:`MixedFit`.
    """
    import statsmodels.formula.api as smf

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
    converged = bool(best.converged) and _finite_se(best)
    if require_convergence and not converged:
        detail = "; ".join(messages) or "optimizer reported no convergence"
        raise AnalysisError(f"{model_label} did not converge: {detail}")
    n_groups = int(best.model.n_groups)
    dof = float(n_groups - 1) if df == "groups" and n_groups > 1 else math.inf
    coefficients = _tidy(best.fe_params, best.bse_fe, dof, ci, int(best.nobs), "mixed")
    coefficients["n_groups"] = n_groups
    coefficients["converged"] = converged
    variance = _variance_components(best, groups, converged)
    return MixedFit(coefficients, variance, converged, tuple(dict.fromkeys(messages)))


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
) -> pd.DataFrame:
    """Fixed effects of a linear mixed model (statsmodels MixedLM), Wald z inference.

    See :func:`fit_mixed` for the arguments; use it directly to get fixed effects and
    variance components from a single fit.

    Returns:
        One row per fixed effect: ``term``, ``estimate``, ``se``, ``ci_low``, ``ci_high``
        (Wald, normal quantile), ``ci_level``, ``statistic`` (z), ``df`` (inf: no
        small-sample df), ``p_val`` (two-sided, normal), ``n`` (rows used), ``model``
        ("mixed"), ``p_method`` ("wald_z"), ``n_groups``, ``converged``.
    """
    return fit_mixed(formula, data, groups, re_formula, reml, ci, require_convergence).coefficients


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


def logit(
    formula: str, data: pd.DataFrame, ci: float = 0.95, require_convergence: bool = False
) -> pd.DataFrame:
    """Logistic regression by maximum likelihood (statsmodels Logit), Wald z inference.

    The outcome must be coded 0/1. Perfect separation raises AnalysisError.

    Returns:
        One row per coefficient (log-odds scale): ``term``, ``estimate``, ``se``,
        ``ci_low``, ``ci_high``, ``ci_level``, ``statistic`` (z), ``df`` (inf),
        ``p_val`` (two-sided, normal), ``n`` (rows used), ``model`` ("logit"),
        ``p_method`` ("wald_z"), ``converged``.
    """
    import statsmodels.formula.api as smf

    _check_frame(data, ci)

    def build() -> Any:
        return smf.logit(formula, data).fit(disp=0, maxiter=100)

    res, messages = _fit(build, f"logit model {formula!r}")
    if any("separation" in m.lower() for m in messages):
        raise AnalysisError(f"logit model {formula!r} has perfect separation; estimates diverge")
    converged = bool(res.mle_retvals.get("converged", False)) and bool(np.all(np.isfinite(res.bse)))
    if require_convergence and not converged:
        raise AnalysisError(f"logit model {formula!r} did not converge")
    frame = _tidy(res.params, res.bse, math.inf, ci, int(res.nobs), "logit")
    frame["converged"] = converged
    return frame
