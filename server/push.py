"""The push channel to operator consoles: point, alarm and topology changes.

Contract:
- :class:`PushHub` subscribes to the point database and the alarm manager;
  producers of topology changes call :meth:`PushHub.publish_topology` (and
  may give a snapshot function for the topology state), the online ADMS
  :meth:`PushHub.publish_adms` (``{"estimate": ...}`` / ``{"plan": ...}``
  items, with :attr:`PushHub.adms_snapshot` for its state). Changes are
  batched and sent every ``interval_s`` as one JSON text message per batch::

      {"type": "changes", "epoch": E, "seq": N,
       "points": [{name, value, quality, quality_flags, source_time, receive_time}, ...],
       "alarms": [{transition, time, operator, alarm: {...}}, ...],
       "topology": [...],
       "adms": [{"estimate": {...}} | {"plan": {...}}, ...]}

  Within a batch a point appears once (its latest state); alarm transitions,
  topology and ADMS items keep their order.
- ``seq`` counts batches from 1 per hub; ``epoch`` identifies the hub (a new
  one per server start). A snapshot message
  ``{"type": "snapshot", "epoch", "seq", "points": [...], "alarms": [...],
  "topology": ..., "adms": {"estimate", "plans"} | null}`` holds every
  point and every listed alarm as of batch ``seq``: a console applies the
  batches after it in order and stays consistent (a change already
  contained in the snapshot may come again in the next batch; applying it
  again changes nothing).
- :meth:`PushHub.attach` gives a new console a snapshot then changes, or, for
  a console that resumes with ``(epoch, seq)`` the hub still holds the
  batches after, those batches then changes (no snapshot). A console that
  falls more than ``max_queue`` messages behind, and every console after a
  configuration reload (points added or removed), gets a fresh snapshot in
  place of what it missed.
- Everything but the subscription callbacks (which only queue, under a lock)
  runs on the event loop: snapshots, batching and sending never interleave
  with the point database's own updates there.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scada.alarms import AlarmManager, AlarmRecord, AlarmTransition
from scada.pointdb import ChangeBatch, PointDB, Subscription
from server.views import PointViews, alarm_view, point_change

__all__ = ["Console", "PushHub"]


def _dumps(message: Any) -> str:
    return json.dumps(message, allow_nan=False, separators=(",", ":"))


@dataclass(eq=False)
class Console:
    """One attached console: the messages waiting to be sent to it, in order."""

    name: str
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    #: how it started: "snapshot" or "resumed"
    start: str = "snapshot"


class PushHub:
    """Batches changes for every attached console."""

    def __init__(
        self,
        pointdb: PointDB,
        alarms: AlarmManager,
        *,
        interval_s: float = 0.1,
        keep_batches: int = 600,
        max_queue: int = 1000,
    ) -> None:
        self.pointdb = pointdb
        self.alarms = alarms
        self.interval_s = interval_s
        self.max_queue = max_queue
        self.epoch = secrets.token_hex(8)
        self.seq = 0
        self.topology_snapshot: Callable[[], Any] | None = None
        #: the online ADMS's state for snapshots (latest estimate, open plans)
        self.adms_snapshot: Callable[[], Any] | None = None
        self._lock = threading.Lock()
        self._points: dict[int, tuple[float, int, float, float]] = {}
        self._alarms: list[dict[str, Any]] = []
        self._topology: list[Any] = []
        self._adms: list[Any] = []
        self._ring: deque[tuple[int, str]] = deque(maxlen=keep_batches)
        self._consoles: list[Console] = []
        self._names: dict[int, str] = {}
        self._generation = -1
        self._task: asyncio.Task[None] | None = None
        self._closers: list[Callable[[], None]] = []
        self._ids = itertools.count(1)
        self._views = PointViews(pointdb)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Subscribe and start batching on the running loop."""
        self._refresh_names()
        sub: Subscription = self.pointdb.subscribe(self._on_points)
        self._closers = [sub.close, self.alarms.subscribe(self._on_alarms)]
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        for close in self._closers:
            close()
        self._closers = []
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.flush()

    # ------------------------------------------------------------ producers
    def _on_points(self, batch: ChangeBatch) -> None:
        rows = zip(
            batch.handles.tolist(),
            batch.values.tolist(),
            batch.quality.tolist(),
            batch.source_time.tolist(),
            batch.receive_time.tolist(),
            strict=True,
        )
        with self._lock:
            for h, v, q, st, rt in rows:
                self._points[h] = (v, q, st, rt)

    def _on_alarms(self, records: Sequence[AlarmRecord]) -> None:
        items = [
            {
                "transition": r.kind.value,
                "time": r.time,
                "operator": r.operator,
                "alarm": alarm_view(r.alarm),
            }
            for r in records
            if isinstance(r, AlarmTransition)
        ]
        if items:
            with self._lock:
                self._alarms.extend(items)

    def publish_topology(self, change: Any) -> None:
        """Queue a JSON-ready topology change for the next batch (thread-safe)."""
        with self._lock:
            self._topology.append(change)

    def publish_adms(self, item: Any) -> None:
        """Queue a JSON-ready ADMS item (an estimate or a plan) for the next batch (thread-safe)."""
        with self._lock:
            self._adms.append(item)

    # ------------------------------------------------------------- consoles
    def attach(self, resume: tuple[str, int] | None = None) -> Console:
        """A new console, with a snapshot (or the missed batches) already queued."""
        console = Console(f"console-{next(self._ids)}")
        missed = self._since(resume) if resume is not None else None
        if missed is None:
            console.queue.put_nowait(self.snapshot_text())
        else:
            console.start = "resumed"
            for text in missed:
                console.queue.put_nowait(text)
        self._consoles.append(console)
        return console

    def detach(self, console: Console) -> None:
        with contextlib.suppress(ValueError):
            self._consoles.remove(console)

    @property
    def consoles(self) -> int:
        return len(self._consoles)

    def _since(self, resume: tuple[str, int]) -> list[str] | None:
        """The batches after ``resume``, or None when they are not all here."""
        epoch, seq = resume
        if epoch != self.epoch or not 0 <= seq <= self.seq:
            return None
        if seq == self.seq:
            return []
        if not self._ring or self._ring[0][0] > seq + 1:
            return None
        return [text for s, text in self._ring if s > seq]

    def snapshot(self) -> dict[str, Any]:
        """Every point and listed alarm as of batch :attr:`seq`."""
        return {
            "type": "snapshot",
            "epoch": self.epoch,
            "seq": self.seq,
            "points": self._views.rows(),
            "alarms": self._alarm_views(),
            "topology": self.topology_snapshot() if self.topology_snapshot else None,
            "adms": self.adms_snapshot() if self.adms_snapshot else None,
        }

    def snapshot_text(self) -> str:
        """:meth:`snapshot` as the JSON text consoles get (the points written as text directly)."""
        head = _dumps({"type": "snapshot", "epoch": self.epoch, "seq": self.seq})
        topology = self.topology_snapshot() if self.topology_snapshot else None
        adms = self.adms_snapshot() if self.adms_snapshot else None
        return (
            f'{head[:-1]},"points":{self._views.json()},"alarms":{_dumps(self._alarm_views())},'
            f'"topology":{_dumps(topology)},"adms":{_dumps(adms)}}}'
        )

    def _alarm_views(self) -> list[dict[str, Any]]:
        alarms = self.alarms.alarms(include_shelved=True, include_suppressed=True)
        return [alarm_view(a) for a in alarms]

    # ------------------------------------------------------------- batching
    def _refresh_names(self) -> None:
        self._generation = self.pointdb.generation
        self._names = {h: n for n, h in self.pointdb.handles().items()}

    def flush(self) -> None:
        """Send what changed since the last flush to every console (call on the loop)."""
        with self._lock:
            points, self._points = self._points, {}
            alarms, self._alarms = self._alarms, []
            topology, self._topology = self._topology, []
            adms, self._adms = self._adms, []
        if self.pointdb.generation != self._generation:
            # points came or went: consoles start again from a snapshot
            self._refresh_names()
            self.seq += 1
            self._ring.clear()
            text = self.snapshot_text()
            for console in self._consoles:
                _replace_queue(console, text)
            return
        if not (points or alarms or topology or adms):
            return
        self.seq += 1
        names = self._names
        message = {
            "type": "changes",
            "epoch": self.epoch,
            "seq": self.seq,
            "points": [point_change(names[h], *state) for h, state in points.items() if h in names],
            "alarms": alarms,
            "topology": topology,
            "adms": adms,
        }
        text = _dumps(message)
        self._ring.append((self.seq, text))
        snapshot: str | None = None
        for console in self._consoles:
            if console.queue.qsize() >= self.max_queue:
                snapshot = snapshot or self.snapshot_text()
                _replace_queue(console, snapshot)
            else:
                console.queue.put_nowait(text)


def _replace_queue(console: Console, text: str) -> None:
    """Drop what a console has not been sent yet and queue ``text`` instead."""
    while not console.queue.empty():
        console.queue.get_nowait()
    console.queue.put_nowait(text)
