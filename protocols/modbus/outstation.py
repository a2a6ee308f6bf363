"""Simulated Modbus TCP device (RTU side) on pymodbus's server and SimDevice datastore."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from protocols.base import (
    CommandMode,
    CommandRequest,
    LinkSpec,
    ModbusTable,
    Outstation,
    OutstationHandler,
    PointSpec,
    ProtocolError,
    Quality,
)
from protocols.modbus import layout
from protocols.modbus.codec import decode_command, encode_point
from protocols.modbus.errors import ModbusConfigError, ModbusEncodeError

__all__ = ["ModbusOutstation"]

_log = logging.getLogger(__name__)

_TABLES = (
    ModbusTable.COIL,
    ModbusTable.DISCRETE_INPUT,
    ModbusTable.HOLDING_REGISTER,
    ModbusTable.INPUT_REGISTER,
)
#: the table each function code reaches (1..4 read; 5, 15 write coils; 6, 16, 22, 23 registers)
_FUNCTION_TABLE = {
    1: ModbusTable.COIL,
    5: ModbusTable.COIL,
    15: ModbusTable.COIL,
    2: ModbusTable.DISCRETE_INPUT,
    3: ModbusTable.HOLDING_REGISTER,
    6: ModbusTable.HOLDING_REGISTER,
    16: ModbusTable.HOLDING_REGISTER,
    22: ModbusTable.HOLDING_REGISTER,
    23: ModbusTable.HOLDING_REGISTER,
    4: ModbusTable.INPUT_REGISTER,
}
#: update() applies values through the server with the read function code of
#: the table; a client never sends data with these, so the action can tell them apart
_UPDATE_FUNCTION = {
    ModbusTable.COIL: 1,
    ModbusTable.DISCRETE_INPUT: 2,
    ModbusTable.HOLDING_REGISTER: 3,
    ModbusTable.INPUT_REGISTER: 4,
}


@dataclass(frozen=True, slots=True)
class _Output:
    """One control location: the point it controls and, for STEP, its direction (+1/-1)."""

    point: PointSpec
    direction: float
    width: int


@dataclass(slots=True)
class _Image:
    """The current content of one table from ``origin``: bools (bit tables) or registers."""

    origin: int
    data: list[int]  # bools in bit tables

    @property
    def end(self) -> int:
        return self.origin + len(self.data)


class ModbusOutstation(Outstation):
    """A Modbus TCP server for unit id ``link.address`` serving the points' tables.

    - Each table spans its lowest to highest configured address (monitored and
      control locations); addresses in between read as 0 so a master may read
      through gaps; anything outside, or a table with no point, answers
      ILLEGAL_DATA_ADDRESS. pymodbus keeps bits in 16-bit words and tells the
      datastore hook only the word count, so a bit read is checked by its start
      address alone: one starting inside the span may run on to the end of its
      word (reading 0).
    - :meth:`update` encodes a value (see :mod:`protocols.modbus.codec`:
      INVALID becomes the type's "not available" value; bits and unsigned types
      cannot carry it). It may be called from any thread and before
      :meth:`start`; the values are applied on the loop in a batch.
    - A client write must cover exactly one control location (else
      ILLEGAL_DATA_ADDRESS; a value the control cannot take: ILLEGAL_DATA_VALUE).
      The handler gets the controlled point and a DIRECT CommandRequest; if it
      refuses (or raises) the answer is SLAVE_DEVICE_FAILURE and the location
      keeps its value, else the written value stays so a check-back read sees
      it. Writing 0 to a STEP output ends the pulse without calling the handler.
    - A request for another unit id gets SLAVE_DEVICE_FAILURE (pymodbus 3.16
      logs a KeyError traceback for it).
    - Values survive stop()/start(); the port is kept when ``link.port`` is 0.
    """

    def __init__(
        self, link: LinkSpec, points: Sequence[PointSpec], handler: OutstationHandler
    ) -> None:
        layout.validate(link, points)
        super().__init__(link, points, handler)
        self._monitored: dict[int, tuple[ModbusTable, int, int]] = {}
        self._outputs: dict[tuple[ModbusTable, int], _Output] = {}
        self._images = self._build_images(points)
        self._lock = threading.Lock()
        self._dirty: set[int] = set()
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._server: ModbusTcpServer | None = None
        self._port = link.port

    def _build_images(self, points: Sequence[PointSpec]) -> dict[ModbusTable, _Image]:
        """Map every location and size one image per used table.

        Two monitored values may not share an address, nor two outputs; an
        output may sit on a monitored address (a setpoint or coil read back).
        """
        monitored: dict[tuple[ModbusTable, int], str] = {}
        outputs: dict[tuple[ModbusTable, int], str] = {}

        def claim(
            owner: dict[tuple[ModbusTable, int], str],
            table: ModbusTable,
            address: int,
            count: int,
            what: str,
        ) -> None:
            for location in range(address, address + count):
                other = owner.setdefault((table, location), what)
                if other != what:
                    raise ModbusConfigError(
                        f"{self.link.device}: {what} overlaps {other} at {table} {location}"
                    )

        for point in points:
            if point.monitored and point.table is not None:
                count = layout.width(point)
                claim(monitored, point.table, point.address, count, f"point {point.name!r}")
                self._monitored[point.handle] = (point.table, point.address, count)
            if point.control is not None:
                table = layout.control_table(point)
                count = layout.control_width(point)
                for address, direction in layout.control_locations(point):
                    claim(outputs, table, address, count, f"control of {point.name!r}")
                    self._outputs[(table, address)] = _Output(point, direction, count)
        images: dict[ModbusTable, _Image] = {}
        for table in _TABLES:
            used = [address for (t, address) in (*monitored, *outputs) if t is table]
            if used:
                size = max(used) - min(used) + 1
                fill = False if table in layout.BIT_TABLES else 0
                images[table] = _Image(min(used), [fill] * size)
        return images

    @property
    def port(self) -> int:
        """The TCP port listened on (the OS-assigned one after start when link.port is 0)."""
        return self._port

    async def start(self) -> None:
        """Listen on ``link.host``:``link.port``; raises ProtocolError if the port is taken."""
        if self._server is not None:
            return
        self._loop = asyncio.get_running_loop()
        with self._lock:
            self._dirty.clear()
            coils, inputs, holding, input_registers = (self._simdata(t) for t in _TABLES)
        device = SimDevice(
            id=self.link.address,
            simdata=(coils, inputs, holding, input_registers),
            action=self._on_access,
        )
        server = ModbusTcpServer(device, address=(self.link.host, self._port))
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:
            raise ProtocolError(
                f"{self.link.device}: cannot listen on {self.link.host}:{self._port}: {exc}"
            ) from exc
        # pymodbus keeps the asyncio.Server as its transport; it knows the bound port
        self._port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._server = server

    async def stop(self) -> None:
        """Close the listener and every client connection; values are kept for a restart."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    def _simdata(self, table: ModbusTable) -> list[SimData]:
        """Return the pymodbus datastore block of one table, filled from the image."""
        bits = table in layout.BIT_TABLES
        image = self._images.get(table)
        if image is None:
            # SimDevice needs a block per table; _on_access refuses every access to it
            return [SimData(0, values=False if bits else 0, datatype=_datatype(bits))]
        return [SimData(image.origin, values=list(image.data), datatype=_datatype(bits))]

    def update(
        self,
        handle: int,
        value: float,
        quality: Quality = Quality.GOOD,
        source_time: float | None = None,
    ) -> None:
        """Set a monitored value (``source_time`` is dropped: Modbus has no time tag).

        Raises ModbusConfigError for an unknown handle, ModbusEncodeError for a
        value the point's registers cannot hold.
        """
        location = self._monitored.get(handle)
        if location is None:
            raise ModbusConfigError(f"{self.link.device}: no monitored point with handle {handle}")
        table, address, _count = location
        point = self.points[handle]
        try:
            data = encode_point(point, value, quality)
        except ModbusEncodeError as exc:
            raise ModbusEncodeError(f"{self.link.device}: point {point.name!r}: {exc}") from exc
        image = self._images[table]
        offset = address - image.origin
        with self._lock:
            image.data[offset : offset + len(data)] = data
            self._dirty.add(handle)
            if self._flush_scheduled or self._loop is None:
                return
            self._flush_scheduled = True
            loop = self._loop
        try:
            loop.call_soon_threadsafe(self._start_flush)
        except RuntimeError:  # loop closed: the image still holds the value for a restart
            with self._lock:
                self._flush_scheduled = False

    def _start_flush(self) -> None:
        self._flush_task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Copy the points changed since the last flush from the image into the server."""
        with self._lock:
            self._flush_scheduled = False
            writes = []
            for handle in self._dirty:
                table, address, count = self._monitored[handle]
                image = self._images[table]
                offset = address - image.origin
                writes.append(
                    (_UPDATE_FUNCTION[table], address, image.data[offset : offset + count])
                )
            self._dirty.clear()
        server = self._server
        if server is None:
            return
        for function_code, address, data in writes:
            await server.async_setValues(self.link.address, function_code, address, data)

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """SimDevice action, called before pymodbus serves a request; an ExcCodes refuses it.

        For bit tables pymodbus passes ``count`` in 16-bit words, not bits, so
        only the start address of a bit read is checked.
        """
        table = _FUNCTION_TABLE.get(function_code)
        image = self._images.get(table) if table is not None else None
        if table is None or image is None:
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is None:
            last = address if table in layout.BIT_TABLES else address + count - 1
            if address < image.origin or last >= image.end:
                return ExcCodes.ILLEGAL_ADDRESS
            return None
        if function_code == _UPDATE_FUNCTION[table]:
            return None  # our own update() being applied
        return self._on_write(table, image, address, set_values)

    def _on_write(
        self, table: ModbusTable, image: _Image, address: int, data: list[int] | list[bool]
    ) -> ExcCodes | None:
        output = self._outputs.get((table, address))
        if output is None or output.width != len(data):
            return ExcCodes.ILLEGAL_ADDRESS
        point = output.point
        try:
            value = decode_command(point, output.direction, data)
        except ModbusEncodeError:
            return ExcCodes.ILLEGAL_VALUE
        if value is not None:
            request = CommandRequest(point.handle, value, CommandMode.DIRECT)
            try:
                accepted = self.handler(point, request)
            except Exception:  # a handler bug refuses the command instead of killing the server
                _log.exception("%s: handler failed for %s", self.link.device, point.name)
                accepted = False
            if not accepted:
                return ExcCodes.DEVICE_FAILURE
        offset = address - image.origin
        with self._lock:
            image.data[offset : offset + len(data)] = data
        return None


def _datatype(bits: bool) -> DataType:
    return DataType.BITS if bits else DataType.REGISTERS
