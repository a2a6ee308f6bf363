"""Modbus adapter: codec, read planning, and a real master against a real outstation."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import cast

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from protocols.base import (
    ByteOrder,
    CommandMode,
    CommandRequest,
    CommandStatus,
    ControlKind,
    ControlSpec,
    DataType,
    DoubleState,
    LinkListener,
    LinkSpec,
    ModbusTable,
    OutstationHandler,
    PointKind,
    PointSpec,
    PointUpdate,
    Quality,
    UpdateSink,
)
from protocols.modbus import MasterImpl, ModbusConfigError, ModbusEncodeError, OutstationImpl
from protocols.modbus.codec import decode_registers, encode_value
from protocols.modbus.layout import plan_blocks
from tests.conftest import LOOP_LAG_S, wait_for

HR = ModbusTable.HOLDING_REGISTER
IR = ModbusTable.INPUT_REGISTER
CO = ModbusTable.COIL
DI = ModbusTable.DISCRETE_INPUT
BIG, LITTLE = ByteOrder.BIG, ByteOrder.LITTLE
SCAN_S = 0.1

# a representative value of each type, exactly representable (float32 included)
SAMPLES = {
    DataType.INT16: -1234.0,
    DataType.UINT16: 54321.0,
    DataType.INT32: -123456789.0,
    DataType.UINT32: 3_000_000_000.0,
    DataType.FLOAT32: -1234.5,
}


class Recorder(LinkListener):
    """Collects point updates (per scan batch) and link events."""

    def __init__(self) -> None:
        self.batches: list[list[PointUpdate]] = []
        self.events: list[tuple[str, float]] = []
        self.reasons: list[str] = []

    def consume(self, batch: list[PointUpdate]) -> None:
        self.batches.append(batch)

    def link_up(self, device: str) -> None:
        self.events.append(("up", time.monotonic()))

    def link_down(self, device: str, reason: str) -> None:
        self.events.append(("down", time.monotonic()))
        self.reasons.append(reason)

    @property
    def latest(self) -> dict[int, PointUpdate]:
        return {u.handle: u for batch in self.batches for u in batch}

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


def accept_all(point: PointSpec, request: CommandRequest) -> bool:
    return True


@asynccontextmanager
async def running(
    points: Sequence[PointSpec],
    handler: OutstationHandler = accept_all,
    master_points: Sequence[PointSpec] | None = None,
    reconnect_max_s: float = 10.0,
) -> AsyncIterator[tuple[OutstationImpl, MasterImpl, Recorder]]:
    """An outstation for ``points`` and a master (scanning every SCAN_S) connected to it."""
    outstation = OutstationImpl(LinkSpec("rtu1", "127.0.0.1", 0, address=17), points, handler)
    await outstation.start()
    recorder = Recorder()
    sink = UpdateSink(asyncio.get_running_loop(), recorder.consume)
    link = LinkSpec(
        "rtu1",
        "127.0.0.1",
        outstation.port,
        address=17,
        scan_period_s=SCAN_S,
        timeout_s=0.5,
        reconnect_min_s=0.05,
        reconnect_max_s=reconnect_max_s,
    )
    master = MasterImpl(link, master_points or points, sink, recorder)
    await master.start()
    try:
        await wait_for(lambda: recorder.kinds() == ["up"] and bool(recorder.batches), 5, "link up")
        yield outstation, master, recorder
    finally:
        await master.stop()
        await outstation.stop()


# -- codec and planning --------------------------------------------------------------


@pytest.mark.parametrize(
    ("byte_order", "word_order", "registers"),
    [
        (BIG, BIG, [0x3F80, 0x0000]),  # ABCD
        (BIG, LITTLE, [0x0000, 0x3F80]),  # CDAB
        (LITTLE, BIG, [0x803F, 0x0000]),  # BADC
        (LITTLE, LITTLE, [0x0000, 0x803F]),  # DCBA
    ],
)
def test_float32_register_layouts(
    byte_order: ByteOrder, word_order: ByteOrder, registers: list[int]
) -> None:
    assert encode_value(1.0, DataType.FLOAT32, byte_order, word_order) == registers
    assert decode_registers(registers, DataType.FLOAT32, byte_order, word_order) == 1.0


@pytest.mark.parametrize("dtype", list(SAMPLES))
@pytest.mark.parametrize("byte_order", [BIG, LITTLE])
@pytest.mark.parametrize("word_order", [BIG, LITTLE])
def test_codec_round_trip(dtype: DataType, byte_order: ByteOrder, word_order: ByteOrder) -> None:
    value = SAMPLES[dtype]
    registers = encode_value(value, dtype, byte_order, word_order)
    assert len(registers) == dtype.registers
    assert all(0 <= r <= 0xFFFF for r in registers)
    assert decode_registers([7, *registers], dtype, byte_order, word_order, offset=1) == value


def test_codec_rejects_values_that_do_not_fit() -> None:
    assert encode_value(0x1234, DataType.UINT16, LITTLE) == [0x3412]
    assert encode_value(2.6, DataType.INT16) == [3]
    for value, dtype in [
        (70000, DataType.INT16),
        (-1, DataType.UINT32),
        (math.nan, DataType.INT32),
    ]:
        with pytest.raises(ModbusEncodeError):
            encode_value(value, dtype)
    with pytest.raises(ModbusEncodeError):
        encode_value(1e39, DataType.FLOAT32)


def test_plan_groups_by_table_bridges_small_gaps_and_respects_limits() -> None:
    points = [
        PointSpec(1, "a", PointKind.ANALOG, 0, table=HR, dtype=DataType.FLOAT32),
        PointSpec(2, "b", PointKind.ANALOG, 10, table=HR),  # gap of 8: bridged
        PointSpec(3, "c", PointKind.ANALOG, 40, table=HR),  # gap of 29: new block
        PointSpec(4, "d", PointKind.ANALOG, 7, table=IR),
        PointSpec(5, "e", PointKind.COMMAND, -1, control=ControlSpec(ControlKind.SINGLE, 3)),
    ]
    # every 12 registers from 100 to 220, then an int32 at 224..225: 126 registers in all
    points += [PointSpec(10 + a, "r", PointKind.ANALOG, a, table=HR) for a in range(100, 221, 12)]
    points.append(PointSpec(300, "s", PointKind.ANALOG, 224, table=HR, dtype=DataType.INT32))
    # every 200 coils from 0 to 1800, then a double point on coils 1999..2000
    points += [PointSpec(400 + a, "t", PointKind.SINGLE, a, table=CO) for a in range(0, 1801, 200)]
    points.append(PointSpec(3000, "u", PointKind.DOUBLE, 1999, table=CO))
    blocks = [(b.table, b.start, b.count) for b in plan_blocks(points)]
    assert blocks == [
        (CO, 0, 1801),
        (CO, 1999, 2),
        (HR, 0, 11),
        (HR, 40, 1),
        (HR, 100, 121),
        (HR, 224, 2),
        (IR, 7, 1),
    ]
    unbridged = plan_blocks(points[:2], bridge_gaps=False)
    assert [(b.start, b.count) for b in unbridged] == [(0, 2), (10, 1)]


def test_config_errors_name_device_and_point() -> None:
    link = LinkSpec("rtu9", "127.0.0.1", 0)
    step = PointSpec(
        1, "tap", PointKind.ANALOG, 0, table=HR, control=ControlSpec(ControlKind.STEP, 5)
    )
    with pytest.raises(ModbusConfigError, match="rtu9.*'tap'.*address_lower"):
        OutstationImpl(link, [step], accept_all)
    overlap = [
        PointSpec(1, "p", PointKind.ANALOG, 0, table=HR, dtype=DataType.FLOAT32),
        PointSpec(2, "q", PointKind.ANALOG, 1, table=HR),
    ]
    with pytest.raises(ModbusConfigError, match="rtu9.*'q' overlaps point 'p'"):
        OutstationImpl(link, overlap, accept_all)
    with pytest.raises(ModbusConfigError, match="rtu9.*'r' is monitored but has no table"):
        OutstationImpl(link, [PointSpec(1, "r", PointKind.ANALOG, 0)], accept_all)
    outstation = OutstationImpl(link, overlap[:1], accept_all)
    with pytest.raises(ModbusConfigError, match="handle 99"):
        outstation.update(99, 1.0)
    with pytest.raises(ModbusEncodeError, match="rtu9.*'p'"):
        outstation.update(1, 1e39)


# -- master against outstation ---------------------------------------------------------


def all_types_points() -> list[PointSpec]:
    points: list[PointSpec] = []
    address = {HR: 0, IR: 0}
    for table in (HR, IR):
        for dtype in SAMPLES:
            for byte_order in (BIG, LITTLE):
                for word_order in (BIG, LITTLE) if dtype.registers == 2 else (BIG,):
                    name = f"{table}-{dtype}-{byte_order}-{word_order}"
                    points.append(
                        PointSpec(
                            len(points) + 1,
                            name,
                            PointKind.ANALOG,
                            address[table],
                            table=table,
                            dtype=dtype,
                            byte_order=byte_order,
                            word_order=word_order,
                        )
                    )
                    address[table] += dtype.registers + 1  # leave gaps to bridge
    base = len(points)
    points += [
        PointSpec(base + 1, "coil", PointKind.SINGLE, 3, table=CO),
        PointSpec(base + 2, "di", PointKind.SINGLE, 7, table=DI),
        PointSpec(base + 3, "cb-bits", PointKind.DOUBLE, 8, table=DI),
        PointSpec(base + 4, "cb-reg", PointKind.DOUBLE, 200, table=HR),
        PointSpec(base + 5, "flag-reg", PointKind.SINGLE, 201, table=HR, dtype=DataType.BOOL),
        PointSpec(base + 6, "energy", PointKind.COUNTER, 202, table=IR, dtype=DataType.UINT32),
    ]
    return points


def expected_values(points: Sequence[PointSpec]) -> dict[int, float]:
    values = {p.handle: SAMPLES.get(p.dtype, 0.0) for p in points if p.kind is PointKind.ANALOG}
    by_name = {p.name: p.handle for p in points}
    values |= {
        by_name["coil"]: 1.0,
        by_name["di"]: 1.0,
        by_name["cb-bits"]: float(DoubleState.ON),
        by_name["cb-reg"]: float(DoubleState.OFF),
        by_name["flag-reg"]: 1.0,
        by_name["energy"]: 4_000_000_123.0,
    }
    return values


async def test_every_type_and_order_round_trips() -> None:
    points = all_types_points()
    async with running(points) as (outstation, master, recorder):
        assert {u.value for u in recorder.latest.values()} == {0.0}  # first scan: full report
        assert len(recorder.latest) == len(points)
        expected = expected_values(points)
        for handle, value in expected.items():
            outstation.update(handle, value)

        def arrived() -> bool:
            return {h: u.value for h, u in recorder.latest.items()} == expected

        await wait_for(arrived, 10, "every value")
        assert all(
            u.quality is Quality.GOOD and u.source_time is None for u in recorder.latest.values()
        )
        # HR 0..43 and 200..201, IR 0..43 and 202..203, one DI and one coil block
        assert master.read_requests_per_scan == 6


async def test_only_changes_are_reported_until_refresh() -> None:
    points = all_types_points()[:6]
    async with running(points) as (outstation, master, recorder):
        assert len(recorder.batches[0]) == 6
        recorder.batches.clear()
        outstation.update(2, 42.0)
        await wait_for(lambda: bool(recorder.batches), 10, "the change")
        assert [(u.handle, u.value) for u in recorder.batches[0]] == [(2, 42.0)]
        outstation.update(2, 42.0)  # same value: nothing to report
        started = len(recorder.batches)
        await asyncio.sleep(4 * SCAN_S)  # several scans must pass to show that nothing comes
        assert len(recorder.batches) == started
        await master.refresh()
        await wait_for(lambda: len(recorder.batches) > started, 10, "the full report")
        assert sorted(u.handle for u in recorder.batches[-1]) == [1, 2, 3, 4, 5, 6]


async def test_invalid_quality_travels_as_not_available_value() -> None:
    points = [
        PointSpec(1, "f", PointKind.ANALOG, 0, table=IR, dtype=DataType.FLOAT32, word_order=LITTLE),
        PointSpec(2, "i", PointKind.ANALOG, 2, table=IR, dtype=DataType.INT16),
    ]
    async with running(points) as (outstation, _master, recorder):
        outstation.update(1, 5.5)
        await wait_for(lambda: recorder.latest[1].value == 5.5, 10, "5.5")
        outstation.update(1, 7.0, Quality.INVALID)
        outstation.update(2, 3.0, Quality.INVALID)
        await wait_for(lambda: recorder.latest[2].quality is Quality.INVALID, 10, "INVALID")
        assert (recorder.latest[1].value, recorder.latest[1].quality) == (5.5, Quality.INVALID)
        assert recorder.latest[2].value == 0.0  # never had a good value


def control_points() -> list[PointSpec]:
    return [
        # a breaker: two status bits, closed/opened through one coil
        PointSpec(
            1, "cb", PointKind.DOUBLE, 0, table=DI, control=ControlSpec(ControlKind.DOUBLE, 0)
        ),
        # a recloser enable: coil written and read back at the same address
        PointSpec(
            2, "enable", PointKind.SINGLE, 1, table=CO, control=ControlSpec(ControlKind.SINGLE, 1)
        ),
        # a switch controlled through a command register (2 = close, 1 = open)
        PointSpec(
            3,
            "sw",
            PointKind.DOUBLE,
            10,
            table=HR,
            control=ControlSpec(ControlKind.DOUBLE, 11, table=HR),
        ),
        # a tap changer: raise on coil 5, lower on coil 6
        PointSpec(
            4,
            "tap",
            PointKind.ANALOG,
            12,
            table=HR,
            dtype=DataType.INT16,
            control=ControlSpec(ControlKind.STEP, 5, address_lower=6),
        ),
        PointSpec(
            5,
            "p-set",
            PointKind.SETPOINT,
            20,
            table=HR,
            dtype=DataType.FLOAT32,
            word_order=LITTLE,
            control=ControlSpec(ControlKind.SETPOINT, 20, dtype=DataType.FLOAT32),
        ),
        PointSpec(
            6,
            "v-set",
            PointKind.SETPOINT,
            -1,
            control=ControlSpec(
                ControlKind.SETPOINT, 30, dtype=DataType.INT16, mode=CommandMode.DIRECT
            ),
        ),
        # the raise output of the tap changer, monitored to see the pulse end
        PointSpec(8, "raise-out", PointKind.SINGLE, 5, table=CO),
        # a single control through a register (1/0)
        PointSpec(
            7, "reset", PointKind.COMMAND, -1, control=ControlSpec(ControlKind.SINGLE, 31, table=HR)
        ),
    ]


async def test_every_control_kind_is_accepted_with_check_back() -> None:
    received: list[tuple[str, float, CommandMode]] = []

    def handler(point: PointSpec, request: CommandRequest) -> bool:
        received.append((point.name, request.value, request.mode))
        return True

    async with running(control_points(), handler) as (_outstation, master, recorder):
        commands = [
            (1, 1.0, "cb", 1.0),
            (1, 0.0, "cb", 0.0),
            (2, 1.0, "enable", 1.0),
            (3, 1.0, "sw", 1.0),
            (3, 0.0, "sw", 0.0),
            (4, 1.0, "tap", 1.0),
            (4, -1.0, "tap", -1.0),
            (5, 12.25, "p-set", 12.25),
            (6, -300.0, "v-set", -300.0),
            (7, 1.0, "reset", 1.0),
        ]
        for handle, value, name, seen in commands:
            result = await master.command(
                CommandRequest(handle, value)
            )  # mode SBO: operated directly
            assert result.status is CommandStatus.ACCEPTED, (name, result)
            assert received[-1] == (name, seen, CommandMode.DIRECT)
        assert len(received) == len(commands)  # the STEP pulse ends without a second command
        # the written values stay: the coil status and the setpoint read back by the scan
        await wait_for(lambda: recorder.latest[5].value == 12.25, 10, "setpoint read back")
        assert recorder.latest[2].value == 1.0
        assert recorder.latest[8].value == 0.0  # the pulse was released after its check-back


async def test_refused_and_impossible_commands() -> None:
    def refusing(point: PointSpec, request: CommandRequest) -> bool:
        if point.name == "reset":
            raise RuntimeError("handler bug")
        return point.name != "enable"

    extra = PointSpec(
        9, "ghost", PointKind.COMMAND, -1, control=ControlSpec(ControlKind.SINGLE, 900)
    )
    master_points = [*control_points(), extra]
    async with running(control_points(), refusing, master_points) as (outstation, master, recorder):
        outstation.update(2, 1.0)
        await wait_for(lambda: recorder.latest[2].value == 1.0, 10, "coil set")
        result = await master.command(CommandRequest(2, 0.0))
        assert (result.status, result.reason) == (CommandStatus.REFUSED, "SLAVE_DEVICE_FAILURE")
        result = await master.command(CommandRequest(7, 1.0))
        assert (result.status, result.reason) == (CommandStatus.REFUSED, "SLAVE_DEVICE_FAILURE")
        result = await master.command(CommandRequest(9, 1.0))
        assert (result.status, result.reason) == (CommandStatus.REFUSED, "ILLEGAL_DATA_ADDRESS")
        result = await master.command(CommandRequest(6, 1e6))  # does not fit int16
        assert result.status is CommandStatus.REFUSED and "out of range" in result.reason
        result = await master.command(CommandRequest(4, 0.0))  # a step goes up or down
        assert result.status is CommandStatus.REFUSED
        with pytest.raises(ModbusConfigError, match="handle 1234"):
            await master.command(CommandRequest(1234, 1.0))
        scans = len(recorder.batches)
        await master.refresh()
        await wait_for(lambda: len(recorder.batches) > scans, 10, "a full scan")
        assert recorder.latest[2].value == 1.0  # the refused write left the coil unchanged


async def test_link_down_on_server_stop_and_full_refresh_on_restart() -> None:
    points = all_types_points()[:4]
    async with running(points, reconnect_max_s=0.2) as (outstation, _master, recorder):
        outstation.update(1, -5.0)
        await wait_for(lambda: recorder.latest[1].value == -5.0, 10, "-5")
        stopped = time.monotonic()
        await outstation.stop()
        await wait_for(lambda: "down" in recorder.kinds(), 10, "link down")
        assert recorder.events[-1][1] - stopped <= 2 * SCAN_S + LOOP_LAG_S
        recorder.batches.clear()
        await asyncio.sleep(3 * SCAN_S)  # reconnects keep failing: still one link_down
        assert recorder.kinds() == ["up", "down"]
        await outstation.start()  # same port
        await wait_for(lambda: recorder.kinds() == ["up", "down", "up"], 10, "link up again")
        await wait_for(lambda: bool(recorder.batches), 10, "full refresh")
        assert len(recorder.batches[0]) == len(points)
        assert recorder.latest[1].value == -5.0


async def test_silent_device_times_out() -> None:
    """A device that accepts the connection but never answers (no FIN, no data)."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    link = LinkSpec("mute", "127.0.0.1", port, scan_period_s=SCAN_S, timeout_s=0.2)
    control_only = [
        PointSpec(1, "c", PointKind.COMMAND, -1, control=ControlSpec(ControlKind.SINGLE, 0))
    ]
    scanned = [PointSpec(2, "m", PointKind.ANALOG, 0, table=IR)]
    writer_recorder, scanner_recorder = Recorder(), Recorder()
    writer = MasterImpl(
        link, control_only, UpdateSink(loop, writer_recorder.consume), writer_recorder
    )
    scanner = MasterImpl(
        link, scanned, UpdateSink(loop, scanner_recorder.consume), scanner_recorder
    )
    try:
        await writer.start()
        await scanner.start()
        # nothing to scan: connected is up; the write then gets no answer
        await wait_for(lambda: writer_recorder.kinds() == ["up"], 10, "connected")
        result = await writer.command(CommandRequest(1, 1.0))
        assert result.status is CommandStatus.TIMED_OUT
        await wait_for(lambda: scanner_recorder.kinds() == ["down"], 10, "link down")
        assert "no answer" in scanner_recorder.reasons[0]
    finally:
        await writer.stop()
        await scanner.stop()
        server.close()


