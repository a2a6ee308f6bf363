"""IEC 60870-5-104 <-> protocol-neutral mapping: ASDU types, values, quality, time, validation.

Conversions and checks shared by the master and the outstation; nothing
here starts a thread or keeps state.

- Type identifiers: each point kind has a *GI type* (no time tag, what a
  station answers a general interrogation with) and an *event type* (with
  CP56Time2a, what it sends spontaneously), see :func:`monitored_types`.
- Quality: IEC QDS/SIQ/DIQ bits IV, NT, SB, BL, OV map one to one onto
  INVALID, OLD, SUBSTITUTED, BLOCKED, OVERFLOW; the counter bits IV, CY
  (carry), CA (adjusted) of integrated totals onto INVALID, OVERFLOW,
  SUBSTITUTED. The COT test bit is
  TEST. COMM_FAIL is sent as IV+NT; QUESTIONABLE, NOT_INIT and TEST have no
  per-object bit and are not sent by an outstation.
- Time: c104 converts ``datetime`` with pybind11's chrono caster, which
  reads and writes *naive local* wall time and ignores ``tzinfo``. Only
  :func:`to_c104_time` and :func:`from_c104_time` cross that boundary; on the
  wire CP56Time2a is UTC.
"""

import asyncio
import datetime
import functools
import ipaddress
import socket
import sys
from collections.abc import Iterable

import c104

from protocols.base import (
    ControlKind,
    LinkSpec,
    PointKind,
    PointSpec,
    ProtocolError,
    Quality,
)

__all__ = [
    "COMMAND_TYPES",
    "COUNTER_TYPES",
    "ValueClass",
    "command_type",
    "counter_quality_from_bits",
    "from_c104_time",
    "monitored_types",
    "quality_from_bits",
    "quality_to_c104",
    "resolve_ipv4",
    "to_c104_time",
    "validate_points",
    "value_class",
]

IOA_MAX = 0xFFFFFF

#: c104 aborts the process ("Potential Deadlock") when one of its threads waits over 100 ms
#: for a mutex another of its threads holds while it waits for the GIL. With many threads
#: after the GIL, the default 5 ms switch interval makes such waits likely on a loaded
#: machine, so a process that opens c104 links switches the GIL more often.
GIL_SWITCH_INTERVAL_S = 0.001


def shorten_gil_switch_interval() -> None:
    """Lower the interpreter's GIL switch interval to :data:`GIL_SWITCH_INTERVAL_S` (once)."""
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


CA_MIN, CA_MAX = 1, 0xFFFE

T = c104.Type

COUNTER_TYPES = frozenset({T.M_IT_NA_1, T.M_IT_TB_1})
_SINGLE_TYPES = frozenset({T.M_SP_NA_1, T.M_SP_TB_1})
_DOUBLE_TYPES = frozenset({T.M_DP_NA_1, T.M_DP_TB_1})

_CONTROL_TYPES = {
    ControlKind.SINGLE: T.C_SC_NA_1,
    ControlKind.DOUBLE: T.C_DC_NA_1,
    ControlKind.STEP: T.C_RC_NA_1,
    ControlKind.SETPOINT: T.C_SE_NC_1,
}
#: wire type id -> control kind, for the command types this adapter sends
COMMAND_TYPES = {t.value: kind for kind, t in _CONTROL_TYPES.items()}


def command_type(kind: ControlKind) -> c104.Type:
    """The IEC command type a control kind is sent as (no time tag)."""
    return _CONTROL_TYPES[kind]


class ValueClass:
    """How a point's value is presented: the contract's value domain per kind."""

    FLOAT = 0  # analog, setpoint read-back
    BINARY = 1  # single: 0/1
    DOUBLE = 2  # double: DoubleState 0..3
    INT = 3  # counter, step position


def value_class(spec: PointSpec) -> int:
    """The value domain of a monitored point (COMMAND points follow their control kind)."""
    kind = spec.kind
    if kind is PointKind.COMMAND:
        control = spec.control.kind if spec.control else ControlKind.DOUBLE
        return {
            ControlKind.SINGLE: ValueClass.BINARY,
            ControlKind.DOUBLE: ValueClass.DOUBLE,
            ControlKind.STEP: ValueClass.INT,
            ControlKind.SETPOINT: ValueClass.FLOAT,
        }[control]
    return {
        PointKind.ANALOG: ValueClass.FLOAT,
        PointKind.SETPOINT: ValueClass.FLOAT,
        PointKind.SINGLE: ValueClass.BINARY,
        PointKind.DOUBLE: ValueClass.DOUBLE,
        PointKind.COUNTER: ValueClass.INT,
    }[kind]


def monitored_types(spec: PointSpec) -> tuple[c104.Type, c104.Type]:
    """(GI type without time tag, spontaneous event type with CP56Time2a) of a point."""
    if spec.kind is PointKind.COUNTER:
        return T.M_IT_NA_1, T.M_IT_TB_1
    if spec.kind is PointKind.COMMAND and spec.control and spec.control.kind is ControlKind.STEP:
        return T.M_ST_NA_1, T.M_ST_TB_1
    cls = value_class(spec)
    if cls == ValueClass.BINARY:
        return T.M_SP_NA_1, T.M_SP_TB_1
    if cls == ValueClass.DOUBLE:
        return T.M_DP_NA_1, T.M_DP_TB_1
    return T.M_ME_NC_1, T.M_ME_TF_1


