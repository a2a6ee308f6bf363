"""Alarm processing: limit, rate, status, comm-failure, quality and external alarms.

Contract:
- :class:`AlarmManager` consumes :class:`~scada.pointdb.ChangeBatch` es (it
  subscribes to the point database) and :class:`~scada.events.Event` s (it
  subscribes to the event log). Each batch is processed synchronously on the
  caller's thread; the analog limit and rate checks are numpy operations over
  the whole batch, and Python code runs only for points whose alarm state
  changes.
- Conditions: analog limits (LL/L/H/HH, with hysteresis and an on-delay),
  rate of change, status change (commanded or not: the control layer calls
  :meth:`AlarmManager.expect_command` before it commands), comm failure (one
  alarm per device, from COMM_FAIL quality and LINK_LOST/LINK_RESTORED
  events), quality (flags other than comm failure) and *external* alarms
  raised by other producers through :meth:`AlarmManager.raise_alarm` (e.g.
  topology: "customers de-energised on feeder F1").
- An alarm is identified by ``(source, condition, tag)``: one alarm per point
  and condition (a limit alarm moving H -> HH is the same alarm, re-raised).
  States: unacknowledged, acknowledged, cleared (the condition is gone but
  the operator has not acknowledged it: it stays listed) and closed (cleared
  and acknowledged: it leaves the list).
- Shelving hides an alarm key (and new occurrences of it) until an expiry.
  Suppression: when a breaker registered with
  :meth:`AlarmManager.set_downstream` is open, alarms on its downstream
  points and devices are raised *suppressed* (hidden from the list; recorded
  in the historian); the trip itself is one alarm. Alarms raised on those
  points shortly before the trip indication (``suppress_window_s``) are
  suppressed too, since field devices report in no particular order.
  Suppressed or shelved alarms that clear are closed without acknowledgement.
- Every status change produces a sequence-of-events :class:`SoeEntry` with
  the source time (ms) and the receive time.
- Output: subscribers get a list of :class:`AlarmTransition` and
  :class:`SoeEntry` records per processed batch or operator action,
  synchronously (the historian queues them; the API pushes them).
- Timers (limit on-delays, rate-alarm expiry, shelve expiry, command
  expectations) advance in :meth:`AlarmManager.tick`; :meth:`AlarmManager.start`
  runs it periodically on the event loop.
- Thread safety: every public method takes one lock, so operator actions from
  another thread interleave safely with batch processing.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fnmatch
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from protocols.base import DoubleState, PointKind, ProtocolError, Quality
from scada.config import PointConfig
from scada.events import Event, EventKind, EventLog
from scada.pointdb import ChangeBatch, PointDB, Subscription

__all__ = [
    "Alarm",
    "AlarmError",
    "AlarmKey",
    "AlarmManager",
    "AlarmPolicy",
    "AlarmRecord",
    "AlarmSettings",
    "AlarmState",
    "AlarmTransition",
    "Condition",
    "Priority",
    "SoeEntry",
    "Transition",
    "UnknownAlarmError",
    "status_text",
]


class AlarmError(ProtocolError):
    """An alarm operation that cannot be done (names the alarm or point)."""


class UnknownAlarmError(AlarmError, KeyError):
    """An alarm id that is not (or no longer) in the alarm list."""


class Priority(enum.IntEnum):
    """1 is the most urgent."""

    CRITICAL = 1
    HIGH = 2
    MEDIUM = 3
    LOW = 4


class Condition(enum.StrEnum):
    LIMIT = "limit"
    RATE = "rate"
    STATUS = "status"
    COMM = "comm"
    QUALITY = "quality"
    EXTERNAL = "external"


class AlarmState(enum.StrEnum):
    UNACKNOWLEDGED = "unacknowledged"
    ACKNOWLEDGED = "acknowledged"
    #: the condition is gone but nobody acknowledged it: still listed
    CLEARED = "cleared"
    #: cleared and acknowledged (or cleared while shelved/suppressed): off the list
    CLOSED = "closed"


class Transition(enum.StrEnum):
    RAISED = "raised"
    UPDATED = "updated"
    CLEARED = "cleared"
    ACKNOWLEDGED = "acknowledged"
    SHELVED = "shelved"
    UNSHELVED = "unshelved"
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"


AlarmKey = tuple[str, Condition, str]
"""``(source, condition, tag)``; ``tag`` is empty except for external alarms."""

#: limit levels as stored per point: negative below, positive above the normal band
_LEVEL_NAMES = {-2: "LL", -1: "L", 1: "H", 2: "HH"}
_LEVELS = {v: k for k, v in _LEVEL_NAMES.items()}
_UNUSABLE = np.uint32(Quality.INVALID | Quality.COMM_FAIL | Quality.NOT_INIT)
_COMM = np.uint32(Quality.COMM_FAIL)
#: quality flags that raise a quality alarm (comm failure has its own, per device)
_QUALITY_ALARM = np.uint32(Quality.INVALID | Quality.QUESTIONABLE | Quality.OLD | Quality.OVERFLOW)
_NO_QUALITY_ALARM = np.uint32(Quality.COMM_FAIL | Quality.NOT_INIT)
_STATUS_KINDS = (PointKind.SINGLE, PointKind.DOUBLE)
_OPEN = {PointKind.DOUBLE: float(DoubleState.OFF), PointKind.SINGLE: 0.0}
_INTERMEDIATE = float(DoubleState.INTERMEDIATE)


def status_text(kind: PointKind, value: float) -> str:
    """Operator text of a status value: OPEN/CLOSED for double points, OFF/ON for single."""
    if math.isnan(value):
        return "?"
    if kind == PointKind.DOUBLE:
        return {0: "INTERMEDIATE", 1: "OPEN", 2: "CLOSED", 3: "INDETERMINATE"}.get(
            int(value), f"{value:g}"
        )
    return "ON" if value else "OFF"


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm as listed; a new instance is made on every change."""

    id: int
    source: str
    condition: Condition
    tag: str
    #: short condition text: "HH", "ROC", "TRIP", "OPEN", "COMM", "QUALITY", or the tag
    detail: str
    priority: int
    message: str
    device: str | None
    point: str | None
    value: float | None
    #: status alarms: the state whose return clears the alarm
    normal: float | None
    #: source time of the latest raise (receive time when the source gave none), POSIX s
    raised_time: float
    receive_time: float
    active: bool = True
    acknowledged: bool = False
    ack_operator: str | None = None
    ack_time: float | None = None
    cleared_time: float | None = None
    shelved_until: float | None = None
    suppressed_by: str | None = None

    @property
    def key(self) -> AlarmKey:
        return (self.source, self.condition, self.tag)

    @property
    def state(self) -> AlarmState:
        if self.active:
            return AlarmState.ACKNOWLEDGED if self.acknowledged else AlarmState.UNACKNOWLEDGED
        if self.acknowledged or self.shelved_until is not None or self.suppressed_by is not None:
            return AlarmState.CLOSED
        return AlarmState.CLEARED

    @property
    def listed(self) -> bool:
        return self.state != AlarmState.CLOSED


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """A change of one alarm; ``alarm`` is its state after the change."""

    kind: Transition
    alarm: Alarm
    time: float
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class SoeEntry:
    """Sequence-of-events record of one status change."""

    point: str
    device: str
    value: float
    previous: float
    text: str
    #: the device's time stamp in integer milliseconds (None when the protocol gave none)
    source_time_ms: int | None
    receive_time: float
    quality: int
    #: the change was expected after a command (see :meth:`AlarmManager.expect_command`)
    commanded: bool


