"""IEC 104 master (FEP side) on c104: one TCP link per remote endpoint, shared by its stations.

Sharing: masters whose :class:`LinkSpec` name the same ``host:port`` (an RTU,
or a data concentrator serving several common addresses) share one
:class:`_Link`, that is one ``c104.Client`` holding one ``c104.Connection``;
each master owns the station of its common address on it. Links live in a
registry per asyncio event loop (``_RUNTIMES``), created by the first
``start()`` of a master of that endpoint and closed by the last ``stop()``.
Importing this module creates nothing.

Why one ``c104.Client`` per endpoint and not one for the whole process:
c104 2.2.1 reconnects a connection that dropped on its own after a fixed
1 s, cannot cancel that nor remove a connection from a client, and has one
command timeout per client. Stopping and restarting a client is the only way
to hold a link down for a backoff delay. A client costs one idle thread and
about 10 kB next to the connection's own receive thread (measured, see the
package docstring).

Data path: every received frame reaches the connection's raw-frame callback
(one Python call, on the client's thread) and monitoring ASDUs are decoded
there from the bytes (:mod:`protocols.iec104.frames`), never through c104's
message objects, whose accessors give the GIL away several times per object
(see that module: with 100 links in one process that starved the event loop
until every link was lost). Decoding the bytes also takes any monitoring type
for any IOA, as real RTUs need: they answer a GI with one type (e.g.
M_ME_NC_1) and report changes of the same IOA with another (M_ME_TF_1),
while c104 binds one type to an IOA. No Python runs on the receive thread:
each monitored IOA has a c104 point (of its GI type, ~1.5 kB) so c104 does
not call ``on_new_point`` for it; c104 drops the other type's ASDUs as
mismatched, after we decoded them. The objects of one ASDU go to the
:class:`UpdateSink` in one ``push_many``.

Link supervision: t3 (idle time before a TESTFR) plus t1 (time to wait for
its answer) is ``floor(2 * scan_period_s)`` whole seconds, at least 3 s (see
:func:`_apply_timers`), so a silent peer is closed within two scan periods
for ``scan_period_s >= 1.5``; a peer that closes its socket is noticed at
once. Connection states are *polled* from the event loop every ``_POLL_S``:
c104's state callback hands over between its threads through a lock it
gives up on after 100 ms by aborting the process, which happened with 1000
links on a loaded machine. ``link_down`` / ``link_up`` are reported once per
transition, on the loop. After every (re)connection the master sends
STARTDT itself (``Init.MUTED``: c104's own STARTDT races its state update
and is lost about once in eight connects), then clock synchronisation, a
general interrogation and, for counters, a counter interrogation, none
waiting; requests c104 cannot send at once (window of k = 12 unacknowledged
I-frames full) are queued and retried.

Commands: c104's ``Point.transmit`` blocks until the confirmation (and the
ACT_TERM in select-before-operate) or its timeout, so it runs on a worker
thread. Its result is unreliable (see :meth:`_Link._transmit`), so while a
command is in flight the link also watches the frames sent and received,
which give the outcome and a refusal's reason (negative ACT_CON, unknown
IOA/CA/type).
"""

# No ``from __future__ import annotations`` here: c104 compares the text of a
# callback's signature with the one it expects, so annotations must be real
# objects (``c104.Connection``), not strings.

import asyncio
import collections
import concurrent.futures
import functools
import logging
import math
import random
import time
import weakref
from collections.abc import Sequence
from typing import Any

import c104

from protocols.base import (
    CommandMode,
    CommandRequest,
    CommandResult,
    CommandStatus,
    ControlKind,
    LinkListener,
    LinkSpec,
    Master,
    PointKind,
    PointSpec,
    PointUpdate,
    ProtocolError,
    Quality,
    UpdateSink,
)
from protocols.iec104.frames import Object, command_frame, monitoring_objects, point_value
from protocols.iec104.mapping import (
    command_type,
    from_c104_time,
    monitored_types,
    resolve_ipv4,
    shorten_gil_switch_interval,
    validate_points,
    value_class,
)

__all__ = ["MasterImpl"]

#: pause before the next command to an IOA whose last command was refused
_REFUSAL_SETTLE_S = 0.3

_log = logging.getLogger(__name__)

