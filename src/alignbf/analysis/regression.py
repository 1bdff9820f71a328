"""Regression models from formulas (statsmodels/patsy), returned as tidy coefficient frames.

Each fitting function returns one row per coefficient with the columns ``term, estimate,
se, ci_low, ci_high, ci_level, statistic, df, p_val, n, model`` followed by
model-specific extras. Nothing is rounded.

Reference levels are fixed in the formula, never left to alphabetical order:
``treatment("language", "en")`` gives ``C(language, Treatment(reference="en"))``.

Inference:
    * OLS uses Student t with the residual df (``p_method`` "t"); with ``cluster`` the df
      are the number of clusters minus one.
    * Mixed models use t tests with Satterthwaite's degrees of freedom (the default, as
      R's lmerTest; see :func:`fit_mixed`), or with G - 1 df (``df="between"``, G the
      number of groups), or Wald z (``df="wald"``). The column ``df_method`` says which
      was used for each row.
    * Logistic regression uses Wald z tests: ``df`` is ``inf`` and ``p_method`` is
      "wald_z".

Failures to fit (unknown variables, singular designs, perfect separation) raise
:class:`alignbf.errors.AnalysisError`. A mixed or logistic model that stops without
converging (or whose standard errors are not finite) is returned with ``converged``
False unless ``require_convergence=True``, which raises instead; :class:`MixedFit` also
keeps the optimizer's warning messages.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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


class _NoSatterthwaite(Exception):
    """Satterthwaite df cannot be computed for this fit; the message says why."""


def _psd_cholesky(a: np.ndarray) -> np.ndarray:
    """Lower-triangular L with L L' = a for a positive semi-definite a (zero columns where a
    is singular, as lme4's relative covariance factor at a boundary)."""
    q = a.shape[0]
    low = np.zeros_like(a)
    scale = max(float(np.trace(a)), 1e-300)
    for j in range(q):
        pivot = a[j, j] - low[j, :j] @ low[j, :j]
        if pivot <= 1e-12 * scale:
            continue
        low[j, j] = math.sqrt(pivot)
        for i in range(j + 1, q):
            low[i, j] = (a[i, j] - low[i, :j] @ low[j, :j]) / low[j, j]
    return low


@dataclass(frozen=True, eq=False)
class _Data:
    """A mixed model's data split by group: fixed and random design, outcome."""

    exog: list[np.ndarray]
    exog_re: list[np.ndarray]
    endog: list[np.ndarray]

    @classmethod
    def of(cls, model: Any) -> _Data:
        return cls(
            [np.asarray(x, dtype=float) for x in model.exog_li],
            [np.asarray(z, dtype=float).reshape(len(z), -1) for z in model.exog_re_li],
            [np.asarray(y, dtype=float) for y in model.endog_li],
        )


@dataclass(frozen=True, eq=False)
class _Point:
    """The (restricted) log-likelihood at one value of the variance parameters.

    With Sigma = blockdiag(Z_g G Z_g' + sigma^2 I), W its inverse, V = (X'WX)^-1,
    P = W - W X V X'W and D_k = dSigma/dpsi_k for the covariance parameters
    psi = (vech G, sigma^2), the (restricted) log-likelihood is
    -(log|Sigma| [+ log|X'WX|] + y'Py)/2 + const, its score -tr(P D_k)/2 + y'P D_k P y/2
    and its Hessian tr(P D_i P D_j)/2 - y'P D_i P D_j P y (for ML, W in place of P in the
    traces; Harville 1977, JASA 72, 320-338), and dV/dpsi_k = V X'W D_k W X V.
    """

    beta: np.ndarray
    vcov: np.ndarray
    objective: float  # minus the log-likelihood, without its constant
    score: np.ndarray  # in psi
    hessian: np.ndarray | None = None  # in psi
    jacobian: np.ndarray | None = None  # dV/dpsi, k x p x p


