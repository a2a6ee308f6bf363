"""IEC 104 outstation (simulated RTU) on c104: a station per outstation, a server per endpoint.

Sharing: outstations whose :class:`LinkSpec` name the same ``host:port``
(with an explicit port) are served by one ``c104.Server`` listening there,
each as the station of its common address, like a data concentrator. A
started c104 server costs about 4.7 MB (lib60870 pre-allocates queues for
100 clients) and two threads, one of which polls ``accept`` every 10 ms, so a
rig serving hundreds of RTUs should group them on shared endpoints. Its
queue of spontaneous ASDUs holds 100 (fixed by c104); when the masters read
slower than that, the oldest are dropped, as an RTU's event buffer would. Port 0
picks a free port and always gets a server of its own. Servers live in a
registry per asyncio event loop, started with the first outstation of their
endpoint and stopped with the last; importing this module creates nothing.
Stopping one station of a shared endpoint leaves the TCP link up, so its
master reports no link_down (like a concentrator losing one IED): simulate
an RTU's communication loss with a dedicated port.

Two types per IOA: c104 binds one ASDU type to a point, but an RTU answers a
general interrogation with the type without time tag (M_ME_NC_1, M_SP_NA_1,
M_DP_NA_1, M_ST_NA_1; counters M_IT_NA_1 on counter interrogation) and
reports changes with CP56Time2a (M_ME_TF_1, M_SP_TB_1, M_DP_TB_1, M_ST_TB_1,
M_IT_TB_1). Each endpoint therefore has a second, never started c104 server
(the *shadow*) whose station of the same common address holds the
time-tagged twin of every point. :meth:`OutstationImpl.update` sets both;
spontaneous reports are batches of twins sent through the listening server
(a batch only carries the common address, not its server). Updates made in
one event-loop iteration go out together, one ASDU per type; a point updated
twice before that is flushed first, so no change is lost.

Commands: a command point per control at ``ControlSpec.address``
(C_SC_NA_1, C_DC_NA_1, C_RC_NA_1, C_SE_NC_1) in the control's mode. c104
handles select-before-operate itself (select confirmed, execute only after a
select from the same connection, ACT_TERM after the execute); the handler is
called at execute (or direct execute) on c104's thread and its result
decides the positive or negative ACT_CON. A point in SBO mode refuses direct
execution and vice versa. Points start with quality INVALID until their
first :meth:`~OutstationImpl.update`.
"""

# No ``from __future__ import annotations`` here: c104 compares the text of a
# callback's signature with the one it expects (see protocols.iec104.master).

import asyncio
import datetime
import logging
import socket
import threading
import time
import weakref
from collections.abc import Sequence

import c104

from protocols.base import (
    CommandMode,
    CommandRequest,
    ControlKind,
    LinkSpec,
    Outstation,
    OutstationHandler,
    PointSpec,
    ProtocolError,
    Quality,
)
from protocols.iec104.mapping import (
    command_type,
    monitored_types,
    quality_to_c104,
    resolve_ipv4,
    shorten_gil_switch_interval,
    to_c104_time,
    validate_points,
)

__all__ = ["OutstationImpl"]

_log = logging.getLogger(__name__)

#: c104's server tick drives periodic reports (unused) and expires selections
_SERVER_TICK_MS = 1000

T = c104.Type
_FLOAT_TYPES = frozenset({T.M_ME_NC_1, T.M_ME_TF_1})
_SINGLE_TYPES = frozenset({T.M_SP_NA_1, T.M_SP_TB_1})
_DOUBLE_TYPES = frozenset({T.M_DP_NA_1, T.M_DP_TB_1})
_STEP_TYPES = frozenset({T.M_ST_NA_1, T.M_ST_TB_1})


def _info(
    type_: c104.Type, value: float, quality: Quality, recorded_at: datetime.datetime | None
) -> c104.Information:
    """A c104 information object of ``type_`` (positional: the stub's keyword names are off)."""
    q = quality_to_c104(quality, type_)
    if type_ in _FLOAT_TYPES:
        return c104.ShortInfo(float(value), q, recorded_at)  # type: ignore[arg-type]
    if type_ in _SINGLE_TYPES:
        return c104.SingleInfo(bool(value), q, recorded_at)  # type: ignore[arg-type]
    if type_ in _DOUBLE_TYPES:
        return c104.DoubleInfo(c104.Double(int(value)), q, recorded_at)  # type: ignore[call-arg,arg-type]
    if type_ in _STEP_TYPES:
        return c104.StepInfo(c104.Int7(int(value)), False, q, recorded_at)  # type: ignore[arg-type]
    return c104.BinaryCounterInfo(int(value), c104.UInt5(0), q, recorded_at)  # type: ignore[arg-type]


