"""Raw Modbus data <-> point values: the one place where data types, byte and word order apply.

Register level: :func:`decode_registers` turns registers into a number and
:func:`encode_value` turns a number into registers. Point level:
:func:`point_decoder` / :func:`encode_point` add what a point's kind means on
the wire, so master and outstation agree by construction:

- bit tables (coil, discrete input) carry 0/1; a DOUBLE point there uses two
  consecutive bits, ``address`` = OFF/open contact and ``address + 1`` =
  ON/closed contact, so the value is ``bit0 + 2 * bit1`` (a
  :class:`~protocols.base.DoubleState`). ``dtype`` is ignored in bit tables.
- register tables decode by ``dtype``; a SINGLE point is 1 when the value is
  non-zero, a DOUBLE point holds a DoubleState (0..3, anything else is INVALID).
- Modbus has no quality. INVALID is carried as the SunSpec "not available"
  value of the type: NaN for float32, -32768 for int16, -2**31 for int32. The
  unsigned types and bits cannot carry it (their whole range is legal).

Controls: :func:`encode_command` (master) and :func:`decode_command`
(outstation) are the same kind of pair for writes.

Byte order is the order of the two bytes inside each register, word order the
order of the registers of a 32-bit value (big/big = "ABCD", the Modbus default;
big/little = "CDAB"; little/big = "BADC"; little/little = "DCBA").
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Sequence

from protocols.base import (
    ByteOrder,
    ControlKind,
    DataType,
    DoubleState,
    ModbusTable,
    PointKind,
    PointSpec,
    Quality,
)
from protocols.modbus.errors import ModbusEncodeError
from protocols.modbus.layout import BIT_TABLES, control_table

__all__ = [
    "decode_command",
    "point_decoder",
    "decode_registers",
    "encode_command",
    "encode_point",
    "encode_value",
    "exception_name",
]

_VALUE_FORMAT = {
    DataType.BOOL: "H",
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.FLOAT32: "f",
}

#: SunSpec "not available" values, used to carry Quality.INVALID
_NOT_AVAILABLE: dict[DataType, float] = {
    DataType.INT16: -(2**15),
    DataType.INT32: -(2**31),
    DataType.FLOAT32: math.nan,
}

_DOUBLE_STATES = frozenset(float(state) for state in DoubleState)

#: Modbus exception codes by their names in the Modbus application protocol spec
_EXCEPTION_NAMES = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_DATA_ADDRESS",
    3: "ILLEGAL_DATA_VALUE",
    4: "SLAVE_DEVICE_FAILURE",
    5: "ACKNOWLEDGE",
    6: "SLAVE_DEVICE_BUSY",
    7: "NEGATIVE_ACKNOWLEDGE",
    8: "MEMORY_PARITY_ERROR",
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}


def exception_name(code: int) -> str:
    """Return the spec name of a Modbus exception code (``EXCEPTION_<n>`` if unknown)."""
    return _EXCEPTION_NAMES.get(code, f"EXCEPTION_{code}")


@functools.cache
def _structs(
    dtype: DataType, byte_order: ByteOrder, word_order: ByteOrder
) -> tuple[struct.Struct, struct.Struct, bool]:
    """Return (registers struct, value struct, reverse the words) for one layout."""
    count = dtype.registers
    registers = struct.Struct(("<" if byte_order is ByteOrder.LITTLE else ">") + "H" * count)
    value = struct.Struct(">" + _VALUE_FORMAT[dtype])
    return registers, value, count > 1 and word_order is ByteOrder.LITTLE


RegisterDecoder = Callable[[Sequence[int], int], float]
PointDecoder = Callable[[Sequence[int] | Sequence[bool], int], tuple[float, Quality]]


@functools.cache
def _register_decoder(
    dtype: DataType, byte_order: ByteOrder, word_order: ByteOrder
) -> RegisterDecoder:
    """Build the decoder of one layout once: scans call it for every point."""
    registers_struct, value_struct, reverse = _structs(dtype, byte_order, word_order)
    pack, unpack, count = registers_struct.pack, value_struct.unpack, dtype.registers
    if dtype is DataType.BOOL:

        def decode_bool(registers: Sequence[int], offset: int) -> float:
            return 1.0 if registers[offset] else 0.0

        return decode_bool
    if reverse:

        def decode_reversed(registers: Sequence[int], offset: int) -> float:
            return float(unpack(pack(*registers[offset : offset + count][::-1]))[0])

        return decode_reversed

    def decode(registers: Sequence[int], offset: int) -> float:
        return float(unpack(pack(*registers[offset : offset + count]))[0])

    return decode


def decode_registers(
    registers: Sequence[int],
    dtype: DataType,
    byte_order: ByteOrder = ByteOrder.BIG,
    word_order: ByteOrder = ByteOrder.BIG,
    offset: int = 0,
) -> float:
    """Return the value in ``registers[offset : offset + dtype.registers]``.

    Registers are 0..65535 as they come off the wire; BOOL decodes to 1.0 when
    the register is non-zero.
    """
    return _register_decoder(dtype, byte_order, word_order)(registers, offset)


def encode_value(
    value: float,
    dtype: DataType,
    byte_order: ByteOrder = ByteOrder.BIG,
    word_order: ByteOrder = ByteOrder.BIG,
) -> list[int]:
    """Return the registers holding ``value``; integer types round to the nearest integer.

    Raises ModbusEncodeError when the value does not fit (range, NaN/inf for integers).
    """
    registers_struct, value_struct, reverse = _structs(dtype, byte_order, word_order)
    raw: float | int
    if dtype is DataType.FLOAT32:
        raw = value
    elif dtype is DataType.BOOL:
        raw = 1 if value else 0
    elif math.isfinite(value):
        raw = round(value)
    else:
        raise ModbusEncodeError(f"value {value!r} cannot be written as {dtype}")
    try:
        registers = list(registers_struct.unpack(value_struct.pack(raw)))
    except (struct.error, OverflowError) as exc:
        raise ModbusEncodeError(f"value {value!r} is out of range for {dtype}") from exc
    if reverse:
        registers.reverse()
    return registers


def point_decoder(point: PointSpec) -> PointDecoder:
    """Return ``decode(raw, offset) -> (value, quality)`` for a point whose data is at raw[offset].

    ``raw`` is the bits or registers of a read starting at or below the point.
    An INVALID quality comes with value NaN (the caller keeps the last value).
    """
    good, invalid, nan = Quality.GOOD, Quality.INVALID, math.nan
    if point.table in BIT_TABLES:
        if point.kind is PointKind.DOUBLE:

            def decode_two_bits(
                raw: Sequence[int] | Sequence[bool], i: int
            ) -> tuple[float, Quality]:
                return float(bool(raw[i]) + 2 * bool(raw[i + 1])), good

            return decode_two_bits

        def decode_bit(raw: Sequence[int] | Sequence[bool], i: int) -> tuple[float, Quality]:
            return (1.0 if raw[i] else 0.0), good

        return decode_bit
    registers = _register_decoder(point.dtype, point.byte_order, point.word_order)
    # NaN (float32's "not available") is caught by value != value
    not_available = _NOT_AVAILABLE.get(point.dtype)
    kind = point.kind

    def decode_registers_point(
        raw: Sequence[int] | Sequence[bool], i: int
    ) -> tuple[float, Quality]:
        value = registers(raw, i)
        if value != value or value == not_available:
            return nan, invalid
        if kind is PointKind.SINGLE:
            return (1.0 if value else 0.0), good
        if kind is PointKind.DOUBLE and value not in _DOUBLE_STATES:
            return nan, invalid
        return value, good

    return decode_registers_point


def encode_point(point: PointSpec, value: float, quality: Quality) -> list[int] | list[bool]:
    """Return the bits or registers that carry ``value`` for ``point`` (inverse of point_decoder).

    INVALID is encoded as the type's "not available" value where the type has
    one; otherwise the value is written and the quality is lost.
    """
    if point.table in BIT_TABLES:
        if point.kind is PointKind.DOUBLE:
            state = int(value)
            return [bool(state & 1), bool(state & 2)]
        return [bool(value)]
    if quality & Quality.INVALID and point.dtype in _NOT_AVAILABLE:
        value = _NOT_AVAILABLE[point.dtype]
    elif point.kind is PointKind.SINGLE:
        value = 1.0 if value else 0.0
    return encode_value(value, point.dtype, point.byte_order, point.word_order)


def encode_command(
    point: PointSpec, value: float
) -> tuple[int, list[int] | list[bool], list[int] | list[bool] | None]:
    """Return (address, data to write, data that ends the pulse or None) for a control.

    ``value`` is a :class:`~protocols.base.CommandRequest` value. On a coil
    every kind writes one bit. On registers SINGLE writes 1/0, DOUBLE writes
    DoubleState.ON/OFF (2/1, like the status register it usually mirrors),
    SETPOINT writes ``control.dtype`` in the point's byte/word order. STEP
    writes 1 at ``control.address`` (raise, value > 0) or
    ``control.address_lower`` (lower, value < 0), then 0 to end the pulse.
    Raises ModbusEncodeError for a value the control cannot carry.
    """
    control = point.control
    assert control is not None
    bits = control_table(point) is ModbusTable.COIL
    if control.kind is ControlKind.STEP:
        if value == 0 or math.isnan(value):
            raise ModbusEncodeError(f"STEP value must be +1 (raise) or -1 (lower), got {value!r}")
        address = control.address if value > 0 else control.address_lower
        assert address is not None
        return (address, [True], [False]) if bits else (address, [1], [0])
    if bits:
        return control.address, [bool(value)], None
    if control.kind is ControlKind.SINGLE:
        return control.address, [1 if value else 0], None
    if control.kind is ControlKind.DOUBLE:
        state = DoubleState.ON if value else DoubleState.OFF
        return control.address, [int(state)], None
    registers = encode_value(value, control.dtype, point.byte_order, point.word_order)
    return control.address, registers, None


def decode_command(
    point: PointSpec, direction: float, data: Sequence[int] | Sequence[bool]
) -> float | None:
    """Return the CommandRequest value a write carries (inverse of :func:`encode_command`).

    ``direction`` is +1/-1 for the raise/lower output of a STEP control, else 0.
    Returns None for the write that ends a STEP pulse. Raises
    ModbusEncodeError for data the control does not accept.
    """
    control = point.control
    assert control is not None
    bits = control_table(point) is ModbusTable.COIL
    if control.kind is ControlKind.STEP:
        if data[0] not in (0, 1):
            raise ModbusEncodeError(f"STEP output takes 1 (pulse) or 0 (release), got {data[0]}")
        return direction if data[0] else None
    if bits:
        return 1.0 if data[0] else 0.0
    if control.kind is ControlKind.SINGLE:
        if data[0] not in (0, 1):
            raise ModbusEncodeError(f"SINGLE control takes 0 or 1, got {data[0]}")
        return float(data[0])
    if control.kind is ControlKind.DOUBLE:
        if data[0] not in (DoubleState.OFF, DoubleState.ON):
            raise ModbusEncodeError(f"DOUBLE control takes 1 (off) or 2 (on), got {data[0]}")
        return 1.0 if data[0] == DoubleState.ON else 0.0
    return decode_registers(
        [int(v) for v in data], control.dtype, point.byte_order, point.word_order
    )
