"""A power-flow-driven simulated field: the network's RTUs report a pandapower power flow.

Contract:
- :class:`GridSimulator` owns a copy of a :class:`~models.network.NetworkModel`
  and a :class:`~rig.field.SimulatedField` built from a configuration whose
  points are bound to the model's elements (:mod:`models.binding`; a
  generated or an engineer-edited one). Every bound point reports what the
  power flow (or the simulated state) says: switch positions, protection
  trips, FPIs, P/Q/S/I at line ends and transformer sides, bus voltages,
  load/DER/capacitor P and Q, tap positions, capacitor steps, DER limits, in
  the point's unit. Analog measurements get Gaussian noise of
  ``noise_pct`` percent of their value. De-energised parts report 0; a
  power flow that does not converge makes every analog INVALID.
- Loads follow a daily curve (``p_mw * scaling * curve * scale``: the
  model's scaling is its coincidence factor) and DER a curve per ``sgen``
  type, PV by default (``p_mw * curve``, at most the DER's limit: the
  model's snapshot scaling, often 0 in load cases, is ignored), over a
  simulated clock running ``time_scale`` times real time (1440: one
  simulated day per real minute; 0 freezes it). Every ``update_period_s``
  the clock advances, the power flow re-runs and fresh measurements are
  published.
- Controls received by the outstations change the net (switch position,
  tap position within its range, capacitor steps within 0..max_step, DER
  active power limit); the power flow re-runs at once and the RTUs report
  the new state. Unbound controls keep the field's default behaviour.
- Faults (a radial protection model): :meth:`GridSimulator.inject_fault`
  on a line sets every FPI on the supply path from the source to the line
  and trips the nearest closed breaker or recloser upstream; with
  ``reclose_attempts`` it recloses after ``reclose_interval_s`` and trips
  again ``trip_delay_s`` later while the fault persists, then locks out.
  Closing any switch that re-energises a faulted line trips again (and sets
  the FPIs on the new path). :meth:`GridSimulator.clear_fault` removes the
  fault and resets the FPIs; tripped devices stay open until commanded.
  Fault currents are not simulated: measurements show the load flow.
- Measurement failures: :meth:`GridSimulator.fail_measurement` makes a
  point report INVALID (its last value) or freeze at its last value.
  Comm loss and stuck switches are the field's (``field.stop_device``,
  ``field.behaviour(device).stuck``).
- Everything runs on the event loop; the power flow (~25 ms on
  mv_oberrhein) runs inline. The first one pays numba's JIT compilation
  (~2 s) and is made by :meth:`GridSimulator.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx
import numpy as np
import pandapower as pp
import pandapower.topology as pp_topology
import pandas as pd

from models.binding import Measurand, Quantity, resolve_bindings
from models.network import NetworkModel
from models.topology import TopologyProcessor
from protocols.base import DoubleState, PointKind, ProtocolError, Quality
from rig.field import Operation, SimulatedField
from scada.config import ScadaConfig

__all__ = [
    "LOAD_PROFILE",
    "MEASURED",
    "PV_PROFILE",
    "DailyProfile",
    "FaultReport",
    "GridError",
    "GridOptions",
    "GridSimulator",
    "SwitchEvent",
]

log = logging.getLogger(__name__)

FailureMode = Literal["invalid", "frozen"]

#: quantities a power flow measures: they get noise, and are INVALID when it fails
MEASURED = frozenset({Quantity.P, Quantity.Q, Quantity.S, Quantity.I, Quantity.V, Quantity.VM_PU})
_CONTROLLABLE = frozenset({Quantity.STATUS, Quantity.TAP, Quantity.STEP, Quantity.P_LIMIT})
_PROTECTIVE = frozenset({"breaker", "recloser"})
_SOURCE = "source"  # the node joining every source in the supply-path graph


class GridError(ProtocolError):
    """A request the simulated grid cannot carry out (the message names the element)."""


@dataclass(frozen=True)
class DailyProfile:
    """A periodic daily curve: ``values`` equally spaced over 24 h, linearly interpolated."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a daily profile needs at least one value")

    def at(self, hour: float) -> float:
        """The curve's value at ``hour`` (any real number; taken modulo 24)."""
        n = len(self.values)
        x = (hour % 24.0) / 24.0 * n
        i = int(x) % n
        frac = x - int(x)
        return self.values[i] * (1 - frac) + self.values[(i + 1) % n] * frac