def _at(data: _Data, cov_re: np.ndarray, s2: float, reml: bool, full: bool) -> _Point:
    """:class:`_Point` at ``(cov_re, s2)``; the Hessian and dV/dpsi only when ``full``."""
    q = cov_re.shape[0]
    pairs = [(a, b) for b in range(q) for a in range(b, q)]
    units = []
    for a, b in pairs:
        unit = np.zeros((q, q))
        unit[a, b] = unit[b, a] = 1.0
        units.append(unit)
    k, p = len(pairs) + 1, data.exog[0].shape[1]
    weights, xtwx, xtwy, logdet = [], np.zeros((p, p)), np.zeros(p), 0.0
    for x, z, y in zip(data.exog, data.exog_re, data.endog, strict=True):
        sigma = z @ cov_re @ z.T + s2 * np.eye(len(y))
        sign, value = np.linalg.slogdet(sigma)
        if sign <= 0:
            raise np.linalg.LinAlgError("a group's covariance matrix is not positive definite")
        logdet += value
        w = np.linalg.inv(sigma)
        weights.append(w)
        xtwx += x.T @ w @ x
        xtwy += x.T @ w @ y
    vcov = np.linalg.inv(xtwx)
    beta = vcov @ xtwy
    quad, tr_wd, r_d_r = 0.0, np.zeros(k), np.zeros(k)
    tr_wdwd, u_w_u = np.zeros((k, k)), np.zeros((k, k))
    a_mats, b_mats = np.zeros((k, p, p)), np.zeros((k, k, p, p))
    xtwu = np.zeros((k, p))
    for x, z, y, w in zip(data.exog, data.exog_re, data.endog, weights, strict=True):
        d_mats = [z @ unit @ z.T for unit in units] + [np.eye(len(y))]
        resid = y - x @ beta
        r = w @ resid
        quad += float(resid @ r)
        wx = w @ x
        wd = [w @ d for d in d_mats]
        dwx = [d @ wx for d in d_mats]
        u = [d @ r for d in d_mats]
        for i in range(k):
            tr_wd[i] += np.trace(wd[i])
            r_d_r[i] += r @ u[i]
            a_mats[i] += wx.T @ dwx[i]
            if not full:
                continue
            xtwu[i] += wx.T @ u[i]
            for j in range(i, k):
                tr_wdwd[i, j] += np.sum(wd[i] * wd[j].T)
                u_w_u[i, j] += u[i] @ w @ u[j]
                b_mats[i, j] += dwx[i].T @ w @ dwx[j]
    va = np.einsum("ab,kbc->kac", vcov, a_mats)  # V A_k, A_k = X'W D_k W X
    objective = (logdet + quad) / 2
    if reml:
        objective += np.linalg.slogdet(xtwx)[1] / 2
        score = -(tr_wd - np.einsum("kaa->k", va)) / 2 + r_d_r / 2
    else:
        score = -tr_wd / 2 + r_d_r / 2
    if not full:
        return _Point(beta, vcov, float(objective), score)
    for i in range(k):
        for j in range(i):
            tr_wdwd[i, j], u_w_u[i, j] = tr_wdwd[j, i], u_w_u[j, i]
            b_mats[i, j] = b_mats[j, i].T
    u_p_u = u_w_u - xtwu @ vcov @ xtwu.T
    traces = tr_wdwd
    if reml:
        traces = (
            tr_wdwd - 2 * np.einsum("ab,ijba->ij", vcov, b_mats) + np.einsum("iab,jba->ij", va, va)
        )
    hessian = traces / 2 - u_p_u
    jacobian = np.einsum("kab,bc->kac", va, vcov)
    return _Point(beta, vcov, float(objective), score, hessian, jacobian)


