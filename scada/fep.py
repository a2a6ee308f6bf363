"""Front-end processor: runs one protocol master per device and feeds the point database.

Contract:
- :class:`FrontEnd` is given a :class:`~scada.config.ScadaConfig`, a
  :class:`~scada.pointdb.PointDB`, an :class:`~scada.events.EventLog` and a
  *master factory* (the composition root passes one that picks the protocol
  adapter; this package never imports an adapter).
- Raw protocol values are converted to engineering units here, and only here
  (``value * scale + offset``).
- Link supervision: a device whose link drops (or that does not connect
  within its supervision time, ``2 * scan_period_s + timeout_s``, after the
  start or reload that started it) has every monitored point marked
  COMM_FAIL | INVALID, values kept; one LINK_LOST event on loss and one
  LINK_RESTORED on recovery. Masters refresh on recovery, which clears the flags.
- Commands report accepted / refused (with the reason) / timed out /
  confirmed by check-back: a command is CONFIRMED only when the status point
  comes back with the expected value within the control's check-back timeout.
- :meth:`FrontEnd.apply_config` changes devices, templates and points while
  running. Devices whose definition did not change are not touched; points
  that still exist keep their value and quality. An invalid configuration is
  rejected before anything changes (:func:`scada.config.load_config` raises).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from protocols.base import (
    CommandMode,
    CommandRequest,
    CommandResult,
    CommandStatus,
    ControlKind,
    DoubleState,
    LinkListener,
    LinkSpec,
    Master,
    PointKind,
    PointSpec,
    PointUpdate,
    Quality,
    UpdateSink,
)
from scada.config import DevicePoints, PointConfig, ScadaConfig
from scada.events import Event, EventKind, EventLog
from scada.pointdb import ChangeBatch, PointDB, UnknownPointError

__all__ = ["FrontEnd", "MasterFactory", "ReloadReport"]

log = logging.getLogger(__name__)

MasterFactory = Callable[[str, LinkSpec, Sequence[PointSpec], UpdateSink, LinkListener], Master]
"""``(protocol, link, points, sink, listener) -> Master``"""

_STATUS_KINDS = (PointKind.SINGLE, PointKind.DOUBLE)
_COMM_LOST = Quality.COMM_FAIL | Quality.INVALID


@dataclass
class ReloadReport:
    """What a configuration reload changed."""

    devices_added: list[str] = field(default_factory=list)
    devices_removed: list[str] = field(default_factory=list)
    devices_changed: list[str] = field(default_factory=list)
    points_added: int = 0
    points_removed: int = 0

    def __str__(self) -> str:
        return (
            f"devices +{len(self.devices_added)} -{len(self.devices_removed)} "
            f"~{len(self.devices_changed)}; points +{self.points_added} -{self.points_removed}"
        )


class _DeviceListener(LinkListener):
    """Binds link callbacks to one master instance so a replaced master's late calls are ignored."""

    def __init__(self, fep: FrontEnd, run: _DeviceRun) -> None:
        self._fep = fep
        self._run = run

    def link_up(self, device: str) -> None:
        self._fep._link_up(self._run)

    def link_down(self, device: str, reason: str) -> None:
        self._fep._link_down(self._run, reason)


@dataclass(eq=False)
class _DeviceRun:
    points: DevicePoints
    handles: np.ndarray
    master: Master | None = None
    up: bool = False
    lost: bool = False
    watchdog: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Waiter:
    predicate: Callable[[float], bool]
    future: asyncio.Future[None]