#: c104's client tick only drives point timers, which the master does not use
_CLIENT_TICK_MS = 60_000
#: c104 waits LinkSpec.timeout_s plus this for each confirmation of a command
_COMMAND_MARGIN_S = 0.5
#: after c104 reports a failed command early, how long the raw frame saying why may lag
_REASON_GRACE_S = 0.25
#: a select confirmed this long without c104 sending the execute means c104 missed it
_NUDGE_AFTER_S = 0.05
#: worker threads for c104's blocking calls: commands, client stops (on demand, per loop)
_WORKERS = 64
#: how often the links' connection states are read
_POLL_S = 0.1
#: wait after the TCP connect before STARTDT (see _Link._unmute)
_STARTDT_DELAY_S = 0.05
#: retry a request c104 could not send (its send window was full) after this
_OUTBOX_RETRY_S = 0.02
_CLOCK_SYNC, _GI, _CI = "clock sync", "interrogation", "counter interrogation"
#: fraction of the backoff delay added at random, so a rig restart is not met by all at once
_JITTER = 0.1

_S = c104.ConnectionState
_COT_ACT = 6
_COT_ACT_CON = 7
_ERROR_COTS = {
    44: "unknown type identification",
    45: "unknown cause of transmission",
    46: "unknown common address",
    47: "unknown information object address",
}


def _ignore_station(client: c104.Client, connection: c104.Connection, common_address: int) -> None:
    """c104 hook for data from an unconfigured common address: leave it unknown (dropped)."""


def _ignore_point(
    client: c104.Client, station: c104.Station, io_address: int, point_type: c104.Type
) -> None:
    """c104 hook for an unconfigured IOA: add no point (its data is dropped)."""


class _Runtime:
    """Per event loop: the links by endpoint, their state poll, and worker threads."""

    def __init__(self) -> None:
        # no reference to the loop: it is this runtime's weak key in _RUNTIMES
        self.links: dict[tuple[str, int], _Link] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._poll: asyncio.TimerHandle | None = None

    @property
    def executor(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                _WORKERS, thread_name_prefix="iec104-master"
            )
        return self._executor

    def add(self, link: "_Link") -> None:
        self.links[link.endpoint] = link
        if self._poll is None:
            self._poll = asyncio.get_running_loop().call_later(_POLL_S, self._poll_links)

    def release(self, link: "_Link") -> None:
        """Forget ``link``; without links, let the workers end once their calls return."""
        if self.links.get(link.endpoint) is link:
            del self.links[link.endpoint]
        if not self.links:
            if self._poll is not None:
                self._poll.cancel()
                self._poll = None
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None

    def _poll_links(self) -> None:
        for link in list(self.links.values()):
            try:
                link.poll()
            except Exception:
                _log.exception("%s: state poll failed", link.name)
        self._poll = asyncio.get_running_loop().call_later(_POLL_S, self._poll_links)


_RUNTIMES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Runtime]" = (
    weakref.WeakKeyDictionary()
)

_TIMING_FIELDS = ("scan_period_s", "timeout_s", "reconnect_min_s", "reconnect_max_s")


class _PendingCommand:
    """Confirmations seen in raw frames for one command in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.responses: list[tuple[int, bool, bool]] = []  # (COT, negative, select)
        #: set once a refusal or the execute's positive ACT_CON arrived
        self.decided = asyncio.Event()
        self.execute_sent = False

    def add(self, cot: int, negative: bool, select: bool) -> None:
        """c104 thread: record one confirmation; wake the command if it decides."""
        self.responses.append((cot, negative, select))
        if negative or cot in _ERROR_COTS or (cot == _COT_ACT_CON and not select):
            self._loop.call_soon_threadsafe(self.decided.set)

    def refusal(self) -> str | None:
        """Why the outstation refused the command, or None if it did not."""
        for cot, _negative, select in self.responses:
            if cot in _ERROR_COTS:
                return f"{_phase(select)}: {_ERROR_COTS[cot]} (COT {cot})"
        for cot, negative, select in self.responses:
            if negative:
                return f"{_phase(select)} refused: negative confirmation (COT {cot})"
        return None

    @property
    def executed(self) -> bool:
        """Whether the execute's positive ACT_CON arrived (its ACT_TERM is not needed)."""
        return self._confirmed(select=False)

    @property
    def selected(self) -> bool:
        """Whether the select's positive ACT_CON arrived."""
        return self._confirmed(select=True)

    @property
    def stalled(self) -> bool:
        """Select confirmed but no execute sent: c104 missed the confirmation."""
        return self.selected and not self.execute_sent

    def _confirmed(self, *, select: bool) -> bool:
        return any(
            cot == _COT_ACT_CON and not negative and sel is select
            for cot, negative, sel in self.responses
        )


