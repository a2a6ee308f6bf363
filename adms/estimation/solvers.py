"""Linear solvers for one Gauss-Newton step of equality-constrained WLS.

Each solver returns the step ``dx`` minimising ``sum w (r - H dx)^2`` subject
to ``C dx = c`` (the zero-injection constraints, linearised). Solvers are
registered in :data:`SOLVERS` by name, so a new method is one entry:

- ``normal``: the gain matrix ``G = H' W H`` in the KKT system
  ``[[G, C'], [C, 0]]`` -- constraints held exactly, no huge virtual weights;
- ``hachtel``: the augmented (Hachtel) system ``[[W^-1, H, 0], [H', 0, C'],
  [0, C, 0]]``, which never forms ``H' W H`` and so keeps the conditioning of
  ``H`` itself (better when weights span many decades).

Both are symmetric and indefinite; they are equilibrated (symmetric Ruiz
scaling, so per-unit admittances of 1e4 and weights of 1e6 meet on equal
terms) and factorised by SuperLU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from adms.estimation.errors import UnknownSolverError

__all__ = ["SOLVERS", "GainSolver", "Solver", "gain_solver", "get_solver"]

FloatArray = npt.NDArray[np.float64]


class Solver(Protocol):
    """One constrained WLS step: ``step(H, r, w, C, c) -> dx``."""

    def __call__(
        self, jac: sp.csr_matrix, r: FloatArray, w: FloatArray, cjac: sp.csr_matrix, c: FloatArray
    ) -> FloatArray: ...


def _equilibrate(matrix: sp.csr_matrix, sweeps: int = 3) -> tuple[sp.csr_matrix, FloatArray]:
    """Symmetric Ruiz scaling ``D A D`` (entries ~1 in every row); returns it and ``D``."""
    scaled = sp.csr_matrix(matrix, copy=True)
    scaled.sum_duplicates()
    n = scaled.shape[0]
    rows = np.repeat(np.arange(n), np.diff(scaled.indptr))
    cols = scaled.indices
    scale = np.ones(n)
    for _ in range(sweeps):
        row_max = np.zeros(n)
        np.maximum.at(row_max, rows, np.abs(scaled.data))
        factor = 1.0 / np.sqrt(np.where(row_max > 0, row_max, 1.0))
        scaled.data *= factor[rows] * factor[cols]
        scale *= factor
    return scaled, scale


def _factor(matrix: sp.csr_matrix) -> Callable[[FloatArray], FloatArray]:
    """Solve function for ``matrix`` (equilibrated, sparse LU)."""
    scaled, scale = _equilibrate(matrix)
    lu = spla.splu(scaled.tocsc(), permc_spec="MMD_AT_PLUS_A")

    def solve(rhs: FloatArray) -> FloatArray:
        d = scale if rhs.ndim == 1 else scale[:, None]
        return np.asarray(lu.solve(rhs * d)) * d

    return solve


def _kkt(gain: sp.spmatrix, cjac: sp.csr_matrix) -> sp.csr_matrix:
    if cjac.shape[0] == 0:
        return sp.csr_matrix(gain)
    return sp.bmat([[gain, cjac.T], [cjac, None]], format="csr")


def normal_equations(
    jac: sp.csr_matrix, r: FloatArray, w: FloatArray, cjac: sp.csr_matrix, c: FloatArray
) -> FloatArray:
    """Step from the constrained normal equations ``[[H'WH, C'], [C, 0]]``."""
    n = jac.shape[1]
    weighted = sp.csr_matrix(jac.multiply(w[:, None]))
    gain = jac.T @ weighted
    rhs = np.concatenate([weighted.T @ r, c])
    return _factor(_kkt(gain, cjac))(rhs)[:n]


def hachtel(
    jac: sp.csr_matrix, r: FloatArray, w: FloatArray, cjac: sp.csr_matrix, c: FloatArray
) -> FloatArray:
    """Step from the augmented (Hachtel) system, without forming ``H'WH``."""
    m, n = jac.shape
    blocks = [
        [sp.diags(1.0 / w), jac, None],
        [jac.T, None, cjac.T if cjac.shape[0] else None],
    ]
    if cjac.shape[0]:
        blocks.append([None, cjac, None])
    else:
        blocks[0].pop()
        blocks[1].pop()
    system = sp.bmat(blocks, format="csr")
    rhs = np.concatenate([r, np.zeros(n), c])
    return _factor(system)(rhs)[m : m + n]


SOLVERS: dict[str, Solver] = {"normal": normal_equations, "hachtel": hachtel}


def get_solver(name: str) -> Solver:
    """The registered solver ``name``; :class:`UnknownSolverError` if absent."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise UnknownSolverError(
            f"unknown solver {name!r} (one of: {', '.join(SOLVERS)})"
        ) from None


class GainSolver(Protocol):
    """Applies the state covariance ``E`` (the x-block of the KKT inverse) to columns."""

    def __call__(self, rhs: FloatArray) -> FloatArray: ...


def gain_solver(jac: sp.csr_matrix, w: FloatArray, cjac: sp.csr_matrix) -> GainSolver:
    """``B -> E B`` with ``E`` the constrained inverse gain at the solution.

    ``E = G^-1 - G^-1 C' (C G^-1 C')^-1 C G^-1`` is the covariance of the
    estimated state; the residual covariance is ``R - H E H'``.
    """
    n = jac.shape[1]
    gain = jac.T @ sp.csr_matrix(jac.multiply(w[:, None]))
    solve = _factor(_kkt(gain, cjac))
    pad = cjac.shape[0]

    def apply(rhs: FloatArray) -> FloatArray:
        full = np.vstack([rhs, np.zeros((pad, rhs.shape[1]))]) if pad else rhs
        return solve(full)[:n]

    return apply