AlarmRecord = AlarmTransition | SoeEntry


@dataclass(frozen=True, slots=True)
class AlarmSettings:
    """A point's alarm settings beyond the template's ``limits``.

    ``hysteresis`` (engineering units) is how far a value must come back
    inside a limit to leave that level; None means the point's deadband.
    ``delay_s`` is the on-delay: a limit level must persist that long before
    it is raised (returning towards normal is immediate).
    ``rate_limit_per_s`` raises a rate-of-change alarm above that many
    units per second. ``priority`` overrides the policy's for every
    condition of the point.
    """

    hysteresis: float | None = None
    delay_s: float = 0.0
    rate_limit_per_s: float | None = None
    priority: int | None = None


def _default_priorities() -> dict[str, int]:
    return {
        "HH": Priority.HIGH,
        "LL": Priority.HIGH,
        "H": Priority.MEDIUM,
        "L": Priority.MEDIUM,
        "ROC": Priority.MEDIUM,
        "TRIP": Priority.CRITICAL,
        "STATUS": Priority.HIGH,
        "COMM": Priority.HIGH,
        "QUALITY": Priority.LOW,
    }


@dataclass(frozen=True)
class AlarmPolicy:
    """System-wide alarm settings.

    ``settings`` maps point names or shell patterns (``"*.P_MW"``) to
    :class:`AlarmSettings`; an exact name wins over patterns, and the first
    matching pattern wins among patterns.
    """

    priorities: Mapping[str, int] = field(default_factory=_default_priorities)
    settings: Mapping[str, AlarmSettings] = field(default_factory=dict)
    default: AlarmSettings = AlarmSettings()
    #: a rate alarm clears when the point has not moved for this long
    rate_clear_s: float = 10.0
    #: alarms raised this long before a trip indication count as its consequences
    suppress_window_s: float = 2.0

    def for_point(self, name: str) -> AlarmSettings:
        exact = self.settings.get(name)
        if exact is not None:
            return exact
        for pattern, s in self.settings.items():
            if fnmatch.fnmatchcase(name, pattern):
                return s
        return self.default


@dataclass(slots=True)
class _Expectation:
    value: float
    deadline: float


class _Arrays:
    """Per-handle settings and state, aligned with the point database's handles."""

    def __init__(self, size: int) -> None:
        nan = np.full(size, np.nan)
        self.limits = np.full((4, size), np.nan)  # rows: low_low, low, high, high_high
        self.has_limits = np.zeros(size, bool)
        self.hysteresis = np.zeros(size)
        self.delay_s = np.zeros(size)
        self.rate_limit = nan.copy()
        self.has_rate = np.zeros(size, bool)
        self.is_status = np.zeros(size, bool)
        self.device = np.full(size, -1, np.int32)
        # state
        self.level = np.zeros(size, np.int8)
        self.pending = np.zeros(size, np.int8)
        self.pending_since = nan.copy()
        self.rate_active = np.zeros(size, bool)
        self.last_value = nan.copy()
        self.last_time = nan.copy()
        self.quality_alarm = np.zeros(size, bool)
        self.comm = np.zeros(size, bool)
        self.status = nan.copy()

    STATE = (
        "level",
        "pending",
        "pending_since",
        "rate_active",
        "last_value",
        "last_time",
        "quality_alarm",
        "comm",
        "status",
    )


