"""Pure translations between pyadms points and DNP3 objects (no I/O, no threads).

- :class:`PointTable` maps point specs to DNP3 input types and indexes, and
  control indexes back to points; it validates a device's point list.
- Flags <-> :class:`~protocols.base.Quality`, DNP3 measurements <-> raw values.
- Commands: a :class:`~protocols.base.CommandRequest` -> a CROB or g41 object,
  a received CROB/g41 -> the request value, a command task result ->
  :class:`~protocols.base.CommandResult`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import opendnp3

from protocols.base import (
    CommandMode,
    CommandRequest,
    CommandResult,
    CommandStatus,
    ControlKind,
    DoubleState,
    PointKind,
    PointSpec,
    ProtocolError,
    Quality,
)

__all__ = [
    "ControlRole",
    "InputType",
    "PointTable",
    "command_outcome",
    "decode_control",
    "encode_command",
    "flags_from_quality",
    "input_of_variation",
    "make_measurement",
    "quality_from_flags",
    "raw_value",
]

_MAX_INDEX = 0xFFFF
_MAX_COUNTER = 0xFFFF_FFFF
_MAX_FLOAT32 = 3.4028234663852886e38


class InputType(enum.Enum):
    """DNP3 input object type a monitored point is read from."""

    BINARY = "binary"  # g1 static / g2 events
    DOUBLE = "double"  # g3 / g4
    ANALOG = "analog"  # g30 / g32
    COUNTER = "counter"  # g20 / g22


class ControlRole(enum.Enum):
    """What a CROB on one index means for the point that owns it."""

    LATCH = "latch"  # SINGLE: on/off
    TRIP_CLOSE = "trip_close"  # DOUBLE: close/trip
    RAISE = "raise"  # STEP, control.address
    LOWER = "lower"  # STEP, control.address_lower


# -- point table ---------------------------------------------------------------------------


def input_type(point: PointSpec) -> InputType | None:
    """The DNP3 input type a point's monitored value is read from, None if unmonitored.

    SINGLE/DOUBLE/ANALOG/COUNTER map directly. A monitored SETPOINT reads back
    as an analog input; a monitored COMMAND point as a binary (SINGLE control),
    a double-bit binary (DOUBLE control) or an analog (STEP/SETPOINT: e.g. a
    tap position).
    """
    if not point.monitored:
        return None
    direct = {
        PointKind.SINGLE: InputType.BINARY,
        PointKind.DOUBLE: InputType.DOUBLE,
        PointKind.ANALOG: InputType.ANALOG,
        PointKind.COUNTER: InputType.COUNTER,
        PointKind.SETPOINT: InputType.ANALOG,
    }
    if point.kind in direct:
        return direct[point.kind]
    control = point.control.kind if point.control else None
    if control is ControlKind.SINGLE:
        return InputType.BINARY
    if control is ControlKind.DOUBLE:
        return InputType.DOUBLE
    return InputType.ANALOG


def _check_index(device: str, point: PointSpec, field: str, value: int) -> None:
    if not 0 <= value <= _MAX_INDEX:
        raise ProtocolError(
            f"{device}: point {point.name!r} (handle {point.handle}): {field}={value} "
            f"is not a DNP3 index (0..{_MAX_INDEX})"
        )


@dataclass(frozen=True, slots=True)
class PointTable:
    """A device's points indexed the ways DNP3 needs them.

    ``inputs``: (input type, index) -> handles reading that DNP3 point.
    ``by_handle``: handle -> (input type, index) for monitored points.
    ``crobs``: CROB index -> (point, role). ``analog_outputs``: g41 index -> point.
    """

    inputs: dict[tuple[InputType, int], tuple[int, ...]]
    by_handle: dict[int, tuple[InputType, int]]
    crobs: dict[int, tuple[PointSpec, ControlRole]]
    analog_outputs: dict[int, PointSpec]

    @classmethod
    def build(cls, device: str, points: Sequence[PointSpec]) -> PointTable:
        """Index ``points``; raise :class:`ProtocolError` on bad indexes or shared outputs."""
        inputs: dict[tuple[InputType, int], list[int]] = {}
        by_handle: dict[int, tuple[InputType, int]] = {}
        crobs: dict[int, tuple[PointSpec, ControlRole]] = {}
        analog_outputs: dict[int, PointSpec] = {}

        def claim_crob(point: PointSpec, field: str, index: int, role: ControlRole) -> None:
            _check_index(device, point, field, index)
            if index in crobs:
                other = crobs[index][0]
                raise ProtocolError(
                    f"{device}: point {point.name!r} {field}={index}: CROB index already "
                    f"used by point {other.name!r}"
                )
            crobs[index] = (point, role)

        for point in points:
            itype = input_type(point)
            if itype is not None:
                _check_index(device, point, "address", point.address)
                inputs.setdefault((itype, point.address), []).append(point.handle)
                by_handle[point.handle] = (itype, point.address)
            control = point.control
            if control is None:
                continue
            if control.kind is ControlKind.SINGLE:
                claim_crob(point, "control.address", control.address, ControlRole.LATCH)
            elif control.kind is ControlKind.DOUBLE:
                claim_crob(point, "control.address", control.address, ControlRole.TRIP_CLOSE)
            elif control.kind is ControlKind.STEP:
                if control.address_lower is None:
                    raise ProtocolError(
                        f"{device}: point {point.name!r}: STEP control needs "
                        "control.address_lower (the lower CROB index)"
                    )
                claim_crob(point, "control.address", control.address, ControlRole.RAISE)
                claim_crob(point, "control.address_lower", control.address_lower, ControlRole.LOWER)
            else:
                _check_index(device, point, "control.address", control.address)
                if control.address in analog_outputs:
                    other = analog_outputs[control.address]
                    raise ProtocolError(
                        f"{device}: point {point.name!r} control.address={control.address}: "
                        f"analog output index already used by point {other.name!r}"
                    )
                analog_outputs[control.address] = point
        return cls(
            inputs={key: tuple(handles) for key, handles in inputs.items()},
            by_handle=by_handle,
            crobs=crobs,
            analog_outputs=analog_outputs,
        )

    def input_types(self) -> set[InputType]:
        """The input types at least one point is read from."""
        return {itype for itype, _ in self.inputs}

    def size(self, itype: InputType) -> int:
        """Number of DNP3 points of ``itype`` an outstation needs (highest index + 1)."""
        return max((index + 1 for t, index in self.inputs if t is itype), default=0)


# -- variations -----------------------------------------------------------------------------

_GROUP_INPUT = {
    1: InputType.BINARY,
    2: InputType.BINARY,
    3: InputType.DOUBLE,
    4: InputType.DOUBLE,
    20: InputType.COUNTER,
    22: InputType.COUNTER,
    30: InputType.ANALOG,
    32: InputType.ANALOG,
}
#: analog variations that carry integers (g30v1-4, g32v1-4); v5+ are floating point
_INTEGER_ANALOG_VARIATIONS = {1, 2, 3, 4}


def _variation_table() -> dict[Any, tuple[InputType, bool]]:
    table: dict[Any, tuple[InputType, bool]] = {}
    for name, member in opendnp3.GroupVariation.__members__.items():
        if not name.startswith("Group"):
            continue
        group_text, _, variation_text = name[len("Group") :].partition("Var")
        itype = _GROUP_INPUT.get(int(group_text))
        if itype is None:
            continue
        variation = int(variation_text)
        integer = itype is InputType.ANALOG and variation in _INTEGER_ANALOG_VARIATIONS
        table[member] = (itype, integer)
    return table


_VARIATIONS = _variation_table()


def input_of_variation(gv: Any) -> tuple[InputType, bool] | None:
    """(input type, is an integer analog variation) of a received header, None if not an input."""
    return _VARIATIONS.get(gv)


# -- quality --------------------------------------------------------------------------------

_ONLINE = 0x01
_RESTART = 0x02
_COMM_LOST = 0x04
_REMOTE_FORCED = 0x08
_LOCAL_FORCED = 0x10
_BIT5 = 0x20  # binary/double: CHATTER_FILTER, analog: OVERRANGE, counter: ROLLOVER
_BIT6 = 0x40  # analog: REFERENCE_ERR, counter: DISCONTINUITY (binary/double: state)


def quality_from_flags(itype: InputType, flags: int) -> Quality:
    """Map a DNP3 flags octet to :class:`Quality` (state bits are ignored).

    ONLINE clear -> INVALID; RESTART -> INVALID|NOT_INIT; COMM_LOST ->
    COMM_FAIL|INVALID; REMOTE/LOCAL_FORCED -> SUBSTITUTED; OVERRANGE (and a
    counter's ROLLOVER) -> OVERFLOW; CHATTER_FILTER, REFERENCE_ERR and a
    counter's DISCONTINUITY -> QUESTIONABLE.
    """
    quality = Quality.GOOD
    if not flags & _ONLINE:
        quality |= Quality.INVALID
    if flags & _RESTART:
        quality |= Quality.INVALID | Quality.NOT_INIT
    if flags & _COMM_LOST:
        quality |= Quality.COMM_FAIL | Quality.INVALID
    if flags & (_REMOTE_FORCED | _LOCAL_FORCED):
        quality |= Quality.SUBSTITUTED
    if flags & _BIT5:
        if itype in (InputType.BINARY, InputType.DOUBLE):
            quality |= Quality.QUESTIONABLE
        else:
            quality |= Quality.OVERFLOW
    if flags & _BIT6 and itype in (InputType.ANALOG, InputType.COUNTER):
        quality |= Quality.QUESTIONABLE
    return quality


def flags_from_quality(itype: InputType, quality: Quality) -> int:
    """Map :class:`Quality` to DNP3 flags (inverse of :func:`quality_from_flags`).

    OLD, BLOCKED and TEST have no DNP3 flag and are dropped; SUBSTITUTED
    becomes LOCAL_FORCED; a bare INVALID clears ONLINE; QUESTIONABLE becomes
    CHATTER_FILTER (binary/double), REFERENCE_ERR (analog) or DISCONTINUITY
    (counter); OVERFLOW becomes OVERRANGE (analog) or ROLLOVER (counter).
    """
    flags = 0 if quality & (Quality.INVALID | Quality.NOT_INIT | Quality.COMM_FAIL) else _ONLINE
    if quality & Quality.NOT_INIT:
        flags |= _RESTART
    if quality & Quality.COMM_FAIL:
        flags |= _COMM_LOST
    if quality & Quality.SUBSTITUTED:
        flags |= _LOCAL_FORCED
    binary_like = itype in (InputType.BINARY, InputType.DOUBLE)
    if quality & Quality.QUESTIONABLE:
        flags |= _BIT5 if binary_like else _BIT6
    if quality & Quality.OVERFLOW and not binary_like:
        flags |= _BIT5
    return flags


# -- values ---------------------------------------------------------------------------------


def raw_value(itype: InputType, value: Any) -> float:
    """A received measurement's value as pyadms carries it.

    binary -> 0/1, double -> :class:`DoubleState` code 0..3, analog -> float,
    counter -> int.
    """
    if itype is InputType.ANALOG:
        return float(value)
    if itype is InputType.BINARY:
        return 1 if value else 0
    return int(value)


def _dnp_time(source_time: float) -> Any:
    return opendnp3.DNPTime(int(source_time * 1000), opendnp3.TimestampQuality.SYNCHRONIZED)


def make_measurement(
    device: str,
    point: PointSpec,
    itype: InputType,
    value: float,
    quality: Quality,
    source_time: float,
) -> Any:
    """Build the opendnp3 measurement an outstation stores for one update.

    Raises :class:`ProtocolError` when ``value`` does not fit the DNP3 type.
    """
    flags = flags_from_quality(itype, quality)
    stamp = _dnp_time(source_time)
    if itype is InputType.BINARY:
        return opendnp3.Binary(bool(value), opendnp3.Flags(flags), stamp)
    if itype is InputType.ANALOG:
        return opendnp3.Analog(float(value), opendnp3.Flags(flags), stamp)
    if itype is InputType.COUNTER:
        if not (math.isfinite(value) and value == int(value) and 0 <= value <= _MAX_COUNTER):
            raise ProtocolError(
                f"{device}: point {point.name!r}: counter value {value!r} is not an "
                f"integer in 0..{_MAX_COUNTER}"
            )
        return opendnp3.Counter(int(value), opendnp3.Flags(flags), stamp)
    if value not in tuple(DoubleState):
        raise ProtocolError(
            f"{device}: point {point.name!r}: double-point value {value!r} is not a "
            "DoubleState code 0..3"
        )
    measurement = opendnp3.DoubleBitBinary(opendnp3.DoubleBit(int(value)))
    # The double-bit state lives in the two top flag bits: keep them when setting quality.
    measurement.flags = opendnp3.Flags(flags | (int(value) << 6))
    measurement.time = stamp
    return measurement


# -- commands -------------------------------------------------------------------------------


def encode_command(device: str, point: PointSpec, request: CommandRequest) -> tuple[Any, int]:
    """(opendnp3 command object, output index) for ``request`` on ``point``.

    SINGLE -> CROB LATCH_ON/LATCH_OFF; DOUBLE -> CROB PULSE_ON with trip/close
    code CLOSE (True) / TRIP (False); STEP -> CROB PULSE_ON on
    ``control.address`` (value > 0) or ``control.address_lower`` (value < 0);
    SETPOINT -> analog output g41v3 (float32).
    """
    control = point.control
    if control is None:
        raise ProtocolError(
            f"{device}: point {point.name!r} (handle {point.handle}) has no control"
        )
    op = opendnp3.OperationType
    if control.kind is ControlKind.SINGLE:
        latch = op.LATCH_ON if request.value else op.LATCH_OFF
        return opendnp3.ControlRelayOutputBlock(latch), control.address
    if control.kind is ControlKind.DOUBLE:
        code = opendnp3.TripCloseCode.CLOSE if request.value else opendnp3.TripCloseCode.TRIP
        return opendnp3.ControlRelayOutputBlock(op.PULSE_ON, code), control.address
    if control.kind is ControlKind.STEP:
        if request.value > 0:
            return opendnp3.ControlRelayOutputBlock(op.PULSE_ON), control.address
        if request.value < 0 and control.address_lower is not None:
            return opendnp3.ControlRelayOutputBlock(op.PULSE_ON), control.address_lower
        raise ProtocolError(
            f"{device}: point {point.name!r}: step value {request.value!r} must be +1 "
            "(raise) or -1 (lower, needs control.address_lower)"
        )
    value = float(request.value)
    if not math.isfinite(value) or abs(value) > _MAX_FLOAT32:
        raise ProtocolError(
            f"{device}: point {point.name!r}: setpoint {request.value!r} does not fit float32"
        )
    return opendnp3.AnalogOutputFloat32(value), control.address


def _crob_on(crob: Any) -> bool | None:
    """True for close/on, False for trip/off, None for a code pyadms does not use."""
    code = crob.tcc
    if code == opendnp3.TripCloseCode.CLOSE:
        return True
    if code == opendnp3.TripCloseCode.TRIP:
        return False
    op = opendnp3.OperationType
    if crob.opType in (op.LATCH_ON, op.PULSE_ON):
        return True
    if crob.opType in (op.LATCH_OFF, op.PULSE_OFF):
        return False
    return None


def decode_control(
    table: PointTable, command: Any, index: int, mode: CommandMode
) -> tuple[PointSpec, CommandRequest] | None:
    """The point and request a received CROB / analog output stands for, None if unsupported.

    A raise/lower index only accepts an "on" CROB (pulse or latch on, or CLOSE).
    """
    if isinstance(command, opendnp3.ControlRelayOutputBlock):
        entry = table.crobs.get(index)
        on = _crob_on(command)
        if entry is None or on is None:
            return None
        point, role = entry
        if role is ControlRole.RAISE or role is ControlRole.LOWER:
            if not on:
                return None
            value = 1.0 if role is ControlRole.RAISE else -1.0
        else:
            value = 1.0 if on else 0.0
        return point, CommandRequest(point.handle, value, mode)
    setpoint = table.analog_outputs.get(index)
    if setpoint is None:
        return None
    return setpoint, CommandRequest(setpoint.handle, float(command.value), mode)


#: task failures that mean the command got no answer
_NO_ANSWER = frozenset(
    {
        opendnp3.TaskCompletion.FAILURE_RESPONSE_TIMEOUT,
        opendnp3.TaskCompletion.FAILURE_START_TIMEOUT,
        opendnp3.TaskCompletion.FAILURE_NO_COMMS,
    }
)


def command_outcome(result: Any) -> CommandResult:
    """Map an opendnp3 command task result to a :class:`CommandResult`.

    ACCEPTED when the task succeeded and every point reports SUCCESS;
    REFUSED with the DNP3 CommandStatus name (e.g. ``NOT_AUTHORIZED``,
    ``LOCAL``) when the outstation refused; TIMED_OUT with the task completion
    name when no answer came (response/start timeout, link down).
    """
    summary = result.summary
    if summary in _NO_ANSWER:
        return CommandResult(CommandStatus.TIMED_OUT, summary.name)
    if summary != opendnp3.TaskCompletion.SUCCESS:
        return CommandResult(CommandStatus.REFUSED, summary.name)
    for point in result.to_list():
        if point.status != opendnp3.CommandStatus.SUCCESS:
            return CommandResult(CommandStatus.REFUSED, point.status.name)
        if point.state != opendnp3.CommandPointState.SUCCESS:
            return CommandResult(CommandStatus.REFUSED, point.state.name)
    return CommandResult(CommandStatus.ACCEPTED)
