"""DNP3 master (FEP side) on opendnp3: one TCP client channel and master session per device."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import opendnp3

from protocols.base import (
    CommandMode,
    CommandRequest,
    CommandResult,
    CommandStatus,
    LinkListener,
    LinkSpec,
    Master,
    PointSpec,
    PointUpdate,
    ProtocolError,
    Quality,
    UpdateSink,
)
from protocols.dnp3 import _runtime
from protocols.dnp3.codec import (
    InputType,
    PointTable,
    command_outcome,
    encode_command,
    input_of_variation,
    quality_from_flags,
    raw_value,
)

__all__ = ["MasterImpl"]

_log = logging.getLogger("protocols.dnp3")

#: events are read in variations that carry an absolute time, analogs as float32
_EVENT_HEADERS = {
    InputType.BINARY: (2, 2),
    InputType.DOUBLE: (4, 2),
    InputType.COUNTER: (22, 5),
    InputType.ANALOG: (32, 7),
}
_STATIC_HEADERS = {
    InputType.BINARY: (1, 2),
    InputType.DOUBLE: (3, 2),
    InputType.COUNTER: (20, 1),
    InputType.ANALOG: (30, 5),
}
_EVENT_CLASSES = ("Class1", "Class2", "Class3")
#: DNP3 link addresses 0xFFF0.. are reserved (broadcast, self-address)
_MAX_LINK_ADDRESS = 0xFFEF


def _duration(seconds: float) -> Any:
    return opendnp3.TimeDuration.Milliseconds(max(1, round(seconds * 1000)))


def _validate_link(link: LinkSpec) -> None:
    positive = ("scan_period_s", "timeout_s", "reconnect_min_s", "reconnect_max_s")
    for name in positive:
        if not getattr(link, name) > 0:
            raise ProtocolError(f"{link.device}: {name}={getattr(link, name)!r} must be > 0")
    if link.integrity_period_s < 0:
        raise ProtocolError(
            f"{link.device}: integrity_period_s must be >= 0 (0 = only on recovery)"
        )
    if link.reconnect_max_s < link.reconnect_min_s:
        raise ProtocolError(f"{link.device}: reconnect_max_s must be >= reconnect_min_s")
    for name in ("address", "master_address"):
        if not 0 <= getattr(link, name) <= _MAX_LINK_ADDRESS:
            raise ProtocolError(
                f"{link.device}: {name}={getattr(link, name)!r} is not a DNP3 link address "
                f"(0..{_MAX_LINK_ADDRESS})"
            )
    if not 0 < link.port <= 0xFFFF:
        raise ProtocolError(f"{link.device}: port={link.port!r} is not a TCP port")


class _SoeHandler(opendnp3.ISOEHandler):
    """Receives measurements on an opendnp3 thread and hands them to the master.

    One instance serves the library's own tasks and unsolicited responses,
    one the periodic event poll, one the integrity poll (it reports when the
    poll's last fragment arrived). Method names are opendnp3's.
    """

    def __init__(self, owner: MasterImpl, *, integrity: bool) -> None:
        super().__init__()
        self._owner = owner
        self._integrity = integrity
        self._unsolicited = False

    def BeginFragment(self, info: Any) -> None:
        self._unsolicited = bool(info.unsolicited)

    def EndFragment(self, info: Any) -> None:
        if self._integrity and info.fin:
            try:
                self._owner._on_integrity_done()
            except Exception:
                _log.exception("%s: integrity completion handling failed", self._owner.link.device)

    def Process(self, info: Any, values: list[Any]) -> None:
        try:
            self._owner._on_values(info, values, self._unsolicited)
        except Exception:
            _log.exception("%s: dropping a DNP3 object header", self._owner.link.device)


class _MasterApplication(opendnp3.IMasterApplication):
    """Link supervision and the clock for time sync; runs on opendnp3 threads.

    Method names are opendnp3's; each catches everything so nothing unwinds into C++.
    """

    def __init__(self, owner: MasterImpl) -> None:
        super().__init__()
        self._owner = owner

    def OnReceiveIIN(self, iin: Any) -> None:
        try:
            self._owner._on_response()
        except Exception:
            _log.exception("%s: response handling failed", self._owner.link.device)

    def OnTaskComplete(self, info: Any) -> None:
        try:
            self._owner._on_task_complete(info.type, info.result)
        except Exception:
            _log.exception("%s: task completion handling failed", self._owner.link.device)

    def OnOpen(self) -> None:
        try:
            self._owner._request_refresh()
        except Exception:
            _log.exception("%s: open handling failed", self._owner.link.device)

    def OnClose(self) -> None:
        try:
            self._owner._lost("connection closed")
        except Exception:
            _log.exception("%s: close handling failed", self._owner.link.device)

    def Now(self) -> Any:
        return opendnp3.UTCTimestamp(int(time.time() * 1000))


class MasterImpl(Master):
    """DNP3 master for one outstation over TCP.

    - ``start`` adds a TCP client channel (reconnect backoff doubling from
      ``reconnect_min_s`` to ``reconnect_max_s``) to the process-wide
      manager (see ``protocols.dnp3._runtime``) and returns at once.
    - Integrity poll after every (re)connection and every
      ``integrity_period_s``: events (g2v2, g4v2, g22v5, g32v7) then static
      values (g1v2, g3v2, g20v1, g30v5) of the input types the points use.
      Event poll of the same event variations every ``scan_period_s``.
      Explicit variations instead of class 0/1/2/3 reads so that analogs stay
      floating point and events carry their time whatever the outstation's
      default variations are (opendnp3 outstations default to integer g30v1 /
      g32v1 and untimed events).
    - Unsolicited responses are enabled and accepted in any variation. The
      library's own start-up integrity poll (class 0123) cannot be turned off:
      analogs it returns in integer variations are dropped, since the
      integrity poll above re-reads them as float right after.
    - Time is synchronised (LAN procedure) when the outstation sets NEED_TIME.
    - ``link_up`` when an integrity poll completed after (re)connection;
      ``link_down`` once when the connection closes (noticed at once) or a
      request gets no response within ``timeout_s`` (a silent outstation is
      noticed within ``scan_period_s + timeout_s``). Both are called on the
      loop that ran ``start``.
    - ``command`` uses ``request.mode`` (SBO or direct operate); a command
      waits at most ``3 * timeout_s`` behind a poll in progress.
    """

    def __init__(
        self,
        link: LinkSpec,
        points: Sequence[PointSpec],
        sink: UpdateSink,
        listener: LinkListener,
    ) -> None:
        super().__init__(link, points, sink, listener)
        _validate_link(link)
        self._table = PointTable.build(link.device, points)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channel: Any = None
        self._master: Any = None
        self._integrity_scan: Any = None
        # opendnp3 holds only the C++ half of these trampolines: keep the Python half alive.
        self._callbacks: tuple[Any, ...] = ()
        # Link state: written only by the session's opendnp3 strand (callbacks are serialised).
        self._up = False
        self._refresh_pending = False
        self._stopping = False
        # Safety net only: the library fails a command after the task start timeout
        # (3 x timeout_s) plus select and operate (2 x timeout_s).
        self._command_timeout_s = 5 * link.timeout_s + 1.0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the channel and session; connection and polls proceed in the background."""
        if self._channel is not None:
            raise ProtocolError(f"{self.link.device}: DNP3 master already started")
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        link = self.link
        manager = _runtime.acquire_manager()
        try:
            retry = opendnp3.ChannelRetry(
                _duration(link.reconnect_min_s), _duration(link.reconnect_max_s)
            )
            self._channel = manager.AddTCPClient(
                link.device,
                _runtime.LOG_LEVELS,
                retry,
                [opendnp3.IPEndpoint(link.host, link.port)],
                "0.0.0.0",
                None,
            )
            stack_soe = _SoeHandler(self, integrity=False)
            event_soe = _SoeHandler(self, integrity=False)
            integrity_soe = _SoeHandler(self, integrity=True)
            app = _MasterApplication(self)
            self._callbacks = (stack_soe, event_soe, integrity_soe, app)
            self._master = self._channel.AddMaster(link.device, stack_soe, app, self._config())
            self._master.AddScan(
                _duration(link.scan_period_s), self._headers(events_only=True), event_soe
            )
            integrity_period = (
                _duration(link.integrity_period_s)
                if link.integrity_period_s > 0
                else opendnp3.TimeDuration.Max()
            )
            self._integrity_scan = self._master.AddScan(
                integrity_period, self._headers(events_only=False), integrity_soe
            )
            self._master.Enable()
        except Exception as exc:
            await self._teardown()
            raise ProtocolError(
                f"{link.device}: cannot start DNP3 master to {link.host}:{link.port}: {exc}"
            ) from exc

    async def stop(self) -> None:
        """Close the channel (no ``link_down`` is reported for a deliberate stop)."""
        if self._channel is None:
            return
        self._stopping = True
        await self._teardown()

    async def _teardown(self) -> None:
        loop = asyncio.get_running_loop()
        channel, self._channel = self._channel, None
        if channel is not None:
            # Shutdown joins the session's pending work; callbacks may still need the loop.
            await loop.run_in_executor(None, channel.Shutdown)
        self._master = None
        self._integrity_scan = None
        self._callbacks = ()
        self._up = False
        await loop.run_in_executor(None, _runtime.release_manager)

    async def refresh(self) -> None:
        """Request an integrity poll now; returns at once, values arrive through the sink."""
        if self._integrity_scan is None:
            raise ProtocolError(f"{self.link.device}: DNP3 master not started")
        self._integrity_scan.Demand()

    async def command(self, request: CommandRequest) -> CommandResult:
        """Send one control (SBO or direct operate, as ``request.mode`` says)."""
        device = self.link.device
        point = self.points.get(request.handle)
        if point is None:
            raise ProtocolError(f"{device}: no point with handle {request.handle}")
        command, index = encode_command(device, point, request)
        if self._master is None:
            raise ProtocolError(f"{device}: DNP3 master not started")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CommandResult] = loop.create_future()

        def resolve(outcome: CommandResult) -> None:
            if not future.done():
                future.set_result(outcome)

        def on_result(result: Any) -> None:  # opendnp3 thread: never raise
            try:
                outcome = command_outcome(result)
            except Exception as exc:
                outcome = CommandResult(CommandStatus.REFUSED, f"unreadable command result: {exc}")
            try:
                loop.call_soon_threadsafe(resolve, outcome)
            except RuntimeError:  # loop closed: nobody waits for the answer any more
                pass

        if request.mode is CommandMode.SBO:
            self._master.SelectAndOperate(command, index, on_result)
        else:
            self._master.DirectOperate(command, index, on_result)
        try:
            return await asyncio.wait_for(future, self._command_timeout_s)
        except TimeoutError:
            return CommandResult(
                CommandStatus.TIMED_OUT, f"no command result within {self._command_timeout_s:g} s"
            )

    # -- configuration --------------------------------------------------------------------

    def _config(self) -> Any:
        link = self.link
        config = opendnp3.MasterStackConfig()
        config.link.LocalAddr = link.master_address
        config.link.RemoteAddr = link.address
        config.link.Timeout = _duration(link.timeout_s)
        config.link.KeepAliveTimeout = _duration(2 * link.scan_period_s)
        params = config.master
        params.responseTimeout = _duration(link.timeout_s)
        # A command may wait behind a poll in progress; past this it fails (TIMED_OUT).
        params.taskStartTimeout = _duration(3 * link.timeout_s)
        params.taskRetryPeriod = _duration(link.scan_period_s)
        params.maxTaskRetryPeriod = _duration(max(link.scan_period_s, link.reconnect_max_s))
        params.timeSyncMode = opendnp3.TimeSyncMode.LAN
        return config

    def _headers(self, *, events_only: bool) -> list[Any]:
        types = [t for t in InputType if t in self._table.input_types()]
        if not types:
            # Command-only device: class polls keep the link supervised.
            classes = _EVENT_CLASSES if events_only else ("Class0", *_EVENT_CLASSES)
            return [opendnp3.Header.From(getattr(opendnp3.PointClass, c)) for c in classes]
        headers = [opendnp3.Header.AllObjects(*_EVENT_HEADERS[t]) for t in types]
        if not events_only:
            headers += [opendnp3.Header.AllObjects(*_STATIC_HEADERS[t]) for t in types]
        return headers

    # -- opendnp3 thread side (never block, never raise into C++) --------------------------

    def _on_values(self, info: Any, values: list[Any], unsolicited: bool) -> None:
        kind = input_of_variation(info.gv)
        if kind is None or not values:
            return
        itype, integer_analog = kind
        if integer_analog and not unsolicited:
            return  # the library's own class poll: the float integrity poll follows
        inputs = self._table.inputs
        flags_valid = bool(info.flagsValid)
        invalid_time = opendnp3.TimestampQuality.INVALID
        receive_time = time.time()
        updates: list[PointUpdate] = []
        for item in values:
            handles = inputs.get((itype, item.index))
            if handles is None:
                continue
            measurement = item.value
            value = raw_value(itype, measurement.value)
            quality = (
                quality_from_flags(itype, measurement.flags.value) if flags_valid else Quality.GOOD
            )
            stamp = measurement.time
            source_time = stamp.value / 1000.0 if stamp.quality != invalid_time else None
            for handle in handles:
                updates.append(PointUpdate(handle, value, quality, source_time, receive_time))
        if updates:
            self.sink.push_many(updates)

    def _request_refresh(self) -> None:
        if not self._refresh_pending and self._integrity_scan is not None:
            self._refresh_pending = True
            self._integrity_scan.Demand()

    def _on_response(self) -> None:
        if not self._up:
            self._request_refresh()

    def _on_integrity_done(self) -> None:
        self._refresh_pending = False
        if not self._up and not self._stopping:
            self._up = True
            self._to_loop(self.listener.link_up, self.link.device)

    def _on_task_complete(self, task_type: Any, result: Any) -> None:
        if result == opendnp3.TaskCompletion.SUCCESS:
            scan = self._integrity_scan
            if task_type == opendnp3.MasterTaskType.STARTUP_INTEGRITY_POLL and self._up and scan:
                # The library's class 0123 poll (e.g. after a buffer overflow) dropped
                # integer analogs: re-read them as float.
                scan.Demand()
            return
        self._refresh_pending = False
        if result == opendnp3.TaskCompletion.FAILURE_RESPONSE_TIMEOUT:
            self._lost(f"no response within {self.link.timeout_s:g} s")

    def _lost(self, reason: str) -> None:
        self._refresh_pending = False
        if self._up and not self._stopping:
            self._up = False
            self._to_loop(self.listener.link_down, self.link.device, reason)

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        """Run a listener call on the loop, after the updates pushed before it."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._in_order, callback, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _in_order(self, callback: Callable[..., None], *args: Any) -> None:
        self.sink.flush()
        callback(*args)