class FrontEnd:
    """All devices of one FEP process."""

    def __init__(
        self,
        pointdb: PointDB,
        events: EventLog,
        master_factory: MasterFactory,
        announce: Callable[[str, float, float], object] | None = None,
    ) -> None:
        """Set up an empty FEP; :meth:`start` brings devices up.

        ``announce(point, value, checkback_timeout_s)`` is called before each
        command is sent (the alarm manager tells commanded from uncommanded
        changes with it).
        """
        self.pointdb = pointdb
        self.events = events
        self._factory = master_factory
        self._announce = announce
        self._config: ScadaConfig | None = None
        self._runs: dict[str, _DeviceRun] = {}
        self._scale = np.ones(0)
        self._offset = np.zeros(0)
        self._active = np.zeros(0, dtype=bool)
        self._waiters: dict[int, list[_Waiter]] = {}
        self._sink: UpdateSink | None = None
        self._sub = pointdb.subscribe(self._on_changes)
        self.updates_received = 0

    # ------------------------------------------------------------ lifecycle
    @property
    def config(self) -> ScadaConfig | None:
        return self._config

    async def start(self, config: ScadaConfig) -> None:
        """Define every point and start every enabled device's master."""
        self._sink = UpdateSink(asyncio.get_running_loop(), self._on_updates)
        await self.apply_config(config)

    async def stop(self) -> None:
        await asyncio.gather(*(self._stop_run(run) for run in self._runs.values()))
        self._runs.clear()
        self._sub.close()

    async def apply_config(self, new: ScadaConfig) -> ReloadReport:
        """Bring the running set of devices and points in line with ``new``."""
        report = ReloadReport()
        started: list[_DeviceRun] = []
        old = self._config
        old_devices = old.devices if old else {}
        for name in [n for n in self._runs if n not in new.devices]:
            gone = self._runs.pop(name)
            await self._stop_run(gone)
            self._deactivate(gone.handles)
            self.pointdb.remove(p.name for p in gone.points.points)
            report.devices_removed.append(name)
            report.points_removed += len(gone.points.points)
        for name in new.devices:
            points = new.device_points(name)
            run = self._runs.get(name)
            if run is not None and old_devices.get(name) == points.device:
                if run.points.points == points.points:
                    continue
            if run is not None:
                await self._stop_run(run)
                dropped = {p.name for p in run.points.points} - {p.name for p in points.points}
                self._deactivate(
                    np.array([self.pointdb.handle(n) for n in dropped], dtype=np.int64)
                )
                self.pointdb.remove(dropped)
                report.points_removed += len(dropped)
                report.points_added += len(
                    {p.name for p in points.points} - {p.name for p in run.points.points}
                )
                report.devices_changed.append(name)
            else:
                report.devices_added.append(name)
                report.points_added += len(points.points)
            self._runs[name] = await self._start_run(points, resume=run)
            started.append(self._runs[name])
        # supervision counts from the end of the pass: starting thousands of
        # masters takes seconds, which are not the first devices' fault
        loop = asyncio.get_running_loop()
        for run in started:
            if run.master is not None and not run.up:
                device = run.points.device
                supervision_s = 2 * device.scan_period_s + device.timeout_s
                run.watchdog = loop.call_later(supervision_s, self._startup_timeout, run)
        self._config = new
        if old is not None:
            self.events.record(Event(EventKind.CONFIG, f"configuration reloaded: {report}"))
        return report

    def _deactivate(self, handles: np.ndarray) -> None:
        if len(handles):
            self._active[handles] = False

    def _set_conversion(self, points: Sequence[PointConfig], handles: np.ndarray) -> None:
        top = int(handles.max()) + 1 if len(handles) else 0
        if top > len(self._scale):
            size = max(top, 2 * len(self._scale), 1024)
            self._scale = np.concatenate([self._scale, np.ones(size - len(self._scale))])
            self._offset = np.concatenate([self._offset, np.zeros(size - len(self._offset))])
            self._active = np.concatenate(
                [self._active, np.zeros(size - len(self._active), dtype=bool)]
            )
        for p, h in zip(points, handles, strict=True):
            status = p.kind in _STATUS_KINDS
            self._scale[h] = 1.0 if status else p.template.scale
            self._offset[h] = 0.0 if status else p.template.offset
        self._active[handles] = True

    async def _start_run(self, points: DevicePoints, resume: _DeviceRun | None) -> _DeviceRun:
        handles = np.array(self.pointdb.define(points.points), dtype=np.int64)
        self._set_conversion(points.points, handles)
        run = _DeviceRun(points, handles)
        device = points.device
        if not device.enabled:
            return run
        if resume is not None and resume.lost:
            run.lost = True
        assert self._sink is not None, "start() first"
        specs = points.point_specs(
            {p.name: int(h) for p, h in zip(points.points, handles, strict=True)}
        )
        run.master = self._factory(
            device.protocol, device.link(), specs, self._sink, _DeviceListener(self, run)
        )
        await run.master.start()
        return run

    async def _stop_run(self, run: _DeviceRun) -> None:
        if run.watchdog is not None:
            run.watchdog.cancel()
        master, run.master = run.master, None
        if master is not None:
            await master.stop()

    def _startup_timeout(self, run: _DeviceRun) -> None:
        if not run.up and run.master is not None:
            self._link_down(run, "no connection since start")

    # ----------------------------------------------------------------- links
    def link_state(self, device: str) -> bool:
        return self._runs[device].up

    def _current(self, run: _DeviceRun) -> bool:
        return self._runs.get(run.points.device.name) is run and run.master is not None

    def _link_up(self, run: _DeviceRun) -> None:
        if not self._current(run) or run.up:
            return
        run.up = True
        if run.watchdog is not None:
            run.watchdog.cancel()
        if run.lost:
            run.lost = False
            name = run.points.device.name
            log.info("link to %s restored", name)
            self.events.record(Event(EventKind.LINK_RESTORED, "link restored", device=name))

    def _link_down(self, run: _DeviceRun, reason: str) -> None:
        if not self._current(run) or run.lost:
            run.up = False
            return
        run.up = False
        run.lost = True
        name = run.points.device.name
        monitored = [
            h
            for p, h in zip(run.points.points, run.handles, strict=True)
            if p.template.address >= 0
        ]
        self.pointdb.set_quality(monitored, add=_COMM_LOST, remove=Quality.GOOD)
        log.warning("link to %s lost: %s", name, reason)
        self.events.record(Event(EventKind.LINK_LOST, f"link lost: {reason}", device=name))

    # ---------------------------------------------------------------- ingest
    def _on_updates(self, updates: list[PointUpdate]) -> None:
        n = len(updates)
        self.updates_received += n
        h = np.fromiter((u.handle for u in updates), np.int64, n)
        raw = np.fromiter((u.value for u in updates), np.float64, n)
        q = np.fromiter((u.quality for u in updates), np.uint32, n)
        st = np.fromiter(
            (np.nan if u.source_time is None else u.source_time for u in updates), np.float64, n
        )
        rt = np.fromiter((u.receive_time for u in updates), np.float64, n)
        live = self._active[h]
        if not live.all():
            h, raw, q, st, rt = h[live], raw[live], q[live], st[live], rt[live]
        self.pointdb.apply(h, raw * self._scale[h] + self._offset[h], q, st, rt)

    def _on_changes(self, batch: ChangeBatch) -> None:
        if not self._waiters:
            return
        for h, v, q in zip(batch.handles, batch.values, batch.quality, strict=True):
            waiters = self._waiters.get(int(h))
            if not waiters or q & int(Quality.INVALID):
                continue
            for w in waiters:
                if not w.future.done() and w.predicate(float(v)):
                    w.future.set_result(None)

    # -------------------------------------------------------------- commands
    async def command(
        self,
        point: str,
        value: float,
        mode: CommandMode | None = None,
        *,
        operator: str = "system",
    ) -> CommandResult:
        """Send a control to ``point``; wait for check-back where the point has one.

        ``value``: True/1 = close/on, False/0 = open/off for status controls;
        +1 / -1 for step controls; the engineering value for setpoints.
        """
        result = await self._command(point, value, mode)
        self.events.record(
            Event(
                EventKind.COMMAND,
                f"{operator}: {point} <- {value:g}: {result.status}"
                + (f" ({result.reason})" if result.reason else ""),
                device=point.split(".", 1)[0],
                point=point,
            )
        )
        return result

    async def _command(self, point: str, value: float, mode: CommandMode | None) -> CommandResult:
        try:
            cfg = self.pointdb.config(point)
        except UnknownPointError:
            return CommandResult(CommandStatus.REFUSED, f"unknown point {point!r}")
        control = cfg.template.control
        if control is None:
            return CommandResult(CommandStatus.REFUSED, f"point {point!r} has no control")
        run = self._runs.get(cfg.device)
        if run is None or run.master is None:
            return CommandResult(CommandStatus.REFUSED, f"device {cfg.device!r} is not running")
        if not run.up:
            return CommandResult(CommandStatus.REFUSED, f"device {cfg.device!r} link is down")
        if control.kind == ControlKind.STEP and value not in (1, -1):
            return CommandResult(CommandStatus.REFUSED, "a step command takes +1 or -1")
        raw = value
        if control.kind == ControlKind.SETPOINT and cfg.template.scale:
            raw = (value - cfg.template.offset) / cfg.template.scale
        if self._announce is not None:
            self._announce(point, value, control.checkback_timeout_s)
        waiter = self._checkback(cfg, control.kind, value)
        request = CommandRequest(self.pointdb.handle(point), raw, mode or control.mode)
        try:
            result = await run.master.command(request)
            if result.status != CommandStatus.ACCEPTED or waiter is None:
                return result
            handle, w = waiter
            current, q = self.pointdb.values(np.array([handle]))
            if not q[0] & int(Quality.INVALID) and w.predicate(float(current[0])):
                return CommandResult(CommandStatus.CONFIRMED)
            try:
                await asyncio.wait_for(w.future, control.checkback_timeout_s)
            except TimeoutError:
                return CommandResult(
                    CommandStatus.TIMED_OUT,
                    f"accepted, but no check-back within {control.checkback_timeout_s:g} s",
                )
            return CommandResult(CommandStatus.CONFIRMED)
        finally:
            if waiter is not None:
                self._drop_waiter(*waiter)

    def _checkback(
        self, cfg: PointConfig, kind: ControlKind, value: float
    ) -> tuple[int, _Waiter] | None:
        """Register what the status must show for the command to be confirmed."""
        name = f"{cfg.device}.{cfg.template.checkback}" if cfg.template.checkback else cfg.name
        target = self.pointdb.config(name)
        if target.template.address < 0:
            return None
        handle = self.pointdb.handle(name)
        predicate: Callable[[float], bool]
        if target.kind == PointKind.DOUBLE:
            want = float(DoubleState.ON if value else DoubleState.OFF)
            predicate = want.__eq__
        elif target.kind == PointKind.SINGLE:
            want = 1.0 if value else 0.0
            predicate = want.__eq__
        elif kind == ControlKind.STEP:
            before = float(self.pointdb.values(np.array([handle]))[0][0])
            if value > 0:
                predicate = before.__lt__
            else:
                predicate = before.__gt__
        else:
            tolerance = max(target.template.deadband, 1e-6 * max(abs(value), 1.0))

            def predicate(v: float) -> bool:
                return abs(v - value) <= tolerance

        waiter = _Waiter(predicate, asyncio.get_running_loop().create_future())
        self._waiters.setdefault(handle, []).append(waiter)
        return handle, waiter

    def _drop_waiter(self, handle: int, waiter: _Waiter) -> None:
        waiters = self._waiters.get(handle, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            self._waiters.pop(handle, None)

    # ---------------------------------------------------------------- status
    def device_names(self) -> list[str]:
        return list(self._runs)

    def connected_count(self) -> int:
        return sum(1 for r in self._runs.values() if r.up)

    def link_states(self) -> dict[str, bool]:
        return {name: run.up for name, run in self._runs.items()}
