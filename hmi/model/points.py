"""Points as the console sees them: value, quality flags, times, and whether they are stale.

Contract:
- :class:`PointStore` holds every point of the server's snapshot; pushed
  changes update value, quality and times of known points (unknown names
  are ignored until the next snapshot brings them).
- A point is *stale* when the console is disconnected (its value may no
  longer be true) or when the server flags it ``old``.
- :data:`PointStore.changed` fires once per :meth:`reset` / :meth:`update` /
  :meth:`set_connected` with the names that changed (every name for the
  first and last).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hmi.model.events import Event

__all__ = [
    "DOUBLE_TEXT",
    "PointState",
    "PointStore",
    "format_time",
    "quality_marks",
    "quality_severity",
]

#: IEC 60870-5 / DNP3 double-point values as switch positions
DOUBLE_TEXT = {0: "intermediate", 1: "open", 2: "closed", 3: "indeterminate"}
SINGLE_TEXT = {0: "off", 1: "on"}

#: one letter per quality condition, most important first
_MARKS = (
    ("comm_fail", "C"),
    ("invalid", "I"),
    ("substituted", "S"),
    ("questionable", "Q"),
    ("blocked", "B"),
    ("overflow", "V"),
    ("test", "T"),
    ("not_init", "-"),
)
#: the condition that colours a value, most important first ("stale" is the console's own)
_SEVERITY = ("comm_fail", "invalid", "not_init", "stale", "substituted", "questionable")


def quality_marks(flags: Iterable[str], stale: bool) -> str:
    """Letters for a value's quality: C comm-fail, I invalid, S substituted, ? stale, ...

    ``""`` for a good, current value.
    """
    have = set(flags)
    marks = "".join(letter for flag, letter in _MARKS if flag in have)
    if stale or "old" in have:
        marks += "?"
    return marks


def quality_severity(flags: Iterable[str], stale: bool) -> str | None:
    """The one condition a value is drawn for (see :data:`_SEVERITY`), None when good."""
    have = set(flags)
    if stale or "old" in have:
        have.add("stale")
    return next((s for s in _SEVERITY if s in have), None)


def format_time(t: float | None, with_date: bool = False) -> str:
    """Local time with milliseconds (``HH:MM:SS.mmm``), ``""`` for None."""
    if t is None:
        return ""
    ms = int((t - math.floor(t)) * 1000)
    fmt = "%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S"
    return f"{time.strftime(fmt, time.localtime(t))}.{ms:03d}"


@dataclass(slots=True)
class PointState:
    """One point: configuration (from the snapshot) and its latest pushed state."""

    name: str
    device: str
    kind: str
    unit: str
    description: str
    controllable: bool
    value: float | None
    quality: int
    flags: tuple[str, ...]
    source_time: float | None
    receive_time: float | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PointState:
        return cls(
            name=d["name"],
            device=d["device"],
            kind=d["kind"],
            unit=d["unit"],
            description=d["description"],
            controllable=bool(d["controllable"]),
            value=d["value"],
            quality=int(d["quality"]),
            flags=tuple(d["quality_flags"]),
            source_time=d["source_time"],
            receive_time=d["receive_time"],
        )

    def value_text(self) -> str:
        """The value as an operator reads it: switch positions in words, analogs with unit."""
        v = self.value
        if v is None:
            return "-"
        if self.kind == "double":
            return DOUBLE_TEXT.get(int(v), f"{v:g}")
        if self.kind == "single":
            return SINGLE_TEXT.get(int(v), f"{v:g}")
        unit = f" {self.unit}" if self.unit else ""
        return f"{v:.4g}{unit}"


class PointStore:
    """Every point's latest state; see the module docstring."""

    def __init__(self) -> None:
        self.points: dict[str, PointState] = {}
        self.connected = False
        #: counts :meth:`reset` calls: views holding PointState objects rebuild when it moves
        self.generation = 0
        self.changed: Event[frozenset[str]] = Event()
        self._devices: dict[str, list[str]] = {}

    def reset(self, views: Iterable[dict[str, Any]]) -> None:
        """Replace every point with a snapshot's full views."""
        self.points = {v["name"]: PointState.from_json(v) for v in views}
        devices: dict[str, list[str]] = {}
        for p in self.points.values():
            devices.setdefault(p.device, []).append(p.name)
        self._devices = {d: sorted(names) for d, names in sorted(devices.items())}
        self.generation += 1
        self.changed.emit(frozenset(self.points))

    def update(self, changes: Iterable[dict[str, Any]]) -> frozenset[str]:
        """Apply pushed changes (name, value, quality, flags, times); returns the names changed."""
        done = set()
        points = self.points
        for c in changes:
            p = points.get(c["name"])
            if p is None:
                continue
            p.value = c["value"]
            p.quality = int(c["quality"])
            p.flags = tuple(c["quality_flags"])
            p.source_time = c["source_time"]
            p.receive_time = c["receive_time"]
            done.add(p.name)
        names = frozenset(done)
        if names:
            self.changed.emit(names)
        return names

    def set_connected(self, connected: bool) -> None:
        """Connected or not: every value turns stale (or current again) at once."""
        if connected != self.connected:
            self.connected = connected
            self.changed.emit(frozenset(self.points))

    # ------------------------------------------------------------- queries
    def __contains__(self, name: object) -> bool:
        return name in self.points

    def __len__(self) -> int:
        return len(self.points)

    def get(self, name: str) -> PointState | None:
        return self.points.get(name)

    def devices(self) -> list[str]:
        return list(self._devices)

    def of_device(self, device: str) -> list[PointState]:
        return [self.points[n] for n in self._devices.get(device, [])]

    def is_stale(self, name: str) -> bool:
        p = self.points.get(name)
        return not self.connected or p is None or "old" in p.flags

    def marks(self, name: str) -> str:
        p = self.points.get(name)
        return quality_marks(p.flags if p else (), self.is_stale(name))

    def severity(self, name: str) -> str | None:
        p = self.points.get(name)
        return quality_severity(p.flags if p else ("not_init",), self.is_stale(name))