#: a residential/commercial mix, hourly from 00:00, peak 1.0 at 19:00
LOAD_PROFILE = DailyProfile(
    (0.45, 0.40, 0.37, 0.36, 0.37, 0.42, 0.55, 0.70, 0.75, 0.72, 0.70, 0.72,
     0.78, 0.75, 0.68, 0.65, 0.68, 0.80, 0.95, 1.00, 0.97, 0.88, 0.72, 0.55)
)  # fmt: skip
#: clear-sky PV output, hourly from 00:00
PV_PROFILE = DailyProfile(
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.10, 0.25, 0.45, 0.65, 0.80,
     0.90, 0.92, 0.85, 0.70, 0.50, 0.30, 0.12, 0.03, 0.0, 0.0, 0.0, 0.0)
)  # fmt: skip
_FLAT = DailyProfile((1.0,))


@dataclass(frozen=True)
class GridOptions:
    """How the simulated grid behaves (see the module docstring)."""

    #: standard deviation of analog noise, percent of the value
    noise_pct: float = 0.0
    #: simulated seconds per real second (0: the clock stands still)
    time_scale: float = 1.0
    #: simulated time of day at start, hours
    start_hour: float = 12.0
    #: real seconds between clock steps and measurement refreshes (0: only on events)
    update_period_s: float = 1.0
    load_profile: DailyProfile = LOAD_PROFILE
    #: DER curve per ``sgen`` ``type``; types not listed run flat at their rating
    der_profiles: Mapping[str, DailyProfile] = field(default_factory=lambda: {"PV": PV_PROFILE})
    #: protection operating time after closing onto a fault
    trip_delay_s: float = 0.1
    #: dead time before each reclose attempt
    reclose_interval_s: float = 1.0
    #: seed of the measurement noise (None: not reproducible)
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.noise_pct < 0 or self.time_scale < 0 or self.update_period_s < 0:
            raise GridError("noise_pct, time_scale and update_period_s must be >= 0")
        if self.reclose_interval_s <= self.trip_delay_s:
            raise GridError("reclose_interval_s must be longer than trip_delay_s")


@dataclass(frozen=True)
class FaultReport:
    """What protection did for one fault: GIS ids of the tripped device and the FPIs set."""

    line: str
    #: the breaker/recloser that tripped (None: the line is not energised, nothing tripped)
    protection: str | None
    fpis: tuple[str, ...]
    deenergised_buses: tuple[str, ...]


@dataclass(frozen=True)
class SwitchEvent:
    """A switch changed position: when (POSIX s), which, and why.

    ``cause``: ``command`` (from a control centre), ``protection`` (a trip),
    ``reclose``, or what a direct :meth:`GridSimulator.set_switch` caller gave.
    """

    time_s: float
    switch: str
    closed: bool
    cause: str


@dataclass(frozen=True)
class _Bound:
    """A bound point with its element's position in its pandapower table."""

    name: str
    kind: PointKind
    m: Measurand
    pos: int
    noisy: bool


