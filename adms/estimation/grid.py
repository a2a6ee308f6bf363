"""The network as the estimator sees it: admittances, islands and where measurements land.

Contract:
- :func:`compile_grid` turns a :class:`NetworkModel` in its live switching
  state into a :class:`Grid` through pandapower's ``pd2ppc`` (the same bus
  fusing, open-switch auxiliary buses and out-of-service handling as its power
  flow, so estimates and power flows agree). The model's net is not modified:
  ``pd2ppc`` runs on a shallow copy, whose cached keys it replaces.
- Grid buses are the energised ``ppci`` buses: buses joined by closed bus-bus
  switches are one grid bus; a line whose switch is open at one end keeps a
  zero-injection auxiliary bus there; de-energised buses are not in the grid.
- Each island (connected set of grid buses) has one angle reference: an
  ``ext_grid`` bus, its angle fixed at the ``ext_grid``'s ``va_degree``.
- :meth:`Grid.bind` maps a :class:`Measurement` to a :class:`Target` (grid bus,
  branch and end) or says why it cannot be used in this topology.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pandapower.auxiliary import _init_runse_options
from pandapower.pd2ppc import _pd2ppc
from pandapower.pypower.idx_brch import F_BUS, SHIFT, T_BUS
from pandapower.pypower.idx_bus import BASE_KV, BUS_TYPE, REF, VA
from pandapower.pypower.makeYbus import makeYbus
from scipy.sparse.csgraph import breadth_first_order, connected_components

from adms.estimation.measurements import ElementKind, Measurement, Quantity, check_measurement
from models.network import NetworkModel

__all__ = ["INJECTION_TABLES", "PSEUDO_TABLES", "Grid", "Target", "compile_grid"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Tables whose elements inject power at one bus, and the sign of ``p_mw`` as
#: consumption (+1: a load, -1: a generator).
PSEUDO_TABLES: dict[str, float] = {"load": 1.0, "storage": 1.0, "sgen": -1.0}
#: Injecting tables the estimator cannot give a pseudo-measurement: their bus
#: has an unknown injection (sources, wards, machines, power electronics).
INJECTION_TABLES: tuple[str, ...] = (
    "ext_grid",
    "gen",
    "ward",
    "xward",
    "motor",
    "asymmetric_load",
    "asymmetric_sgen",
    "svc",
    "ssc",
    "vsc",
)


@dataclass(frozen=True)
class Target:
    """Where a measurement lands: a grid bus, or the end of a grid branch at ``bus``."""

    quantity: Quantity
    bus: int
    branch: int = -1
    at_from: bool = True


@dataclass(eq=False)
class Grid:
    """The compiled network: admittance matrices in p.u. and the maps to GIS ids."""

    model: NetworkModel
    base_mva: float
    ybus: sp.csr_matrix
    yf: sp.csr_matrix
    yt: sp.csr_matrix
    f_bus: IntArray
    t_bus: IntArray
    base_kv: FloatArray
    #: grid bus of each pandapower bus index (-1: de-energised / out of service)
    bus_lookup: IntArray
    #: pandapower bus indices that make up each grid bus (empty: auxiliary bus)
    members: list[list[int]]
    #: grid branch of each line / trafo row (by position), -1 when not energised
    line_branch: IntArray
    trafo_branch: IntArray
    #: (table, position) of each grid branch
    branch_element: list[tuple[str, int]]
    island: IntArray
    ref_bus: IntArray
    ref_va_rad: FloatArray
    va_init_rad: FloatArray
    #: a bus with an injection no pseudo-measurement can describe (ext_grid, gen...)
    unknown_injection: BoolArray
    #: a bus with no in-service injecting element at all (exact zero injection)
    zero_injection: BoolArray

    @property
    def n_bus(self) -> int:
        """Number of grid buses."""
        return int(self.ybus.shape[0])

    @property
    def n_branch(self) -> int:
        """Number of grid branches."""
        return int(self.yf.shape[0])

    def base_ka(self, bus: int | IntArray) -> float | FloatArray:
        """Base current (kA) at a grid bus: ``base_mva / (sqrt(3) * vn_kv)``."""
        return self.base_mva / (np.sqrt(3.0) * self.base_kv[bus])

    def grid_bus(self, pp_bus: int) -> int:
        """Grid bus of a pandapower bus index, -1 if it is not energised."""
        return int(self.bus_lookup[pp_bus]) if 0 <= pp_bus < len(self.bus_lookup) else -1

    def bus_ids(self, bus: int) -> list[str]:
        """GIS ids of the pandapower buses in a grid bus (empty for auxiliary buses)."""
        return [self.bus_gis_id[b] for b in self.members[bus]]

    @functools.cached_property
    def bus_gis_id(self) -> dict[int, str]:
        """GIS id of each pandapower bus index."""
        bus = self.model.net.bus
        return dict(zip(bus.index.tolist(), bus["gis_id"].astype(str).tolist(), strict=True))

    @functools.cached_property
    def _switches(self) -> dict[int, tuple[int, int, str]]:
        """Switch index -> (bus, element, et)."""
        sw = self.model.net.switch
        return {
            int(i): (int(b), int(e), str(et))
            for i, b, e, et in zip(
                sw.index.tolist(),
                sw["bus"].tolist(),
                sw["element"].tolist(),
                sw["et"].tolist(),
                strict=True,
            )
        }

    @functools.cached_property
    def _switch_et(self) -> dict[int, str]:
        return {i: et for i, (_, _, et) in self._switches.items()}

    @functools.cached_property
    def _branch_ends(self) -> dict[str, dict[int, tuple[int, int]]]:
        """Per table, element index -> (position, from/hv bus)."""
        net = self.model.net
        out: dict[str, dict[int, tuple[int, int]]] = {}
        for table, column in (("line", "from_bus"), ("trafo", "hv_bus")):
            frame = net[table]
            out[table] = {
                int(i): (pos, int(b))
                for pos, (i, b) in enumerate(
                    zip(frame.index.tolist(), frame[column].tolist(), strict=True)
                )
            }
        return out

    @functools.cached_property
    def _injecting_buses(self) -> frozenset[int]:
        """Buses (pandapower index) with an in-service injecting element."""
        net = self.model.net
        buses: set[int] = set()
        for table in (*PSEUDO_TABLES, *INJECTION_TABLES):
            frame = net[table] if table in net else None
            if frame is not None and len(frame) and "bus" in frame.columns:
                active = frame["in_service"].to_numpy(dtype=bool)
                buses.update(frame["bus"].to_numpy(dtype=np.int64)[active].tolist())
        return frozenset(buses)

    def bind(self, measurement: Measurement) -> Target | str:
        """Where ``measurement`` lands, or the reason it cannot be used in this topology.

        Raises :class:`MeasurementError` if it does not fit the model at all
        (see :func:`check_measurement`).
        """
        switches = self._switches
        index = check_measurement(self.model, measurement, self._switch_et)
        kind = measurement.kind
        if kind is ElementKind.BUS:
            return self._bind_bus(measurement, index)
        if kind is ElementKind.SWITCH:
            bus, element, et = switches[index]
            if measurement.quantity is Quantity.V:
                return self._bind_bus(measurement, bus)
            table = "line" if et == "l" else "trafo"
            return self._bind_branch(
                measurement, table, element, self._branch_ends[table][element][1] == bus
            )
        return self._bind_branch(measurement, kind.value, index, measurement.side in ("from", "hv"))

    def _bind_bus(self, measurement: Measurement, pp_bus: int) -> Target | str:
        bus = self.grid_bus(pp_bus)
        if bus < 0:
            return _dead_reason(measurement, "bus is de-energised or out of service")
        if measurement.quantity is not Quantity.V and len(self.members[bus]) > 1:
            others = [b for b in self.members[bus] if b != pp_bus and b in self._injecting_buses]
            if others:
                names = ", ".join(self.bus_gis_id[b] for b in others)
                return (
                    f"bus injection ambiguous: the bus is joined by closed bus-bus switches to "
                    f"{names}, which have their own loads or sources"
                )
        return Target(measurement.quantity, bus)

    def _bind_branch(
        self, measurement: Measurement, table: str, index: int, at_from: bool
    ) -> Target | str:
        branches = self.line_branch if table == "line" else self.trafo_branch
        branch = int(branches[self._branch_ends[table][index][0]])
        if branch < 0:
            return _dead_reason(measurement, f"{table} is de-energised or out of service")
        bus = int(self.f_bus[branch] if at_from else self.t_bus[branch])
        return Target(measurement.quantity, bus, branch, at_from)


def _dead_reason(measurement: Measurement, what: str) -> str:
    """The exclusion reason; a clearly non-zero reading hints at a wrong switch state."""
    if abs(measurement.value) > 3.0 * measurement.std_dev:
        return (
            f"{what}, yet it reads {measurement.value:g} {measurement.unit}: "
            "check the switch states (possible topology error)"
        )
    return what


def _has_source(model: NetworkModel) -> bool:
    net = model.net
    if len(net.ext_grid) and bool(net.ext_grid["in_service"].astype(bool).any()):
        return True
    gen = net.gen
    return bool(
        len(gen)
        and "slack" in gen.columns
        and (gen["in_service"].astype(bool) & gen["slack"].fillna(False).astype(bool)).any()
    )


def _empty_grid(model: NetworkModel) -> Grid:
    """The grid of a network without any in-service source: nothing is energised."""
    none = np.zeros(0, dtype=np.int64)
    index = model.net.bus.index.to_numpy(dtype=np.int64)
    empty = sp.csr_matrix((0, 0), dtype=complex)
    return Grid(
        model=model,
        base_mva=float(model.net.sn_mva),
        ybus=empty,
        yf=empty,
        yt=empty,
        f_bus=none,
        t_bus=none,
        base_kv=np.zeros(0),
        bus_lookup=np.full(int(index.max()) + 1 if len(index) else 0, -1, dtype=np.int64),
        members=[],
        line_branch=np.full(len(model.net.line), -1, dtype=np.int64),
        trafo_branch=np.full(len(model.net.trafo), -1, dtype=np.int64),
        branch_element=[],
        island=none,
        ref_bus=none,
        ref_va_rad=np.zeros(0),
        va_init_rad=np.zeros(0),
        unknown_injection=np.zeros(0, dtype=bool),
        zero_injection=np.zeros(0, dtype=bool),
    )


def compile_grid(model: NetworkModel) -> Grid:
    """Build the :class:`Grid` of ``model`` in its current switching state."""
    if not _has_source(model):
        # pandapower raises (a UserWarning) when no bus can be a reference.
        return _empty_grid(model)
    net = copy.copy(model.net)
    _init_runse_options(net, v_start="flat", delta_start="flat", calculate_voltage_angles=True)
    _, ppci = _pd2ppc(net)
    base_mva = float(ppci["baseMVA"])
    bus = ppci["bus"]
    branch = ppci["branch"]
    n_bus = bus.shape[0]
    ybus, yf, yt = makeYbus(base_mva, bus, branch)
    f_bus = branch[:, F_BUS].real.astype(np.int64)
    t_bus = branch[:, T_BUS].real.astype(np.int64)

    lookup = net._pd2ppc_lookups["bus"]
    pp_index = model.net.bus.index.to_numpy(dtype=np.int64)
    grid_of = lookup[pp_index].astype(np.int64)
    grid_of[(grid_of < 0) | (grid_of >= n_bus)] = -1
    bus_lookup = np.full(int(pp_index.max()) + 1 if len(pp_index) else 0, -1, dtype=np.int64)
    bus_lookup[pp_index] = grid_of
    members: list[list[int]] = [[] for _ in range(n_bus)]
    for pp_bus, g in zip(pp_index.tolist(), grid_of.tolist(), strict=True):
        if g >= 0:
            members[g].append(pp_bus)

    branch_is = ppci["internal"]["branch_is"]
    ppc_to_ppci = np.cumsum(branch_is) - 1
    ppc_to_ppci[~branch_is] = -1
    branch_element: list[tuple[str, int]] = [("", -1)] * branch.shape[0]
    element_branch: dict[str, IntArray] = {}
    for table in ("line", "trafo"):
        span = net._pd2ppc_lookups["branch"].get(table)
        rows = np.full(len(model.net[table]), -1, dtype=np.int64)
        if span is not None:
            start, end = span
            rows = ppc_to_ppci[start:end].astype(np.int64)
            for pos, k in enumerate(rows.tolist()):
                if k >= 0:
                    branch_element[k] = (table, pos)
        element_branch[table] = rows

    adjacency = sp.csr_matrix((np.ones(len(f_bus)), (f_bus, t_bus)), shape=(n_bus, n_bus))
    _, island = connected_components(adjacency, directed=False)
    island = island.astype(np.int64)
    is_ref = bus[:, BUS_TYPE].real == REF
    ref_bus = np.array(
        [int(np.flatnonzero((island == k) & is_ref)[0]) for k in range(int(island.max()) + 1)]
        if n_bus
        else [],
        dtype=np.int64,
    )
    ref_va_rad = np.deg2rad(bus[ref_bus, VA].real)

    unknown = np.zeros(n_bus, dtype=bool)
    has_injector = np.zeros(n_bus, dtype=bool)
    for table in (*PSEUDO_TABLES, *INJECTION_TABLES):
        frame = model.net[table] if table in model.net else None
        if frame is None or not len(frame) or "bus" not in frame.columns:
            continue
        active = frame.loc[frame["in_service"].astype(bool), "bus"].to_numpy(dtype=np.int64)
        grid_buses = bus_lookup[active]
        grid_buses = grid_buses[grid_buses >= 0]
        has_injector[grid_buses] = True
        if table in INJECTION_TABLES:
            unknown[grid_buses] = True
    unknown |= is_ref

    return Grid(
        model=model,
        base_mva=base_mva,
        ybus=ybus.tocsr(),
        yf=yf.tocsr(),
        yt=yt.tocsr(),
        f_bus=f_bus,
        t_bus=t_bus,
        base_kv=bus[:, BASE_KV].real.astype(np.float64),
        bus_lookup=bus_lookup,
        members=members,
        line_branch=element_branch["line"],
        trafo_branch=element_branch["trafo"],
        branch_element=branch_element,
        island=island,
        ref_bus=ref_bus,
        ref_va_rad=ref_va_rad,
        va_init_rad=_initial_angles(
            n_bus, f_bus, t_bus, branch[:, SHIFT].real, ref_bus, ref_va_rad
        ),
        unknown_injection=unknown,
        zero_injection=~has_injector & ~is_ref,
    )


def _initial_angles(
    n_bus: int,
    f_bus: IntArray,
    t_bus: IntArray,
    shift_deg: FloatArray,
    ref_bus: IntArray,
    ref_va_rad: FloatArray,
) -> FloatArray:
    """Start angles: each island's reference angle carried through transformer phase shifts.

    A flat start (all angles at the reference) would be ~150 degrees off behind
    a Dyn5 transformer; this puts Gauss-Newton in the right basin from the start.
    """
    va = np.zeros(n_bus)
    if not n_bus:
        return va
    shift = np.deg2rad(shift_deg)
    # Directed both ways: a branch seen from its to-end adds the shift back.
    rows = np.concatenate([f_bus, t_bus, np.full(len(ref_bus), n_bus)])
    cols = np.concatenate([t_bus, f_bus, ref_bus])
    graph = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_bus + 1, n_bus + 1))
    order, pred = breadth_first_order(graph, n_bus, directed=True, return_predecessors=True)
    step: dict[tuple[int, int], float] = {}
    for f, t, s in zip(f_bus.tolist(), t_bus.tolist(), shift.tolist(), strict=True):
        step.setdefault((f, t), -s)
        step.setdefault((t, f), s)
    va_ext = np.zeros(n_bus + 1)
    va_ext[ref_bus] = ref_va_rad
    for node in order[1:].tolist():
        parent = int(pred[node])
        if parent != n_bus:
            va_ext[node] = va_ext[parent] + step[(parent, node)]
    va[:] = va_ext[:n_bus]
    return va