class _Monitored:
    """One monitored point: its last value and its two c104 points while started."""

    __slots__ = ("event", "event_type", "gi", "gi_type", "quality", "spec", "time", "value")

    def __init__(self, spec: PointSpec) -> None:
        self.spec = spec
        self.gi_type, self.event_type = monitored_types(spec)
        self.value: float = 0
        self.quality = Quality.INVALID
        self.time = time.time()
        self.gi: c104.Point | None = None
        self.event: c104.Point | None = None

    def apply(self) -> None:
        """Write the stored state into both c104 points."""
        assert self.gi is not None and self.event is not None
        self.gi.info = _info(self.gi_type, self.value, self.quality, None)
        self.event.info = _info(self.event_type, self.value, self.quality, to_c104_time(self.time))


class _ServerHost:
    """The listening c104 server of one endpoint, its shadow, and the outstations on it."""

    def __init__(self, ip: str, port: int) -> None:
        self.endpoint = (ip, port)
        self.server = c104.Server(ip=ip, port=port, tick_rate_ms=_SERVER_TICK_MS)
        self.shadow = c104.Server(ip=ip, port=port, tick_rate_ms=_SERVER_TICK_MS)
        self.outstations: dict[int, OutstationImpl] = {}


_Hosts = dict[tuple[str, int], _ServerHost]
_HOSTS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hosts]" = weakref.WeakKeyDictionary()


