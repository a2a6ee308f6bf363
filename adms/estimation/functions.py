"""Measurement functions h(x) and their sparse Jacobian in polar coordinates.

Contract:
- The state is the voltage magnitude of every estimated bus and the angle of
  every estimated bus except the island references; :class:`StateMap` gives
  each bus's column (-1: not a state).
- Three kinds of rows, stacked in a :class:`RowStack`:
  *power* rows (``S = V_k conj(M V)`` for a row ``M`` of ``Ybus`` -- bus
  injection -- or of ``Yf``/``Yt`` -- branch flow at that end; a row measures
  ``Re S`` or ``Im S``), *current* rows (``|M V|^2``: the squared magnitude is
  smooth at zero flow, where ``|I|`` has no defined derivative), and
  *voltage* rows (``|V_k|``).
- The sparsity pattern is fixed when a stack is built; each evaluation only
  recomputes values, so a Gauss-Newton iteration costs a few vector
  operations and one CSR assembly without sorting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

__all__ = ["CurrentRows", "PowerRows", "RowStack", "StateMap", "VoltageRows"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class StateMap:
    """State columns: angles first (``theta_col``), then magnitudes (``vm_col``); -1 = fixed."""

    theta_col: IntArray
    vm_col: IntArray
    size: int

    @classmethod
    def build(cls, estimated: BoolArray, ref_bus: IntArray) -> StateMap:
        """Columns for the ``estimated`` buses, the reference angles held fixed."""
        theta = estimated.copy()
        theta[ref_bus] = False
        theta_col = np.full(len(estimated), -1, dtype=np.int64)
        theta_col[theta] = np.arange(int(theta.sum()))
        vm_col = np.full(len(estimated), -1, dtype=np.int64)
        vm_col[estimated] = int(theta.sum()) + np.arange(int(estimated.sum()))
        return cls(theta_col, vm_col, int(theta.sum() + estimated.sum()))


def _with_diagonal(matrix: sp.csr_matrix, diag_col: IntArray) -> sp.csr_matrix:
    """``matrix`` with an explicit (possibly zero) entry at (k, diag_col[k]) of every row."""
    coo = matrix.tocoo()
    rows = np.concatenate([coo.row, np.arange(matrix.shape[0])])
    cols = np.concatenate([coo.col, diag_col])
    data = np.concatenate([coo.data, np.zeros(matrix.shape[0], dtype=complex)])
    out = sp.csr_matrix((data, (rows, cols)), shape=matrix.shape)
    out.sort_indices()
    return out


class PowerRows:
    """``Re``/``Im`` of ``S_k = V[bus_k] * conj(M_k V)`` for stacked admittance rows ``M``."""

    def __init__(self, matrix: sp.csr_matrix, bus: IntArray, is_q: BoolArray) -> None:
        self.matrix = _with_diagonal(matrix, bus)
        self.bus = bus
        self.is_q = is_q
        self.rows = np.repeat(np.arange(len(bus)), np.diff(self.matrix.indptr))
        self.cols = self.matrix.indices.astype(np.int64)
        self.diag = np.flatnonzero(self.cols == bus[self.rows])
        self.q_entry = is_q[self.rows]

    @property
    def count(self) -> int:
        """Number of rows."""
        return len(self.bus)

    def evaluate(self, v: ComplexArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Values and the derivative data (by angle, by magnitude) on the pattern."""
        current = self.matrix @ v
        vk = v[self.bus]
        s = vk * np.conj(current)
        yv = self.matrix.data * v[self.cols]
        vk_e = vk[self.rows]
        d_theta = -1j * vk_e * np.conj(yv)
        d_theta[self.diag] += 1j * s
        d_vm = vk_e * np.conj(yv / np.abs(v[self.cols]))
        d_vm[self.diag] += s / np.abs(vk)
        h = np.where(self.is_q, s.imag, s.real)
        return (
            h,
            np.where(self.q_entry, d_theta.imag, d_theta.real),
            np.where(self.q_entry, d_vm.imag, d_vm.real),
        )


class CurrentRows:
    """Squared current magnitude ``|M_k V|^2`` (p.u.) for stacked branch-end rows ``M``."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.matrix = matrix.tocsr()
        self.matrix.sort_indices()
        self.rows = np.repeat(np.arange(matrix.shape[0]), np.diff(self.matrix.indptr))
        self.cols = self.matrix.indices.astype(np.int64)

    @property
    def count(self) -> int:
        """Number of rows."""
        return int(self.matrix.shape[0])

    def evaluate(self, v: ComplexArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Values and the derivative data (by angle, by magnitude) on the pattern."""
        current = self.matrix @ v
        yv = self.matrix.data * v[self.cols]
        ci = np.conj(current[self.rows])
        # d|I|^2 = 2 Re(conj(I) dI); dI/dtheta_j = j Y V_j, dI/d|V_j| = Y V_j / |V_j|
        d_theta = 2.0 * (ci * 1j * yv).real
        d_vm = 2.0 * (ci * yv / np.abs(v[self.cols])).real
        return np.abs(current) ** 2, d_theta, d_vm


class VoltageRows:
    """Voltage magnitude ``|V[bus_k]|``."""

    def __init__(self, bus: IntArray) -> None:
        self.bus = bus
        self.rows = np.arange(len(bus))
        self.cols = bus

    @property
    def count(self) -> int:
        """Number of rows."""
        return len(self.bus)

    def evaluate(self, v: ComplexArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Values; no angle derivatives, unit magnitude derivatives."""
        return np.abs(v[self.bus]), np.zeros(0), np.ones(len(self.bus))


Rows = PowerRows | CurrentRows | VoltageRows


class RowStack:
    """Rows of several kinds stacked into one vector ``h(x)`` and CSR Jacobian ``H(x)``."""

    def __init__(self, blocks: list[Rows], state: StateMap) -> None:
        self.blocks = blocks
        self.state = state
        self.count = sum(block.count for block in blocks)
        rows: list[IntArray] = []
        cols: list[IntArray] = []
        offset = 0
        for block in blocks:
            if not isinstance(block, VoltageRows):
                rows.append(block.rows + offset)
                cols.append(state.theta_col[block.cols])
            rows.append(block.rows + offset)
            cols.append(state.vm_col[block.cols])
            offset += block.count
        all_rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        all_cols = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        self._keep = np.flatnonzero(all_cols >= 0)
        kept_rows = all_rows[self._keep]
        kept_cols = all_cols[self._keep]
        self._order = np.lexsort((kept_cols, kept_rows))
        self._indices = kept_cols[self._order].astype(np.int32)
        self._indptr = np.concatenate(
            [[0], np.cumsum(np.bincount(kept_rows, minlength=self.count))]
        ).astype(np.int32)

    def evaluate(self, v: ComplexArray) -> tuple[FloatArray, sp.csr_matrix]:
        """``h(x)`` and ``H(x)`` at complex bus voltages ``v``."""
        values: list[FloatArray] = []
        data: list[FloatArray] = []
        for block in self.blocks:
            h, d_theta, d_vm = block.evaluate(v)
            values.append(h)
            if not isinstance(block, VoltageRows):
                data.append(d_theta)
            data.append(d_vm)
        h_all = np.concatenate(values) if values else np.zeros(0)
        flat = np.concatenate(data) if data else np.zeros(0)
        jac = sp.csr_matrix(
            (flat[self._keep][self._order], self._indices, self._indptr),
            shape=(self.count, self.state.size),
        )
        return h_all, jac
