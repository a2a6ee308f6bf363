"""Recording ends shared by the protocol adapter tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from protocols.base import CommandRequest, LinkListener, PointSpec, PointUpdate, Quality


class Recorder(LinkListener):
    """Latest update per handle, every update, and link events with their monotonic time."""

    def __init__(self) -> None:
        self.latest: dict[int, PointUpdate] = {}
        self.history: list[PointUpdate] = []
        self.links: list[tuple[str, float]] = []
        self.reasons: list[str] = []

    def on_updates(self, batch: list[PointUpdate]) -> None:
        for update in batch:
            self.latest[update.handle] = update
            self.history.append(update)

    def link_up(self, device: str) -> None:
        self.links.append(("up", time.monotonic()))

    def link_down(self, device: str, reason: str) -> None:
        self.links.append(("down", time.monotonic()))
        self.reasons.append(reason)

    def events(self) -> list[str]:
        return [event for event, _ in self.links]

    def value(self, handle: int) -> float | None:
        update = self.latest.get(handle)
        return None if update is None else update.value

    def seen(self, handle: int, value: float, quality: Quality = Quality.GOOD) -> bool:
        update = self.latest.get(handle)
        return update is not None and update.value == value and update.quality == quality


@dataclass
class Rtu:
    """Outstation-side command handler: records requests, refuses the handles in ``refuse``."""

    requests: list[tuple[int, CommandRequest]] = field(default_factory=list)
    refuse: set[int] = field(default_factory=set)

    def __call__(self, point: PointSpec, request: CommandRequest) -> bool:
        self.requests.append((point.handle, request))
        return point.handle not in self.refuse
