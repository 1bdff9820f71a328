"""The REML (and ML) machinery behind the mixed models' Satterthwaite degrees of freedom.

:func:`alignbf.analysis.mixedlm.fit_mixed` fits with statsmodels; this module evaluates
the (restricted) log-likelihood, its score and Hessian and the derivative of the fixed
effects' covariance in lme4's variance parameters (Harville 1977), refines the optimum over
those parameters and returns what Satterthwaite's formula needs.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


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