class AlarmManager:
    """The alarm list of one control centre, fed by a point database and an event log."""

    def __init__(
        self,
        pointdb: PointDB,
        events: EventLog | None = None,
        policy: AlarmPolicy | None = None,
    ) -> None:
        self.pointdb = pointdb
        self.policy = policy or AlarmPolicy()
        self._lock = threading.RLock()
        self._alarms: dict[AlarmKey, Alarm] = {}
        self._by_id: dict[int, AlarmKey] = {}
        # ids stay unique across restarts: a restart starts above the wall clock in ms
        self._next_id = time.time_ns() // 1_000_000
        self._subs: list[Callable[[Sequence[AlarmRecord]], None]] = []
        self._out: list[AlarmRecord] = []
        self._shelves: dict[AlarmKey, float] = {}
        self._expect: dict[str, list[_Expectation]] = {}
        self._downstream: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._open_breakers: dict[str, float] = {}
        #: reclosed breakers whose alarms stay suppressed until then (wall clock)
        self._releases: dict[str, float] = {}
        self._sup_point: dict[str, str] = {}
        self._sup_device: dict[str, str] = {}
        self._element_breakers: set[str] = set()
        self._link_lost: set[str] = set()
        self._comm_count: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        #: devices whose comm alarm came back from the database: cleared by any good value
        self._comm_restored: set[str] = set()
        self._names: list[str | None] = []
        self._configs: list[PointConfig | None] = []
        self._settings: list[AlarmSettings | None] = []
        self._devices: list[str] = []
        self._device_index: dict[str, int] = {}
        self._a = _Arrays(0)
        self._task: asyncio.Task[None] | None = None
        self.reload()
        self._sub: Subscription | None = pointdb.subscribe(self._on_batch)
        self._events_close: Callable[[], None] | None = (
            events.subscribe(self._on_event) if events is not None else None
        )

    # ------------------------------------------------------------ lifecycle
    def reload(self) -> None:
        """Re-read point definitions (limits, kinds, devices) from the point database.

        Called at construction and on every CONFIG event; points that keep
        their name and handle keep their alarm state.
        """
        with self._lock:
            self._generation = self.pointdb.generation
            handles = self.pointdb.handles()
            size = max(handles.values(), default=-1) + 1
            old, old_names = self._a, self._names
            a = _Arrays(size)
            names: list[str | None] = [None] * size
            configs: list[PointConfig | None] = [None] * size
            settings: list[AlarmSettings | None] = [None] * size
            devices: list[str] = []
            device_index: dict[str, int] = {}
            breakers: set[str] = set()
            for name, h in handles.items():
                cfg = self.pointdb.config(name)
                names[h], configs[h] = name, cfg
                s = self.policy.for_point(name)
                settings[h] = s
                di = device_index.setdefault(cfg.device, len(devices))
                if di == len(devices):
                    devices.append(cfg.device)
                a.device[h] = di
                t = cfg.template
                a.is_status[h] = t.kind in _STATUS_KINDS
                if t.kind in _STATUS_KINDS and (t.element or "").startswith("breaker:"):
                    breakers.add(name)
                if t.kind == PointKind.ANALOG and t.limits is not None:
                    lim = t.limits
                    for row, v in enumerate((lim.low_low, lim.low, lim.high, lim.high_high)):
                        if v is not None:
                            a.limits[row, h] = v
                    a.has_limits[h] = True
                a.hysteresis[h] = t.deadband if s.hysteresis is None else s.hysteresis
                a.delay_s[h] = s.delay_s
                if t.kind == PointKind.ANALOG and s.rate_limit_per_s is not None:
                    a.rate_limit[h] = s.rate_limit_per_s
                    a.has_rate[h] = True
                if h < len(old_names) and old_names[h] == name:
                    for attr in _Arrays.STATE:
                        getattr(a, attr)[h] = getattr(old, attr)[h]
            self._a, self._names, self._configs, self._settings = a, names, configs, settings
            self._devices, self._device_index = devices, device_index
            self._element_breakers = breakers
            self._comm_count = np.bincount(a.device[a.comm], minlength=len(devices)).astype(
                np.int64
            )

    def restore(self, alarms: Iterable[Alarm]) -> None:
        """Put back the listed alarms of a previous run (from the historian).

        Limit, quality and status alarms are re-evaluated by the next values
        of their points; a comm alarm clears at the first good value of its
        device; a rate alarm clears after ``rate_clear_s`` without movement.
        """
        now = time.time()
        handles = self.pointdb.handles()
        with self._lock:
            for alarm in alarms:
                if not alarm.listed:
                    continue
                self._alarms[alarm.key] = alarm
                self._by_id[alarm.id] = alarm.key
                self._next_id = max(self._next_id, alarm.id + 1)
                if alarm.shelved_until is not None:
                    self._shelves[alarm.key] = alarm.shelved_until
                if not alarm.active:
                    continue
                h = handles.get(alarm.point or "")
                if alarm.condition == Condition.COMM:
                    self._comm_restored.add(alarm.source)
                elif h is None:
                    continue
                elif alarm.condition == Condition.LIMIT:
                    self._a.level[h] = self._a.pending[h] = _LEVELS.get(alarm.detail, 0)
                elif alarm.condition == Condition.QUALITY:
                    self._a.quality_alarm[h] = True
                elif alarm.condition == Condition.RATE:
                    self._a.rate_active[h] = True
                    self._a.last_time[h] = now

    async def start(self, tick_period_s: float = 0.2) -> None:
        """Run :meth:`tick` every ``tick_period_s`` on the running loop until :meth:`close`."""

        async def run() -> None:
            while True:
                await asyncio.sleep(tick_period_s)
                self.tick()

        self._task = asyncio.get_running_loop().create_task(run())

    async def close(self) -> None:
        """Stop the timers and unsubscribe from the point database and event log."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        if self._events_close is not None:
            self._events_close()
            self._events_close = None

    def subscribe(self, callback: Callable[[Sequence[AlarmRecord]], None]) -> Callable[[], None]:
        """Register a consumer of alarm transitions and SOE entries; returns its unsubscribe."""
        with self._lock:
            self._subs = [*self._subs, callback]

        def close() -> None:
            with self._lock:
                self._subs = [s for s in self._subs if s is not callback]

        return close

    # --------------------------------------------------------------- queries
    def alarms(
        self,
        *,
        device: str | None = None,
        include_shelved: bool = False,
        include_suppressed: bool = False,
    ) -> list[Alarm]:
        """The alarm list, most urgent first, then newest first."""
        with self._lock:
            out = [
                a
                for a in self._alarms.values()
                if a.listed
                and (device is None or a.device == device)
                and (include_shelved or a.shelved_until is None)
                and (include_suppressed or a.suppressed_by is None)
            ]
        out.sort(key=lambda a: (a.priority, -a.raised_time, a.id))
        return out

    def get(self, alarm_id: int) -> Alarm:
        with self._lock:
            key = self._by_id.get(alarm_id)
            if key is None:
                raise UnknownAlarmError(f"alarm {alarm_id} is not in the alarm list")
            return self._alarms[key]

    def counts(self) -> dict[AlarmState, int]:
        """How many listed alarms are in each state (shelved and suppressed ones included)."""
        with self._lock:
            out = dict.fromkeys(AlarmState, 0)
            for a in self._alarms.values():
                out[a.state] += 1
            return out

    # --------------------------------------------------------- operator acts
    def acknowledge(self, alarm_id: int, operator: str) -> Alarm:
        """Acknowledge one alarm; raises :class:`UnknownAlarmError` if it is not listed."""
        with self._lock:
            alarm = self.get(alarm_id)
            result = self._ack(alarm, operator, time.time())
            self._flush()
            return result

    def acknowledge_many(self, alarm_ids: Iterable[int], operator: str) -> list[Alarm]:
        """Acknowledge the listed ones of ``alarm_ids`` (others were closed meanwhile)."""
        now = time.time()
        with self._lock:
            done = []
            for i in alarm_ids:
                key = self._by_id.get(i)
                if key is not None and not self._alarms[key].acknowledged:
                    done.append(self._ack(self._alarms[key], operator, now))
            self._flush()
            return done

    def acknowledge_device(self, device: str, operator: str) -> list[Alarm]:
        """Acknowledge every unacknowledged alarm of a device (shown or not)."""
        with self._lock:
            ids = [a.id for a in self._alarms.values() if a.device == device]
        return self.acknowledge_many(ids, operator)

    def shelve(self, alarm_id: int, duration_s: float, operator: str) -> Alarm:
        """Hide an alarm (and new occurrences of its key) for ``duration_s``."""
        if duration_s <= 0:
            raise AlarmError(f"alarm {alarm_id}: shelve duration_s must be > 0, got {duration_s}")
        now = time.time()
        with self._lock:
            alarm = self.get(alarm_id)
            until = now + duration_s
            self._shelves[alarm.key] = until
            result = self._put(
                replace(alarm, shelved_until=until), Transition.SHELVED, now, operator
            )
            self._flush()
            return result

    def unshelve(self, alarm_id: int, operator: str) -> Alarm:
        with self._lock:
            alarm = self.get(alarm_id)
            self._shelves.pop(alarm.key, None)
            result = self._put(
                replace(alarm, shelved_until=None), Transition.UNSHELVED, time.time(), operator
            )
            self._flush()
            return result

    # ------------------------------------------------------ other producers
    def expect_command(self, point: str, value: float, within_s: float) -> tuple[str, float] | None:
        """Announce a command so the status change it causes is not an uncommanded alarm.

        ``point`` and ``value`` are as given to :meth:`scada.fep.FrontEnd.command`
        (True/1 = close/on). The expectation applies to the point's check-back
        status point and lasts ``within_s``. Returns ``(status point, expected
        value)``, or None when the point has no status to watch (setpoints).
        Raises :class:`scada.pointdb.UnknownPointError` for an unknown point.
        """
        cfg = self.pointdb.config(point)
        status = f"{cfg.device}.{cfg.template.checkback}" if cfg.template.checkback else point
        target = self.pointdb.config(status)
        if target.kind == PointKind.DOUBLE:
            want = float(DoubleState.ON if value else DoubleState.OFF)
        elif target.kind == PointKind.SINGLE:
            want = 1.0 if value else 0.0
        else:
            return None
        with self._lock:
            self._expect.setdefault(status, []).append(_Expectation(want, time.time() + within_s))
        return status, want

    def raise_alarm(
        self,
        source: str,
        tag: str,
        message: str,
        priority: int,
        *,
        device: str | None = None,
        point: str | None = None,
        value: float | None = None,
        source_time: float | None = None,
    ) -> Alarm:
        """Raise (or update) an external alarm, e.g. from topology processing.

        ``(source, tag)`` identifies it: raising it again updates the message
        and priority. It is suppressed when ``device`` or ``point`` is
        downstream of an open breaker.
        """
        if not Priority.CRITICAL <= priority <= Priority.LOW:
            raise AlarmError(f"alarm {source}/{tag}: priority must be 1..4, got {priority}")
        now = time.time()
        key = (source, Condition.EXTERNAL, tag)
        with self._lock:
            existing = self._alarms.get(key)
            alarm = self._raise(
                key,
                tag,
                int(priority),
                message,
                device,
                point,
                value,
                source_time or now,
                now,
                realarm=existing is None or priority < existing.priority,
            )
            self._flush()
            return alarm

    def clear_alarm(self, source: str, tag: str, message: str | None = None) -> Alarm | None:
        """Clear an external alarm; returns it, or None if it was not active."""
        now = time.time()
        with self._lock:
            alarm = self._clear((source, Condition.EXTERNAL, tag), now, None, message)
            self._flush()
            return alarm

    def set_downstream(
        self, breaker: str, points: Iterable[str] = (), devices: Iterable[str] = ()
    ) -> None:
        """Declare what breaker status point ``breaker`` supplies (replaces earlier calls).

        While the breaker is open, alarms on these points and on every point
        of these devices are suppressed; its uncommanded opening is a TRIP
        alarm.
        """
        with self._lock:
            self._downstream[breaker] = (frozenset(points), frozenset(devices))
            self._resuppress(time.time())
            self._flush()

    # ---------------------------------------------------------------- timers
    def tick(self, now: float | None = None) -> None:
        """Advance on-delays, rate-alarm and shelve expiry, and command expectations."""
        now = time.time() if now is None else now
        with self._lock:
            a = self._a
            due = np.flatnonzero((a.pending != a.level) & (now - a.pending_since >= a.delay_s))
            if len(due):
                values, _ = self.pointdb.values(due.astype(np.int64))
                self._commit_levels(due, a.pending[due], values, np.full(len(due), now))
            stale = np.flatnonzero(a.rate_active & (now - a.last_time >= self.policy.rate_clear_s))
            for h in stale.tolist():
                a.rate_active[h] = False
                self._clear((self._name(h), Condition.RATE, ""), now, None, None)
            released = [b for b, until in self._releases.items() if until <= now]
            if released:
                for b in released:
                    del self._releases[b]
                self._resuppress(now)
            for key, until in list(self._shelves.items()):
                if until <= now:
                    del self._shelves[key]
                    alarm = self._alarms.get(key)
                    if alarm is not None and alarm.shelved_until is not None:
                        self._put(replace(alarm, shelved_until=None), Transition.UNSHELVED, now)
            for point, exps in list(self._expect.items()):
                live = [e for e in exps if e.deadline >= now]
                if live:
                    self._expect[point] = live
                else:
                    del self._expect[point]
            self._flush()

    # ------------------------------------------------------------ ingestion
    def _on_event(self, event: Event) -> None:
        with self._lock:
            if event.kind == EventKind.CONFIG:
                self.reload()
                return
            device = event.device
            if device is None:
                return
            if event.kind == EventKind.LINK_LOST:
                self._link_lost.add(device)
                self._raise_comm(device, event.message, event.time)
            elif event.kind == EventKind.LINK_RESTORED:
                self._link_lost.discard(device)
                self._maybe_clear_comm(device, event.time)
            self._flush()

    def _on_batch(self, batch: ChangeBatch) -> None:
        h = batch.handles
        if len(h) == 0:
            return
        with self._lock:
            if self.pointdb.generation != self._generation:
                self.reload()
            a = self._a
            v, q, st, rt = batch.values, batch.quality, batch.source_time, batch.receive_time
            t = np.where(np.isnan(st), rt, st)
            comm = (q & _COMM) != 0
            moved = comm != a.comm[h]
            if moved.any():
                self._comm_changes(h[moved], comm[moved], t[moved])
            usable = (q & _UNUSABLE) == 0
            if self._comm_restored:
                self._clear_restored_comm(h[usable], float(rt.max()))
            status = a.is_status[h]
            if status.any():
                self._status_changes(h[status], v[status], q[status], st[status], rt[status])
            self._quality_changes(h, q, t)
            limits = a.has_limits[h]
            if limits.any():
                self._limit_checks(h[limits], v[limits], usable[limits], rt[limits])
            rate = a.has_rate[h] & usable
            if rate.any():
                self._rate_checks(h[rate], v[rate], t[rate], rt[rate])
            self._flush()

    # ---------------------------------------------------------------- limits
    def _limit_checks(
        self,
        h: npt.NDArray[np.int64],
        v: npt.NDArray[np.float64],
        usable: npt.NDArray[np.bool_],
        rt: npt.NDArray[np.float64],
    ) -> None:
        a = self._a
        # an unusable value neither raises nor clears, and cancels a pending level
        a.pending[h[~usable]] = a.level[h[~usable]]
        h, v, rt = h[usable], v[usable], rt[usable]
        cur = a.level[h]
        new = self._levels(h, v, cur)
        diff = new != cur
        a.pending[h[~diff]] = cur[~diff]
        if not diff.any():
            return
        h, v, rt, new, cur = h[diff], v[diff], rt[diff], new[diff], cur[diff]
        worse = (np.abs(new) > np.abs(cur)) | (new.astype(np.int16) * cur < 0)
        delayed = worse & (a.delay_s[h] > 0)
        if delayed.any():
            hd, nd, td = h[delayed], new[delayed], rt[delayed]
            restart = a.pending[hd] != nd
            a.pending[hd[restart]] = nd[restart]
            a.pending_since[hd[restart]] = td[restart]
            ready = td - a.pending_since[hd] >= a.delay_s[hd]
            commit = ~delayed
            commit[np.flatnonzero(delayed)[ready]] = True
        else:
            commit = np.ones(len(h), bool)
        if commit.any():
            self._commit_levels(h[commit], new[commit], v[commit], rt[commit])

    def _levels(
        self, h: npt.NDArray[np.int64], v: npt.NDArray[np.float64], cur: npt.NDArray[np.int8]
    ) -> npt.NDArray[np.int8]:
        """New limit levels; a level is left only ``hysteresis`` inside its limit."""
        ll, lo, hi, hh = self._a.limits[:, h]
        hyst = self._a.hysteresis[h]

        def high(shift: npt.NDArray[np.float64] | float) -> npt.NDArray[np.int8]:
            return np.where(v >= hh - shift, 2, np.where(v >= hi - shift, 1, 0)).astype(np.int8)

        def low(shift: npt.NDArray[np.float64] | float) -> npt.NDArray[np.int8]:
            return np.where(v <= ll + shift, -2, np.where(v <= lo + shift, -1, 0)).astype(np.int8)

        up = np.maximum(high(0.0), np.minimum(np.maximum(cur, 0), high(hyst)))
        down = np.minimum(low(0.0), np.maximum(np.minimum(cur, 0), low(hyst)))
        return np.where(up > 0, up, down).astype(np.int8)

    def _commit_levels(
        self,
        h: npt.NDArray[np.int64],
        new: npt.NDArray[np.int8],
        v: npt.NDArray[np.float64],
        rt: npt.NDArray[np.float64],
    ) -> None:
        a = self._a
        old = a.level[h].copy()
        a.level[h] = new
        a.pending[h] = new
        limits = a.limits
        for hi, lvl, was, val, t in zip(
            h.tolist(), new.tolist(), old.tolist(), v.tolist(), rt.tolist(), strict=True
        ):
            name = self._name(hi)
            key = (name, Condition.LIMIT, "")
            if lvl == 0:
                self._clear(key, t, val, f"{name} back within limits: {val:g}")
                continue
            cfg = self._config(hi)
            detail = _LEVEL_NAMES[lvl]
            limit = limits[{-2: 0, -1: 1, 1: 2, 2: 3}[lvl], hi]
            self._raise(
                key,
                detail,
                self._priority(hi, detail),
                f"{name} {detail} {val:g} {cfg.template.unit} (limit {limit:g})".replace("  ", " "),
                cfg.device,
                name,
                val,
                t,
                t,
                realarm=abs(lvl) > abs(was) or lvl * was < 0,
            )

    # ------------------------------------------------------------------ rate
    def _rate_checks(
        self,
        h: npt.NDArray[np.int64],
        v: npt.NDArray[np.float64],
        t: npt.NDArray[np.float64],
        rt: npt.NDArray[np.float64],
    ) -> None:
        a = self._a
        dt = t - a.last_time[h]
        valid = (dt > 0) & ~np.isnan(a.last_value[h])
        rate = np.abs(v - a.last_value[h]) / np.where(valid, dt, 1.0)
        over = valid & (rate > a.rate_limit[h])
        raise_ = over & ~a.rate_active[h]
        clear = valid & ~over & a.rate_active[h]
        a.last_value[h] = v
        a.last_time[h] = t
        a.rate_active[h[raise_]] = True
        a.rate_active[h[clear]] = False
        for i in np.flatnonzero(raise_ | clear).tolist():
            hi = int(h[i])
            name = self._name(hi)
            key = (name, Condition.RATE, "")
            if clear[i]:
                self._clear(key, float(rt[i]), float(v[i]), None)
                continue
            cfg = self._config(hi)
            self._raise(
                key,
                "ROC",
                self._priority(hi, "ROC"),
                f"{name} changing at {rate[i]:.3g} {cfg.template.unit}/s "
                f"(limit {a.rate_limit[hi]:g})",
                cfg.device,
                name,
                float(v[i]),
                float(t[i]),
                float(rt[i]),
            )

    # --------------------------------------------------------------- quality
    def _quality_changes(
        self, h: npt.NDArray[np.int64], q: npt.NDArray[np.uint32], t: npt.NDArray[np.float64]
    ) -> None:
        a = self._a
        bad = ((q & _QUALITY_ALARM) != 0) & ((q & _NO_QUALITY_ALARM) == 0)
        moved = bad != a.quality_alarm[h]
        if not moved.any():
            return
        idx = np.flatnonzero(moved)
        a.quality_alarm[h[idx]] = bad[idx]
        for i in idx.tolist():
            hi = int(h[i])
            name = self._name(hi)
            key = (name, Condition.QUALITY, "")
            ti = float(t[i])
            if not bad[i]:
                self._clear(key, ti, None, None)
                continue
            flags = Quality(int(q[i]))
            self._raise(
                key,
                "QUALITY",
                self._priority(hi, "QUALITY"),
                f"{name} quality {flags.name}",
                self._config(hi).device,
                name,
                None,
                ti,
                ti,
            )

    # ------------------------------------------------------------------ comm
    def _comm_changes(
        self, h: npt.NDArray[np.int64], comm: npt.NDArray[np.bool_], t: npt.NDArray[np.float64]
    ) -> None:
        a = self._a
        a.comm[h] = comm
        dev = a.device[h]
        before = self._comm_count.copy()
        np.add.at(self._comm_count, dev, np.where(comm, 1, -1))
        for d in np.unique(dev).tolist():
            name = self._devices[d]
            if before[d] == 0 and self._comm_count[d] > 0:
                self._raise_comm(name, "communication failure", float(t.max()))
            elif before[d] > 0 and self._comm_count[d] == 0:
                self._maybe_clear_comm(name, float(t.max()))

    def _raise_comm(self, device: str, reason: str, when: float) -> None:
        self._comm_restored.discard(device)
        key = (device, Condition.COMM, "")
        existing = self._alarms.get(key)
        if existing is not None and existing.active:
            return
        self._raise(
            key,
            "COMM",
            self.policy.priorities["COMM"],
            f"{device}: {reason}",
            device,
            None,
            None,
            when,
            time.time(),
        )

    def _maybe_clear_comm(self, device: str, when: float) -> None:
        d = self._device_index.get(device)
        if device in self._link_lost or (d is not None and self._comm_count[d] > 0):
            return
        self._clear((device, Condition.COMM, ""), when, None, f"{device}: communication restored")

    def _clear_restored_comm(self, good: npt.NDArray[np.int64], when: float) -> None:
        for d in np.unique(self._a.device[good]).tolist():
            device = self._devices[d]
            if device in self._comm_restored:
                self._comm_restored.discard(device)
                self._maybe_clear_comm(device, when)

    # ---------------------------------------------------------------- status
    def _status_changes(
        self,
        h: npt.NDArray[np.int64],
        v: npt.NDArray[np.float64],
        q: npt.NDArray[np.uint32],
        st: npt.NDArray[np.float64],
        rt: npt.NDArray[np.float64],
    ) -> None:
        a = self._a
        usable = (q & _UNUSABLE) == 0
        for hi, val, qi, sti, rti in zip(
            h[usable].tolist(),
            v[usable].tolist(),
            q[usable].tolist(),
            st[usable].tolist(),
            rt[usable].tolist(),
            strict=True,
        ):
            prev = float(a.status[hi])
            a.status[hi] = val
            name = self._name(hi)
            cfg = self._config(hi)
            when = rti if math.isnan(sti) else sti
            if math.isnan(prev):
                self._first_status(name, cfg, val, when)
                continue
            if prev == val:
                continue
            commanded = self._take_expectation(name, val, rti)
            self._out.append(
                SoeEntry(
                    point=name,
                    device=cfg.device,
                    value=val,
                    previous=prev,
                    text=status_text(cfg.kind, val),
                    source_time_ms=None if math.isnan(sti) else round(sti * 1000),
                    receive_time=rti,
                    quality=qi,
                    commanded=commanded,
                )
            )
            if val != _INTERMEDIATE:
                self._status_alarm(hi, name, cfg, prev, val, commanded, when, rti)

    def _first_status(self, name: str, cfg: PointConfig, val: float, when: float) -> None:
        """The first value of a status point after start: no SOE, but breaker state counts."""
        key = (name, Condition.STATUS, "")
        existing = self._alarms.get(key)
        if existing is not None and existing.active and existing.normal == val:
            self._clear(key, when, val, f"{name} {status_text(cfg.kind, val)} (normal)")
        if self._is_breaker(name):
            self._breaker_state(name, cfg, val, when)

    def _take_expectation(self, point: str, value: float, rt: float) -> bool:
        exps = self._expect.get(point)
        if not exps:
            return False
        for e in exps:
            if e.value == value and e.deadline >= rt:
                exps.remove(e)
                if not exps:
                    del self._expect[point]
                return True
        return False

    def _status_alarm(
        self,
        h: int,
        name: str,
        cfg: PointConfig,
        prev: float,
        val: float,
        commanded: bool,
        when: float,
        rt: float,
    ) -> None:
        key = (name, Condition.STATUS, "")
        existing = self._alarms.get(key)
        text = status_text(cfg.kind, val)
        trip = self._is_breaker(name) and val == _OPEN.get(cfg.kind)
        if commanded:
            self._clear(key, when, val, f"{name} {text} (commanded)")
        elif trip:
            # a breaker's uncommanded opening is a trip whatever came before; reclosing clears it
            self._raise(
                key,
                "TRIP",
                self._priority(h, "TRIP"),
                f"{name} tripped",
                cfg.device,
                name,
                val,
                when,
                rt,
                normal=prev,
            )
        elif existing is not None and existing.active and existing.normal == val:
            self._clear(key, when, val, f"{name} {text} (back to normal)")
        else:
            self._raise(
                key,
                text,
                self._priority(h, "STATUS"),
                f"{name} {text} (uncommanded)",
                cfg.device,
                name,
                val,
                when,
                rt,
                normal=existing.normal if existing is not None and existing.active else prev,
            )
        if self._is_breaker(name):
            self._breaker_state(name, cfg, val, when)

    # ----------------------------------------------------------- suppression
    def _is_breaker(self, name: str) -> bool:
        return name in self._downstream or name in self._element_breakers

    def _breaker_state(self, name: str, cfg: PointConfig, val: float, when: float) -> None:
        is_open = val == _OPEN.get(cfg.kind)
        if is_open == (name in self._open_breakers):
            return
        if is_open:
            self._open_breakers[name] = when
            self._releases.pop(name, None)
        else:
            del self._open_breakers[name]
            # consequences clear in the seconds after a reclose: give them that long, hidden
            self._releases[name] = time.time() + self.policy.suppress_window_s
        self._resuppress(when)

    def _resuppress(self, when: float) -> None:
        """Recompute what open breakers suppress; (un)suppress listed alarms to match."""
        sup_point: dict[str, str] = {}
        sup_device: dict[str, str] = {}
        for breaker in self._open_breakers:
            points, devices = self._downstream.get(breaker, (frozenset(), frozenset()))
            for p in points:
                sup_point.setdefault(p, breaker)
            for d in devices:
                sup_device.setdefault(d, breaker)
        self._sup_point, self._sup_device = sup_point, sup_device
        window = self.policy.suppress_window_s
        for alarm in list(self._alarms.values()):
            by = self._suppressor(alarm.device, alarm.point)
            if by == alarm.suppressed_by:
                continue
            if by is None:
                if alarm.suppressed_by in self._releases:
                    continue
                self._put(replace(alarm, suppressed_by=None), Transition.UNSUPPRESSED, when)
            elif alarm.active and alarm.raised_time >= self._open_breakers[by] - window:
                self._put(replace(alarm, suppressed_by=by), Transition.SUPPRESSED, when)

    def _suppressor(self, device: str | None, point: str | None) -> str | None:
        """The open breaker that suppresses alarms of this point/device (never the point itself)."""
        by = self._sup_point.get(point) if point is not None else None
        if by is None and device is not None:
            by = self._sup_device.get(device)
        return None if by == point else by

    # ----------------------------------------------------------- alarm list
    def _raise(
        self,
        key: AlarmKey,
        detail: str,
        priority: int,
        message: str,
        device: str | None,
        point: str | None,
        value: float | None,
        raised_time: float,
        receive_time: float,
        *,
        normal: float | None = None,
        realarm: bool = True,
    ) -> Alarm:
        """Raise a new alarm, re-raise a listed one, or update an active one in place."""
        existing = self._alarms.get(key)
        suppressed = self._suppressor(device, point)
        shelved = self._shelves.get(key)
        if existing is None:
            alarm = Alarm(
                id=self._next_id,
                source=key[0],
                condition=key[1],
                tag=key[2],
                detail=detail,
                priority=priority,
                message=message,
                device=device,
                point=point,
                value=value,
                normal=normal,
                raised_time=raised_time,
                receive_time=receive_time,
                shelved_until=shelved,
                suppressed_by=suppressed,
            )
            self._next_id += 1
            self._by_id[alarm.id] = key
            return self._put(alarm, Transition.RAISED, receive_time)
        if not existing.active or realarm:
            alarm = replace(
                existing,
                detail=detail,
                priority=priority,
                message=message,
                value=value,
                normal=normal,
                shelved_until=shelved,
                suppressed_by=suppressed,
                active=True,
                acknowledged=False,
                ack_operator=None,
                ack_time=None,
                cleared_time=None,
                raised_time=raised_time,
                receive_time=receive_time,
            )
            return self._put(alarm, Transition.RAISED, receive_time)
        alarm = replace(
            existing, detail=detail, priority=priority, message=message, value=value, normal=normal
        )
        return self._put(alarm, Transition.UPDATED, receive_time)

    def _clear(
        self, key: AlarmKey, when: float, value: float | None, message: str | None
    ) -> Alarm | None:
        existing = self._alarms.get(key)
        if existing is None or not existing.active:
            return None
        alarm = replace(
            existing,
            active=False,
            cleared_time=when,
            value=existing.value if value is None else value,
            message=existing.message if message is None else message,
        )
        return self._put(alarm, Transition.CLEARED, when)

    def _ack(self, alarm: Alarm, operator: str, now: float) -> Alarm:
        if alarm.acknowledged:
            return alarm
        return self._put(
            replace(alarm, acknowledged=True, ack_operator=operator, ack_time=now),
            Transition.ACKNOWLEDGED,
            now,
            operator,
        )

    def _put(
        self, alarm: Alarm, kind: Transition, when: float, operator: str | None = None
    ) -> Alarm:
        if alarm.listed:
            self._alarms[alarm.key] = alarm
        else:
            self._alarms.pop(alarm.key, None)
            self._by_id.pop(alarm.id, None)
        self._out.append(AlarmTransition(kind, alarm, when, operator))
        return alarm

    def _flush(self) -> None:
        if not self._out:
            return
        out, self._out = self._out, []
        for sub in self._subs:
            sub(out)

    # --------------------------------------------------------------- helpers
    def _name(self, h: int) -> str:
        name = self._names[h]
        assert name is not None, f"handle {h} has no point"
        return name

    def _config(self, h: int) -> PointConfig:
        cfg = self._configs[h]
        assert cfg is not None, f"handle {h} has no point"
        return cfg

    def _priority(self, h: int, detail: str) -> int:
        s = self._settings[h]
        if s is not None and s.priority is not None:
            return s.priority
        return self.policy.priorities[detail]
