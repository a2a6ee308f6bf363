"""DNP3 adapter: codec units, and a real yadnp3 master against a real yadnp3 outstation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from protocols.base import (
    CommandMode,
    CommandRequest,
    CommandResult,
    CommandStatus,
    ControlKind,
    ControlSpec,
    DoubleState,
    LinkSpec,
    PointKind,
    PointSpec,
    ProtocolError,
    Quality,
    UpdateSink,
)
from protocols.dnp3 import MasterImpl, OutstationImpl
from protocols.dnp3.codec import InputType, flags_from_quality, quality_from_flags
from tests.conftest import LOOP_LAG_S, wait_for
from tests.protocols.helpers import Recorder, Rtu

SCAN_S = 0.3

BREAKER = PointSpec(
    1, "cb1", PointKind.DOUBLE, 0, ControlSpec(ControlKind.DOUBLE, 0, mode=CommandMode.SBO)
)
SWITCH = PointSpec(
    2, "auto", PointKind.SINGLE, 0, ControlSpec(ControlKind.SINGLE, 1, mode=CommandMode.DIRECT)
)
P_MW = PointSpec(3, "p_mw", PointKind.ANALOG, 0)
Q_MVAR = PointSpec(4, "q_mvar", PointKind.ANALOG, 1)
ENERGY = PointSpec(5, "energy", PointKind.COUNTER, 0)
TAP = PointSpec(6, "tap", PointKind.COMMAND, 2, ControlSpec(ControlKind.STEP, 2, address_lower=3))
VSET = PointSpec(7, "v_set", PointKind.SETPOINT, -1, ControlSpec(ControlKind.SETPOINT, 0))
FPI = PointSpec(8, "fpi", PointKind.SINGLE, 1)
POINTS = (BREAKER, SWITCH, P_MW, Q_MVAR, ENERGY, TAP, VSET, FPI)


@dataclass
class Pair:
    outstation: OutstationImpl
    master: MasterImpl
    recorder: Recorder
    rtu: Rtu


def link(port: int = 0, **overrides: Any) -> LinkSpec:
    spec = LinkSpec(
        "rtu1",
        "127.0.0.1",
        port,
        address=10,
        master_address=3,
        scan_period_s=SCAN_S,
        integrity_period_s=0,
        timeout_s=0.5,
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
    )
    return replace(spec, **overrides)


@asynccontextmanager
async def running_pair(
    points: Sequence[PointSpec] = POINTS,
    master_points: Sequence[PointSpec] | None = None,
    initial: Callable[[OutstationImpl], None] | None = None,
    unsolicited: bool = False,
    **link_overrides: float,
) -> AsyncIterator[Pair]:
    """An outstation and a master connected to it; waits for the first link_up."""
    rtu = Rtu()
    outstation = OutstationImpl(link(), points, rtu, unsolicited=unsolicited)
    await outstation.start()
    if initial is not None:
        initial(outstation)
    recorder = Recorder()
    sink = UpdateSink(asyncio.get_running_loop(), recorder.on_updates)
    master_link = link(outstation.port, **link_overrides)
    master = MasterImpl(master_link, master_points or points, sink, recorder)
    await master.start()
    try:
        await wait_for(lambda: [e for e, _ in recorder.links] == ["up"], 5, "link_up")
        yield Pair(outstation, master, recorder, rtu)
    finally:
        await master.stop()
        await outstation.stop()


def set_all(outstation: OutstationImpl) -> None:
    outstation.update(BREAKER.handle, DoubleState.ON)
    outstation.update(SWITCH.handle, 1)
    outstation.update(P_MW.handle, 1.25)
    outstation.update(Q_MVAR.handle, -0.123456)
    outstation.update(ENERGY.handle, 123456)
    outstation.update(TAP.handle, 5)


# -- codec ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("itype", "flags", "quality"),
    [
        (InputType.ANALOG, 0x01, Quality.GOOD),
        (InputType.ANALOG, 0x00, Quality.INVALID),
        (InputType.ANALOG, 0x02, Quality.INVALID | Quality.NOT_INIT),
        (InputType.ANALOG, 0x05, Quality.INVALID | Quality.COMM_FAIL),
        (InputType.ANALOG, 0x09, Quality.SUBSTITUTED),
        (InputType.ANALOG, 0x11, Quality.SUBSTITUTED),
        (InputType.ANALOG, 0x21, Quality.OVERFLOW),
        (InputType.ANALOG, 0x41, Quality.QUESTIONABLE),
        (InputType.BINARY, 0x21, Quality.QUESTIONABLE),
        (InputType.BINARY, 0x81, Quality.GOOD),  # the state bit is not a quality
        (InputType.DOUBLE, 0xC1, Quality.GOOD),
        (InputType.COUNTER, 0x41, Quality.QUESTIONABLE),
        (InputType.COUNTER, 0x21, Quality.OVERFLOW),
    ],
)
def test_quality_from_flags(itype: InputType, flags: int, quality: Quality) -> None:
    assert quality_from_flags(itype, flags) == quality


@pytest.mark.parametrize("itype", list(InputType))
def test_quality_round_trips_through_flags(itype: InputType) -> None:
    cases = [
        Quality.GOOD,
        Quality.INVALID,
        Quality.INVALID | Quality.NOT_INIT,
        Quality.INVALID | Quality.COMM_FAIL,
        Quality.SUBSTITUTED,
        Quality.QUESTIONABLE,
    ]
    if itype in (InputType.ANALOG, InputType.COUNTER):
        cases.append(Quality.OVERFLOW)
    for quality in cases:
        assert quality_from_flags(itype, flags_from_quality(itype, quality)) == quality


def test_point_table_rejects_shared_crob_index() -> None:
    clash = PointSpec(9, "other", PointKind.SINGLE, 5, ControlSpec(ControlKind.SINGLE, 0))
    with pytest.raises(ProtocolError, match="'other'.*already used by point 'cb1'"):
        OutstationImpl(link(), [BREAKER, clash], Rtu())


def test_step_control_needs_lower_index() -> None:
    step = PointSpec(9, "tap2", PointKind.COMMAND, -1, ControlSpec(ControlKind.STEP, 4))
    with pytest.raises(ProtocolError, match="tap2.*address_lower"):
        OutstationImpl(link(), [step], Rtu())


async def test_master_rejects_bad_link_settings() -> None:
    sink = UpdateSink(asyncio.get_running_loop(), lambda batch: None)
    with pytest.raises(ProtocolError, match="rtu1: scan_period_s"):
        MasterImpl(link(5000, scan_period_s=0), POINTS, sink, Recorder())
    with pytest.raises(ProtocolError, match="rtu1: point 'big'.*address=70000"):
        MasterImpl(link(5000), [PointSpec(1, "big", PointKind.ANALOG, 70000)], sink, Recorder())


# -- master against outstation -------------------------------------------------------------


async def test_integrity_poll_delivers_values_and_quality() -> None:
    async with running_pair(initial=set_all) as pair:
        rec = pair.recorder
        await wait_for(lambda: rec.seen(P_MW.handle, 1.25), 5, "p_mw")
        assert rec.seen(BREAKER.handle, DoubleState.ON)
        assert rec.seen(SWITCH.handle, 1)
        assert rec.seen(ENERGY.handle, 123456)
        assert rec.seen(TAP.handle, 5.0)
        assert rec.value(Q_MVAR.handle) == pytest.approx(-0.123456, rel=1e-6)
        assert isinstance(rec.value(P_MW.handle), float)
        assert isinstance(rec.value(ENERGY.handle), int)
        # never written since the outstation started: DNP3 RESTART flag
        assert rec.latest[FPI.handle].quality == Quality.INVALID | Quality.NOT_INIT
        # analogs never surface as integers (the library's own g30v1 class poll is dropped)
        assert all(u.value == 1.25 for u in rec.history if u.handle == P_MW.handle)
        assert pair.outstation.time_synced_at is not None  # NEED_TIME answered at start-up


async def test_event_carries_source_time_and_floats_stay_floats() -> None:
    async with running_pair(initial=set_all) as pair:
        rec = pair.recorder
        stamp = 1_700_000_000.123
        pair.outstation.update(Q_MVAR.handle, 0.987654, source_time=stamp)
        pair.outstation.update(FPI.handle, 1, source_time=stamp + 1)
        await wait_for(lambda: rec.seen(FPI.handle, 1), 5, "fpi event")
        await wait_for(lambda: rec.value(Q_MVAR.handle) != pytest.approx(-0.123456), 5, "q event")
        q = rec.latest[Q_MVAR.handle]
        assert isinstance(q.value, float)
        assert q.value == pytest.approx(0.987654, rel=1e-6)
        assert q.source_time == pytest.approx(stamp, abs=1e-3)
        assert rec.latest[FPI.handle].source_time == pytest.approx(stamp + 1, abs=1e-3)
        assert q.receive_time == pytest.approx(time.time(), abs=5)


@pytest.mark.parametrize(
    ("point", "value", "quality"),
    [
        (P_MW, 2.5, Quality.INVALID | Quality.COMM_FAIL),
        (P_MW, 2.5, Quality.SUBSTITUTED),
        (P_MW, 1e9, Quality.OVERFLOW),
        (P_MW, 2.5, Quality.QUESTIONABLE),
        (FPI, 1, Quality.QUESTIONABLE),
        (BREAKER, DoubleState.INDETERMINATE, Quality.INVALID),
        (ENERGY, 7, Quality.SUBSTITUTED),
    ],
)
async def test_quality_reaches_the_master(point: PointSpec, value: float, quality: Quality) -> None:
    async with running_pair(initial=set_all) as pair:
        pair.outstation.update(point.handle, value, quality)
        await wait_for(lambda: pair.recorder.seen(point.handle, value, quality), 5, "quality")


async def test_sbo_and_direct_operate_are_accepted() -> None:
    async with running_pair(initial=set_all) as pair:
        close = CommandRequest(BREAKER.handle, 1, CommandMode.SBO)
        assert await pair.master.command(close) == CommandResult(CommandStatus.ACCEPTED)
        trip = CommandRequest(BREAKER.handle, 0, CommandMode.DIRECT)
        assert await pair.master.command(trip) == CommandResult(CommandStatus.ACCEPTED)
        auto_on = CommandRequest(SWITCH.handle, 1, CommandMode.DIRECT)
        assert (await pair.master.command(auto_on)).status is CommandStatus.ACCEPTED
        assert pair.rtu.requests == [
            (BREAKER.handle, CommandRequest(BREAKER.handle, 1.0, CommandMode.SBO)),
            (BREAKER.handle, CommandRequest(BREAKER.handle, 0.0, CommandMode.DIRECT)),
            (SWITCH.handle, CommandRequest(SWITCH.handle, 1.0, CommandMode.DIRECT)),
        ]


async def test_refused_command_reports_the_reason() -> None:
    async with running_pair(initial=set_all) as pair:
        pair.rtu.refuse.add(BREAKER.handle)
        result = await pair.master.command(CommandRequest(BREAKER.handle, 1, CommandMode.SBO))
        assert result == CommandResult(CommandStatus.REFUSED, "NOT_AUTHORIZED")


async def test_unknown_output_index_is_refused_as_not_supported() -> None:
    extra = PointSpec(9, "ghost", PointKind.SINGLE, -1, ControlSpec(ControlKind.SINGLE, 40))
    async with running_pair(master_points=[*POINTS, extra]) as pair:
        result = await pair.master.command(CommandRequest(extra.handle, 1, CommandMode.SBO))
        assert result == CommandResult(CommandStatus.REFUSED, "NOT_SUPPORTED")
        assert pair.rtu.requests == []


async def test_setpoint_and_step_commands() -> None:
    async with running_pair(initial=set_all) as pair:
        master = pair.master
        setpoint = await master.command(CommandRequest(VSET.handle, 1.05, CommandMode.DIRECT))
        assert setpoint.status is CommandStatus.ACCEPTED
        for step in (1, -1):
            result = await master.command(CommandRequest(TAP.handle, step))
            assert result.status is CommandStatus.ACCEPTED
        handles, requests = zip(*pair.rtu.requests, strict=True)
        assert handles == (VSET.handle, TAP.handle, TAP.handle)
        assert requests[0].value == pytest.approx(1.05, rel=1e-6)
        assert [r.value for r in requests[1:]] == [1.0, -1.0]
        with pytest.raises(ProtocolError, match="step value 0"):
            await master.command(CommandRequest(TAP.handle, 0))


async def test_link_loss_and_recovery() -> None:
    async with running_pair(initial=set_all) as pair:
        rec = pair.recorder
        port = pair.outstation.port
        await pair.outstation.stop()
        stopped = time.monotonic()
        await wait_for(lambda: len(rec.links) == 2, 10, "link_down")
        assert rec.links[1][0] == "down"
        assert rec.links[1][1] - stopped < 2 * SCAN_S + LOOP_LAG_S
        # no answer while the RTU is away
        result = await pair.master.command(CommandRequest(SWITCH.handle, 0, CommandMode.DIRECT))
        assert result.status is CommandStatus.TIMED_OUT

        restarted = OutstationImpl(link(port), POINTS, pair.rtu)
        await restarted.start()
        try:
            restarted.update(P_MW.handle, 7.5)
            await wait_for(lambda: len(rec.links) == 3, 5, "link_up after restart")
            assert rec.links[2][0] == "up"
            assert rec.seen(P_MW.handle, 7.5)
            # points the new RTU has not written yet come back as not initialised
            assert rec.latest[SWITCH.handle].quality == Quality.INVALID | Quality.NOT_INIT
        finally:
            await restarted.stop()


class FreezableProxy:
    """TCP relay that can stop forwarding while keeping connections open (a hung RTU)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(4096):
                if not self.frozen:
                    dst.write(data)
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


