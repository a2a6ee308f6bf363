"""JSON-ready views of points and alarms, shared by the REST API and the push channel.

Every float is finite or None (JSON has no NaN: a point without a value yet,
or without a source time, shows ``null``).

Contract:
- :func:`point_view` is one point's full view; :class:`PointViews` gives
  every point's view at once (console snapshots of many thousand points)
  from the point database's columns (:meth:`scada.pointdb.PointDB.columns`),
  with the per-point constants (name, device, kind, unit, description,
  controllable) prepared once per point-database generation.
  :meth:`PointViews.rows` equals ``[point_view(...) for each point]`` and
  :meth:`PointViews.json` is exactly the compact JSON text of those rows.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np
import numpy.typing as npt

from protocols.base import Quality
from scada.alarms import Alarm
from scada.pointdb import PointDB, PointValue

__all__ = [
    "PointViews",
    "alarm_view",
    "finite",
    "point_change",
    "point_view",
    "quality_flags",
]


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


def _finite_list(column: npt.NDArray[np.float64]) -> list[float | None]:
    values: list[float | None] = column.tolist()
    bad = ~np.isfinite(column)
    if bad.any():
        for i in np.flatnonzero(bad).tolist():
            values[i] = None
    return values


def _json_floats(column: npt.NDArray[np.float64], before: str = "", after: str = "") -> list[str]:
    """Each float as :func:`json.dumps` writes it (``null`` where not finite), in between.

    Each distinct value is formatted once: time stamps repeat per batch, statuses are few.
    """
    if not len(column):
        return []
    unique, inverse = np.unique(column, return_inverse=True)
    distinct = 2 * len(unique) > len(column)  # mostly distinct: format them in place
    values = column if distinct else unique
    text = list(map(float.__repr__, values.tolist()))
    if before or after:
        text = [before + t + after for t in text]
    for i in np.flatnonzero(~np.isfinite(values)).tolist():
        text[i] = f"{before}null{after}"
    return text if distinct else list(map(text.__getitem__, inverse.tolist()))


#: a string as :func:`json.dumps` writes it (ASCII, escaped), without the encoder's overhead
_str_json: Callable[[str], str] = encode_basestring_ascii


@functools.cache
def _quality_json(quality: int) -> str:
    """A row's text from after the value to the source time."""
    flags = json.dumps(list(quality_flags(quality)), separators=(",", ":"))
    return f',"quality":{quality},"quality_flags":{flags},"source_time":'


class PointViews:
    """Every point's full view at once, from the point database's columns (module doc)."""

    def __init__(self, db: PointDB) -> None:
        self.db = db
        self._generation = -1
        self._static: list[dict[str, Any]] = []
        #: each row's constant text: '{"name":...,"controllable":true,"value":'
        self._heads: list[str] = []
        #: the value column at the last :meth:`json` and its text (reused where unchanged)
        self._values: npt.NDArray[np.float64] = np.zeros(0)
        self._value_text: list[str] = []

    def _constants(self, generation: int, names: list[str]) -> None:
        if generation == self._generation:
            return
        static: list[dict[str, Any]] = []
        heads: list[str] = []
        # the text after name and device is shared by every point of a template
        tails: dict[tuple[str, str, str, bool], str] = {}
        for name in names:
            cfg = self.db.config(name)
            t = cfg.template
            key = (cfg.kind.value, t.unit, t.description, t.control is not None)
            kind, unit, description, controllable = key
            static.append(
                {
                    "name": name,
                    "device": cfg.device,
                    "kind": kind,
                    "unit": unit,
                    "description": description,
                    "controllable": controllable,
                }
            )
            tail = tails.get(key)
            if tail is None:
                tail = tails[key] = (
                    f',"kind":{_str_json(kind)},"unit":{_str_json(unit)},'
                    f'"description":{_str_json(description)},'
                    f'"controllable":{"true" if controllable else "false"},"value":'
                )
            heads.append(f'{{"name":{_str_json(name)},"device":{_str_json(cfg.device)}{tail}')
        self._static, self._heads = static, heads
        self._values, self._value_text = np.zeros(0), []
        self._generation = generation

    def _values_json(self, values: npt.NDArray[np.float64]) -> list[str]:
        """The value column as JSON text, formatting only the values changed since last time."""
        # bit for bit: NaN equals itself, -0.0 differs from 0.0 (its text does)
        changed = (
            np.flatnonzero(values.view(np.int64) != self._values.view(np.int64))
            if len(values) == len(self._values)
            else None
        )
        if changed is None or 4 * len(changed) > len(values):
            text = _json_floats(values)
        else:
            text = self._value_text
            for i, t in zip(changed.tolist(), _json_floats(values[changed]), strict=True):
                text[i] = t
        self._values, self._value_text = values, text
        return text

    def rows(self) -> list[dict[str, Any]]:
        """Every point's :func:`point_view`, in definition order."""
        c = self.db.columns()
        self._constants(c.generation, c.names)
        quality = c.quality.tolist()
        return [
            {
                **static,
                "value": v,
                "quality": q,
                "quality_flags": quality_flags(q),
                "source_time": st,
                "receive_time": rt,
            }
            for static, v, q, st, rt in zip(
                self._static,
                _finite_list(c.values),
                quality,
                _finite_list(c.source_time),
                _finite_list(c.receive_time),
                strict=True,
            )
        ]

    def json(self) -> str:
        """The compact JSON array of :meth:`rows` (``separators=(",", ":")``), built as text.

        One join over the rows' pieces: the constant head of each row (with
        ``"value":``), the value, the quality part, the source time, and the
        receive time with the row's end.
        """
        c = self.db.columns()
        self._constants(c.generation, c.names)
        n = len(c.names)
        if not n:
            return "[]"
        parts: list[str] = [""] * (5 * n)
        parts[0::5] = self._heads
        parts[1::5] = self._values_json(c.values)
        parts[2::5] = map(_quality_json, c.quality.tolist())
        parts[3::5] = _json_floats(c.source_time)
        parts[4::5] = _json_floats(c.receive_time, ',"receive_time":', "},")
        return "[" + "".join(parts)[:-1] + "]"


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
