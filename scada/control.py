"""Control safety: operator select-before-operate, interlocks, tags, audit.

Contract:
- Every control goes through :class:`ControlService`. An operator *selects* a
  point with the intended value (the selection is reserved for
  ``select_timeout_s`` and no one else can select that point meanwhile), then
  *executes* or *cancels*. ``direct`` skips the reservation (for automatic
  functions and direct-execute points) but not the checks.
- Before a selection and again before execution every check runs: tags on the
  point or its device, and every registered :class:`Interlock` (e.g. closing
  onto a locked-out section, paralleling feeders; the composition root
  registers those that need the network model). A refusal names the rule.
- Execution hands the command to the FEP, which waits for check-back; the
  result (accepted / refused / timed out / confirmed) is returned and audited.
- Every command, selection, tag and refusal produces an :class:`AuditRecord`
  for the append-only audit trail.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from protocols.base import CommandMode, CommandResult, CommandStatus
from scada.fep import FrontEnd

__all__ = [
    "AuditRecord",
    "ControlService",
    "Interlock",
    "Selection",
    "Tag",
    "TagKind",
]


class TagKind(enum.StrEnum):
    DO_NOT_OPERATE = "do_not_operate"  # blocks every command
    HOLD = "hold"  # blocks every command (work in progress)
    CAUTION = "caution"  # informs; commands allowed


_BLOCKING = (TagKind.DO_NOT_OPERATE, TagKind.HOLD)


@dataclass(frozen=True, slots=True)
class Tag:
    id: int
    target: str  # a point name or a device name
    kind: TagKind
    owner: str
    reason: str
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Who did what, when, with which result (append-only)."""

    operator: str
    action: str
    target: str
    detail: str
    result: str
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Selection:
    id: int
    point: str
    value: float
    operator: str
    expires: float


class Interlock(Protocol):
    """A rule evaluated before every command; returns a refusal reason or None."""

    name: str

    def check(self, point: str, value: float) -> str | None: ...


class ControlService:
    def __init__(
        self,
        fep: FrontEnd,
        audit: Callable[[AuditRecord], None],
        select_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fep = fep
        self._audit = audit
        self.select_timeout_s = select_timeout_s
        self._clock = clock
        self.interlocks: list[Interlock] = []
        self._tags: dict[int, Tag] = {}
        self._selections: dict[int, Selection] = {}
        self._ids = itertools.count(1)

    # -------------------------------------------------------------- checks
    def tags(self, target: str | None = None) -> list[Tag]:
        tags = list(self._tags.values())
        if target is None:
            return tags
        device = target.split(".", 1)[0]
        return [t for t in tags if t.target in (target, device)]

    def refusal(self, point: str, value: float) -> str | None:
        """Why ``point`` may not be commanded to ``value`` now, or None."""
        for tag in self.tags(point):
            if tag.kind in _BLOCKING:
                return f"tag {tag.kind} on {tag.target} by {tag.owner}: {tag.reason}"
        for rule in self.interlocks:
            reason = rule.check(point, value)
            if reason:
                return f"interlock {rule.name}: {reason}"
        return None

    # ----------------------------------------------------------------- SBO
    def select(self, point: str, value: float, operator: str) -> Selection | CommandResult:
        """Reserve ``point`` for ``operator``; returns the selection or a refusal."""
        self._expire()
        if point not in self.fep.pointdb:
            return self._refuse(operator, "select", point, value, f"unknown point {point!r}")
        if self.fep.pointdb.config(point).template.control is None:
            return self._refuse(operator, "select", point, value, "point has no control")
        held = next((s for s in self._selections.values() if s.point == point), None)
        if held is not None:
            return self._refuse(
                operator, "select", point, value, f"already selected by {held.operator}"
            )
        reason = self.refusal(point, value)
        if reason:
            return self._refuse(operator, "select", point, value, reason)
        sel = Selection(
            next(self._ids), point, value, operator, self._clock() + self.select_timeout_s
        )
        self._selections[sel.id] = sel
        self._audit(AuditRecord(operator, "select", point, f"value={value:g}", "selected"))
        return sel

    def cancel(self, selection_id: int, operator: str) -> bool:
        sel = self._selections.pop(selection_id, None)
        if sel is None:
            return False
        self._audit(AuditRecord(operator, "cancel", sel.point, f"selection {sel.id}", "cancelled"))
        return True

    async def execute(self, selection_id: int, operator: str) -> CommandResult:
        self._expire()
        sel = self._selections.pop(selection_id, None)
        if sel is None:
            return self._refuse(
                operator, "execute", f"selection {selection_id}", 0, "no such selection (expired?)"
            )
        if sel.operator != operator:
            self._selections[sel.id] = sel
            return self._refuse(
                operator, "execute", sel.point, sel.value, f"selected by {sel.operator}"
            )
        return await self._send(sel.point, sel.value, operator, None)

    async def direct(
        self, point: str, value: float, operator: str, mode: CommandMode | None = None
    ) -> CommandResult:
        """Command without an operator selection (automatic functions); same checks."""
        return await self._send(point, value, operator, mode)

    async def _send(
        self, point: str, value: float, operator: str, mode: CommandMode | None
    ) -> CommandResult:
        reason = self.refusal(point, value)
        if reason:
            return self._refuse(operator, "command", point, value, reason)
        result = await self.fep.command(point, value, mode, operator=operator)
        self._audit(
            AuditRecord(operator, "command", point, f"value={value:g}", _result_text(result))
        )
        return result

    def _expire(self) -> None:
        now = self._clock()
        for sel in [s for s in self._selections.values() if s.expires <= now]:
            del self._selections[sel.id]
            self._audit(AuditRecord(sel.operator, "select", sel.point, "timeout", "expired"))

    def _refuse(
        self, operator: str, action: str, target: str, value: float, reason: str
    ) -> CommandResult:
        self._audit(AuditRecord(operator, action, target, f"value={value:g}", f"refused: {reason}"))
        return CommandResult(CommandStatus.REFUSED, reason)

    # ---------------------------------------------------------------- tags
    def place_tag(self, target: str, kind: TagKind, owner: str, reason: str) -> Tag:
        tag = Tag(next(self._ids), target, kind, owner, reason)
        self._tags[tag.id] = tag
        self._audit(AuditRecord(owner, "tag", target, f"{kind}: {reason}", "placed"))
        return tag

    def remove_tag(self, tag_id: int, operator: str) -> bool:
        tag = self._tags.pop(tag_id, None)
        if tag is None:
            return False
        self._audit(
            AuditRecord(operator, "untag", tag.target, f"{tag.kind} of {tag.owner}", "removed")
        )
        return True


def _result_text(result: CommandResult) -> str:
    return f"{result.status}: {result.reason}" if result.reason else str(result.status)
