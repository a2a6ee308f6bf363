"""Protocol-neutral contract types: the UpdateSink hand-off from adapter threads."""

import asyncio
import threading

from protocols.base import PointUpdate, UpdateSink
from tests.conftest import wait_for


async def test_update_sink_delivers_at_once_then_batches_within_its_interval() -> None:
    batches: list[list[int]] = []
    sink = UpdateSink(
        asyncio.get_running_loop(), lambda b: batches.append([u.handle for u in b]), 0.5
    )
    sink.push(PointUpdate(1, 1.0))
    await wait_for(lambda: len(batches) == 1, 10, "the first update")
    # within the interval after a delivery: held back and delivered together
    sink.push(PointUpdate(2, 2.0))
    sink.push_many([PointUpdate(3, 3.0), PointUpdate(4, 4.0)])
    await wait_for(lambda: len(batches) == 2, 10, "the held-back updates")
    assert batches == [[1], [2, 3, 4]]


async def test_update_sink_takes_updates_from_other_threads() -> None:
    received: list[int] = []
    sink = UpdateSink(asyncio.get_running_loop(), lambda b: received.extend(u.handle for u in b))

    def produce(first: int) -> None:
        for handle in range(first, first + 500):
            sink.push(PointUpdate(handle, 0.0))

    threads = [threading.Thread(target=produce, args=(n * 500,)) for n in range(4)]
    for t in threads:
        t.start()
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    await wait_for(lambda: len(received) == 2000, 10, "all updates")
    assert sorted(received) == list(range(2000))


async def test_update_sink_flush_delivers_held_back_updates_at_once() -> None:
    batches: list[list[int]] = []
    sink = UpdateSink(
        asyncio.get_running_loop(), lambda b: batches.append([u.handle for u in b]), 60.0
    )
    sink.push(PointUpdate(1, 1.0))
    await wait_for(lambda: len(batches) == 1, 10, "the first update")
    sink.push(PointUpdate(2, 2.0))  # held back for a minute...
    sink.flush()  # ...unless an adapter reports a link change: that comes after it
    assert batches == [[1], [2]]
