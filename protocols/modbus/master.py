"""Modbus TCP master (FEP side): block scans, change reports, link supervision, controls."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from protocols.base import (
    CommandRequest,
    CommandResult,
    CommandStatus,
    LinkListener,
    LinkSpec,
    Master,
    ModbusTable,
    PointSpec,
    PointUpdate,
    Quality,
    UpdateSink,
)
from protocols.modbus import layout
from protocols.modbus.codec import PointDecoder, encode_command, exception_name, point_decoder
from protocols.modbus.errors import ModbusConfigError, ModbusEncodeError

__all__ = ["ModbusMaster"]

_log = logging.getLogger(__name__)

_ILLEGAL_DATA_ADDRESS = 2


class _LinkLost(Exception):
    """No answer in time or no connection; the message is the link_down reason."""


class _Read:
    """One planned read and, per point in it, (handle, offset in the data, decoder)."""

    __slots__ = ("block", "failing", "raw", "slots")

    def __init__(self, block: layout.Block) -> None:
        self.block = block
        self.slots: list[tuple[int, int, PointDecoder]] = [
            (p.handle, p.address - block.start, point_decoder(p)) for p in block.points
        ]
        #: the last read of this block got an exception response (logged once)
        self.failing = False
        #: the bits or registers of the last good read: unchanged data needs no decoding
        self.raw: Sequence[int] | Sequence[bool] | None = None


class ModbusMaster(Master):
    """Scans one Modbus TCP device (unit id ``link.address``) and sends its controls.

    - Monitored points are read in as few requests as possible (see
      :func:`layout.plan_blocks`) every ``scan_period_s``; a point is reported
      only when its value or quality changed, except on a full report: the first
      scan after each connection, the scan :meth:`refresh` triggers at once, and
      every ``integrity_period_s``. ``source_time`` is None (Modbus has no time
      tag). A block the device answers with an exception reports its points
      INVALID with their last value; a bridged block answered with
      ILLEGAL_DATA_ADDRESS is split into its gap-free parts for good.
    - The link is down when a connect fails, a request gets no answer within
      ``timeout_s`` or the device closes the connection; ``link_down`` is called
      once per loss, ``link_up`` once per recovery (after the first successful
      scan, before its full report). Reconnects back off from
      ``reconnect_min_s`` doubling to ``reconnect_max_s`` (each wait up to 50 %
      longer, at random), and the first connect waits a random part of a scan
      period, so many masters spread their requests; pymodbus's own reconnect
      and retries are off so this loop alone decides.
    - :meth:`command` writes the control location, reads it back (check-back)
      and returns ACCEPTED only if the read matches. Modbus has no
      select-before-operate: SBO requests are operated directly.
    """

    def __init__(
        self,
        link: LinkSpec,
        points: Sequence[PointSpec],
        sink: UpdateSink,
        listener: LinkListener,
    ) -> None:
        layout.validate(link, points)
        super().__init__(link, points, sink, listener)
        self._reads = [_Read(block) for block in layout.plan_blocks(points)]
        self._last: dict[int, tuple[float, Quality]] = {}
        self._full_report = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: AsyncModbusTcpClient | None = None
        self._link_up: bool | None = None
        self._backoff_s = link.reconnect_min_s

    @property
    def read_requests_per_scan(self) -> int:
        """How many read requests one scan sends (after any block splits so far)."""
        return len(self._reads)

    async def start(self) -> None:
        """Start connecting and scanning in the background; returns at once."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"modbus master {self.link.device}"
            )

    async def stop(self) -> None:
        """Stop scanning and close the connection (no link_down is reported).

        A later start() reports link_up afresh once it scans.
        """
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._link_up = None

    async def refresh(self) -> None:
        """Scan now and report every point (the Modbus form of a general interrogation)."""
        self._full_report = True
        self._wake.set()

    async def command(self, request: CommandRequest) -> CommandResult:
        """Write the point's control and check it back; see the class docstring.

        REFUSED carries the Modbus exception name (e.g. ILLEGAL_DATA_ADDRESS) or
        the check-back mismatch; TIMED_OUT means a request got no answer within
        ``timeout_s``. Raises ModbusConfigError for a handle without a control.
        """
        point = self.points.get(request.handle)
        if point is None or point.control is None:
            raise ModbusConfigError(
                f"{self.link.device}: handle {request.handle} is not a point with a control"
            )
        client = self._client
        if client is None or not client.connected:
            return CommandResult(CommandStatus.REFUSED, "link down: not connected to the device")
        table = layout.control_table(point)
        try:
            address, data, release = encode_command(point, request.value)
        except ModbusEncodeError as exc:
            return CommandResult(CommandStatus.REFUSED, f"point {point.name!r}: {exc}")
        try:
            failure = await self._write_and_check(client, table, address, data)
            if failure is None and release is not None:
                response = await self._write(client, table, address, release)
                if response.isError():
                    name = exception_name(response.exception_code)
                    failure = CommandResult(CommandStatus.REFUSED, f"pulse release: {name}")
        except _LinkLost as exc:
            return CommandResult(CommandStatus.TIMED_OUT, str(exc))
        return failure or CommandResult(CommandStatus.ACCEPTED)

    async def _write_and_check(
        self,
        client: AsyncModbusTcpClient,
        table: ModbusTable,
        address: int,
        data: list[int] | list[bool],
    ) -> CommandResult | None:
        """Write ``data`` and read it back; return None if it took, else the refusal."""
        response = await self._write(client, table, address, data)
        if response.isError():
            return CommandResult(CommandStatus.REFUSED, exception_name(response.exception_code))
        readback = await self._read(client, table, address, len(data))
        if readback.isError():
            name = exception_name(readback.exception_code)
            return CommandResult(CommandStatus.REFUSED, f"check-back read: {name}")
        raw = readback.bits if table is ModbusTable.COIL else readback.registers
        seen = list(raw[: len(data)])
        if seen != data:
            return CommandResult(
                CommandStatus.REFUSED, f"check-back read {seen} after writing {data}"
            )
        return None

    # -- link supervision ------------------------------------------------------------

    async def _run(self) -> None:
        link = self.link
        # Random phase and jittered backoff: masters started (or cut off) together
        # must not scan and reconnect in lockstep, or the bursts themselves time out.
        await asyncio.sleep(random.uniform(0, link.scan_period_s))
        while True:
            reason = await self._session()
            self._report_down(reason)
            await asyncio.sleep(
                min(self._backoff_s * random.uniform(1.0, 1.5), link.reconnect_max_s)
            )
            self._backoff_s = min(self._backoff_s * 2, link.reconnect_max_s)

    async def _session(self) -> str:
        """Connect and scan until the link fails; return why it failed."""
        link = self.link
        client = AsyncModbusTcpClient(
            link.host,
            port=link.port,
            name=link.device,
            timeout=link.timeout_s,
            retries=0,
            reconnect_delay=0,
            trace_connect=self._on_connection,
        )
        loop = asyncio.get_running_loop()
        try:
            if not await client.connect():
                return f"cannot connect to {link.host}:{link.port}"
            self._client = client
            self._full_report = True
            next_integrity = loop.time() + link.integrity_period_s
            while True:
                started = loop.time()
                if link.integrity_period_s > 0 and started >= next_integrity:
                    self._full_report = True
                    next_integrity = started + link.integrity_period_s
                updates = await self._scan(client)
                self._backoff_s = link.reconnect_min_s
                self._report_up()
                if updates:
                    self.sink.push_many(updates)
                # sleep until the next scan; a refresh or a lost connection wakes us early
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(started + link.scan_period_s):
                        await self._wake.wait()
                self._wake.clear()
                if not client.connected:
                    return "connection closed by the device"
        except _LinkLost as exc:
            return str(exc)
        finally:
            self._client = None
            client.close()

    def _on_connection(self, connected: bool) -> None:
        """Pymodbus trace_connect hook: wake the scan loop as soon as the connection drops."""
        if not connected:
            self._wake.set()

    def _report_up(self) -> None:
        if self._link_up is True:
            return
        self.sink.flush()  # what arrived before goes first
        self._link_up = True
        _log.info("%s: link up", self.link.device)
        try:
            self.listener.link_up(self.link.device)
        except Exception:  # a listener bug must not stop this device's scanning
            _log.exception("%s: link_up listener failed", self.link.device)

    def _report_down(self, reason: str) -> None:
        if self._link_up is False:
            return
        self.sink.flush()  # values read before the loss must not clear its marking
        self._link_up = False
        _log.warning("%s: link down: %s", self.link.device, reason)
        try:
            self.listener.link_down(self.link.device, reason)
        except Exception:  # a listener bug must not stop this device's reconnects
            _log.exception("%s: link_down listener failed", self.link.device)

    # -- scanning --------------------------------------------------------------------

    async def _scan(self, client: AsyncModbusTcpClient) -> list[PointUpdate]:
        """Read every block; return the updates to report (all of them on a full report)."""
        full = self._full_report
        self._full_report = False
        updates: list[PointUpdate] = []
        reads = self._reads
        index = 0
        while index < len(reads):
            read = reads[index]
            block = read.block
            response = await self._read(client, block.table, block.start, block.count)
            if (
                response.isError()
                and response.exception_code == _ILLEGAL_DATA_ADDRESS
                and block.bridged
            ):
                # the device has holes where the plan read through a gap: read the parts
                _log.info(
                    "%s: %s %d..%d has unmapped addresses; splitting the read",
                    self.link.device,
                    block.table,
                    block.start,
                    block.start + block.count - 1,
                )
                parts = layout.plan_blocks(block.points, bridge_gaps=False)
                reads[index : index + 1] = [_Read(part) for part in parts]
                continue
            self._collect(read, response, full, updates)
            index += 1
        return updates

    def _collect(
        self, read: _Read, response: ModbusPDU, full: bool, updates: list[PointUpdate]
    ) -> None:
        """Decode one block's response into ``updates`` (changed points, or all when ``full``)."""
        now = time.time()
        last = self._last
        invalid = Quality.INVALID
        if response.isError():
            if not read.failing:
                read.failing = True
                block = read.block
                _log.warning(
                    "%s: reading %s %d (%d) failed: %s",
                    self.link.device,
                    block.table,
                    block.start,
                    block.count,
                    exception_name(response.exception_code),
                )
            read.raw = None
            results = [(handle, math.nan, invalid) for handle, _, _ in read.slots]
        else:
            read.failing = False
            raw = response.bits if read.block.table in layout.BIT_TABLES else response.registers
            if raw == read.raw and not full:
                return  # every point decodes as before: nothing to report
            read.raw = raw
            results = [(handle, *decode(raw, offset)) for handle, offset, decode in read.slots]
        for handle, value, quality in results:
            previous = last.get(handle)
            if quality is invalid:
                value = previous[0] if previous is not None else 0.0
            if full or previous is None or previous[0] != value or previous[1] is not quality:
                last[handle] = (value, quality)
                updates.append(PointUpdate(handle, value, quality, None, now))

    # -- requests --------------------------------------------------------------------

    async def _request(self, call: Callable[[], Awaitable[ModbusPDU]]) -> ModbusPDU:
        """Run one pymodbus request; no answer or no connection raises _LinkLost."""
        try:
            return await call()
        except ModbusIOException:
            raise _LinkLost(f"no answer within {self.link.timeout_s} s") from None
        except ConnectionException:
            raise _LinkLost("connection lost") from None

    async def _read(
        self, client: AsyncModbusTcpClient, table: ModbusTable, address: int, count: int
    ) -> ModbusPDU:
        if not client.connected:
            raise _LinkLost("connection closed by the device")
        unit = self.link.address
        if table is ModbusTable.COIL:
            return await self._request(
                lambda: client.read_coils(address, count=count, device_id=unit)
            )
        if table is ModbusTable.DISCRETE_INPUT:
            return await self._request(
                lambda: client.read_discrete_inputs(address, count=count, device_id=unit)
            )
        if table is ModbusTable.HOLDING_REGISTER:
            return await self._request(
                lambda: client.read_holding_registers(address, count=count, device_id=unit)
            )
        return await self._request(
            lambda: client.read_input_registers(address, count=count, device_id=unit)
        )

    async def _write(
        self,
        client: AsyncModbusTcpClient,
        table: ModbusTable,
        address: int,
        data: list[int] | list[bool],
    ) -> ModbusPDU:
        """Write with function 5 (coil), 6 (one register) or 16 (several registers)."""
        if not client.connected:
            raise _LinkLost("connection closed by the device")
        unit = self.link.address
        if table is ModbusTable.COIL:
            return await self._request(
                lambda: client.write_coil(address, bool(data[0]), device_id=unit)
            )
        registers = [int(v) for v in data]
        if len(registers) == 1:
            return await self._request(
                lambda: client.write_register(address, registers[0], device_id=unit)
            )
        return await self._request(
            lambda: client.write_registers(address, registers, device_id=unit)
        )
