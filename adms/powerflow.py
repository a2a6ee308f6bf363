"""Fast AC power flow over many switch configurations, for the study applications.

Contract:
- :class:`GridSolver` is built once from a :class:`NetworkModel`. It takes the
  per-unit branch data from pandapower (``to_ppc`` on a copy with every line
  and transformer switch closed, so each branch has its own row) and turns
  each switch configuration into a power flow in well under a millisecond on
  the bundled networks. It never changes ``model.net``.
- A configuration is a boolean mask over :attr:`GridSolver.branch_ids`: a
  line or transformer conducts when it is in service and every switch on it
  is closed (:meth:`GridSolver.closed_mask`). Bus-bus switches keep the state
  they had when the solver was built (pandapower fuses closed ones).
- :meth:`GridSolver.solve` runs an implicit Z-bus Gauss iteration (the
  constant-impedance network is factorised once per configuration, loads are
  current injections): exact AC results for radial and meshed configurations
  alike. Loads follow their ZIP shares per load (pandapower applies the
  bus-averaged shares to the bus's net injection, DER included; here they
  apply to the load alone). ``gen`` rows count as PQ injections with
  ``q_mvar`` 0; voltage angles of sources and transformer phase shifts are
  ignored (as pandapower does with ``calculate_voltage_angles=False``).
- Buses no source reaches are de-energised: their voltage is 0 and their
  loads are unserved. A branch with any switch open carries nothing at all
  (pandapower keeps an open-ended cable's charging at its closed end: on
  mv_oberrhein that is ~1.4 kW and <1e-3 pu apart; exact otherwise).
- :meth:`GridSolver.solve_batch` solves many injection scenarios (capacitor
  steps, DER reactive power) for one configuration and one set of branch
  admittances at once, for volt-VAR search.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pandapower.converter.pypower.to_ppc import to_ppc
from pandapower.pypower.idx_brch import BR_B, BR_R, BR_STATUS, BR_X, F_BUS, T_BUS, TAP
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import splu

from adms.errors import PowerFlowError, StudyInputError, UnsupportedNetworkError
from models.network import NetworkModel

__all__ = ["BatchResult", "BranchAdmittance", "FlowResult", "GridSolver", "Limits"]

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

_SQRT3 = math.sqrt(3.0)
#: smallest series impedance (pu) a branch may have; avoids dividing by zero on 0-length lines
_Z_MIN = 1e-9


@dataclass(frozen=True)
class Limits:
    """Operating limits the studies enforce: bus voltage band and branch loading."""

    vm_min_pu: float = 0.95
    vm_max_pu: float = 1.05
    max_loading_percent: float = 100.0

    def to_dict(self) -> dict[str, float]:
        """JSON form."""
        return {
            "vm_min_pu": self.vm_min_pu,
            "vm_max_pu": self.vm_max_pu,
            "max_loading_percent": self.max_loading_percent,
        }


@dataclass(frozen=True)
class BranchAdmittance:
    """The four pi-model admittances (pu) of branches: I_f = yff V_f + yft V_t, I_t = ..."""

    yff: ComplexArray
    yft: ComplexArray
    ytf: ComplexArray
    ytt: ComplexArray


@dataclass
class FlowResult:
    """One power flow. Arrays are per solver bus node or per branch (solver order)."""

    converged: bool
    iterations: int
    energised: BoolArray
    vm_pu: FloatArray
    i_ka: FloatArray
    loading_percent: FloatArray
    loss_mw: float
    demand_mw: float
    generation_mw: float
    source_p_mw: float
    load_served: BoolArray
    lim: Limits
    v: ComplexArray
    limits_ok: bool = field(init=False)

    def __post_init__(self) -> None:
        self.limits_ok = self.converged and not self.violations(self.lim)

    @property
    def vm_min_pu(self) -> float:
        """Lowest voltage of an energised bus (nan when none is)."""
        v = self.vm_pu[self.energised]
        return float(v.min()) if v.size else math.nan

    @property
    def vm_max_pu(self) -> float:
        """Highest voltage of an energised bus (nan when none is)."""
        v = self.vm_pu[self.energised]
        return float(v.max()) if v.size else math.nan

    @property
    def max_loading_percent(self) -> float:
        """Highest branch loading (0 when no branch carries current)."""
        return float(np.nanmax(self.loading_percent)) if self.loading_percent.size else 0.0

    def violations(self, lim: Limits) -> list[str]:
        """Short descriptions of the limits broken (empty when all hold)."""
        out = []
        if self.vm_min_pu < lim.vm_min_pu - 1e-9:
            out.append(f"vm_min_pu {self.vm_min_pu:.4f} < {lim.vm_min_pu}")
        if self.vm_max_pu > lim.vm_max_pu + 1e-9:
            out.append(f"vm_max_pu {self.vm_max_pu:.4f} > {lim.vm_max_pu}")
        if self.max_loading_percent > lim.max_loading_percent + 1e-9:
            out.append(f"loading {self.max_loading_percent:.1f} % > {lim.max_loading_percent:g} %")
        return out

    def penalty(self, lim: Limits) -> float:
        """Sum of limit violations (pu voltage plus loading fraction); 0 when feasible."""
        v = self.vm_pu[self.energised]
        if not v.size:
            return 0.0
        under = np.clip(lim.vm_min_pu - v, 0.0, None).sum()
        over = np.clip(v - lim.vm_max_pu, 0.0, None).sum()
        load = np.clip(self.loading_percent - lim.max_loading_percent, 0.0, None).sum() / 100.0
        return float(under + over + load)


@dataclass
class BatchResult:
    """Many scenarios of one configuration: one value per scenario (column)."""

    converged: BoolArray
    loss_mw: FloatArray
    demand_mw: FloatArray
    source_p_mw: FloatArray
    vm_min_pu: FloatArray
    vm_max_pu: FloatArray
    max_loading_percent: FloatArray


class GridSolver:
    """Per-unit data of a model and a fast AC power flow per switch configuration."""

    def __init__(self, model: NetworkModel) -> None:
        """Convert ``model.net`` (a copy of it) to per-unit branch and injection data."""
        self.model = model
        net = model.net
        self._check_supported(net)
        work = _conducting_copy(net)
        ppc = to_ppc(
            work,
            init="flat",
            calculate_voltage_angles=False,
            check_connectivity=False,
            voltage_depend_loads=False,
        )
        self.base_mva = float(ppc["baseMVA"])
        lookup = work._pd2ppc_lookups["bus"]
        self._ppc_template = work
        self.n_node = int(ppc["bus"].shape[0])
        self.node_of_bus: dict[int, int] = {int(b): int(lookup[b]) for b in net.bus.index}
        self.base_kv = np.asarray(ppc["bus"][:, 9], dtype=np.float64)
        bus_ids = _ids(net, "bus")
        self.node_buses: list[list[str]] = [[] for _ in range(self.n_node)]
        for b, gid in zip(net.bus.index, bus_ids, strict=True):
            self.node_buses[self.node_of_bus[int(b)]].append(gid)

        slices = work._pd2ppc_lookups["branch"]
        branch = np.asarray(ppc["branch"])
        self._branch_rows: dict[tuple[str, int], int] = {}
        tables: list[str] = []
        elements: list[int] = []
        for table, (start, stop) in slices.items():
            frame = net[table]
            for k, index in enumerate(frame.index[: stop - start]):
                self._branch_rows[(table, int(index))] = start + k
                tables.append(table)
                elements.append(int(index))
        order = np.argsort(
            [self._branch_rows[(t, e)] for t, e in zip(tables, elements, strict=True)]
        )
        self.branch_table: list[str] = [tables[i] for i in order]
        self.branch_element: list[int] = [elements[i] for i in order]
        rows = np.asarray(
            [
                self._branch_rows[(t, e)]
                for t, e in zip(self.branch_table, self.branch_element, strict=True)
            ],
            dtype=np.int64,
        )
        self._rows = rows
        self.n_branch = len(rows)
        self.f = np.real(branch[rows, F_BUS]).astype(np.int64)
        self.t = np.real(branch[rows, T_BUS]).astype(np.int64)
        self.y = self._admittances(ppc, rows)
        self.branch_ids: list[str] = [
            _id_of(net, t, e) for t, e in zip(self.branch_table, self.branch_element, strict=True)
        ]
        self.branch_pos: dict[str, int] = {gid: k for k, gid in enumerate(self.branch_ids)}
        self.in_service = np.array(
            [
                bool(net[t].at[e, "in_service"])
                for t, e in zip(self.branch_table, self.branch_element, strict=True)
            ],
            dtype=bool,
        ) & (np.real(branch[rows, BR_STATUS]) > 0)
        self._ratings(net)

        # switches on branches: a branch conducts when all of them are closed
        self.switch_branch: dict[str, int] = {}
        self.branch_switches: list[list[str]] = [[] for _ in range(self.n_branch)]
        sw = net.switch
        sw_ids = _ids(net, "switch")
        et_table = {"l": "line", "t": "trafo"}
        for gid, et, element in zip(sw_ids, sw.et, sw.element, strict=True):
            table = et_table.get(str(et))
            if table is None:
                continue
            key = (table, int(element))
            if key not in self._branch_rows:
                continue
            pos = int(np.flatnonzero(rows == self._branch_rows[key])[0])
            self.switch_branch[gid] = pos
            self.branch_switches[pos].append(gid)
        self.bus_bus_switches = frozenset(
            gid for gid, et in zip(sw_ids, sw.et, strict=True) if et == "b"
        )
        self._injections(net)
        self._sources(net)
        self._default_injections: (
            tuple[ComplexArray, ComplexArray, ComplexArray, ComplexArray] | None
        ) = None

    # ------------------------------------------------------------------ build

    @staticmethod
    def _check_supported(net: Any) -> None:
        if len(net.bus) and not net.bus.in_service.all():
            first = net.bus.index[~net.bus.in_service.to_numpy(bool)][0]
            raise UnsupportedNetworkError(
                "out-of-service buses are not supported by the study power flow",
                element=_id_of(net, "bus", int(first)),
                field="in_service",
            )

    def _admittances(self, ppc: Mapping[str, Any], rows: IntArray) -> BranchAdmittance:
        branch = np.asarray(ppc["branch"])

        def extra(name: str) -> FloatArray:
            # to_ppc moves these columns out of the branch matrix (only when non-zero)
            col = ppc.get(name)
            return (
                np.asarray(col, dtype=np.float64)[rows] if col is not None else np.zeros(len(rows))
            )

        r = np.real(branch[rows, BR_R]).astype(np.float64)
        x = np.real(branch[rows, BR_X]).astype(np.float64)
        b = np.real(branch[rows, BR_B]).astype(np.float64)
        g = extra("branch_g")
        r_asym, x_asym = extra("branch_r_asym"), extra("branch_x_asym")
        g_asym, b_asym = extra("branch_g_asym"), extra("branch_b_asym")
        self._r_series = r.copy()
        self.z_series = np.asarray(r + 1j * x, dtype=np.complex128)
        tap = np.real(branch[rows, TAP]).astype(np.float64)
        tap = np.where(tap == 0.0, 1.0, tap)
        zf = r + 1j * x
        zf = np.where(np.abs(zf) < _Z_MIN, _Z_MIN, zf)
        zt = (r + r_asym) + 1j * (x + x_asym)
        zt = np.where(np.abs(zt) < _Z_MIN, _Z_MIN, zt)
        ysf, yst = 1.0 / zf, 1.0 / zt
        bcf = g + 1j * b
        bct = (g + g_asym) + 1j * (b + b_asym)
        return BranchAdmittance(
            yff=np.asarray((ysf + bcf / 2) / (tap * tap), dtype=np.complex128),
            yft=np.asarray(-ysf / tap, dtype=np.complex128),
            ytf=np.asarray(-yst / tap, dtype=np.complex128),
            ytt=np.asarray(yst + bct / 2, dtype=np.complex128),
        )

    def _ratings(self, net: Any) -> None:
        """Per branch: current base at each end (kA per pu) and the rating to compare with."""
        self.i_base_f = self.base_mva / (_SQRT3 * self.base_kv[self.f])
        self.i_base_t = self.base_mva / (_SQRT3 * self.base_kv[self.t])
        self.rating_ka_f = np.full(self.n_branch, np.inf)
        self.rating_ka_t = np.full(self.n_branch, np.inf)
        for k, (table, index) in enumerate(
            zip(self.branch_table, self.branch_element, strict=True)
        ):
            row = net[table].loc[index]
            if table == "line":
                limit = (
                    float(row.max_i_ka) * float(row.get("df", 1.0)) * float(row.get("parallel", 1))
                )
                self.rating_ka_f[k] = self.rating_ka_t[k] = limit
            elif table == "trafo":
                sn = float(row.sn_mva) * float(row.get("parallel", 1))
                self.rating_ka_f[k] = sn / (_SQRT3 * float(row.vn_hv_kv))
                self.rating_ka_t[k] = sn / (_SQRT3 * float(row.vn_lv_kv))

    def _injections(self, net: Any) -> None:
        """Loads (ZIP per load), DER and shunts as arrays over their rows."""
        load = net.load
        self.load_ids = _ids(net, "load")
        self.load_node = self._nodes(load.bus)
        on = load.in_service.to_numpy(bool) if len(load) else np.zeros(0, bool)
        scale = load.scaling.to_numpy(float) if len(load) else np.zeros(0)
        self.load_p_mw = load.p_mw.to_numpy(float) * scale * on
        self.load_q_mvar = load.q_mvar.to_numpy(float) * scale * on

        def share(col: str) -> FloatArray:
            if col not in load.columns or not len(load):
                return np.zeros(len(load))
            return np.nan_to_num(load[col].to_numpy(float)) / 100.0

        self.load_zp, self.load_ip = share("const_z_p_percent"), share("const_i_p_percent")
        self.load_zq, self.load_iq = share("const_z_q_percent"), share("const_i_q_percent")
        self.load_customers = (
            np.nan_to_num(load["customers"].to_numpy(float)).astype(np.int64)
            if "customers" in load.columns
            else np.zeros(len(load), np.int64)
        )

        sgen = net.sgen
        self.sgen_ids = _ids(net, "sgen")
        self.sgen_node = self._nodes(sgen.bus)
        son = sgen.in_service.to_numpy(bool) if len(sgen) else np.zeros(0, bool)
        sscale = sgen.scaling.to_numpy(float) if len(sgen) else np.zeros(0)
        self.sgen_p_mw = sgen.p_mw.to_numpy(float) * sscale * son
        self.sgen_q_mvar = sgen.q_mvar.to_numpy(float) * sscale * son
        self.sgen_on = son

        gen = net.gen
        gon = gen.in_service.to_numpy(bool) if len(gen) else np.zeros(0, bool)
        self.gen_node = self._nodes(gen.bus)
        self.gen_p_mw = (
            gen.p_mw.to_numpy(float) * gen.scaling.to_numpy(float) * gon
            if len(gen)
            else np.zeros(0)
        )

        shunt = net.shunt
        self.shunt_ids = _ids(net, "shunt")
        self.shunt_node = self._nodes(shunt.bus)
        if len(shunt):
            vn_bus = net.bus.vn_kv.loc[shunt.bus].to_numpy(float)
            factor = (vn_bus / shunt.vn_kv.to_numpy(float)) ** 2
            shon = shunt.in_service.to_numpy(bool)
            # consumption per step at 1 pu bus voltage (pandapower sign: capacitor q < 0)
            self.shunt_s_step = (
                (shunt.p_mw.to_numpy(float) + 1j * shunt.q_mvar.to_numpy(float)) * factor * shon
            ) / self.base_mva
            self.shunt_step = shunt.step.to_numpy(float)
        else:
            self.shunt_s_step = np.zeros(0, complex)
            self.shunt_step = np.zeros(0)

    def _sources(self, net: Any) -> None:
        eg = net.ext_grid[net.ext_grid.in_service.to_numpy(bool)]
        nodes: dict[int, complex] = {}
        for bus, vm in zip(eg.bus, eg.vm_pu, strict=True):
            nodes.setdefault(self.node_of_bus[int(bus)], complex(float(vm)))
        if len(net.gen) and "slack" in net.gen.columns:
            slack = net.gen[net.gen.in_service.to_numpy(bool) & net.gen.slack.fillna(False)]
            for bus, vm in zip(slack.bus, slack.vm_pu, strict=True):
                nodes.setdefault(self.node_of_bus[int(bus)], complex(float(vm)))
        if not nodes:
            raise UnsupportedNetworkError("no in-service ext_grid or slack gen", field="ext_grid")
        self.source_node = np.array(sorted(nodes), dtype=np.int64)
        self.source_v = np.array([nodes[n] for n in self.source_node], dtype=complex)

    def _nodes(self, buses: Iterable[Any]) -> IntArray:
        return np.array([self.node_of_bus[int(b)] for b in buses], dtype=np.int64)

    # --------------------------------------------------------------- queries

    def closed_mask(self, states: Mapping[str, bool] | None = None) -> BoolArray:
        """Conducting branches for the model's switch states overridden by ``states``."""
        net = self.model.net
        closed = dict(zip(_ids(net, "switch"), net.switch.closed.to_numpy(bool), strict=True))
        if states:
            for gid, value in states.items():
                if gid in self.bus_bus_switches and bool(value) != closed[gid]:
                    raise UnsupportedNetworkError(
                        "a study cannot operate a bus-bus switch", element=gid, field="closed"
                    )
                if gid not in closed:
                    raise StudyInputError("no such switch", element=gid)
                closed[gid] = bool(value)
        mask = self.in_service.copy()
        for k, switches in enumerate(self.branch_switches):
            if switches and not all(closed[s] for s in switches):
                mask[k] = False
        return mask

    def energised(self, closed: BoolArray) -> BoolArray:
        """Nodes a conducting path joins to a source."""
        return self._topology(closed)[1]

    def topology(self, closed: BoolArray) -> tuple[IntArray, BoolArray]:
        """Island label of every node and the energised mask, to pass to :meth:`solve`."""
        return self._topology(closed)

    def _topology(self, closed: BoolArray) -> tuple[IntArray, BoolArray]:
        """Island label of every node and the energised mask (union-find; small nets)."""
        parent = list(range(self.n_node))
        for a, b in zip(self.f[closed].tolist(), self.t[closed].tolist(), strict=True):
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            while parent[b] != b:
                parent[b] = parent[parent[b]]
                b = parent[b]
            if a != b:
                parent[a] = b
        for k in range(self.n_node):
            root = k
            while parent[root] != root:
                root = parent[root]
            parent[k] = root
        labels = np.asarray(parent, dtype=np.int64)
        live = np.isin(labels, labels[self.source_node])
        return labels, live

    def is_radial(self, closed: BoolArray, live: BoolArray | None = None) -> bool:
        """No loop among energised nodes (a path between two sources counts as a loop)."""
        live = self.energised(closed) if live is None else live
        edges = int(np.count_nonzero(closed & live[self.f]))
        # a tree over the live nodes plus one virtual node joined to every source
        return edges == int(live.sum()) - len(self.source_node)

    def load_p_at(self, vm: FloatArray) -> FloatArray:
        """Active power of each load (MW) at its bus voltage ``vm`` (per node); 0 when dead."""
        v = vm[self.load_node]
        p = self.load_p_mw * (
            1 - self.load_zp - self.load_ip + self.load_ip * v + self.load_zp * v * v
        )
        return np.where(v > 0, p, 0.0)

    # ------------------------------------------------------------------ solve

    def solve(
        self,
        closed: BoolArray,
        *,
        limits: Limits | None = None,
        admittance: BranchAdmittance | None = None,
        shunt_step: FloatArray | None = None,
        sgen_q_mvar: FloatArray | None = None,
        resistive: bool = False,
        tol: float = 1e-9,
        max_iter: int = 60,
        topology: tuple[IntArray, BoolArray] | None = None,
        v_start: ComplexArray | None = None,
    ) -> FlowResult:
        """AC power flow of one configuration (see the module doc).

        ``admittance`` replaces the branch data (e.g. other tap positions),
        ``shunt_step`` and ``sgen_q_mvar`` the shunt steps and DER reactive
        power. ``resistive`` drops every reactance (the loss-optimal flow
        pattern of a meshed network, for reconfiguration). ``topology`` is
        :meth:`topology` of ``closed`` when the caller has it already;
        ``v_start`` (complex, per node) a start for the iteration, e.g. the
        result of a neighbouring configuration.
        """
        lim = limits or Limits()
        y = admittance or self.y
        if resistive:
            y = self._resistive()
        steps = self.shunt_step if shunt_step is None else shunt_step
        q_sgen = self.sgen_q_mvar if sgen_q_mvar is None else sgen_q_mvar
        if shunt_step is None and sgen_q_mvar is None:
            if self._default_injections is None:
                self._default_injections = self._node_injections(steps[:, None], q_sgen[:, None])
            s_const, s_i, s_z, y_elem = self._default_injections
        else:
            s_const, s_i, s_z, y_elem = self._node_injections(steps[:, None], q_sgen[:, None])
        topo = topology if topology is not None else self._topology(closed)
        live = topo[1]
        v, iters, ok = self._iterate(
            closed, topo, y, s_const, s_i, s_z, y_elem, tol, max_iter, v_start
        )
        v1 = v[:, 0]
        vm = np.abs(v1)
        i_f, i_t = self._branch_currents(closed, y, v)
        i_ka = np.maximum(np.abs(i_f[:, 0]) * self.i_base_f, np.abs(i_t[:, 0]) * self.i_base_t)
        loading = 100.0 * np.maximum(
            np.abs(i_f[:, 0]) * self.i_base_f / self.rating_ka_f,
            np.abs(i_t[:, 0]) * self.i_base_t / self.rating_ka_t,
        )
        loss = float(self._losses(closed, v, i_f, i_t)[0])
        load_p = self.load_p_at(vm)
        gen = float(self.sgen_p_mw[live[self.sgen_node]].sum()) + float(
            self.gen_p_mw[live[self.gen_node]].sum()
        )
        shunt_p = (
            float((np.real(self._shunt_s(steps[:, None])[:, 0]) * vm[self.shunt_node] ** 2).sum())
            * self.base_mva
        )
        demand = float(load_p.sum())
        return FlowResult(
            converged=ok,
            iterations=iters,
            energised=live,
            vm_pu=np.where(live, vm, 0.0),
            i_ka=np.where(closed, i_ka, 0.0),
            loading_percent=np.where(closed, loading, 0.0),
            loss_mw=loss,
            demand_mw=demand,
            generation_mw=gen,
            source_p_mw=demand + loss + shunt_p - gen,
            load_served=live[self.load_node],
            lim=lim,
            v=v1,
        )

    def solve_batch(
        self,
        closed: BoolArray,
        *,
        admittance: BranchAdmittance | None = None,
        shunt_step: FloatArray | None = None,
        sgen_q_mvar: FloatArray | None = None,
        tol: float = 1e-9,
        max_iter: int = 60,
    ) -> BatchResult:
        """Many scenarios at once: ``shunt_step`` (n_shunt, B) and ``sgen_q_mvar`` (n_sgen, B)."""
        y = admittance or self.y
        steps = self.shunt_step[:, None] if shunt_step is None else shunt_step
        q_sgen = self.sgen_q_mvar[:, None] if sgen_q_mvar is None else sgen_q_mvar
        width = max(steps.shape[1], q_sgen.shape[1])
        steps = np.broadcast_to(steps, (steps.shape[0], width))
        q_sgen = np.broadcast_to(q_sgen, (q_sgen.shape[0], width))
        s_const, s_i, s_z, y_elem = self._node_injections(steps, q_sgen)
        topo = self._topology(closed)
        live = topo[1]
        v, _, ok = self._iterate(closed, topo, y, s_const, s_i, s_z, y_elem, tol, max_iter, None)
        vm = np.abs(v)
        i_f, i_t = self._branch_currents(closed, y, v)
        loading = 100.0 * np.maximum(
            np.abs(i_f) * (self.i_base_f / self.rating_ka_f)[:, None],
            np.abs(i_t) * (self.i_base_t / self.rating_ka_t)[:, None],
        )
        loading = np.where(closed[:, None], loading, 0.0)
        loss = self._losses(closed, v, i_f, i_t)
        vl = vm[self.load_node]
        p = self.load_p_mw[:, None] * (
            1
            - (self.load_zp + self.load_ip)[:, None]
            + self.load_ip[:, None] * vl
            + self.load_zp[:, None] * vl * vl
        )
        demand = np.where(vl > 0, p, 0.0).sum(axis=0)
        gen = float(self.sgen_p_mw[live[self.sgen_node]].sum()) + float(
            self.gen_p_mw[live[self.gen_node]].sum()
        )
        shunt_p = (np.real(self._shunt_s(steps)) * vm[self.shunt_node] ** 2).sum(
            axis=0
        ) * self.base_mva
        vlive = vm[live]
        return BatchResult(
            converged=np.full(width, ok),
            loss_mw=loss,
            demand_mw=demand,
            source_p_mw=demand + loss + shunt_p - gen,
            vm_min_pu=vlive.min(axis=0) if vlive.size else np.full(width, np.nan),
            vm_max_pu=vlive.max(axis=0) if vlive.size else np.full(width, np.nan),
            max_loading_percent=loading.max(axis=0) if loading.size else np.zeros(width),
        )

    def admittance_for_taps(self, positions: Mapping[int, int]) -> BranchAdmittance:
        """Branch admittances with transformers (pandapower index -> tap_pos) set.

        pandapower computes the ratio (and any tap-dependent impedance) for
        each tap changer type; each call converts the net once (~5 ms).
        """
        work = self._ppc_template
        saved = work.trafo.tap_pos.copy()
        try:
            for index, pos in positions.items():
                work.trafo.at[index, "tap_pos"] = float(pos)
            ppc = to_ppc(
                work,
                init="flat",
                calculate_voltage_angles=False,
                check_connectivity=False,
                voltage_depend_loads=False,
            )
        finally:
            work.trafo["tap_pos"] = saved
        return self._admittances(ppc, self._rows)

    # ------------------------------------------------------------- internals

    def _shunt_s(self, steps: FloatArray) -> ComplexArray:
        return np.asarray(self.shunt_s_step[:, None] * steps, dtype=np.complex128)

    def _node_injections(
        self, steps: FloatArray, q_sgen: FloatArray
    ) -> tuple[ComplexArray, ComplexArray, ComplexArray, ComplexArray]:
        """Per node consumption (pu at 1 pu voltage): constant S, I and Z parts, shunt Y."""
        n, width = self.n_node, max(steps.shape[1], q_sgen.shape[1])
        base = self.base_mva
        p, q = self.load_p_mw, self.load_q_mvar
        zp, ip, zq, iq = self.load_zp, self.load_ip, self.load_zq, self.load_iq
        s_const = np.zeros((n, width), complex)
        s_i = np.zeros((n, width), complex)
        s_z = np.zeros((n, width), complex)
        np.add.at(
            s_const, self.load_node, ((p * (1 - zp - ip) + 1j * q * (1 - zq - iq)) / base)[:, None]
        )
        np.add.at(s_i, self.load_node, ((p * ip + 1j * q * iq) / base)[:, None])
        np.add.at(s_z, self.load_node, ((p * zp + 1j * q * zq) / base)[:, None])
        np.add.at(
            s_const,
            self.sgen_node,
            -(self.sgen_p_mw[:, None] + 1j * q_sgen * self.sgen_on[:, None]) / base,
        )
        np.add.at(s_const, self.gen_node, -(self.gen_p_mw / base)[:, None])
        y_elem = np.zeros((n, width), complex)
        np.add.at(y_elem, self.shunt_node, self._shunt_s(steps))
        return s_const, s_i, s_z, y_elem

    def _resistive(self) -> BranchAdmittance:
        r = self._r_series
        ys = np.asarray(1.0 / np.where(np.abs(r) < _Z_MIN, _Z_MIN, r), dtype=np.complex128)
        return BranchAdmittance(yff=ys, yft=-ys, ytf=-ys, ytt=ys.copy())

    def _iterate(
        self,
        closed: BoolArray,
        topology: tuple[IntArray, BoolArray],
        y: BranchAdmittance,
        s_const: ComplexArray,
        s_i: ComplexArray,
        s_z: ComplexArray,
        y_elem: ComplexArray,
        tol: float,
        max_iter: int,
        v_start: ComplexArray | None,
    ) -> tuple[ComplexArray, int, bool]:
        n = self.n_node
        width = s_const.shape[1]
        v = np.zeros((n, width), complex)
        labels, live = topology
        src = np.zeros(n, bool)
        src[self.source_node] = True
        unknown = np.flatnonzero(live & ~src)
        v[self.source_node, :] = self.source_v[:, None]
        if not unknown.size:
            return v, 0, True
        # the source voltage of each island, as a flat start
        start = np.zeros(n, complex)
        start[labels[self.source_node]] = self.source_v
        v[unknown, :] = start[labels[unknown]][:, None]
        if v_start is not None:
            warm = np.abs(v_start[unknown]) > 0
            v[unknown[warm], :] = v_start[unknown[warm]][:, None]
        pos = np.full(n, -1, np.int64)
        pos[unknown] = np.arange(unknown.size)
        on = closed & live[self.f]
        f, t = self.f[on], self.t[on]
        rows = np.concatenate([f, f, t, t])
        cols = np.concatenate([f, t, f, t])
        data = np.concatenate([y.yff[on], y.yft[on], y.ytf[on], y.ytt[on]])
        r, c = pos[rows], pos[cols]
        inner = (r >= 0) & (c >= 0)
        to_src = (r >= 0) & (c < 0)
        y_uu = csc_matrix((data[inner], (r[inner], c[inner])), shape=(unknown.size, unknown.size))
        try:
            lu = splu(y_uu)
        except RuntimeError as err:
            raise PowerFlowError(f"singular network admittance matrix: {err}") from err
        rhs_src = np.zeros((unknown.size, width), complex)
        np.add.at(rhs_src, r[to_src], -(data[to_src][:, None] * v[cols[to_src], :]))
        sc, si, sz, ye = s_const[unknown], s_i[unknown], s_z[unknown], y_elem[unknown]
        vu = v[unknown]
        for it in range(1, max_iter + 1):
            vm = np.abs(vu)
            s = sc + si * vm + sz * vm * vm
            current = np.conj(s / vu) + np.conj(ye) * vu
            new = lu.solve(np.asarray(rhs_src - current, dtype=complex))
            if new.ndim == 1:
                new = new[:, None]
            step = float(np.max(np.abs(new - vu)))
            vu = new
            if not np.all(np.isfinite(vu)):
                break
            if step < tol:
                v[unknown] = vu
                return v, it, True
        v[unknown] = np.where(np.isfinite(vu), vu, 0.0)
        return v, max_iter, False

    def _branch_currents(
        self, closed: BoolArray, y: BranchAdmittance, v: ComplexArray
    ) -> tuple[ComplexArray, ComplexArray]:
        vf, vt = v[self.f], v[self.t]
        on = closed[:, None]
        i_f = np.where(on, y.yff[:, None] * vf + y.yft[:, None] * vt, 0.0)
        i_t = np.where(on, y.ytf[:, None] * vf + y.ytt[:, None] * vt, 0.0)
        return i_f, i_t

    def _losses(
        self, closed: BoolArray, v: ComplexArray, i_f: ComplexArray, i_t: ComplexArray
    ) -> FloatArray:
        s = v[self.f] * np.conj(i_f) + v[self.t] * np.conj(i_t)
        return np.asarray(np.real(s).sum(axis=0) * self.base_mva, dtype=np.float64)

    # ---------------------------------------------------------------- helpers

    def bus_vm(self, result: FlowResult) -> dict[str, float]:
        """Voltage of every bus (GIS id) in a result."""
        out: dict[str, float] = {}
        for node, buses in enumerate(self.node_buses):
            for gid in buses:
                out[gid] = float(result.vm_pu[node])
        return out

    def overloaded(self, result: FlowResult, lim: Limits) -> list[str]:
        """GIS ids of branches above the loading limit."""
        return [
            self.branch_ids[k]
            for k in np.flatnonzero(result.loading_percent > lim.max_loading_percent + 1e-9)
        ]

    def customers_served(self, result: FlowResult) -> int:
        """Customers of loads on energised buses."""
        return int(self.load_customers[result.energised[self.load_node]].sum())


def _conducting_copy(net: Any) -> Any:
    """A copy where each line/transformer has its own branch row in pandapower's ppc."""
    work = copy.deepcopy(net)
    sw = work.switch
    if len(sw):
        mask = sw.et.isin(["l", "t", "t3"]).to_numpy(bool)
        sw.loc[mask, "closed"] = True
    for table in ("line", "trafo"):
        if len(work[table]):
            work[table]["in_service"] = True
    return work


def _ids(net: Any, table: str) -> list[str]:
    frame = net[table]
    if "gis_id" in frame.columns:
        return [
            v if isinstance(v, str) else f"{table}-{i}"
            for i, v in zip(frame.index, frame["gis_id"], strict=True)
        ]
    return [f"{table}-{i}" for i in frame.index]


def _id_of(net: Any, table: str, index: int) -> str:
    frame = net[table]
    if "gis_id" in frame.columns:
        value = frame.at[index, "gis_id"]
        if isinstance(value, str):
            return value
    return f"{table}-{index}"


def ids_of(net: Any, table: str) -> list[str]:
    """GIS ids of a table's rows (``<table>-<index>`` where a row has none)."""
    return _ids(net, table)