class _Theta:
    """lme4's variance parameters phi = (theta, sigma): theta the lower triangle, by
    columns, of the relative covariance factor Lambda (G = sigma^2 Lambda Lambda') and sigma
    the residual SD; and the chain rule to them from psi = (vech G, sigma^2)."""

    def __init__(self, q: int) -> None:
        self.q = q
        self.pairs = [(a, b) for b in range(q) for a in range(b, q)]
        self.basis = []
        for a, b in self.pairs:
            unit = np.zeros((q, q))
            unit[a, b] = 1.0
            self.basis.append(unit)

    def vech(self, m: np.ndarray) -> np.ndarray:
        return np.array([m[a, b] for a, b in self.pairs])

    def phi(self, cov_re: np.ndarray, s2: float) -> np.ndarray:
        return np.append(self.vech(_psd_cholesky(cov_re / s2)), math.sqrt(s2))

    def lam(self, phi: np.ndarray) -> np.ndarray:
        low = np.zeros((self.q, self.q))
        for (a, b), value in zip(self.pairs, phi[:-1], strict=True):
            low[a, b] = value
        return low

    def psi(self, phi: np.ndarray) -> tuple[np.ndarray, float]:
        lam, sigma = self.lam(phi), float(phi[-1])
        return sigma**2 * lam @ lam.T, sigma**2

    def bounds(self, phi: np.ndarray) -> list[tuple[float | None, float | None]]:
        """lme4's: diagonal entries of Lambda at least 0; sigma positive."""
        diagonal: list[tuple[float | None, float | None]] = [
            (0.0, None) if a == b else (None, None) for a, b in self.pairs
        ]
        return [*diagonal, (1e-8 * float(phi[-1]), None)]

    def first(self, phi: np.ndarray) -> np.ndarray:
        """d psi_l / d phi_m."""
        lam, sigma = self.lam(phi), float(phi[-1])
        k = len(self.pairs) + 1
        out = np.zeros((k, k))
        for m, em in enumerate(self.basis):
            out[:-1, m] = self.vech(sigma**2 * (em @ lam.T + lam @ em.T))
        out[:-1, -1] = self.vech(2 * sigma * lam @ lam.T)
        out[-1, -1] = 2 * sigma
        return out

    def second(self, phi: np.ndarray, score: np.ndarray) -> np.ndarray:
        """sum_l score_l d^2 psi_l / d phi_m d phi_n."""
        lam, sigma = self.lam(phi), float(phi[-1])
        k = len(self.pairs) + 1
        out = np.zeros((k, k))
        s_g = score[:-1]
        for m, em in enumerate(self.basis):
            for n, en in enumerate(self.basis):
                out[m, n] = s_g @ self.vech(sigma**2 * (em @ en.T + en @ em.T))
            out[m, -1] = out[-1, m] = s_g @ self.vech(2 * sigma * (em @ lam.T + lam @ em.T))
        out[-1, -1] = s_g @ self.vech(2 * lam @ lam.T) + 2 * score[-1]
        return out


def _refine(data: _Data, cov_re: np.ndarray, s2: float, reml: bool) -> np.ndarray:
    """Maximise the (restricted) likelihood from ``(cov_re, s2)`` over lme4's parameters
    with its bounds (L-BFGS-B, analytic gradient), so that boundary fits, where
    statsmodels' optimisers stop short, are located exactly. Returns phi."""
    from scipy import optimize

    theta = _Theta(cov_re.shape[0])
    start = theta.phi(cov_re, s2)

    def objective(phi: np.ndarray) -> tuple[float, np.ndarray]:
        g, v = theta.psi(phi)
        point = _at(data, g, v, reml, full=False)
        return point.objective, -(theta.first(phi).T @ point.score)

    with np.errstate(divide="raise", over="raise", invalid="raise"):
        found = optimize.minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=theta.bounds(start),
            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 500},
        )
    better = np.asarray(found.x, dtype=float)
    return better if found.fun <= objective(start)[0] else start


@dataclass(frozen=True, eq=False)
class _Estimates:
    """The estimates a mixed-model summary reports, after refinement."""

    fe_params: pd.Series
    vcov: np.ndarray
    cov_re: pd.DataFrame
    scale: float
    converged: bool
    refined: bool
    point: _Point | None = None  # the likelihood at the estimate, with second derivatives
    phi: np.ndarray | None = None