def _table(bits: dict[int, Quality]) -> tuple[Quality, ...]:
    table = []
    for byte in range(256):
        quality = Quality.GOOD
        for bit, flag in bits.items():
            if byte & bit:
                quality |= flag
        table.append(quality)
    return tuple(table)


_QDS_BITS = {
    0x01: Quality.OVERFLOW,
    0x10: Quality.BLOCKED,
    0x20: Quality.SUBSTITUTED,
    0x40: Quality.OLD,
    0x80: Quality.INVALID,
}
# Integrated totals on the wire: CY 0x20, CA 0x40, IV 0x80. c104 decodes these raw
# bits into its BinaryCounterQuality, whose members name 0x20 "Adjusted" and 0x40
# "Carry" (swapped); it encodes by member name, correctly. So received values are
# read by wire bit and sent values built from members.
_BCR_WIRE_BITS = {0x20: Quality.OVERFLOW, 0x40: Quality.SUBSTITUTED, 0x80: Quality.INVALID}
_BCR_MEMBERS = {
    Quality.OVERFLOW: c104.BinaryCounterQuality.Carry,
    Quality.SUBSTITUTED: c104.BinaryCounterQuality.Adjusted,
    Quality.INVALID: c104.BinaryCounterQuality.Invalid,
}
_QDS_TABLE = _table(_QDS_BITS)
_BCR_TABLE = _table(_BCR_WIRE_BITS)


def quality_from_bits(bits: int) -> Quality:
    """QDS/SIQ/DIQ quality bits (``c104.Quality.value``) -> :class:`Quality`."""
    return _QDS_TABLE[bits & 0xFF]


def counter_quality_from_bits(bits: int) -> Quality:
    """Received integrated-totals bits (``BinaryCounterQuality.value``) -> :class:`Quality`."""
    return _BCR_TABLE[bits & 0xFF]


@functools.cache
def quality_to_c104(quality: Quality, type_: c104.Type) -> c104.Quality | c104.BinaryCounterQuality:
    """:class:`Quality` -> the c104 quality object for a monitored point of ``type_``.

    Cached: the outstation calls this twice per update, and c104 copies the
    object into each information object it builds.
    """
    if quality & Quality.COMM_FAIL:
        quality |= Quality.INVALID | Quality.OLD
    if type_ in COUNTER_TYPES:
        counter = c104.BinaryCounterQuality(0)  # type: ignore[call-arg]
        for flag, member in _BCR_MEMBERS.items():
            if quality & flag:
                counter |= member  # type: ignore[operator]
        return counter
    bits = 0
    for bit, flag in _QDS_BITS.items():
        if quality & flag:
            bits |= bit
    if type_ in _SINGLE_TYPES or type_ in _DOUBLE_TYPES:
        bits &= ~0x01  # SIQ/DIQ have no OV bit: bit 0 is the value itself
    return c104.Quality(bits)  # type: ignore[call-arg]


def to_c104_time(posix_s: float) -> datetime.datetime:
    """POSIX seconds -> the naive local ``datetime`` c104 expects (it ignores tzinfo)."""
    return datetime.datetime.fromtimestamp(posix_s)  # noqa: DTZ006 - c104 needs naive local


def from_c104_time(value: datetime.datetime | None) -> float | None:
    """A c104 ``recorded_at`` (naive local wall time) -> POSIX seconds."""
    return None if value is None else value.timestamp()


def validate_points(device: str, common_address: int, points: Iterable[PointSpec]) -> None:
    """Reject configurations c104 cannot serve; errors name the device, point and field.

    Checks: common address 1..65534, IOAs 0..16777215, no two monitored
    points and no two controls on one IOA, a control on every COMMAND and
    SETPOINT point. ``ControlSpec.address_lower`` is ignored: IEC sends raise
    and lower (C_RC_NA_1) to the one IOA ``control.address``.
    """
    if not CA_MIN <= common_address <= CA_MAX:
        raise ProtocolError(
            f"{device}: link.address (common address) {common_address} not in {CA_MIN}..{CA_MAX}"
        )
    monitored: dict[int, str] = {}
    controls: dict[int, str] = {}
    for spec in points:
        if spec.monitored:
            _check_ioa(device, spec.name, "address", spec.address)
            other = monitored.setdefault(spec.address, spec.name)
            if other != spec.name:
                raise ProtocolError(
                    f"{device}: points {other!r} and {spec.name!r} share IOA {spec.address}"
                )
        if spec.kind in (PointKind.COMMAND, PointKind.SETPOINT) and spec.control is None:
            raise ProtocolError(f"{device}: point {spec.name!r} ({spec.kind}) has no control")
        if spec.control is None:
            continue
        _check_ioa(device, spec.name, "control.address", spec.control.address)
        other = controls.setdefault(spec.control.address, spec.name)
        if other != spec.name:
            raise ProtocolError(
                f"{device}: points {other!r} and {spec.name!r} share control IOA "
                f"{spec.control.address}"
            )


def _check_ioa(device: str, name: str, field: str, ioa: int) -> None:
    if not 0 <= ioa <= IOA_MAX:
        raise ProtocolError(f"{device}: point {name!r}: {field} {ioa} not in 0..{IOA_MAX}")


async def resolve_ipv4(link: LinkSpec) -> str:
    """An IPv4 address for ``link.host`` (c104 takes IPv4 literals only)."""
    try:
        return str(ipaddress.IPv4Address(link.host))
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            link.host, None, family=socket.AF_INET, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise ProtocolError(
            f"{link.device}: cannot resolve link.host {link.host!r}: {exc}"
        ) from exc
    return str(infos[0][4][0])
