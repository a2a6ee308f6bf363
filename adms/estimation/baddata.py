"""Bad-data detection (chi-square test) and identification (largest normalised residual).

Contract:
- :func:`chi_square` tests ``J(x) = sum (r_i / sigma_i)^2`` against the
  chi-square quantile at ``confidence`` with ``m - n + c`` degrees of freedom
  (measurements, states, equality constraints). With no redundancy (dof <= 0)
  the test cannot be made and ``passed`` is None.
- :func:`normalised_residuals` gives ``|r_i| / sqrt(Omega_ii)`` with
  ``Omega = R - H E H'`` the residual covariance (``E`` the constrained state
  covariance), for the candidate rows only. Critical measurements
  (``Omega_ii`` ~ 0: nothing else checks them) get NaN: their errors cannot
  be seen, and removing one would leave the network unobservable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.stats import chi2

from adms.estimation.solvers import gain_solver

__all__ = ["ChiSquare", "chi_square", "normalised_residuals"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# SuperLU solves many right-hand sides at once far slower than in small batches
# (measured: 256 columns ~500 ms, 16 batches of 16 ~3 ms on mv_oberrhein).
_CHUNK = 16
_CRITICAL = 1e-6


@dataclass(frozen=True)
class ChiSquare:
    """Outcome of the chi-square test on the weighted residual sum."""

    statistic: float
    threshold: float
    dof: int
    confidence: float
    passed: bool | None

    def to_dict(self) -> dict[str, object]:
        """Plain-data form (NaN threshold as None)."""
        return {
            "statistic": self.statistic,
            "threshold": None if np.isnan(self.threshold) else self.threshold,
            "dof": self.dof,
            "confidence": self.confidence,
            "passed": self.passed,
        }


def chi_square(
    r: FloatArray, w: FloatArray, n_states: int, n_constraints: int, confidence: float
) -> ChiSquare:
    """The chi-square test of the weighted residuals ``r`` (weights ``w = 1/sigma^2``)."""
    statistic = float(np.sum(w * r * r))
    dof = len(r) - n_states + n_constraints
    if dof <= 0:
        return ChiSquare(statistic, float("nan"), dof, confidence, None)
    threshold = float(chi2.ppf(confidence, dof))
    return ChiSquare(statistic, threshold, dof, confidence, statistic <= threshold)


def normalised_residuals(
    jac: sp.csr_matrix,
    r: FloatArray,
    w: FloatArray,
    cjac: sp.csr_matrix,
    candidates: IntArray,
) -> FloatArray:
    """Normalised residuals of the ``candidates`` rows (NaN for critical measurements)."""
    out = np.full(len(candidates), np.nan)
    if not len(candidates):
        return out
    apply_e = gain_solver(jac, w, cjac)
    rows = jac[candidates]
    sigma2 = 1.0 / w[candidates]
    for start in range(0, len(candidates), _CHUNK):
        block = rows[start : start + _CHUNK]
        ex = apply_e(block.T.toarray())
        explained = np.asarray(block.multiply(ex.T).sum(axis=1)).ravel()
        omega = sigma2[start : start + _CHUNK] - explained
        ok = omega > _CRITICAL * sigma2[start : start + _CHUNK]
        part = np.full(len(omega), np.nan)
        part[ok] = np.abs(r[candidates[start : start + _CHUNK]][ok]) / np.sqrt(omega[ok])
        out[start : start + _CHUNK] = part
    return out
