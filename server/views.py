"""JSON-ready views of points and alarms, shared by the REST API and the push channel.

Every float is finite or None (JSON has no NaN: a point without a value yet,
or without a source time, shows ``null``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

from protocols.base import Quality
from scada.alarms import Alarm
from scada.pointdb import PointValue

__all__ = ["alarm_view", "finite", "point_change", "point_view", "quality_flags"]


@functools.cache
def quality_flags(quality: int) -> tuple[str, ...]:
    """Flag names of a quality value (memoised: few distinct values, many points)."""
    return tuple(Quality(quality).names())


def finite(x: float | None) -> float | None:
    """``x``, or None for None, NaN and infinities."""
    return None if x is None or not math.isfinite(x) else x


def point_view(pv: PointValue, device: str, description: str, controllable: bool) -> dict[str, Any]:
    """A point's full state (REST and snapshots)."""
    return {
        "name": pv.name,
        "device": device,
        "kind": pv.kind.value,
        "unit": pv.unit,
        "description": description,
        "controllable": controllable,
        "value": finite(pv.value),
        "quality": int(pv.quality),
        "quality_flags": quality_flags(int(pv.quality)),
        "source_time": finite(pv.source_time),
        "receive_time": finite(pv.receive_time),
    }


def point_change(
    name: str, value: float, quality: int, source_time: float, receive_time: float
) -> dict[str, Any]:
    """What changed of a point (pushed changes): value, quality and times."""
    return {
        "name": name,
        "value": finite(value),
        "quality": quality,
        "quality_flags": quality_flags(quality),
        "source_time": finite(source_time),
        "receive_time": finite(receive_time),
    }


def alarm_view(a: Alarm) -> dict[str, Any]:
    return {
        "id": a.id,
        "source": a.source,
        "condition": a.condition.value,
        "tag": a.tag,
        "detail": a.detail,
        "priority": a.priority,
        "message": a.message,
        "device": a.device,
        "point": a.point,
        "value": finite(a.value),
        "normal": finite(a.normal),
        "raised_time": a.raised_time,
        "receive_time": a.receive_time,
        "active": a.active,
        "acknowledged": a.acknowledged,
        "ack_operator": a.ack_operator,
        "ack_time": a.ack_time,
        "cleared_time": a.cleared_time,
        "shelved_until": a.shelved_until,
        "suppressed_by": a.suppressed_by,
        "state": a.state.value,
    }