def _free_port(ip: str) -> int:
    """A port the OS reports free on ``ip`` (c104 cannot listen on port 0 and tell the port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((ip, 0))
        return int(probe.getsockname()[1])


_DOUBLE_COMMANDS: dict[object, float] = {c104.Double.ON: True, c104.Double.OFF: False}
_STEP_COMMANDS: dict[object, float] = {c104.Step.HIGHER: 1, c104.Step.LOWER: -1}


def _request_value(kind: ControlKind, value: object) -> float | None:
    """A received command value -> ``CommandRequest.value``; None if it is not a valid command."""
    if kind is ControlKind.SINGLE:
        return bool(value)
    if kind is ControlKind.DOUBLE:
        return _DOUBLE_COMMANDS.get(value)
    if kind is ControlKind.STEP:
        return _STEP_COMMANDS.get(value)
    return float(value)  # type: ignore[arg-type]


class OutstationImpl(Outstation):
    """Simulated IEC 104 RTU: station ``link.address`` listening on ``link.host:link.port``."""

    def __init__(
        self,
        link: LinkSpec,
        points: Sequence[PointSpec],
        handler: OutstationHandler,
    ) -> None:
        super().__init__(link, points, handler)
        shorten_gil_switch_interval()
        validate_points(link.device, link.address, points)
        self._monitored = {p.handle: _Monitored(p) for p in points if p.monitored}
        #: control IOA -> point, read on c104's thread
        self._controls = {p.control.address: p for p in points if p.control is not None}
        self._port = link.port
        self._host: _ServerHost | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pending: dict[c104.Type, dict[int, c104.Point]] = {}
        self._flush_scheduled = False

    @property
    def port(self) -> int:
        """The TCP port listened on (for port 0: chosen at the first :meth:`start`, then kept)."""
        return self._port

    async def start(self) -> None:
        """Serve the station, joining the server of this endpoint or starting one."""
        if self._host is not None:
            return
        loop = asyncio.get_running_loop()
        ip = await resolve_ipv4(self.link)
        if self._port == 0:
            self._port = _free_port(ip)
        hosts = _HOSTS.get(loop)
        if hosts is None:
            hosts = _HOSTS[loop] = {}
        host = hosts.get((ip, self._port))
        created = host is None
        if host is None:
            host = _ServerHost(ip, self._port)
        with self._lock:
            self._loop, self._host = loop, host
        try:
            self._add_station(host)
            if created:
                try:
                    host.server.start()
                except RuntimeError as exc:
                    raise ProtocolError(
                        f"{self.link.device}: cannot listen on {ip}:{self._port}: {exc}"
                    ) from exc
        except ProtocolError:
            with self._lock:
                self._loop = self._host = None
            self._remove_station(host)
            raise
        if created:
            hosts[host.endpoint] = host

    async def stop(self) -> None:
        """Stop serving the station; the endpoint's server stops with its last station."""
        with self._lock:
            host, self._host = self._host, None
            self._loop = None
            self._pending.clear()
            self._flush_scheduled = False
        if host is None:
            return
        self._remove_station(host)
        if not host.outstations:
            hosts = _HOSTS.get(asyncio.get_running_loop(), {})
            if hosts.get(host.endpoint) is host:
                del hosts[host.endpoint]
            # joins lib60870's threads, which poll in 10-100 ms steps: not on the loop
            await asyncio.to_thread(host.server.stop)

    def update(
        self,
        handle: int,
        value: float,
        quality: Quality = Quality.GOOD,
        source_time: float | None = None,
    ) -> None:
        """Set a value; if value or quality changed, report it spontaneously with its time tag.

        ``source_time`` (POSIX seconds) is the time tag; None means now.
        Thread-safe; the report leaves on the next event-loop iteration.
        """
        entry = self._monitored.get(handle)
        if entry is None:
            raise ProtocolError(f"{self.link.device}: no monitored point with handle {handle}")
        with self._lock:
            changed = value != entry.value or quality != entry.quality
            previous = entry.value, entry.quality, entry.time
            entry.value, entry.quality = value, quality
            entry.time = time.time() if source_time is None else source_time
            if entry.event is None:
                return
            queued = self._pending.get(entry.event_type)
            if changed and queued is not None and entry.spec.address in queued:
                # the previous change is still queued: send it before overwriting the twin
                self._flush_locked()
            try:
                entry.apply()
            except ValueError as exc:
                entry.value, entry.quality, entry.time = previous
                raise ProtocolError(
                    f"{self.link.device}: point {entry.spec.name!r}: value {value!r} "
                    f"not representable as {entry.gi_type.name}: {exc}"
                ) from exc
            if changed:
                self._pending.setdefault(entry.event_type, {})[entry.spec.address] = entry.event
                self._schedule_flush()

    # -- stations ---------------------------------------------------------------------------

    def _add_station(self, host: _ServerHost) -> None:
        ca = self.link.address
        other = host.outstations.get(ca)
        if other is not None and other is not self:
            raise ProtocolError(
                f"{self.link.device}: common address {ca} on port {self._port} is already "
                f"served by {other.link.device}"
            )
        station = host.server.add_station(common_address=ca)
        shadow = host.shadow.add_station(common_address=ca)
        if station is None or shadow is None:
            raise ProtocolError(f"{self.link.device}: c104 refused station {ca}")
        host.outstations[ca] = self
        with self._lock:
            for entry in self._monitored.values():
                ioa = entry.spec.address
                entry.gi = station.add_point(io_address=ioa, type=entry.gi_type)
                entry.event = shadow.add_point(io_address=ioa, type=entry.event_type)
                entry.apply()
        for ioa, spec in self._controls.items():
            assert spec.control is not None
            point = station.add_point(
                io_address=ioa,
                type=command_type(spec.control.kind),
                command_mode=c104.CommandMode.SELECT_AND_EXECUTE
                if spec.control.mode is CommandMode.SBO
                else c104.CommandMode.DIRECT,
            )
            if point is None:
                raise ProtocolError(f"{self.link.device}: c104 refused control IOA {ioa}")
            point.on_receive(callable=self._cb_command)

    def _remove_station(self, host: _ServerHost) -> None:
        ca = self.link.address
        if host.outstations.get(ca) is not self:
            return  # another outstation's station
        del host.outstations[ca]
        host.server.remove_station(common_address=ca)
        host.shadow.remove_station(common_address=ca)
        with self._lock:
            for entry in self._monitored.values():
                entry.gi = entry.event = None

    # -- spontaneous reports ----------------------------------------------------------------

    def _schedule_flush(self) -> None:
        """Lock held: have the loop send the queued twins (once per loop iteration)."""
        if self._flush_scheduled or self._loop is None:
            return
        self._flush_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # loop closed: nobody left to report to
            self._flush_scheduled = False

    def _flush(self) -> None:
        with self._lock:
            self._flush_scheduled = False
            self._flush_locked()

    def _flush_locked(self) -> None:
        pending, self._pending = self._pending, {}
        if self._host is None:
            return
        for points in pending.values():
            batch = c104.Batch(c104.Cot.SPONTANEOUS, list(points.values()))
            # False only when no master is connected: a GI will bring the value
            self._host.server.transmit_batch(batch)

    # -- c104 connection thread --------------------------------------------------------------

    def _cb_command(
        self, point: c104.Point, previous_info: c104.Information, message: c104.IncomingMessage
    ) -> c104.ResponseState:
        """c104 thread, at execute: ask the handler; its answer decides the ACT_CON."""
        try:
            spec = self._controls.get(point.io_address)
            if spec is None or spec.control is None:
                return c104.ResponseState.FAILURE
            value = _request_value(spec.control.kind, message.info.value)
            if value is None:
                return c104.ResponseState.FAILURE
            mode = (
                CommandMode.SBO
                if point.command_mode == c104.CommandMode.SELECT_AND_EXECUTE
                else CommandMode.DIRECT
            )
            accepted = self.handler(spec, CommandRequest(spec.handle, value, mode))
            return c104.ResponseState.SUCCESS if accepted else c104.ResponseState.FAILURE
        except Exception:
            _log.exception("%s: command handler failed", self.link.device)
            return c104.ResponseState.FAILURE