async def test_device_with_holes_and_one_that_does_not_take_writes() -> None:
    """A plain pymodbus device: registers 0..1 and 10..11 only, and writes forced to 0."""

    async def clamp_writes(
        function_code: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> None:
        if values is not None and function_code == 6:
            cast(list[int], values)[0] = 0  # pymodbus stores the request's list, as changed here

    device = SimDevice(
        id=1,
        simdata=[
            SimData(0, values=-1234.5, datatype=SimType.FLOAT32),  # pymodbus encodes ABCD
            SimData(10, values=[7, 0], datatype=SimType.REGISTERS),
        ],
        action=clamp_writes,
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    points = [
        PointSpec(1, "p", PointKind.ANALOG, 0, table=HR, dtype=DataType.FLOAT32),
        PointSpec(
            2, "n", PointKind.ANALOG, 10, table=HR, control=ControlSpec(ControlKind.SETPOINT, 11)
        ),
    ]
    recorder = Recorder()
    link = LinkSpec("plain", "127.0.0.1", port, scan_period_s=SCAN_S)
    master = MasterImpl(
        link, points, UpdateSink(asyncio.get_running_loop(), recorder.consume), recorder
    )
    assert master.read_requests_per_scan == 1
    try:
        await master.start()
        await wait_for(lambda: len(recorder.latest) == 2, 10, "both points")
        assert {h: u.value for h, u in recorder.latest.items()} == {1: -1234.5, 2: 7.0}
        assert master.read_requests_per_scan == 2  # split after ILLEGAL_DATA_ADDRESS
        result = await master.command(CommandRequest(2, 5.0))
        assert result.status is CommandStatus.REFUSED
        assert result.reason == "check-back read [0] after writing [5]"
    finally:
        await master.stop()
        await server.shutdown()


async def test_update_from_another_thread() -> None:
    points = all_types_points()[:2]
    async with running(points) as (outstation, _master, recorder):
        thread = threading.Thread(target=outstation.update, args=(1, 99.0))
        thread.start()
        thread.join()
        await wait_for(lambda: recorder.latest[1].value == 99.0, 10, "99")
