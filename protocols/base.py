"""Protocol-neutral types shared by every adapter and by the FEP.

Contract:
- A *master* (FEP side) is built from a :class:`LinkSpec` and a list of
  :class:`PointSpec`. It reports values as :class:`PointUpdate` (raw protocol
  values: engineering-unit conversion is the FEP's job) through an
  :class:`UpdateSink`, and link state through :class:`LinkListener`. Commands
  return a :class:`CommandResult` with the protocol-level outcome; check-back
  against the status point is done by the FEP.
- An *outstation* (simulated RTU side) is built from the same specs, serves
  values set from Python and hands received commands to an
  :class:`OutstationHandler`.
- Adapters may call sinks from foreign (C++) threads: :class:`UpdateSink` is
  thread-safe and never blocks the caller. It batches updates (at most one
  delivery per ``min_interval_s``); adapters flush it before reporting a link
  state change, so updates and link changes reach the consumer in order.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ByteOrder",
    "CommandMode",
    "CommandRequest",
    "CommandResult",
    "CommandStatus",
    "ControlKind",
    "ControlSpec",
    "DataType",
    "DoubleState",
    "LinkListener",
    "LinkSpec",
    "Master",
    "ModbusTable",
    "Outstation",
    "OutstationHandler",
    "PointKind",
    "PointSpec",
    "PointUpdate",
    "ProtocolError",
    "Quality",
    "UpdateSink",
]


class ProtocolError(Exception):
    """Base of every error an adapter raises (connection, encoding, config)."""


class Quality(enum.IntFlag):
    """Quality flags of a value. ``GOOD`` (no flag) means valid and current.

    ``INVALID`` and ``QUESTIONABLE`` are the validity; the others say why.
    """

    GOOD = 0
    INVALID = 1
    QUESTIONABLE = 2
    OLD = 4
    COMM_FAIL = 8
    SUBSTITUTED = 16
    OVERFLOW = 32
    BLOCKED = 64
    TEST = 128
    #: the point has never received a value since it was created
    NOT_INIT = 256

    def names(self) -> list[str]:
        """Lower-case flag names, e.g. ``["invalid", "comm_fail"]``; ``[]`` for GOOD."""
        return [str(f.name).lower() for f in Quality if f and f in self]


class PointKind(enum.StrEnum):
    """What a point is, independent of the protocol that carries it."""

    ANALOG = "analog"
    SINGLE = "single"
    DOUBLE = "double"
    COUNTER = "counter"
    SETPOINT = "setpoint"
    COMMAND = "command"


class DoubleState(enum.IntEnum):
    """Double-point status values, as IEC 60870-5-101/104 and DNP3 define them."""

    INTERMEDIATE = 0
    OFF = 1
    ON = 2
    INDETERMINATE = 3


class ControlKind(enum.StrEnum):
    """What a control output does on the wire."""

    SINGLE = "single"  # on/off (IEC C_SC, DNP3 CROB latch/pulse, Modbus coil)
    DOUBLE = "double"  # open/close (IEC C_DC, DNP3 CROB trip/close)
    STEP = "step"  # raise/lower (IEC C_RC, DNP3 CROB on two indexes)
    SETPOINT = "setpoint"  # analog output (IEC C_SE, DNP3 g41, Modbus register)


class CommandMode(enum.StrEnum):
    DIRECT = "direct"
    SBO = "sbo"


class ModbusTable(enum.StrEnum):
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING_REGISTER = "holding_register"
    INPUT_REGISTER = "input_register"


class DataType(enum.StrEnum):
    """Register encodings (Modbus); other protocols carry typed values."""

    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"

    @property
    def registers(self) -> int:
        return 2 if self in (DataType.INT32, DataType.UINT32, DataType.FLOAT32) else 1


class ByteOrder(enum.StrEnum):
    BIG = "big"
    LITTLE = "little"


@dataclass(frozen=True, slots=True)
class ControlSpec:
    """How a command for a point is sent.

    ``address`` is the output's protocol address (IEC IOA, DNP3 output index,
    Modbus coil/register). For ``STEP`` controls on DNP3 and Modbus,
    ``address`` raises and ``address_lower`` lowers.
    """

    kind: ControlKind
    address: int
    address_lower: int | None = None
    mode: CommandMode = CommandMode.SBO
    table: ModbusTable | None = None
    dtype: DataType = DataType.UINT16


@dataclass(frozen=True, slots=True)
class PointSpec:
    """One point as an adapter sees it.

    ``handle`` is the FEP's index for the point; updates carry it back.
    ``address`` is the IEC IOA, the DNP3 point index or the Modbus address.
    Modbus-only fields say which table and how registers are decoded.
    A point with ``kind`` SETPOINT or COMMAND has no monitored value of its own
    unless ``address`` is set (>= 0); its ``control`` says how it is driven.
    """

    handle: int
    name: str
    kind: PointKind
    address: int
    control: ControlSpec | None = None
    table: ModbusTable | None = None
    dtype: DataType = DataType.UINT16
    byte_order: ByteOrder = ByteOrder.BIG
    word_order: ByteOrder = ByteOrder.BIG

    @property
    def monitored(self) -> bool:
        return self.address >= 0


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """Where and how a master reaches one device (or an outstation listens)."""

    device: str
    host: str
    port: int
    #: IEC common address / DNP3 outstation link address / Modbus unit id
    address: int = 1
    #: DNP3 master link address
    master_address: int = 1
    scan_period_s: float = 2.0
    #: a full refresh (GI / integrity poll) this often; 0 = only at start and recovery
    integrity_period_s: float = 60.0
    timeout_s: float = 1.0
    #: reconnect backoff: doubles from min to max
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 10.0


@dataclass(slots=True)
class PointUpdate:
    """A raw value received for one point. Times are POSIX seconds."""

    handle: int
    value: float
    quality: Quality = Quality.GOOD
    source_time: float | None = None
    receive_time: float = field(default_factory=time.time)


class CommandStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # the device acknowledged the command
    REFUSED = "refused"  # the device (or our checks) refused it; see reason
    TIMED_OUT = "timed_out"  # no answer, or check-back did not arrive in time
    CONFIRMED = "confirmed"  # accepted and the status point came back as expected


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """A control addressed to a point's :class:`ControlSpec`.

    ``value``: for SINGLE/DOUBLE a bool (True = on/close); for STEP +1 raise
    / -1 lower; for SETPOINT the raw value to write.
    """

    handle: int
    value: float
    mode: CommandMode = CommandMode.SBO


@dataclass(frozen=True, slots=True)
class CommandResult:
    status: CommandStatus
    reason: str = ""


class UpdateSink:
    """Thread-safe hand-off of updates from adapter threads into one asyncio loop.

    Adapters call :meth:`push` or :meth:`push_many` from any thread. The
    consumer is called on the loop with a list of updates, batched: at most one
    wake-up of the loop is pending at a time however many updates arrive, and
    consecutive deliveries are at least ``min_interval_s`` apart. An update
    after a quiet spell is delivered on the next loop iteration; under a steady
    stream the updates of each interval go out together, so the consumer's
    per-batch work (array building, subscribers) is paid once per interval,
    not once per ASDU, at the price of at most ``min_interval_s`` of latency.
    Adapters call :meth:`flush` on the loop before they report a link state
    change, so a consumer never sees updates received before a loss after it.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        consumer: Callable[[list[PointUpdate]], None],
        min_interval_s: float = 0.01,
    ) -> None:
        self._loop = loop
        self._consumer = consumer
        self._min_interval_s = min_interval_s
        self._queue: deque[PointUpdate] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._next_drain = 0.0  # loop time before which no delivery is due

    def push(self, update: PointUpdate) -> None:
        self._queue.append(update)
        self._wake()

    def push_many(self, updates: Sequence[PointUpdate]) -> None:
        self._queue.extend(updates)
        self._wake()

    def _wake(self) -> None:
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._arm)
        except RuntimeError:  # loop closed during shutdown: nothing to deliver to
            pass

    def _arm(self) -> None:
        delay = self._next_drain - self._loop.time()
        if delay > 0:
            self._loop.call_later(delay, self._drain)
        else:
            self._drain()

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Deliver the updates pushed so far now; call on the loop's thread."""
        batch: list[PointUpdate] = []
        pop = self._queue.popleft
        try:
            while True:
                batch.append(pop())
        except IndexError:
            pass
        if batch:
            self._next_drain = self._loop.time() + self._min_interval_s
            self._consumer(batch)


