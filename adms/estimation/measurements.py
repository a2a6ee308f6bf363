"""Measurements for state estimation, and their CSV/JSON file format.

Contract (the file format is documented in ``adms/estimation/MEASUREMENTS.md``):

- A :class:`Measurement` names an element by its GIS id and kind (``bus``,
  ``line``, ``trafo``, ``switch``), a quantity (``v`` in p.u., ``p`` in MW,
  ``q`` in Mvar, ``i`` in kA), the branch side where it matters, the value and
  its standard deviation, and a ``quality_ok`` flag (False: invalid, comm-fail,
  old... the estimator leaves it out).
- Signs: a bus ``p``/``q`` is the net *consumption* at the bus (pandapower's
  convention for bus measurements); a branch ``p``/``q`` is the flow from the
  bus at ``side`` into the branch; a switch ``p``/``q``/``i`` is measured at
  the switch's bus, positive from that bus into the line or transformer the
  switch connects.
- :func:`check_measurement` validates a measurement against a model;
  :func:`load_measurements` reads a file and reports every problem at once
  (:class:`MeasurementFileError`, naming line, field and element).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from adms.estimation.errors import FileProblem, MeasurementError, MeasurementFileError
from models.errors import UnknownElementError
from models.network import NetworkModel

__all__ = [
    "FIELDS",
    "REQUIRED_FIELDS",
    "ElementKind",
    "Measurement",
    "Quantity",
    "check_measurement",
    "dump_measurements",
    "load_measurements",
    "measurement_from_record",
    "parse_kind",
    "parse_quantity",
]


class ElementKind(StrEnum):
    """The kind of element a measurement refers to (also its pandapower table)."""

    BUS = "bus"
    LINE = "line"
    TRAFO = "trafo"
    SWITCH = "switch"


class Quantity(StrEnum):
    """Measured quantity: ``v`` p.u., ``p`` MW, ``q`` Mvar, ``i`` kA."""

    V = "v"
    P = "p"
    Q = "q"
    I = "i"  # noqa: E741 - the quantity's symbol


#: Unit of each quantity's ``value`` and ``std_dev``.
UNITS: dict[Quantity, str] = {
    Quantity.V: "pu",
    Quantity.P: "MW",
    Quantity.Q: "Mvar",
    Quantity.I: "kA",
}

_KIND_ALIASES = {"transformer": "trafo", "regulator": "trafo"}
_QUANTITIES: dict[ElementKind, frozenset[Quantity]] = {
    ElementKind.BUS: frozenset({Quantity.V, Quantity.P, Quantity.Q}),
    ElementKind.LINE: frozenset({Quantity.P, Quantity.Q, Quantity.I}),
    ElementKind.TRAFO: frozenset({Quantity.P, Quantity.Q, Quantity.I}),
    ElementKind.SWITCH: frozenset({Quantity.V, Quantity.P, Quantity.Q, Quantity.I}),
}
#: Accepted sides per branch kind, mapped to the pandapower side name.
_SIDES: dict[ElementKind, dict[str, str]] = {
    ElementKind.LINE: {"from": "from", "to": "to"},
    ElementKind.TRAFO: {"hv": "hv", "lv": "lv", "from": "hv", "to": "lv"},
}

#: Columns/keys of the file format, in the order files are written.
FIELDS: tuple[str, ...] = (
    "kind",
    "element",
    "quantity",
    "side",
    "value",
    "std_dev",
    "quality_ok",
    "pseudo",
    "id",
)
REQUIRED_FIELDS: frozenset[str] = frozenset({"kind", "element", "quantity", "value", "std_dev"})


def parse_kind(value: object, element: str | None = None) -> ElementKind:
    """An :class:`ElementKind` from its name or an alias; :class:`MeasurementError` if unknown."""
    raw = str(value).strip().lower()
    try:
        return ElementKind(_KIND_ALIASES.get(raw, raw))
    except ValueError:
        raise MeasurementError(
            f"unknown kind {value!r} (bus, line, trafo, switch)", element=element, field="kind"
        ) from None


def parse_quantity(value: object, element: str | None = None) -> Quantity:
    """A :class:`Quantity` from its symbol; :class:`MeasurementError` if unknown."""
    try:
        return Quantity(str(value).strip().lower())
    except ValueError:
        raise MeasurementError(
            f"unknown quantity {value!r} (v, p, q, i)", element=element, field="quantity"
        ) from None


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measurement (or pseudo-measurement) of the network state.

    ``kind``, ``quantity`` and ``side`` accept plain strings (``"transformer"``
    and ``"regulator"`` mean ``trafo``; a transformer's ``from``/``to`` mean
    ``hv``/``lv``). ``side`` is required for lines and transformers and must be
    empty otherwise. ``std_dev`` is in the unit of ``value`` and must be > 0.
    ``pseudo`` marks values that are not measured (load profiles): they count
    in the estimate and the chi-square test but are never named as bad data.
    ``id`` is the SCADA point (or any label) reports use to name it.

    Raises :class:`MeasurementError` naming the element and field.
    """

    kind: ElementKind
    element: str
    quantity: Quantity
    value: float
    std_dev: float
    side: str | None = None
    quality_ok: bool = True
    pseudo: bool = False
    id: str | None = None

    def __post_init__(self) -> None:
        element = self.element
        if not isinstance(element, str) or not element:
            raise MeasurementError("must be a non-empty GIS id", element=None, field="element")
        kind = parse_kind(self.kind, element)
        quantity = parse_quantity(self.quantity, element)
        if quantity not in _QUANTITIES[kind]:
            allowed = ", ".join(sorted(q.value for q in _QUANTITIES[kind]))
            raise MeasurementError(
                f"a {kind.value} measures {allowed}, not {quantity.value!r}",
                element=element,
                field="quantity",
            )
        side = self.side.strip().lower() if isinstance(self.side, str) else self.side
        side = side or None
        if kind in _SIDES:
            if side not in _SIDES[kind]:
                allowed = "/".join(_SIDES[kind])
                raise MeasurementError(
                    f"a {kind.value} measurement needs side {allowed}, got {self.side!r}",
                    element=element,
                    field="side",
                )
            side = _SIDES[kind][side]
        elif side is not None:
            raise MeasurementError(
                f"a {kind.value} measurement takes no side, got {self.side!r}",
                element=element,
                field="side",
            )
        for name in ("value", "std_dev"):
            number = getattr(self, name)
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise MeasurementError(
                    f"must be a number, got {number!r}", element=element, field=name
                )
            if not math.isfinite(number):
                raise MeasurementError(
                    f"must be finite, got {number!r}", element=element, field=name
                )
        if self.std_dev <= 0:
            raise MeasurementError(
                f"must be > 0, got {self.std_dev!r}", element=element, field="std_dev"
            )
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "quantity", quantity)
        object.__setattr__(self, "side", side)
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "std_dev", float(self.std_dev))

    @property
    def label(self) -> str:
        """``id`` if given, else e.g. ``line L12 p from``."""
        if self.id:
            return self.id
        parts = [self.kind.value, self.element, self.quantity.value]
        if self.side:
            parts.append(self.side)
        return " ".join(parts)

    @property
    def unit(self) -> str:
        """Unit of ``value`` and ``std_dev``."""
        return UNITS[self.quantity]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (the JSON file record)."""
        data = asdict(self)
        data["kind"] = self.kind.value
        data["quantity"] = self.quantity.value
        return data


def check_measurement(
    model: NetworkModel,
    measurement: Measurement,
    switch_et: Mapping[int, str] | None = None,
) -> int:
    """Check that ``measurement`` refers to an element of ``model`` it can measure.

    Returns the element's pandapower index. Raises :class:`MeasurementError`
    naming the element: unknown GIS id, an element of another kind, or a flow
    measured at a bus-bus switch (the buses it joins are one node in the
    model, so no flow is defined). ``switch_et`` (switch index -> ``et``)
    saves a table lookup when many measurements are checked.
    """
    try:
        ref = model.locate(measurement.element)
    except UnknownElementError:
        raise MeasurementError(
            "no such element in the model", element=measurement.element, field="element"
        ) from None
    kind = measurement.kind
    if ref.table != kind.value:
        raise MeasurementError(
            f"is a {ref.table}, not a {kind.value}", element=measurement.element, field="kind"
        )
    if kind is ElementKind.SWITCH and measurement.quantity is not Quantity.V:
        et = switch_et[ref.index] if switch_et is not None else model.net.switch.at[ref.index, "et"]
        if et not in ("l", "t"):
            raise MeasurementError(
                f"{measurement.quantity.value} at a bus-bus switch: the buses it joins are one "
                "node, so no flow through it is modelled; measure the line or transformer",
                element=measurement.element,
                field="quantity",
            )
    return ref.index


def measurement_from_record(record: Mapping[str, Any]) -> Measurement:
    """Build a :class:`Measurement` from a file record (strings allowed for numbers/flags).

    Raises :class:`MeasurementError` naming the field.
    """
    unknown = sorted(set(record) - set(FIELDS))
    element = record.get("element")
    label = element if isinstance(element, str) and element else None
    if unknown:
        raise MeasurementError(
            f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(FIELDS)})",
            element=label,
            field=unknown[0],
        )
    missing = sorted(f for f in REQUIRED_FIELDS if _blank(record.get(f)))
    if missing:
        raise MeasurementError(
            f"required field(s) missing: {', '.join(missing)}", element=label, field=missing[0]
        )
    return Measurement(
        kind=parse_kind(record["kind"], label),
        element=str(record["element"]).strip(),
        quantity=parse_quantity(record["quantity"], label),
        value=_number(record["value"], "value", label),
        std_dev=_number(record["std_dev"], "std_dev", label),
        side=None if _blank(record.get("side")) else str(record["side"]),
        quality_ok=_flag(record.get("quality_ok"), "quality_ok", label, default=True),
        pseudo=_flag(record.get("pseudo"), "pseudo", label, default=False),
        id=None if _blank(record.get("id")) else str(record["id"]),
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: Any, field: str, element: str | None) -> float:
    if isinstance(value, bool):
        raise MeasurementError(f"must be a number, got {value!r}", element=element, field=field)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise MeasurementError(
            f"must be a number, got {value!r}", element=element, field=field
        ) from None


_TRUE = frozenset({"true", "1", "yes", "y", "ok", "good"})
_FALSE = frozenset({"false", "0", "no", "n", "bad", "invalid"})


def _flag(value: Any, field: str, element: str | None, *, default: bool) -> bool:
    if _blank(value):
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise MeasurementError(f"must be true or false, got {value!r}", element=element, field=field)


def load_measurements(path: str | os.PathLike[str], model: NetworkModel) -> list[Measurement]:
    """Read a CSV or JSON measurement file (by extension) and check it against ``model``.

    Every problem in the file is collected and raised together as a
    :class:`MeasurementFileError` whose ``problems`` name line, field and element.
    """
    file = Path(path)
    label = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MeasurementFileError(label, [FileProblem(None, None, None, "no such file")]) from None
    except UnicodeDecodeError as exc:
        raise MeasurementFileError(
            label, [FileProblem(None, None, None, f"not UTF-8 text ({exc.reason})")]
        ) from None
    suffix = file.suffix.lower()
    if suffix == ".csv":
        records = _csv_records(text, label)
    elif suffix == ".json":
        records = _json_records(text, label)
    else:
        raise MeasurementFileError(
            label,
            [FileProblem(None, None, None, f"unsupported extension {suffix!r} (.csv, .json)")],
        )
    measurements: list[Measurement] = []
    problems: list[FileProblem] = []
    for line, record in records:
        if not isinstance(record, Mapping):
            problems.append(
                FileProblem(line, None, None, f"expected an object, got {type(record).__name__}")
            )
            continue
        try:
            measurement = measurement_from_record(record)
            check_measurement(model, measurement)
        except MeasurementError as exc:
            problems.append(FileProblem(line, exc.field, exc.element, exc.detail))
            continue
        measurements.append(measurement)
    if problems:
        raise MeasurementFileError(label, problems)
    return measurements


def _csv_records(text: str, label: str) -> list[tuple[int, dict[str, Any]]]:
    """Rows as dicts with their physical line numbers; ``#`` lines are comments."""
    numbered = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise MeasurementFileError(label, [FileProblem(None, None, None, "empty file")])
    header_line, header_text = numbered[0]
    header = [name.strip().lower() for name in next(csv.reader([header_text]))]
    problems = [
        FileProblem(header_line, name, None, f"unknown column (allowed: {', '.join(FIELDS)})")
        for name in header
        if name not in FIELDS
    ]
    problems += [
        FileProblem(header_line, name, None, "required column missing")
        for name in sorted(REQUIRED_FIELDS - set(header))
    ]
    if len(set(header)) != len(header):
        problems.append(FileProblem(header_line, None, None, "duplicate column names"))
    if problems:
        raise MeasurementFileError(label, problems)
    records: list[tuple[int, dict[str, Any]]] = []
    for number, line in numbered[1:]:
        cells = next(csv.reader(io.StringIO(line)))
        if len(cells) != len(header):
            problems.append(
                FileProblem(number, None, None, f"{len(cells)} cells, header has {len(header)}")
            )
            continue
        records.append((number, dict(zip(header, cells, strict=True))))
    if problems:
        raise MeasurementFileError(label, problems)
    return records