def _phase(select: bool) -> str:
    return "select" if select else "execute"


class _Link:
    """One ``c104.Client`` with one connection to ``ip:port``; the masters behind it by CA.

    Runs on the event loop except the ``_cb_*`` methods, which c104 calls on
    its client thread and which only decode or hand over to the loop.
    """

    def __init__(
        self,
        runtime: _Runtime,
        loop: asyncio.AbstractEventLoop,
        ip: str,
        spec: LinkSpec,
    ) -> None:
        self._runtime = runtime
        self._loop = loop
        self.endpoint = (ip, spec.port)
        self.name = f"{ip}:{spec.port}"
        self.spec = spec
        self.up = False
        self._masters: dict[int, MasterImpl] = {}
        self._closed = False
        self._opened = False  # TCP open in the current attempt
        self._attempt_started = 0.0
        self._reported_loss = False
        self._backoff_s = spec.reconnect_min_s
        self._retry: asyncio.TimerHandle | None = None
        self._mute_check: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Future[None] | None = None
        #: (request, CA) waiting for room in the send window, see _pump
        self._outbox: collections.deque[tuple[str, int]] = collections.deque()
        self._pump_timer: asyncio.TimerHandle | None = None
        #: (CA, type id, IOA) -> confirmations of the command in flight there
        self._watched: dict[tuple[int, int, int], _PendingCommand] = {}
        #: (CA, IOA) -> the worker thread's call of c104 ``Point.transmit``
        self._workers: dict[tuple[int, int], asyncio.Future[bool]] = {}
        self._command_locks: dict[tuple[int, int], asyncio.Lock] = {}
        self._refused_at: dict[tuple[int, int], float] = {}
        self._nudging = False
        self._command_timeout_s = spec.timeout_s + _COMMAND_MARGIN_S
        self._client = c104.Client(
            tick_rate_ms=_CLIENT_TICK_MS,
            command_timeout_ms=round(self._command_timeout_s * 1000),
        )
        self._client.on_new_station(callable=_ignore_station)
        self._client.on_new_point(callable=_ignore_point)
        connection = self._client.add_connection(ip=ip, port=spec.port, init=c104.Init.MUTED)
        if connection is None:
            raise ProtocolError(f"{spec.device}: c104 refused a connection to {self.name}")
        self._conn = connection
        _apply_timers(connection.protocol_parameters, spec)
        connection.on_receive_raw(callable=self._cb_received)

    # -- masters --------------------------------------------------------------------------

    def attach(self, master: "MasterImpl") -> c104.Station:
        """Add ``master``'s station, a c104 point per monitored IOA and its command points.

        The monitored points only keep c104 from asking Python (with the GIL,
        on the receive thread) what to do with an IOA it does not know; their
        values come from the raw frames. Unconfigured IOAs still reach
        ``_ignore_point``, once per ASDU.
        """
        device, ca = master.link.device, master.link.address
        for name in _TIMING_FIELDS:
            if getattr(master.link, name) != getattr(self.spec, name):
                raise ProtocolError(
                    f"{device}: link.{name} {getattr(master.link, name)} differs from "
                    f"{getattr(self.spec, name)} of {self.spec.device}, which shares {self.name}"
                )
        other = self._masters.get(ca)
        if other is not None:
            raise ProtocolError(
                f"{device}: common address {ca} on {self.name} is already used by "
                f"{other.link.device}"
            )
        station = self._conn.get_station(common_address=ca) or self._conn.add_station(
            common_address=ca
        )
        if station is None:
            raise ProtocolError(f"{device}: c104 refused station {ca} on {self.name}")
        for spec in master.points.values():
            if spec.monitored and station.get_point(io_address=spec.address) is None:
                station.add_point(io_address=spec.address, type=monitored_types(spec)[0])
        for spec in master.points.values():
            if spec.control is None:
                continue
            type_ = command_type(spec.control.kind)
            point = station.get_point(io_address=spec.control.address)
            if point is not None and point.type != type_:
                station.remove_point(io_address=spec.control.address)
                point = None
            if point is None:
                station.add_point(io_address=spec.control.address, type=type_)
        self._masters[ca] = master
        if self.up:
            self._loop.call_soon(self._notify_up, master)
        return station

    async def detach(self, master: "MasterImpl") -> None:
        """Remove ``master``'s station; close the link when it was the last one."""
        ca = master.link.address
        if self._masters.get(ca) is not master:
            return
        del self._masters[ca]
        try:
            self._conn.remove_station(common_address=ca)
        except RuntimeError as exc:  # c104 gave up on a lock: data for ``ca`` is dropped anyway
            _log.debug("%s: station %d not removed: %s", self.name, ca, exc)
        if not self._masters:
            await self.close()

    def _notify_up(self, master: "MasterImpl") -> None:
        if self.up and self._masters.get(master.link.address) is master:
            master._link_up()

    # -- connection life cycle (event loop) -------------------------------------------------

    def start(self) -> None:
        if self._closed:
            return
        self._attempt_started = time.time()
        self._client.start()

    async def close(self) -> None:
        """Stop the link for good (its masters have left)."""
        self._closed = True
        self.up = False
        for handle in (self._retry, self._mute_check, self._pump_timer):
            if handle is not None:
                handle.cancel()
        stopping = self._stop_client()
        self._runtime.release(self)
        await stopping
        # the connection holds these bound methods: drop them so the link can be freed
        try:
            self._conn.on_receive_raw(callable=None)  # type: ignore[arg-type]
            self._conn.on_send_raw(callable=None)  # type: ignore[arg-type]
        except RuntimeError as exc:  # c104 gave up on a lock: the link is merely not freed
            _log.debug("%s: callbacks not cleared: %s", self.name, exc)

    def _stop_client(self) -> "asyncio.Future[None]":
        """Stop the c104 client on a worker thread: it joins the connection's thread.

        That takes up to 0.1 s (lib60870 polls its socket in 0.1 s steps), too
        long to block the loop with hundreds of links.
        """
        previous = self._stopping
        if previous is not None and not previous.done():
            return previous
        self._stopping = self._loop.run_in_executor(self._runtime.executor, self._client.stop)
        return self._stopping

    def poll(self) -> None:
        """Follow the connection's state; called every ``_POLL_S`` by the runtime."""
        if self._closed or (self._stopping is not None and not self._stopping.done()):
            return
        state = self._conn.state
        if state == _S.OPEN_MUTED:
            if self.up:  # c104 reconnected by itself before we saw the loss
                self._on_closed()
                return
            self._opened = True
            if self._mute_check is None:
                # let a peer that hangs up at once be noticed before writing to the socket
                self._mute_check = self._loop.call_later(_STARTDT_DELAY_S, self._unmute)
        elif state == _S.OPEN:
            self._on_open()
        elif state == _S.CLOSED_AWAIT_RECONNECT:
            self._on_closed()

    def _unmute(self) -> None:
        """Send STARTDT, and again after ``timeout_s`` should the link still be muted.

        lib60870 writes STARTDT without checking that its socket still exists,
        so a peer closing just then crashes the process; c104 sends its own
        STARTDT right at connect, where that is most likely (``Init.MUTED``
        keeps it from doing so).
        """
        self._mute_check = None
        if self._closed or self._conn.state != _S.OPEN_MUTED:
            return
        try:
            self._conn.unmute()
        except RuntimeError as exc:  # c104 lock timeout: the re-check below tries again
            _log.debug("%s: STARTDT not sent: %s", self.name, exc)
        self._mute_check = self._loop.call_later(max(1.0, self.spec.timeout_s), self._unmute)

    def _on_open(self) -> None:
        if self._mute_check is not None:
            self._mute_check.cancel()
            self._mute_check = None
        self._backoff_s = self.spec.reconnect_min_s
        if self.up:
            return
        self.up = True
        self._reported_loss = False
        _log.info("%s: link up", self.name)
        for master in list(self._masters.values()):
            master._link_up()

    def _on_closed(self) -> None:
        if self._mute_check is not None:
            self._mute_check.cancel()
            self._mute_check = None
        # c104 stamps a close only of a connection that was open (we may not have seen it)
        closed_at = from_c104_time(self._conn.disconnected_at)
        if self.up:
            reason = f"connection to {self.name} lost"
        elif self._opened or (closed_at is not None and closed_at >= self._attempt_started):
            reason = f"connection to {self.name} closed during start-up"
        else:
            reason = f"cannot connect to {self.name}"
        was_up, self.up, self._opened = self.up, False, False
        self._outbox.clear()
        # c104 would reconnect by itself after a fixed 1 s; stopping the client cancels that
        self._stop_client()
        delay = self._backoff_s * (1.0 + _JITTER * random.random())
        self._backoff_s = min(self._backoff_s * 2.0, self.spec.reconnect_max_s)
        if was_up or not self._reported_loss:
            _log.warning("%s; reconnecting with backoff", reason)
            self._reported_loss = True
        else:
            _log.debug("%s; next attempt in %.1f s", reason, delay)
        if self._retry is not None:
            self._retry.cancel()
        self._retry = self._loop.call_later(delay, self._reconnect)
        for master in list(self._masters.values()):
            master._link_down(reason)

    def _reconnect(self) -> None:
        self._retry = None
        if self._closed:
            return
        if self._stopping is not None and not self._stopping.done():
            self._stopping.add_done_callback(lambda _: self._reconnect())
            return
        self.start()

    def interrogate(self, ca: int, *, clock: bool, counters: bool) -> None:
        """Queue clock sync, GI and counter interrogation for station ``ca``; none waits."""
        jobs = [(_CLOCK_SYNC, ca)] if clock else []
        jobs.append((_GI, ca))
        if counters:
            jobs.append((_CI, ca))
        self._outbox.extend(job for job in jobs if job not in self._outbox)
        if self._pump_timer is None:
            self._pump()

    def _pump(self) -> None:
        """Send queued requests while lib60870's send window (k = 12 I-frames) has room.

        c104 drops a request it cannot send at once and returns False; the
        station's answers acknowledge ours and open the window again.
        """
        self._pump_timer = None
        while self._outbox and self.up:
            kind, ca = self._outbox[0]
            try:
                if kind == _CLOCK_SYNC:
                    sent = self._conn.clock_sync(common_address=ca, wait_for_response=False)
                elif kind == _GI:
                    sent = self._conn.interrogation(
                        common_address=ca,
                        cause=c104.Cot.ACTIVATION,
                        qualifier=c104.Qoi.STATION,
                        wait_for_response=False,
                    )
                else:
                    sent = self._conn.counter_interrogation(
                        common_address=ca,
                        cause=c104.Cot.ACTIVATION,
                        qualifier=c104.Rqt.GENERAL,
                        freeze=c104.Frz.READ,
                        wait_for_response=False,
                    )
            except (RuntimeError, ValueError) as exc:  # c104 lock timeout: try again
                _log.debug("%s: %s to station %d not sent: %s", self.name, kind, ca, exc)
                sent = False
            if not sent:
                self._pump_timer = self._loop.call_later(_OUTBOX_RETRY_S, self._pump)
                return
            self._outbox.popleft()

    # -- commands (event loop) ---------------------------------------------------------------

    async def command(
        self, master: "MasterImpl", spec: PointSpec, request: CommandRequest
    ) -> CommandResult:
        """Send one control and classify the outcome (see the module docstring)."""
        assert spec.control is not None
        control, ca = spec.control, master.link.address
        try:
            value = _command_value(control.kind, request.value)
        except ValueError as exc:
            return _refused(str(exc))
        key = (ca, control.address)
        # c104 runs one command per IOA: queue behind the one in flight
        async with self._command_locks.setdefault(key, asyncio.Lock()):
            previous = self._workers.get(key)
            if previous is not None:
                # decided already from the frames, but c104 still waits (e.g. for ACT_TERM)
                await asyncio.wait({previous})
            settle = self._refused_at.pop(key, 0.0) + _REFUSAL_SETTLE_S - time.monotonic()
            if settle > 0:
                # c104's server settles a refused selection after answering it: a
                # select sent at once to the same IOA lost its selection (seen on
                # loopback in one command of three) and the execute was refused
                await asyncio.sleep(settle)
            result = await self._command(master, key, control.kind, value, request.mode)
            if result.status is CommandStatus.REFUSED:
                self._refused_at[key] = time.monotonic()
            return result

    async def _command(
        self,
        master: "MasterImpl",
        key: tuple[int, int],
        kind: ControlKind,
        value: bool | float | c104.Double | c104.Step,
        mode: CommandMode,
    ) -> CommandResult:
        assert master._station is not None
        ca, ioa = key
        if not self.up:
            return _refused(f"link to {self.name} is down")
        point = master._station.get_point(io_address=ioa)
        if point is None:
            return _refused(f"command point IOA {ioa} missing in c104")
        try:
            point.command_mode = (
                c104.CommandMode.SELECT_AND_EXECUTE
                if mode is CommandMode.SBO
                else c104.CommandMode.DIRECT
            )
            point.value = value
        except RuntimeError as exc:  # c104 gives up on a lock held over 100 ms
            return _refused(f"not sent: {exc}")
        watch_key = (ca, command_type(kind).value, ioa)
        result = await self._transmit(key, watch_key, point)
        if result is None:
            # c104 missed the select confirmation and gave up before the execute:
            # select again (the station keeps our selection) and execute
            result = await self._transmit(key, watch_key, point)
        if result is None:
            return CommandResult(CommandStatus.TIMED_OUT, "no confirmation of the execute")
        return result

    async def _transmit(
        self, key: tuple[int, int], watch_key: tuple[int, int, int], point: c104.Point
    ) -> CommandResult | None:
        """One ``Point.transmit``; None if only the select was confirmed.

        The outcome comes from the frames seen on the wire as soon as one
        decides; c104's own result only when none did. c104 waits for a
        confirmation *after* sending without checking whether it already
        arrived, so on fast links it misses a few percent of them: it then
        waits for its timeout (and never sends the execute after a missed
        select), and an answer after a negative one (c104's own server
        follows a negative ACT_CON with COT 47) even turns its failure into
        success. A waiter that missed its confirmation is woken by the
        answer to a clock synchronisation (:meth:`_nudge`).
        """
        pending = _PendingCommand(self._loop)
        self._watch(watch_key, pending)
        started = time.monotonic()
        try:
            worker = self._loop.run_in_executor(
                self._runtime.executor, point.transmit, c104.Cot.ACTIVATION
            )
            self._workers[key] = worker
            worker.add_done_callback(functools.partial(self._worker_done, key))
            decided = asyncio.ensure_future(pending.decided.wait())
            first: set[asyncio.Future[Any]] = {worker, decided}
            try:
                while not (
                    await asyncio.wait(
                        first, timeout=_NUDGE_AFTER_S, return_when=asyncio.FIRST_COMPLETED
                    )
                )[0]:
                    if pending.stalled:
                        self._nudge(key[0])
            finally:
                decided.cancel()
            if not pending.decided.is_set():
                if time.monotonic() - started < self._command_timeout_s:
                    # failed early: the frame saying why may still be on its way to us
                    try:
                        await asyncio.wait_for(pending.decided.wait(), _REASON_GRACE_S)
                    except TimeoutError:
                        pass
                if not pending.decided.is_set():
                    try:
                        if worker.result():
                            return CommandResult(CommandStatus.ACCEPTED)
                    except (RuntimeError, ValueError) as exc:
                        return _refused(f"not sent: {exc}")
            if not worker.done():
                # decided from the frames while c104 still waits: free the IOA soon
                self._loop.call_later(_NUDGE_AFTER_S, self._release, worker, key[0])
            return self._outcome(pending, time.monotonic() - started)
        finally:
            self._unwatch(watch_key)

    def _watch(self, key: tuple[int, int, int], pending: _PendingCommand) -> None:
        if not self._watched:
            self._watch_sent(on=True)
        self._watched[key] = pending

    def _unwatch(self, key: tuple[int, int, int]) -> None:
        del self._watched[key]
        if not self._watched and not self._closed:
            self._watch_sent(on=False)

    def _watch_sent(self, *, on: bool) -> None:
        """Watch sent frames only while commands are in flight: each costs a Python call."""
        try:
            self._conn.on_send_raw(callable=self._cb_sent if on else None)  # type: ignore[arg-type]
        except RuntimeError as exc:  # c104 gave up on a lock; c104's own result decides then
            _log.debug("%s: send watch not %s: %s", self.name, "set" if on else "cleared", exc)

    def _worker_done(self, key: tuple[int, int], worker: "asyncio.Future[bool]") -> None:
        if self._workers.get(key) is worker:
            del self._workers[key]
        if not worker.cancelled():
            worker.exception()  # retrieved here when the outcome was decided from frames

    def _release(self, worker: "asyncio.Future[bool]", ca: int) -> None:
        if not worker.done():
            self._nudge(ca)

    def _nudge(self, ca: int) -> None:
        """Send a clock synchronisation and wait for it in c104, once at a time.

        c104 wakes *all* command waiters of a connection when an awaited
        confirmation arrives, so one that missed its own re-checks and goes on.
        A clock sync is harmless (the master sends one with every integrity
        interrogation); c104 cannot decode the answer to a test command.
        """
        if self._nudging or self._closed or not self.up:
            return
        self._nudging = True
        nudge = self._loop.run_in_executor(
            self._runtime.executor,
            functools.partial(self._conn.clock_sync, common_address=ca, wait_for_response=True),
        )
        nudge.add_done_callback(self._nudged)

    def _nudged(self, nudge: "asyncio.Future[bool]") -> None:
        self._nudging = False
        if not nudge.cancelled():
            nudge.exception()

    def _outcome(self, pending: _PendingCommand, elapsed: float) -> CommandResult | None:
        reason = pending.refusal()
        if reason is not None:
            return _refused(reason)
        if pending.executed:
            return CommandResult(CommandStatus.ACCEPTED)
        if pending.selected:
            return None
        if elapsed < self._command_timeout_s:
            return _refused(f"not sent: link to {self.name} closed or its send window full")
        return CommandResult(
            CommandStatus.TIMED_OUT, f"no confirmation within {self._command_timeout_s:g} s"
        )

    # -- c104 client thread -----------------------------------------------------------------

    def _cb_received(self, connection: c104.Connection, data: bytes) -> None:
        """c104 thread, every received frame: monitoring data to its master, confirmations."""
        try:
            asdu = monitoring_objects(data)
            if asdu is not None:
                master = self._masters.get(asdu[1])
                if master is not None:
                    master._on_objects(asdu[0], asdu[2], asdu[3])
                return
            if self._watched:
                frame = command_frame(data)
                if frame is not None:
                    pending = self._watched.get(frame[0])
                    if pending is not None:
                        pending.add(*frame[1:])
        except Exception:
            _log.exception("%s: cannot decode a received frame %s", self.name, data.hex())

    def _cb_sent(self, connection: c104.Connection, data: bytes) -> None:
        """c104 thread, only while commands are in flight: note sent executes."""
        try:
            frame = command_frame(data)
            if frame is not None:
                pending = self._watched.get(frame[0])
                if pending is not None and frame[1] == _COT_ACT and not frame[3]:
                    pending.execute_sent = True
        except Exception:
            _log.exception("%s: cannot parse a sent command", self.name)