class LinkListener(abc.ABC):
    """Receives link state changes of one master (called on the asyncio loop)."""

    @abc.abstractmethod
    def link_up(self, device: str) -> None: ...

    @abc.abstractmethod
    def link_down(self, device: str, reason: str) -> None: ...


class Master(abc.ABC):
    """FEP-side protocol client for one device.

    ``start`` returns at once; the master connects, reconnects with backoff,
    runs its scans and reports ``link_up`` / ``link_down`` through the
    listener. After each (re)connection it performs a full refresh (GI,
    integrity poll or full scan) before reporting link_up's data as current.
    """

    def __init__(
        self,
        link: LinkSpec,
        points: Sequence[PointSpec],
        sink: UpdateSink,
        listener: LinkListener,
    ) -> None:
        self.link = link
        self.points = {p.handle: p for p in points}
        self.sink = sink
        self.listener = listener

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def refresh(self) -> None:
        """Ask the device for all current values (GI / integrity poll / full scan)."""

    @abc.abstractmethod
    async def command(self, request: CommandRequest) -> CommandResult:
        """Send one control; return ACCEPTED, REFUSED (with reason) or TIMED_OUT."""


OutstationHandler = Callable[[PointSpec, CommandRequest], bool]
"""Called (possibly on a foreign thread) when an outstation receives a control.

Returns True to accept, False to refuse. It must not block; state changes the
command causes are applied later through :meth:`Outstation.update`.
"""


class Outstation(abc.ABC):
    """Simulated-RTU side of a protocol for one device."""

    def __init__(
        self,
        link: LinkSpec,
        points: Sequence[PointSpec],
        handler: OutstationHandler,
    ) -> None:
        self.link = link
        self.points = {p.handle: p for p in points}
        self.handler = handler

    @abc.abstractmethod
    async def start(self) -> None:
        """Listen on ``link.host``:``link.port`` (port 0 = OS-assigned; read :attr:`port`)."""

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @property
    @abc.abstractmethod
    def port(self) -> int:
        """The TCP port actually listened on."""

    @abc.abstractmethod
    def update(
        self,
        handle: int,
        value: float,
        quality: Quality = Quality.GOOD,
        source_time: float | None = None,
    ) -> None:
        """Set a monitored value; report it as an event/spontaneous change if it changed."""