async def test_silent_rtu_is_detected_by_response_timeout() -> None:
    rtu = Rtu()
    outstation = OutstationImpl(link(), POINTS, rtu)
    await outstation.start()
    set_all(outstation)
    proxy = FreezableProxy(outstation.port)
    await proxy.start()
    rec = Recorder()
    sink = UpdateSink(asyncio.get_running_loop(), rec.on_updates)
    # timeout_s below the scan period: a lost poll is noticed within two scan periods
    master = MasterImpl(link(proxy.port, timeout_s=0.25), POINTS, sink, rec)
    await master.start()
    try:
        await wait_for(lambda: [e for e, _ in rec.links] == ["up"], 5, "link_up")
        proxy.frozen = True
        frozen = time.monotonic()
        await wait_for(lambda: len(rec.links) == 2, 3, "link_down")
        assert rec.links[1][0] == "down"
        assert rec.links[1][1] - frozen < 2 * SCAN_S + LOOP_LAG_S
        proxy.frozen = False
        outstation.update(P_MW.handle, 9.25)
        await wait_for(lambda: len(rec.links) == 3, 5, "link_up after thaw")
        assert rec.seen(P_MW.handle, 9.25)
    finally:
        await master.stop()
        await proxy.stop()
        await outstation.stop()


async def test_unsolicited_events_are_accepted() -> None:
    # event polls far apart: the change can only arrive unsolicited
    async with running_pair(initial=set_all, unsolicited=True, scan_period_s=60) as pair:
        rec = pair.recorder
        await wait_for(lambda: rec.seen(SWITCH.handle, 1), 5, "integrity")
        pair.outstation.update(SWITCH.handle, 0)
        # well before the next event poll (60 s): it came unsolicited
        await wait_for(lambda: rec.seen(SWITCH.handle, 0), 15, "unsolicited event")
        assert rec.latest[SWITCH.handle].source_time is None  # default event variation g2v1


async def test_refresh_and_errors() -> None:
    async with running_pair(initial=set_all) as pair:
        rec = pair.recorder
        monitored = sum(p.monitored for p in POINTS)
        before = len(rec.history)
        await pair.master.refresh()
        await wait_for(lambda: len(rec.history) >= before + monitored, 5, "refresh")
        with pytest.raises(ProtocolError, match="rtu1: no point with handle 99"):
            await pair.master.command(CommandRequest(99, 1))
        with pytest.raises(ProtocolError, match="counter value -1"):
            pair.outstation.update(ENERGY.handle, -1)
        with pytest.raises(ProtocolError, match="'v_set' has no monitored"):
            pair.outstation.update(VSET.handle, 1.0)