class GridSimulator:
    """A simulated field whose values come from a power flow of ``model``'s network."""

    def __init__(
        self,
        model: NetworkModel,
        config: ScadaConfig,
        options: GridOptions | None = None,
    ) -> None:
        """Copy ``model`` and build the field; raises BindingValidationError for bad elements."""
        self.options = opts = options or GridOptions()
        self.model = model.copy()
        self.net = self.model.net
        self.config = config
        self.topology = TopologyProcessor(self.model)
        self.field = SimulatedField(config, on_operate=self._operate)
        self._rng = np.random.default_rng(opts.seed)
        self._time_scale = opts.time_scale
        self._sim_s = 0.0
        self._load_scale = 1.0
        self._load_override: dict[int, float] = {}
        self.converged = False
        self._init = "auto"
        self._faults: dict[str, int] = {}
        self._tripped: set[str] = set()
        self._lockouts: set[str] = set()
        self._reclosing: set[str] = set()
        #: FPIs set by each fault (a fault's are reset when it is cleared)
        self._fault_fpis: dict[str, set[str]] = {}
        self._failed: dict[str, FailureMode] = {}
        self._published: dict[str, tuple[float, Quality]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._trip_timer: asyncio.TimerHandle | None = None
        #: every switch operation, in order
        self.switch_log: list[SwitchEvent] = []
        net = self.net
        self._base_load = (
            net.load.p_mw.to_numpy(float).copy(),
            net.load.q_mvar.to_numpy(float).copy(),
            net.load.scaling.to_numpy(float).copy(),
        )
        self._sgen_profile = [
            opts.der_profiles.get(t, _FLAT) if isinstance(t, str) else _FLAT
            for t in (net.sgen["type"] if "type" in net.sgen.columns else [None] * len(net.sgen))
        ]
        self._sgen_rating = np.where(
            net.sgen.sn_mva.notna().to_numpy(bool),
            net.sgen.sn_mva.to_numpy(float, na_value=0.0),
            net.sgen.p_mw.to_numpy(float),
        )
        self._p_limit = self._sgen_rating.copy()
        self._bound = self._bind(config)
        self._by_name = {b.name: b for b in self._bound}
        #: every monitored point bound to the model, by point name
        self.bindings: dict[str, Measurand] = {b.name: b.m for b in self._bound}
        self._fpi_ids = self.model.ids("fpi")

    def _bind(self, config: ScadaConfig) -> list[_Bound]:
        measurands = resolve_bindings(config, self.model)
        out = []
        for dp in config.expand():
            if not dp.device.enabled:
                continue
            for p in dp.points:
                m = measurands.get(p.name)
                if m is None or p.template.address < 0:
                    continue
                ref = self.model.locate(m.element.gis_id)
                pos = int(self.net[ref.table].index.get_loc(ref.index))
                out.append(_Bound(p.name, p.kind, m, pos, m.quantity in MEASURED))
        return out

    # ------------------------------------------------------------ lifecycle
    async def start(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Solve the first power flow (JIT), then serve every device with its values."""
        self._loop = asyncio.get_running_loop()
        self.solve()
        self.publish()
        await self.field.start(progress)
        if self.options.update_period_s > 0:
            self._spawn(self._clock())

    async def stop(self) -> None:
        if self._trip_timer is not None:
            self._trip_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.field.stop()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _clock(self) -> None:
        period = self.options.update_period_s
        last = time.monotonic()
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            try:
                if self._time_scale > 0:
                    self._sim_s += (now - last) * self._time_scale
                    self.solve()
                self.publish()
            except Exception:  # a bad step must not stop the clock; it is logged once per step
                log.exception("grid: clock step failed")
            last = now

    # ----------------------------------------------------------------- time
    @property
    def sim_hour(self) -> float:
        """Simulated time of day, hours (0..24)."""
        return (self.options.start_hour + self._sim_s / 3600.0) % 24.0

    @property
    def time_scale(self) -> float:
        return self._time_scale

    def set_time_scale(self, time_scale: float) -> None:
        """Simulated seconds per real second from now on (0 freezes the clock)."""
        if time_scale < 0:
            raise GridError(f"time_scale {time_scale} must be >= 0")
        self._time_scale = time_scale

    # ---------------------------------------------------------------- loads
    def scale_loads(self, scale: float) -> None:
        """Multiply every load that follows the profile by ``scale``; re-solve and publish."""
        if scale < 0:
            raise GridError(f"load scale {scale} must be >= 0")
        self._load_scale = scale
        self._refresh()

    def set_load(self, load: str, p_mw: float) -> None:
        """Fix one load at ``p_mw`` (Q at its power factor), off the profile."""
        index = self.model.index_of("load", load)
        self._load_override[int(self.net.load.index.get_loc(index))] = p_mw
        self._refresh()

    def _apply_profiles(self) -> None:
        net, hour = self.net, self.sim_hour
        p, q, scaling = self._base_load
        factor = self.options.load_profile.at(hour) * self._load_scale
        new_scaling = scaling * factor
        new_p, new_q = p.copy(), q.copy()
        for pos, value in self._load_override.items():
            new_p[pos] = value
            new_q[pos] = value * q[pos] / p[pos] if p[pos] else 0.0
            new_scaling[pos] = 1.0
        net.load["p_mw"] = new_p
        net.load["q_mvar"] = new_q
        net.load["scaling"] = new_scaling
        if len(net.sgen):
            available = np.array([profile.at(hour) for profile in self._sgen_profile])
            p_mw = net.sgen.p_mw.to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                cap = np.where(p_mw > 0, self._p_limit / p_mw, available)
            net.sgen["scaling"] = np.minimum(available, cap)

    # ---------------------------------------------------------- power flow
    def solve(self) -> bool:
        """Apply the profiles at the current simulated time and run the power flow."""
        self._apply_profiles()
        try:
            pp.runpp(self.net, numba=True, init=self._init)
        except pp.LoadflowNotConverged:
            self.converged = False
            self._init = "auto"
            log.warning("grid: power flow did not converge at %.2f h", self.sim_hour)
            return False
        self.converged = True
        self._init = "results"
        return True

    def true_values(self) -> dict[str, float]:
        """Every bound point's value without noise, from the last power flow and state."""
        net = self.net
        cache: dict[tuple[str, str], np.ndarray] = {}

        def col(table: str, column: str) -> np.ndarray:
            key = (table, column)
            if key not in cache:
                frame = net[table]
                cache[key] = (
                    frame[column].to_numpy(float, na_value=np.nan)
                    if column in frame.columns
                    else np.full(len(frame), np.nan)
                )
            return cache[key]

        fpis = self.fpis_set
        return {b.name: self._value(b, col, fpis) for b in self._bound}

    def _value(
        self, b: _Bound, col: Callable[[str, str], np.ndarray], fpis: frozenset[str]
    ) -> float:
        q, el = b.m.quantity, b.m.element
        if q is Quantity.STATUS:
            closed = bool(self.net.switch.closed.iat[b.pos])
            if b.kind == PointKind.DOUBLE:
                return float(DoubleState.ON if closed else DoubleState.OFF)
            return float(closed)
        if q is Quantity.TRIP:
            return float(el.gis_id in self._tripped)
        if q is Quantity.FPI:
            return float(el.gis_id in fpis)
        if q is Quantity.TAP:
            return float(self.net.trafo.tap_pos.iat[b.pos])
        if q is Quantity.STEP:
            return float(self.net.shunt.step.iat[b.pos])
        if q is Quantity.P_LIMIT:
            return float(self._p_limit[b.pos]) * b.m.factor
        if not self.converged:
            return math.nan
        if q in (Quantity.V, Quantity.VM_PU):
            vm = col("res_bus", "vm_pu")[b.pos]
            vn = 1.0 if q is Quantity.VM_PU else col("bus", "vn_kv")[b.pos]
            return _zero_nan(vm * vn) * b.m.factor
        side = f"_{el.qualifier}" if el.qualifier in ("from", "to", "hv", "lv") else ""
        res = f"res_{el.table}"
        if q is Quantity.I:
            return _zero_nan(col(res, f"i{side}_ka")[b.pos]) * b.m.factor
        p = _zero_nan(col(res, f"p{side}_mw")[b.pos])
        qv = _zero_nan(col(res, f"q{side}_mvar")[b.pos])
        value = {Quantity.P: p, Quantity.Q: qv}.get(q, math.hypot(p, qv))
        return value * b.m.factor

    def publish(self) -> None:
        """Report every bound point's current value (with fresh noise) to the field."""
        values = self.true_values()
        noise = self.options.noise_pct / 100.0
        draws = self._rng.standard_normal(len(self._bound)) if noise else None
        for n, b in enumerate(self._bound):
            failure = self._failed.get(b.name)
            if failure == "frozen":
                continue
            value = values[b.name]
            quality = Quality.GOOD
            if math.isnan(value) or failure == "invalid":
                last = self._published.get(b.name)
                value, quality = (last[0] if last else 0.0), Quality.INVALID
            elif draws is not None and b.noisy:
                value += float(draws[n]) * noise * abs(value)
            if self._published.get(b.name) == (value, quality):
                continue
            self._published[b.name] = (value, quality)
            self.field.set(b.name, value, quality)

    def _refresh(self) -> None:
        self.solve()
        self.publish()

    # -------------------------------------------------------- network state
    @property
    def lockouts(self) -> frozenset[str]:
        """Protective devices that tripped for good (reclose attempts used up)."""
        return frozenset(self._lockouts)

    @property
    def tripped(self) -> frozenset[str]:
        """Protective devices opened by protection and not closed since."""
        return frozenset(self._tripped)

    @property
    def fpis_set(self) -> frozenset[str]:
        """FPIs indicating a fault passage now."""
        return frozenset().union(*self._fault_fpis.values())

    @property
    def faults(self) -> dict[str, int]:
        """Active faults: line GIS id -> reclose attempts."""
        return dict(self._faults)

    def energised_buses(self) -> frozenset[str]:
        return self.topology.state.energised_buses

    def set_switch(self, switch: str, closed: bool, *, cause: str = "manual") -> None:
        """Operate a switch; re-solve and publish. Closing onto a fault trips again."""
        self._set_switch(switch, closed, cause)
        self._refresh()
        if closed and self._energised_faults():
            if self._loop is not None and self._loop.is_running():
                if self._trip_timer is not None:
                    self._trip_timer.cancel()
                self._trip_timer = self._loop.call_later(
                    self.options.trip_delay_s, self._trip_energised_faults
                )
            else:
                self._trip_energised_faults()

    def _set_switch(self, switch: str, closed: bool, cause: str) -> None:
        if self.topology.is_closed(switch) != closed:
            self.switch_log.append(SwitchEvent(time.time(), switch, closed, cause))
        self.topology.set_switch(switch, closed)
        self._init = "auto"
        if closed:
            self._tripped.discard(switch)
            self._lockouts.discard(switch)

    def set_tap(self, trafo: str, tap_pos: int) -> None:
        """Move a transformer's tap within its range; re-solve and publish."""
        index = self.model.index_of("trafo", trafo)
        t = self.net.trafo
        if "tap_changer_type" not in t.columns or pd.isna(t.at[index, "tap_changer_type"]):
            raise GridError(f"transformer {trafo} has no tap changer (tap_changer_type)")
        t.at[index, "tap_pos"] = float(
            min(max(tap_pos, int(t.at[index, "tap_min"])), int(t.at[index, "tap_max"]))
        )
        self._refresh()

    def set_capacitor_step(self, shunt: str, step: int) -> None:
        """Switch a capacitor bank to ``step`` steps (0..max_step); re-solve and publish."""
        index = self.model.index_of("shunt", shunt)
        s = self.net.shunt
        s.at[index, "step"] = min(max(step, 0), int(s.at[index, "max_step"]))
        self._refresh()

    def set_der_limit(self, sgen: str, p_mw: float) -> None:
        """Limit a DER's active power to ``p_mw`` (>= 0); re-solve and publish."""
        index = self.model.index_of("sgen", sgen)
        self._p_limit[self.net.sgen.index.get_loc(index)] = max(p_mw, 0.0)
        self._refresh()

    def _operate(self, op: Operation) -> None:
        """The field's hook: an accepted control changes the network."""
        m = self._measurand_of(op)
        if m is None:
            self.field.set(op.target, op.value)
            return
        gid = m.element.gis_id
        if m.quantity is Quantity.STATUS:
            target_kind = self.field.devices[op.device].by_name[op.target].kind
            if target_kind == PointKind.DOUBLE:
                closed = op.value == DoubleState.ON
            else:
                closed = bool(op.value)
            self.set_switch(gid, closed, cause="command")
        elif m.quantity is Quantity.TAP:
            self.set_tap(gid, round(op.value))
        elif m.quantity is Quantity.STEP:
            self.set_capacitor_step(gid, round(op.value))
        elif m.quantity is Quantity.P_LIMIT:
            self.set_der_limit(gid, op.value / m.factor)
        else:
            self.field.set(op.target, op.value)

    def _measurand_of(self, op: Operation) -> Measurand | None:
        """What the commanded point (or else its check-back point) drives, if bound."""
        for name in (op.point.name, op.target):
            b = self._by_name.get(name)
            if b is not None and b.m.quantity in _CONTROLLABLE:
                return b.m
        return None

    # --------------------------------------------------------------- faults
    def inject_fault(self, line: str, reclose_attempts: int = 0) -> FaultReport:
        """A permanent fault on ``line`` until :meth:`clear_fault` (see the module docstring)."""
        self.model.index_of("line", line)
        if reclose_attempts < 0:
            raise GridError(f"reclose_attempts {reclose_attempts} must be >= 0")
        before = self.energised_buses()
        self._faults[line] = reclose_attempts
        protection, fpis = self._protect(line)
        self._refresh()
        if protection is not None:
            if reclose_attempts and self._loop is not None:
                self._spawn(self._reclose(protection, reclose_attempts))
            elif not reclose_attempts:
                self._lockouts.add(protection)
        log.info("grid: fault on %s, %s tripped, FPIs %s", line, protection, sorted(fpis))
        return FaultReport(
            line,
            protection,
            tuple(sorted(fpis)),
            tuple(sorted(before - self.energised_buses())),
        )

    def clear_fault(self, line: str | None = None) -> None:
        """Remove the fault on ``line`` (all faults when None) and reset its FPIs."""
        for gone in list(self._faults) if line is None else [line]:
            self._faults.pop(gone, None)
            self._fault_fpis.pop(gone, None)
        self.publish()

    def _energised_faults(self) -> list[str]:
        return [line for line in self._faults if self.topology.state.is_energised(line)]

    def _trip_energised_faults(self) -> None:
        self._trip_timer = None
        tripped = False
        for line in self._energised_faults():
            protection = self._protect(line)[0]
            if protection is not None:
                tripped = True
                if protection not in self._reclosing:  # switched onto a fault: no reclose
                    self._lockouts.add(protection)
        if tripped:
            self._refresh()

    def _protect(self, line: str) -> tuple[str | None, set[str]]:
        """Set the FPIs on the supply path of a faulted line and trip its protection."""
        path = self._supply_path(line)
        if path is None:
            return None, set()
        switches, fpis = path
        self._fault_fpis.setdefault(line, set()).update(fpis)
        types = self.net.switch.get("switch_type")
        for index in reversed(switches):
            stype = types.at[index] if types is not None else None
            is_protective = (
                stype in _PROTECTIVE
                if isinstance(stype, str)
                else self.net.switch.at[index, "type"] == "CB"
            )
            if is_protective:
                gid = self.model.gis_id_of("switch", index)
                self._set_switch(gid, False, "protection")
                self._tripped.add(gid)
                return gid, fpis
        log.warning("grid: no breaker or recloser protects the fault on %s", line)
        return None, fpis

    def _supply_path(self, line: str) -> tuple[list[int], set[str]] | None:
        """Closed switches from a source to the faulted line (source first), and the FPIs there.

        The line is fed from its nearer end that is connected (no open switch
        at that end); None when neither end is energised.
        """
        net = self.net
        index = self.model.index_of("line", line)
        sw = net.switch
        closed = sw.closed.to_numpy(bool)
        on_line = (sw.et == "l").to_numpy(bool) & (sw.element == index).to_numpy(bool)
        ends = []
        for end in (int(net.line.at[index, "from_bus"]), int(net.line.at[index, "to_bus"])):
            if not ((sw.bus == end).to_numpy(bool) & on_line & ~closed).any():
                ends.append(end)
        graph = pp_topology.create_nxgraph(
            net, respect_switches=True, multi=True, include_out_of_service=False
        )
        sources = net.ext_grid.bus[net.ext_grid.in_service].tolist()
        for bus in sources:
            graph.add_edge(_SOURCE, bus, key=(_SOURCE, 0))
        paths = nx.single_source_shortest_path(graph, _SOURCE)
        reachable = [end for end in ends if end in paths]
        if not reachable:
            return None
        end = min(reachable, key=lambda e: len(paths[e]))
        buses = paths[end][1:]
        switches: list[int] = []
        lines: set[int] = set()
        et_of = {"line": "l", "trafo": "t", "trafo3w": "t3"}

        def at(et: str, element: int, bus: int | None = None) -> list[int]:
            mask = (sw.et == et).to_numpy(bool) & (sw.element == element).to_numpy(bool) & closed
            if bus is not None:
                mask &= (sw.bus == bus).to_numpy(bool)
            return [int(i) for i in sw.index[mask]]

        for u, v in zip(buses, buses[1:], strict=False):
            for table, element in graph[u][v]:
                if table == "switch":
                    switches.append(int(element))
                    continue
                if table == "line":
                    lines.add(int(element))
                if table in et_of:
                    switches += at(et_of[table], int(element), u)
                    switches += at(et_of[table], int(element), v)
        switches += at("l", index, end)
        return switches, self._fpis_on(switches, lines, index, end)

    def _fpis_on(self, switches: list[int], lines: set[int], faulted: int, end: int) -> set[str]:
        if "fpi" not in self.net or not len(self.net.fpi):
            return set()
        fpi = self.net.fpi
        out = set()
        on_switches = set(switches)
        from_bus = int(self.net.line.at[faulted, "from_bus"])
        for gid, et, element, bus in zip(self._fpi_ids, fpi.et, fpi.element, fpi.bus, strict=True):
            element = int(element)
            if et == "switch":
                hit = element in on_switches
            elif element == faulted:
                hit = (from_bus if pd.isna(bus) else int(bus)) == end
            else:
                hit = element in lines
            if hit:
                out.add(gid)
        return out

    async def _reclose(self, switch: str, attempts: int) -> None:
        self._reclosing.add(switch)
        try:
            for _ in range(attempts):
                await asyncio.sleep(self.options.reclose_interval_s)
                if self.topology.is_closed(switch):
                    return
                log.info("grid: %s recloses", switch)
                self.set_switch(switch, True, cause="reclose")
            await asyncio.sleep(self.options.reclose_interval_s)
            if not self.topology.is_closed(switch):
                self._lockouts.add(switch)
                log.info("grid: %s locked out", switch)
        finally:
            self._reclosing.discard(switch)

    # ------------------------------------------------------ measurement faults
    def fail_measurement(self, point: str, mode: FailureMode = "invalid") -> None:
        """Make ``point`` report INVALID (its last value) or freeze at its last value."""
        if point not in self._by_name:
            raise GridError(f"no bound point {point!r}")
        if mode not in ("invalid", "frozen"):
            raise GridError(f"measurement failure mode {mode!r} is not 'invalid' or 'frozen'")
        self._failed[point] = mode
        self.publish()

    def restore_measurement(self, point: str) -> None:
        """End a measurement failure: the point reports the power flow again."""
        self._failed.pop(point, None)
        self.publish()


def _zero_nan(value: float) -> float:
    """De-energised parts have no power-flow result: they report 0."""
    return 0.0 if math.isnan(value) else float(value)