def _estimates(res: Any, reml: bool, converged: bool) -> tuple[_Estimates, str]:
    """The fit's estimates, refined by :func:`_refine` when statsmodels' optimiser
    converged; and a note when refining shows the fit degenerate (not converged)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = list(res.fe_params.index)
        vcov = np.asarray(res.cov_params(), dtype=float)[: len(names), : len(names)]
    cov_frame = res.cov_re
    plain = _Estimates(res.fe_params, vcov, cov_frame, float(res.scale), converged, False)
    if not converged or int(getattr(res.model, "k_vc", 0)):
        return plain, ""
    data = _Data.of(res.model)
    cov_re = np.atleast_2d(np.asarray(cov_frame, dtype=float))
    theta = _Theta(cov_re.shape[0])
    try:
        phi = _refine(data, cov_re, float(res.scale), reml)
        g, s2 = theta.psi(phi)
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            point = _at(data, g, s2, reml, full=True)
            if _at(data, g, s2 / 100, reml, full=False).objective < point.objective:
                note = (
                    "the likelihood keeps rising as the residual variance goes to zero: "
                    "it has no maximum"
                )
                return dataclasses.replace(plain, converged=False), note
    except (np.linalg.LinAlgError, FloatingPointError, ValueError):
        return plain, ""
    fe = pd.Series(point.beta, index=res.fe_params.index)
    cov = pd.DataFrame(g, index=cov_frame.index, columns=cov_frame.columns)
    return _Estimates(fe, point.vcov, cov, s2, True, True, point, phi), ""


def _satterthwaite_parts(est: _Estimates) -> tuple[np.ndarray, np.ndarray]:
    """Derivatives of the fixed effects' covariance in lme4's variance parameters
    (theta, sigma) and those parameters' asymptotic covariance: the inverse of the
    negative Hessian of the (restricted) log-likelihood there, from the analytic
    derivatives of :class:`_Point` by the chain rule. These are the parameters lmerTest
    differentiates in; in them a variance estimated at 0 (theta at its bound) moves
    neither V nor, to first order, the likelihood, so it drops out of the df. Directions
    that change neither G nor sigma (possible at such a boundary) are left out of the
    inverse; they do not move V either.

    Raises:
        _NoSatterthwaite: the fit was not refined, is not at a maximum, or the
            information matrix is not positive definite.
    """
    point, phi = est.point, est.phi
    if point is None or phi is None or point.hessian is None or point.jacobian is None:
        raise _NoSatterthwaite("the fit could not be refined to a maximum of the likelihood")
    theta = _Theta(np.asarray(est.cov_re).shape[0])
    first = theta.first(phi)
    information = -(first.T @ point.hessian @ first + theta.second(phi, point.score))
    information = (information + information.T) / 2
    jacobian = np.einsum("lab,lm->mab", point.jacobian, first)
    values, vectors = np.linalg.eigh(information)
    top = float(values.max()) if np.all(np.isfinite(values)) else math.nan
    if not top > 0 or values.min() < -1e-8 * top:
        raise _NoSatterthwaite(
            "the information matrix of the variance parameters is not positive definite"
        )
    # At a boundary (a variance at 0) some directions of (theta, sigma) may leave G and
    # sigma unchanged; they carry no information and, as they do not move V either, no
    # part of its gradient: the df are those of the identified parameters.
    null = values <= 1e-10 * top
    scale = float(np.abs(jacobian).max()) or 1.0
    for v in vectors[:, null].T:
        if float(np.abs(np.einsum("mab,m->ab", jacobian, v)).max()) > 1e-8 * scale:
            raise _NoSatterthwaite("the information matrix of the variance parameters is singular")
    kept = vectors[:, ~null]
    varpar_cov = kept @ np.diag(1.0 / values[~null]) @ kept.T
    step = first.T @ point.score  # the score in (theta, sigma)
    for m, (low, _) in enumerate(theta.bounds(phi)):
        if low is not None and phi[m] <= low:
            step[m] = 0.0  # at its bound, a parameter may only be pushed outwards
    gain = float(step @ varpar_cov @ step)
    if gain > 1e-6:
        raise _NoSatterthwaite(
            f"the estimate is not at a maximum of the likelihood (a Newton step would gain "
            f"{gain / 2:.2g} in log-likelihood)"
        )
    return jacobian, varpar_cov


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
