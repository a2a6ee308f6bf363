"""Raw IEC 104 APDUs -> values: the master's data path, decoded without calling into c104.

Why not c104's decoded messages: every accessor of a c104 ``IncomingMessage``
(``first``, ``next``, ``io_address``, ``info``) locks a c104 ``GilAwareMutex``,
which drops and re-takes the GIL, so decoding one ASDU of 30 objects gives
the GIL away about 90 times. With a hundred links in a process each re-take
waits behind the other threads (up to the 5 ms switch interval): when 1,000
RTUs on 100 links in one process stopped delivering and lost every link,
py-spy showed the c104 threads queued for the GIL inside these accessors.
Here a received frame is one Python call holding the GIL throughout.

Layout (IEC 60870-5-104 with its fixed sizes): APCI 0x68, length, four
control octets; ASDU type id, variable structure qualifier (SQ bit 0x80,
count), cause of transmission (COT, test bit 0x80, negative bit 0x40),
originator address, common address (2 octets), then the information
objects, each with a 3-octet IOA (SQ = 1: one IOA for consecutive objects).
Monitoring element layouts and quality bits follow IEC 60870-5-101 7.2.6 /
7.3.1; CP56Time2a is UTC, and a time tag whose IV bit is set gives no time.
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Callable

from protocols.base import DoubleState, Quality
from protocols.iec104.mapping import (
    COMMAND_TYPES,
    ValueClass,
    counter_quality_from_bits,
    quality_from_bits,
)

__all__ = [
    "COMMAND_TYPE_IDS",
    "MONITORING_TYPE_IDS",
    "CommandFrame",
    "command_frame",
    "monitoring_objects",
    "point_value",
]


def _single(value: int, qualifier: int) -> tuple[float, Quality]:
    return value & 0x01, quality_from_bits(value & 0xF0)


def _double(value: int, qualifier: int) -> tuple[float, Quality]:
    return value & 0x03, quality_from_bits(value & 0xF0)


def _step(value: int, qualifier: int) -> tuple[float, Quality]:
    # VTI: 7-bit two's complement position, bit 8 "transient" (not a value)
    position = value & 0x7F
    return position - 0x80 if position & 0x40 else position, quality_from_bits(qualifier)


def _normalized(value: int, qualifier: int) -> tuple[float, Quality]:
    # NVA: fixed-point fraction, -32768..32767 -> -1.0..1.0 - 2**-15 (IEC 60870-5-4 F16)
    return value / 32768.0, quality_from_bits(qualifier)


def _measured(value: float, qualifier: int) -> tuple[float, Quality]:
    return value, quality_from_bits(qualifier)


def _counter(value: int, qualifier: int) -> tuple[float, Quality]:
    return value, counter_quality_from_bits(qualifier & 0xE0)


_Decode = Callable[[int, int], tuple[float, Quality]]

#: type id -> (element format after the IOA, without time tag; value decoder; CP56Time2a)
_ELEMENTS: dict[int, tuple[str, _Decode, bool]] = {
    1: ("B", _single, False),  # M_SP_NA_1: SIQ (value and quality in one octet)
    30: ("B", _single, True),  # M_SP_TB_1
    3: ("B", _double, False),  # M_DP_NA_1: DIQ
    31: ("B", _double, True),  # M_DP_TB_1
    5: ("BB", _step, False),  # M_ST_NA_1: VTI, QDS
    32: ("BB", _step, True),  # M_ST_TB_1
    9: ("hB", _normalized, False),  # M_ME_NA_1: NVA, QDS
    34: ("hB", _normalized, True),  # M_ME_TD_1
    11: ("hB", _measured, False),  # M_ME_NB_1: SVA, QDS
    35: ("hB", _measured, True),  # M_ME_TE_1
    13: ("fB", _measured, False),  # M_ME_NC_1: short float, QDS
    36: ("fB", _measured, True),  # M_ME_TF_1
    15: ("iB", _counter, False),  # M_IT_NA_1: BCR (reading; sequence, CY, CA, IV)
    37: ("iB", _counter, True),  # M_IT_TB_1
}
_CP56 = "HBBBBB"

MONITORING_TYPE_IDS = frozenset(_ELEMENTS)

#: wire type ids of the commands the master sends
COMMAND_TYPE_IDS = frozenset(COMMAND_TYPES)


class _Layout:
    """Precompiled structs of one monitoring type: objects with and without their own IOA.

    Unpacked fields: [IOA low 16 bits, IOA high 8 bits,] value, qualifier
    (absent where the value octet holds the quality: SIQ, DIQ), then the six
    CP56Time2a fields. ``qualifier`` is the field index of the quality octet
    relative to the value (0 or 1).
    """

    __slots__ = ("decode", "element", "qualifier", "size", "timed", "with_ioa")

    def __init__(self, fmt: str, decode: _Decode, timed: bool) -> None:
        body = fmt + (_CP56 if timed else "")
        self.with_ioa = struct.Struct("<HB" + body)
        self.element = struct.Struct("<" + body)
        self.size = self.element.size
        self.qualifier = len(fmt) - 1
        self.decode = decode
        self.timed = timed


_LAYOUTS = {type_id: _Layout(*element) for type_id, element in _ELEMENTS.items()}

#: ASDU header offset in an APDU and its size (type, VSQ, COT, originator, CA)
_ASDU = 6
_HEADER = 6


def _time(ms: int, minute: int, hour: int, day: int, month: int, year: int) -> float | None:
    """CP56Time2a fields -> POSIX seconds; None if marked invalid or not a date."""
    if minute & 0x80:
        return None
    try:
        whole = calendar.timegm(
            (2000 + (year & 0x7F), month & 0x0F, day & 0x1F, hour & 0x1F, minute & 0x3F, 0)
        )
    except ValueError:
        return None
    return whole + ms / 1000.0


Object = tuple[int, float, Quality, float | None]
"""(IOA, value, quality, source time)"""


def monitoring_objects(data: bytes) -> tuple[int, int, bool, list[Object]] | None:
    """``(type id, common address, test, objects)`` of a monitoring I-frame, else None.

    ``value`` is the element's value: 0/1 single, 0..3 double, signed step
    position, NVA as -1.0..+1.0, SVA, short float, counter reading. Frames of
    other types, or whose length does not match their object count, give None.
    """
    if len(data) < _ASDU + _HEADER or data[2] & 0x01:
        return None
    layout = _LAYOUTS.get(data[_ASDU])
    if layout is None:
        return None
    vsq = data[_ASDU + 1]
    count = vsq & 0x7F
    test = bool(data[_ASDU + 2] & 0x80)
    ca = data[_ASDU + 4] | data[_ASDU + 5] << 8
    start = _ASDU + _HEADER
    decode = layout.decode
    timed = layout.timed
    q = layout.qualifier
    objects: list[Object] = []
    if vsq & 0x80:  # SQ = 1: one IOA, then consecutive elements
        if count == 0 or len(data) != start + 3 + count * layout.size:
            return None
        ioa = data[start] | data[start + 1] << 8 | data[start + 2] << 16
        for n, fields in enumerate(layout.element.iter_unpack(data[start + 3 :])):
            value, quality = decode(fields[0], fields[q])
            objects.append((ioa + n, value, quality, _time(*fields[-6:]) if timed else None))
    else:
        if count == 0 or len(data) != start + count * (3 + layout.size):
            return None
        q += 2
        for fields in layout.with_ioa.iter_unpack(data[start:]):
            value, quality = decode(fields[2], fields[q])
            objects.append(
                (
                    fields[0] | fields[1] << 16,
                    value,
                    quality,
                    _time(*fields[-6:]) if timed else None,
                )
            )
    return data[_ASDU], ca, test, objects


CommandFrame = tuple[tuple[int, int, int], int, bool, bool]
"""((CA, type id, IOA), COT, negative, select)"""


def command_frame(data: bytes) -> CommandFrame | None:
    """((CA, type id, IOA), COT, negative, select) of an I-frame with one command, else None.

    Layout: APCI (6 octets), type, VSQ, COT, OA, CA (2), IOA (3), the object;
    its last octet is the SCO/DCO/RCO/QOS qualifier whose bit 8 is S/E.
    """
    if len(data) < 16 or data[2] & 0x01 or data[6] not in COMMAND_TYPE_IDS:
        return None
    ca = data[10] | data[11] << 8
    ioa = data[12] | data[13] << 8 | data[14] << 16
    return (ca, data[6], ioa), data[8] & 0x3F, bool(data[8] & 0x40), bool(data[-1] & 0x80)


_SINGLE_IDS = frozenset({1, 30})
_DOUBLE_IDS = frozenset({3, 31})


def point_value(value: float, type_id: int, cls: int) -> float:
    """A decoded element value -> the contract's value for a point of value class ``cls``.

    Lenient across types: a single-point ASDU for a double point gives ON/OFF,
    a double-point ASDU for a single point gives 1 for ON, else 0.
    """
    if type_id in _SINGLE_IDS:
        if cls == ValueClass.DOUBLE:
            return int(DoubleState.ON if value else DoubleState.OFF)
        return float(value) if cls == ValueClass.FLOAT else int(value)
    if type_id in _DOUBLE_IDS:
        if cls == ValueClass.BINARY:
            return int(value == DoubleState.ON)
        return float(value) if cls == ValueClass.FLOAT else int(value)
    if cls == ValueClass.FLOAT:
        return float(value)
    if cls == ValueClass.BINARY:
        return int(value != 0)
    return int(value)
