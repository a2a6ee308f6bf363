"""System events: link loss and recovery, command outcomes, configuration changes.

Contract: producers call :meth:`EventLog.record`; consumers subscribe and are
called synchronously with each :class:`Event`. The log keeps the most recent
events in memory (the historian persists them).
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Event", "EventKind", "EventLog"]


class EventKind(enum.StrEnum):
    LINK_LOST = "link_lost"
    LINK_RESTORED = "link_restored"
    COMMAND = "command"
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    message: str
    device: str | None = None
    point: str | None = None
    time: float = field(default_factory=time.time)


class EventLog:
    def __init__(self, keep: int = 10_000) -> None:
        self._events: deque[Event] = deque(maxlen=keep)
        self._subs: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
            subs = list(self._subs)
        for sub in subs:
            sub(event)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Register a consumer; returns a function that unregisters it."""
        with self._lock:
            self._subs.append(callback)

        def close() -> None:
            with self._lock:
                self._subs.remove(callback)

        return close

    def recent(self, kind: EventKind | None = None, device: str | None = None) -> list[Event]:
        with self._lock:
            return [
                e
                for e in self._events
                if (kind is None or e.kind == kind) and (device is None or e.device == device)
            ]
