"""Where each point lives in the four Modbus tables, and how a master groups its reads.

Monitored locations: a point occupies ``width(point)`` consecutive addresses
of ``point.table`` from ``point.address`` (0-based). Control locations: a
control writes ``control_width(point)`` addresses of ``control_table(point)``
at ``control.address`` (and, for STEP, at ``control.address_lower``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from protocols.base import (
    ControlKind,
    LinkSpec,
    ModbusTable,
    PointKind,
    PointSpec,
)
from protocols.modbus.errors import ModbusConfigError

__all__ = [
    "BIT_TABLES",
    "MAX_BITS_PER_READ",
    "MAX_REGISTERS_PER_READ",
    "Block",
    "control_locations",
    "control_table",
    "control_width",
    "plan_blocks",
    "validate",
    "width",
]

BIT_TABLES = frozenset({ModbusTable.COIL, ModbusTable.DISCRETE_INPUT})
WRITABLE_TABLES = frozenset({ModbusTable.COIL, ModbusTable.HOLDING_REGISTER})
#: protocol limits of one read request (function codes 1/2 and 3/4)
MAX_BITS_PER_READ = 2000
MAX_REGISTERS_PER_READ = 125
#: gaps up to this size are read through rather than split into two requests:
#: a round trip costs far more than a few unused registers or bits
MAX_GAP_REGISTERS = 16
MAX_GAP_BITS = 256
_MAX_ADDRESS = 0xFFFF


def width(point: PointSpec) -> int:
    """Return how many addresses the monitored value of ``point`` occupies."""
    if point.table in BIT_TABLES:
        return 2 if point.kind is PointKind.DOUBLE else 1
    return point.dtype.registers


def control_table(point: PointSpec) -> ModbusTable:
    """Return the table a control writes: ``control.table``, else coil (holding for SETPOINT)."""
    control = point.control
    if control is None:
        raise ModbusConfigError(f"point {point.name!r} (handle {point.handle}) has no control")
    if control.table is not None:
        return control.table
    if control.kind is ControlKind.SETPOINT:
        return ModbusTable.HOLDING_REGISTER
    return ModbusTable.COIL


def control_width(point: PointSpec) -> int:
    """Return how many addresses one write of the point's control covers."""
    assert point.control is not None
    if control_table(point) is ModbusTable.COIL or point.control.kind is not ControlKind.SETPOINT:
        return 1
    return point.control.dtype.registers


def control_locations(point: PointSpec) -> list[tuple[int, float]]:
    """Return (address, step direction) of each output; direction is 0 except for STEP (+1/-1)."""
    control = point.control
    assert control is not None
    if control.kind is ControlKind.STEP:
        assert control.address_lower is not None
        return [(control.address, 1.0), (control.address_lower, -1.0)]
    return [(control.address, 0.0)]


def _check_range(link: LinkSpec, point: PointSpec, field: str, address: int, count: int) -> None:
    if not 0 <= address <= _MAX_ADDRESS - count + 1:
        raise ModbusConfigError(
            f"{link.device}: point {point.name!r} {field}={address} is outside 0..{_MAX_ADDRESS}"
            f" for {count} address(es)"
        )


def validate(link: LinkSpec, points: Sequence[PointSpec]) -> None:
    """Raise ModbusConfigError for anything the adapter cannot serve, naming device/point/field."""
    if not 0 <= link.address <= 255:
        raise ModbusConfigError(f"{link.device}: unit id address={link.address} is outside 0..255")
    if link.timeout_s <= 0 or link.scan_period_s <= 0:
        raise ModbusConfigError(f"{link.device}: timeout_s and scan_period_s must be > 0")
    handles: set[int] = set()
    for point in points:
        if point.handle in handles:
            raise ModbusConfigError(
                f"{link.device}: duplicate handle {point.handle} ({point.name!r})"
            )
        handles.add(point.handle)
        if point.monitored:
            if point.table is None:
                raise ModbusConfigError(
                    f"{link.device}: point {point.name!r} is monitored but has no table"
                )
            _check_range(link, point, "address", point.address, width(point))
        control = point.control
        if control is None:
            continue
        table = control_table(point)
        if table not in WRITABLE_TABLES:
            raise ModbusConfigError(
                f"{link.device}: point {point.name!r} control.table={table} is read-only"
            )
        if control.kind is ControlKind.STEP and control.address_lower is None:
            raise ModbusConfigError(
                f"{link.device}: point {point.name!r} STEP control needs control.address_lower"
            )
        for address, _direction in control_locations(point):
            _check_range(link, point, "control.address", address, control_width(point))


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: ``count`` addresses of ``table`` from ``start``, and the points in it."""

    table: ModbusTable
    start: int
    count: int
    points: tuple[PointSpec, ...]

    @property
    def bridged(self) -> bool:
        """True when the block reads addresses that belong to no point (points are sorted)."""
        end = self.start
        for point in self.points:
            if point.address > end:
                return True
            end = max(end, point.address + width(point))
        return False


def plan_blocks(points: Iterable[PointSpec], bridge_gaps: bool = True) -> list[Block]:
    """Group monitored points into as few reads as the per-request limits allow.

    Points of one table are sorted by address; a point joins the current block
    when the gap before it is small (or zero when ``bridge_gaps`` is False) and
    the block stays within the request limit.
    """
    by_table: dict[ModbusTable, list[PointSpec]] = {}
    for point in points:
        if point.monitored and point.table is not None:
            by_table.setdefault(point.table, []).append(point)
    blocks: list[Block] = []
    for table, members in sorted(by_table.items()):
        bits = table in BIT_TABLES
        limit = MAX_BITS_PER_READ if bits else MAX_REGISTERS_PER_READ
        max_gap = (MAX_GAP_BITS if bits else MAX_GAP_REGISTERS) if bridge_gaps else 0
        members.sort(key=lambda p: p.address)
        current: list[PointSpec] = []
        start = end = 0
        for point in members:
            point_end = point.address + width(point)
            if current and point.address - end <= max_gap and max(end, point_end) - start <= limit:
                current.append(point)
                end = max(end, point_end)
                continue
            if current:
                blocks.append(Block(table, start, end - start, tuple(current)))
            current, start, end = [point], point.address, point_end
        if current:
            blocks.append(Block(table, start, end - start, tuple(current)))
    return blocks
