"""Live topology from telemetry: switch status points feed a topology processor.

Contract:
- :class:`TopologyFeed` maps every monitored switch status point of the
  configuration (``element: switch:<gis id>``, see
  :func:`models.binding.switch_status_points`) to the switch of a
  :class:`~models.topology.TopologyProcessor` and keeps the processor in
  step with the point database: :meth:`TopologyFeed.sync` applies the
  current states at once, then every reported change is applied as it
  arrives (on the point database's thread: the FEP's event loop).
- A value with bad quality (invalid, comm-fail, never received) or an
  intermediate/indeterminate double point leaves the switch at its last
  known state.
- Listeners get each :class:`~models.topology.TopologyChange` that changed
  something; they must return quickly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.binding import switch_state, switch_status_points
from models.topology import TopologyChange, TopologyProcessor
from protocols.base import PointKind
from scada.config import ScadaConfig
from scada.pointdb import BAD, ChangeBatch, PointDB

__all__ = ["TopologyFeed"]


class TopologyFeed:
    """Keeps a topology processor in step with the switch statuses in a point database."""

    def __init__(self, processor: TopologyProcessor, pointdb: PointDB, config: ScadaConfig) -> None:
        self.processor = processor
        self.pointdb = pointdb
        known = set(processor.switch_ids)
        points = {
            point: switch
            for point, switch in switch_status_points(config).items()
            if switch in known and point in pointdb
        }
        #: switch GIS id -> the status point that reports it
        self.switches = {switch: point for point, switch in points.items()}
        #: point database handle -> (switch GIS id, point kind)
        self._switch_of: dict[int, tuple[str, PointKind]] = {
            pointdb.handle(point): (switch, pointdb.config(point).kind)
            for point, switch in points.items()
        }
        self._handles = np.fromiter(self._switch_of, np.int64, len(self._switch_of))
        self.listeners: list[Callable[[TopologyChange], None]] = []
        self.last_change: TopologyChange | None = None
        self._subscription = pointdb.subscribe(self._on_changes)

    def sync(self) -> TopologyChange:
        """Apply every switch's current state from the point database."""
        values, quality = self.pointdb.values(self._handles)
        return self._apply(self._handles, values, quality, always=True)

    def close(self) -> None:
        """Stop following the point database."""
        self._subscription.close()

    def _on_changes(self, batch: ChangeBatch) -> None:
        mask = np.isin(batch.handles, self._handles)
        if mask.any():
            self._apply(batch.handles[mask], batch.values[mask], batch.quality[mask])

    def _apply(
        self,
        handles: np.ndarray,
        values: np.ndarray,
        quality: np.ndarray,
        *,
        always: bool = False,
    ) -> TopologyChange:
        states: dict[str, bool] = {}
        for h, v, q in zip(handles.tolist(), values.tolist(), quality.tolist(), strict=True):
            if q & int(BAD):
                continue
            switch, kind = self._switch_of[h]
            closed = switch_state(kind, v)
            if closed is not None:
                states[switch] = closed
        change = self.processor.apply(states)
        if change.changed or always:
            self.last_change = change
            for listener in self.listeners:
                listener(change)
        return change
