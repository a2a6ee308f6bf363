"""The alarm list as the console sees it: snapshot, pushed transitions, filters and counts.

Contract:
- :class:`AlarmStore` holds the listed alarms of the server (shelved and
  suppressed ones included: the snapshot carries them). A pushed transition
  replaces the alarm by id; an alarm whose state is ``closed`` leaves.
- :meth:`AlarmStore.listed` orders like the server: most urgent first, then
  newest first; the filter hides shelved and suppressed alarms unless asked,
  and filters by area (a function the caller gives) and priority.
- :data:`AlarmStore.changed` fires with the ids that changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from hmi.model.events import Event

__all__ = ["PRIORITY_NAMES", "Alarm", "AlarmCounts", "AlarmFilter", "AlarmStore"]

PRIORITY_NAMES = {1: "critical", 2: "high", 3: "medium", 4: "low"}


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm as ``GET /api/alarms`` and the push channel show it."""

    id: int
    source: str
    condition: str
    tag: str
    detail: str
    priority: int
    message: str
    device: str | None
    point: str | None
    value: float | None
    normal: float | None
    raised_time: float
    receive_time: float
    active: bool
    acknowledged: bool
    ack_operator: str | None
    ack_time: float | None
    cleared_time: float | None
    shelved_until: float | None
    suppressed_by: str | None
    state: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Alarm:
        return cls(**{f.name: d[f.name] for f in fields(cls)})

    def shelved(self, now: float | None = None) -> bool:
        return self.shelved_until is not None and self.shelved_until > (now or time.time())

    @property
    def suppressed(self) -> bool:
        return self.suppressed_by is not None


@dataclass(frozen=True)
class AlarmFilter:
    """What the alarm summary shows: None means any."""

    area: str | None = None
    max_priority: int | None = None
    show_shelved: bool = False
    unacknowledged_only: bool = False


@dataclass(frozen=True)
class AlarmCounts:
    unacknowledged: int
    acknowledged: int
    cleared: int
    shelved: int
    #: the most urgent priority among unacknowledged shown alarms (None: none)
    top_unacknowledged: int | None


class AlarmStore:
    """The alarm list; see the module docstring."""

    def __init__(self) -> None:
        self.alarms: dict[int, Alarm] = {}
        self.changed: Event[frozenset[int]] = Event()

    def reset(self, views: Iterable[dict[str, Any]]) -> None:
        old = set(self.alarms)
        self.alarms = {a.id: a for a in map(Alarm.from_json, views)}
        self.changed.emit(frozenset(old | set(self.alarms)))

    def apply(self, transitions: Iterable[dict[str, Any]]) -> frozenset[int]:
        """Apply pushed transitions in order; returns the alarm ids touched."""
        done = set()
        for t in transitions:
            alarm = Alarm.from_json(t["alarm"])
            if alarm.state == "closed":
                self.alarms.pop(alarm.id, None)
            else:
                self.alarms[alarm.id] = alarm
            done.add(alarm.id)
        ids = frozenset(done)
        if ids:
            self.changed.emit(ids)
        return ids

    def get(self, alarm_id: int) -> Alarm | None:
        return self.alarms.get(alarm_id)

    def visible(self, alarm: Alarm, show_shelved: bool = False, now: float | None = None) -> bool:
        return show_shelved or not (alarm.shelved(now) or alarm.suppressed)

    def listed(
        self, flt: AlarmFilter = AlarmFilter(), area_of: Callable[[Alarm], str] | None = None
    ) -> list[Alarm]:
        """The alarms ``flt`` lets through, most urgent then newest first."""
        now = time.time()
        out = [
            a
            for a in self.alarms.values()
            if self.visible(a, flt.show_shelved, now)
            and (flt.max_priority is None or a.priority <= flt.max_priority)
            and (not flt.unacknowledged_only or not a.acknowledged)
            and (flt.area is None or area_of is None or area_of(a) == flt.area)
        ]
        out.sort(key=lambda a: (a.priority, -a.raised_time, -a.id))
        return out

    def counts(self) -> AlarmCounts:
        now = time.time()
        shown = [a for a in self.alarms.values() if self.visible(a, False, now)]
        unacked = [a for a in shown if not a.acknowledged]
        return AlarmCounts(
            unacknowledged=len(unacked),
            acknowledged=sum(1 for a in shown if a.acknowledged and a.state != "cleared"),
            cleared=sum(1 for a in shown if a.state == "cleared"),
            shelved=sum(1 for a in self.alarms.values() if a.shelved(now)),
            top_unacknowledged=min((a.priority for a in unacked), default=None),
        )

    def banner(self, n: int) -> list[Alarm]:
        """The ``n`` most urgent, newest unacknowledged shown alarms."""
        return self.listed(AlarmFilter(unacknowledged_only=True))[:n]
