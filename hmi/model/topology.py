"""The live topology as the server computes it: per-element energisation, earthing, feeder.

Contract:
- :meth:`TopologyStore.reset` takes the full view (``GET /api/topology`` or
  the push snapshot's ``topology``); :meth:`TopologyStore.apply` takes a
  pushed delta. A delta not newer than what the store holds changes nothing
  it would not set again (deltas carry states, not toggles).
- ``looped`` holds the branches (lines, transformers, switches) that lie on
  a closed loop, paralleled feeders included.
- :data:`TopologyStore.changed` fires with the element ids whose state,
  switch position or loop membership changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hmi.model.events import Event

__all__ = ["ElementState", "TopologyStore"]


@dataclass(frozen=True, slots=True)
class ElementState:
    energised: bool
    earthed: bool
    feeder: str | None


_UNKNOWN = ElementState(energised=True, earthed=False, feeder=None)


class TopologyStore:
    """Element states and switch positions; see the module docstring."""

    def __init__(self) -> None:
        self.version = -1
        self.elements: dict[str, ElementState] = {}
        self.switches: dict[str, bool] = {}
        self.looped: frozenset[str] = frozenset()
        self.paralleled_feeders: list[tuple[str, str]] = []
        self.changed: Event[frozenset[str]] = Event()

    @property
    def loaded(self) -> bool:
        return self.version >= 0

    def state(self, gid: str) -> ElementState:
        """An element's state; energised, unearthed and without feeder when unknown."""
        return self.elements.get(gid, _UNKNOWN)

    def reset(self, view: dict[str, Any]) -> None:
        old = set(self.elements) | set(self.switches) | self.looped
        self.version = int(view.get("version", 0))
        self.elements = {k: ElementState(**v) for k, v in view.get("elements", {}).items()}
        self.switches = {k: bool(v) for k, v in view.get("switches", {}).items()}
        self._set_loops(view)
        self.changed.emit(frozenset(old | set(self.elements) | set(self.switches) | self.looped))

    def apply(self, delta: dict[str, Any]) -> frozenset[str]:
        """Apply one pushed delta; returns the ids that changed."""
        done: set[str] = set()
        for gid, v in delta.get("elements", {}).items():
            state = ElementState(**v)
            if self.elements.get(gid) != state:
                self.elements[gid] = state
                done.add(gid)
        for gid, closed in delta.get("switches", {}).items():
            if self.switches.get(gid) != bool(closed):
                self.switches[gid] = bool(closed)
                done.add(gid)
        before = self.looped
        self._set_loops(delta)
        done |= before ^ self.looped
        self.version = max(self.version, int(delta.get("version", self.version)))
        ids = frozenset(done)
        if ids:
            self.changed.emit(ids)
        return ids

    def _set_loops(self, view: dict[str, Any]) -> None:
        if "loops" in view:
            self.looped = frozenset(b for loop in view["loops"] for b in loop.get("branches", []))
        if "paralleled_feeders" in view:
            self.paralleled_feeders = [(a, b) for a, b in view["paralleled_feeders"]]