def _json_records(text: str, label: str) -> list[tuple[int, Any]]:
    """The measurement records with the line each starts on.

    Accepts a list of records or ``{"format_version": 1, "measurements": [...]}``.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MeasurementFileError(
            label,
            [FileProblem(exc.lineno, None, None, f"invalid JSON: {exc.msg} (column {exc.colno})")],
        ) from None
    if isinstance(data, dict):
        version = data.get("format_version", 1)
        if version != 1:
            raise MeasurementFileError(
                label,
                [FileProblem(None, "format_version", None, f"unsupported version {version!r}")],
            )
        extra = sorted(set(data) - {"format_version", "measurements"})
        if extra:
            raise MeasurementFileError(
                label, [FileProblem(None, extra[0], None, "unknown top-level key")]
            )
        if not isinstance(data.get("measurements"), list):
            raise MeasurementFileError(
                label, [FileProblem(None, "measurements", None, "must be a list of records")]
            )
        items: list[Any] = data["measurements"]
        start = text.find("[", text.find('"measurements"'))
    elif isinstance(data, list):
        items = data
        start = text.find("[")
    else:
        raise MeasurementFileError(
            label, [FileProblem(1, None, None, "expected a list of records or an object")]
        )
    return list(zip(_record_lines(text, start, len(items)), items, strict=True))


def _record_lines(text: str, start: int, count: int) -> list[int]:
    """Line numbers where each element of the JSON array opening at ``start`` begins."""
    decoder = json.JSONDecoder()
    lines: list[int] = []
    pos = start + 1
    for _ in range(count):
        while text[pos] in " \t\r\n,":
            pos += 1
        lines.append(text.count("\n", 0, pos) + 1)
        _, pos = decoder.raw_decode(text, pos)
    return lines


def dump_measurements(measurements: Iterable[Measurement], path: str | os.PathLike[str]) -> None:
    """Write measurements as CSV or JSON (by extension) in the documented format."""
    file = Path(path)
    rows = [m.to_dict() for m in measurements]
    if file.suffix.lower() == ".json":
        body = ",\n".join("  " + json.dumps(row) for row in rows)
        file.write_text(
            '{"format_version": 1, "measurements": [\n' + body + "\n]}\n", encoding="utf-8"
        )
        return
    if file.suffix.lower() != ".csv":
        raise MeasurementFileError(
            str(file), [FileProblem(None, None, None, "unsupported extension (.csv, .json)")]
        )
    with file.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(FIELDS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
