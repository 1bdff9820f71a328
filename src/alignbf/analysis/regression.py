"""Regression models from formulas (statsmodels/patsy), returned as tidy coefficient frames.

Each fitting function returns one row per coefficient with the columns ``term, estimate,
se, ci_low, ci_high, ci_level, statistic, df, p_val, n, model`` followed by
model-specific extras. Nothing is rounded.

Reference levels are fixed in the formula, never left to alphabetical order:
``treatment("language", "en")`` gives ``C(language, Treatment(reference="en"))``.

Inference:
    * OLS uses Student t with the residual df (``p_method`` "t"); with ``cluster`` the df
      are the number of clusters minus one.
    * Mixed models (:mod:`alignbf.analysis.mixedlm`) use t tests with Satterthwaite's
      degrees of freedom (the default, as R's lmerTest), or with G - 1 df
      (``df="between"``, G the number of groups), or Wald z (``df="wald"``). The column
      ``df_method`` says which was used for each row.
    * Logistic regression uses Wald z tests: ``df`` is ``inf`` and ``p_method`` is
      "wald_z".

Failures to fit (unknown variables, singular designs, perfect separation) raise
:class:`alignbf.errors.AnalysisError`. A mixed or logistic model that stops without
converging (or whose standard errors are not finite) is returned with ``converged``
False unless ``require_convergence=True``, which raises instead;
:class:`~alignbf.analysis.mixedlm.MixedFit` also
keeps the optimizer's warning messages.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
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


def _tidy(
    params: pd.Series, bse: Any, df: float | np.ndarray, ci: float, n: int, model: str
) -> pd.DataFrame:
    """Coefficient table with t (finite ``df``) or z (``df`` = inf) inference; ``df`` is one
    number for every row or one per row."""
    estimate, se = params.to_numpy(dtype=float), np.asarray(bse, dtype=float)
    dof = np.broadcast_to(np.asarray(df, dtype=float), estimate.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = estimate / se
    wald = bool(np.all(np.isinf(dof)))
    dist = sps.norm() if wald else sps.t(dof)
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
            "df": dof,
            "p_val": p_val,
            "n": n,
            "model": model,
        }
    )
    frame["p_method"] = "wald_z" if wald else "t"
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