def _refused(reason: str) -> CommandResult:
    return CommandResult(CommandStatus.REFUSED, reason)


def _command_value(kind: ControlKind, value: float) -> bool | float | c104.Double | c104.Step:
    """CommandRequest.value -> the c104 command point value."""
    if kind is ControlKind.SINGLE:
        return bool(value)
    if kind is ControlKind.DOUBLE:
        return c104.Double.ON if value else c104.Double.OFF
    if kind is ControlKind.STEP:
        if value not in (1, -1):
            raise ValueError(f"step command value must be +1 or -1, not {value!r}")
        return c104.Step.HIGHER if value > 0 else c104.Step.LOWER
    return float(value)


def _apply_timers(params: c104.ProtocolParameters, spec: LinkSpec) -> None:
    """APCI timers so a silent peer is closed within ``2 * scan_period_s`` (at least 3 s).

    lib60870 sends a TESTFR after t3 without traffic and closes t1 later, but
    only if t1 < t3: each TESTFR re-arms t1, so otherwise it closes only after
    the third unanswered TESTFR (4 * t3). Timers are whole seconds.
    """
    budget_s = max(3, math.floor(2 * spec.scan_period_s))
    t1 = min(15, max(1, budget_s // 3))
    params.message_timeout = t1  # t1: wait for a TESTFR con or for acks of our I-frames
    params.keep_alive_interval = budget_s - t1  # t3 (> t1): idle time before a TESTFR
    params.confirm_interval = 1  # t2: ack received I-frames within 1 s (< any peer's t1)
    params.connection_timeout = budget_s  # t0: TCP connect


class MasterImpl(Master):
    """IEC 104 master for the station ``link.address`` at ``link.host:link.port``.

    Point mapping: ``PointSpec.address`` is the IOA of the monitored point,
    any monitoring type of its kind is accepted (GI and spontaneous types may
    differ per IOA); ``ControlSpec.address`` is the IOA commands go to:
    SINGLE -> C_SC_NA_1, DOUBLE -> C_DC_NA_1, STEP -> C_RC_NA_1 (value +1
    higher / -1 lower), SETPOINT -> C_SE_NC_1 (float).
    """

    def __init__(
        self,
        link: LinkSpec,
        points: Sequence[PointSpec],
        sink: UpdateSink,
        listener: LinkListener,
    ) -> None:
        shorten_gil_switch_interval()
        super().__init__(link, points, sink, listener)
        validate_points(link.device, link.address, points)
        #: IOA -> (handle, value class), read on c104's thread
        self._monitored = {p.address: (p.handle, value_class(p)) for p in points if p.monitored}
        self._counters = any(p.monitored and p.kind is PointKind.COUNTER for p in points)
        self._link: _Link | None = None
        self._station: c104.Station | None = None
        self._reported: bool | None = None  # last link state told to the listener
        self._integrity: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        """Join (or open) the link to ``host:port``; returns before it is connected."""
        if self._link is not None:
            return
        loop = asyncio.get_running_loop()
        ip = await resolve_ipv4(self.link)
        runtime = _RUNTIMES.get(loop)
        if runtime is None:
            runtime = _RUNTIMES[loop] = _Runtime()
        link = runtime.links.get((ip, self.link.port))
        created = link is None
        if link is None:
            link = _Link(runtime, loop, ip, self.link)
            runtime.add(link)
        try:
            self._station = link.attach(self)
        except ProtocolError:
            if created:
                await link.close()
            raise
        self._link = link
        if created:
            # after the masters started with this one have attached their stations
            loop.call_soon(link.start)

    async def stop(self) -> None:
        """Leave the link (closing it if no other station uses it); no link_down is reported."""
        link, self._link = self._link, None
        if link is None:
            return
        self._cancel_integrity()
        await link.detach(self)
        self._station = None
        self._reported = None

    async def refresh(self) -> None:
        """Send a general interrogation (and counter interrogation); values arrive as updates."""
        if self._link is None or not self._link.up:
            raise ProtocolError(f"{self.link.device}: link down, cannot interrogate")
        self._interrogate(clock=False)

    async def command(self, request: CommandRequest) -> CommandResult:
        """Send one control; ACCEPTED, REFUSED (with the reason) or TIMED_OUT."""
        spec = self.points.get(request.handle)
        if spec is None:
            return _refused(f"{self.link.device}: no point with handle {request.handle}")
        if spec.control is None:
            return _refused(f"{self.link.device}: point {spec.name!r} has no control")
        if self._link is None:
            return _refused(f"{self.link.device}: master not started")
        return await self._link.command(self, spec, request)

    # -- called by the link on the event loop -------------------------------------------------

    def _link_up(self) -> None:
        self.sink.flush()  # what arrived before goes first
        if self._reported is not True:
            self._reported = True
            try:
                self.listener.link_up(self.link.device)
            except Exception:
                _log.exception("%s: link_up listener failed", self.link.device)
        self._interrogate(clock=True)

    def _link_down(self, reason: str) -> None:
        self.sink.flush()  # values received before the loss must not clear its marking
        self._cancel_integrity()
        if self._reported is not False:
            self._reported = False
            try:
                self.listener.link_down(self.link.device, reason)
            except Exception:
                _log.exception("%s: link_down listener failed", self.link.device)

    def _interrogate(self, *, clock: bool) -> None:
        assert self._link is not None
        self._link.interrogate(self.link.address, clock=clock, counters=self._counters)
        self._cancel_integrity()
        if self.link.integrity_period_s > 0:
            self._integrity = asyncio.get_running_loop().call_later(
                self.link.integrity_period_s, self._integrity_due
            )

    def _integrity_due(self) -> None:
        self._integrity = None
        if self._link is not None and self._link.up:
            self._interrogate(clock=True)

    def _cancel_integrity(self) -> None:
        if self._integrity is not None:
            self._integrity.cancel()
            self._integrity = None

    # -- c104 client thread -------------------------------------------------------------------

    def _on_objects(self, type_id: int, test: bool, objects: list[Object]) -> None:
        """Map the decoded objects of one monitoring ASDU onto points; push them in one batch."""
        receive_time = time.time()
        flag = Quality.TEST if test else Quality.GOOD
        monitored = self._monitored
        updates: list[PointUpdate] = []
        for ioa, value, quality, source_time in objects:
            entry = monitored.get(ioa)
            if entry is not None:
                updates.append(
                    PointUpdate(
                        entry[0],
                        point_value(value, type_id, entry[1]),
                        quality | flag,
                        source_time,
                        receive_time,
                    )
                )
        if updates:
            self.sink.push_many(updates)
