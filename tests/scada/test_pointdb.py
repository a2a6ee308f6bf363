"""Point database: quality, deadband, subscriptions, substitution, redefinition."""

import numpy as np
import pytest

from protocols.base import PointKind, PointUpdate, Quality
from scada.config import PointConfig, PointTemplate
from scada.pointdb import ChangeBatch, PointDB, UnknownPointError


def point(name: str, kind: PointKind = PointKind.ANALOG, deadband: float = 0.0) -> PointConfig:
    device, suffix = name.split(".", 1)
    return PointConfig(
        name,
        device,
        suffix,
        PointTemplate(name=suffix, kind=kind, address=1, deadband=deadband, unit="MW"),
    )


@pytest.fixture
def db() -> PointDB:
    db = PointDB(capacity=4)
    db.define([point("D.P", deadband=0.5), point("D.S", PointKind.DOUBLE), point("D.Q")])
    return db


def collect(db: PointDB) -> list[ChangeBatch]:
    batches: list[ChangeBatch] = []
    db.subscribe(batches.append)
    return batches


def test_new_points_are_not_initialised(db: PointDB) -> None:
    v = db.get("D.P")
    assert np.isnan(v.value) and v.quality == Quality.NOT_INIT and v.source_time is None


def test_update_carries_value_quality_and_both_timestamps(db: PointDB) -> None:
    batches = collect(db)
    db.apply_updates([PointUpdate(db.handle("D.P"), 3.5, Quality.GOOD, 100.25, 100.5)])
    v = db.get("D.P")
    assert (v.value, v.quality, v.source_time, v.receive_time, v.unit) == (
        3.5,
        Quality.GOOD,
        100.25,
        100.5,
        "MW",
    )
    assert len(batches) == 1 and batches[0].values.tolist() == [3.5]


def test_deadband_suppresses_small_moves_but_keeps_current_value(db: PointDB) -> None:
    h = db.handle("D.P")
    batches = collect(db)
    db.apply_updates([PointUpdate(h, 10.0)])
    db.apply_updates([PointUpdate(h, 10.3)])
    db.apply_updates([PointUpdate(h, 10.4)])
    assert db.get("D.P").value == 10.4
    db.apply_updates([PointUpdate(h, 10.6)])  # 0.6 from the last reported 10.0
    assert [b.values.tolist() for b in batches] == [[10.0], [10.6]]


def test_quality_change_is_reported_even_without_value_change(db: PointDB) -> None:
    h = db.handle("D.S")
    batches = collect(db)
    db.apply_updates([PointUpdate(h, 2.0)])
    db.apply_updates([PointUpdate(h, 2.0)])
    db.apply_updates([PointUpdate(h, 2.0, Quality.INVALID | Quality.OLD)])
    assert [b.quality.tolist() for b in batches] == [[0], [int(Quality.INVALID | Quality.OLD)]]


def test_one_notification_per_batch(db: PointDB) -> None:
    batches = collect(db)
    db.apply_updates([PointUpdate(db.handle(n), 1.0) for n in ("D.P", "D.S", "D.Q")])
    assert len(batches) == 1 and len(batches[0]) == 3


def test_set_quality_marks_comm_fail_and_keeps_values(db: PointDB) -> None:
    db.apply_updates([PointUpdate(db.handle("D.P"), 5.0)])
    db.set_quality([db.handle("D.P")], add=Quality.COMM_FAIL | Quality.INVALID, remove=Quality.GOOD)
    v = db.get("D.P")
    assert v.value == 5.0 and v.quality == Quality.COMM_FAIL | Quality.INVALID


def test_substitution_and_its_removal(db: PointDB) -> None:
    h = db.handle("D.P")
    db.apply_updates([PointUpdate(h, 5.0)])
    db.substitute("D.P", 7.0)
    assert (db.get("D.P").value, db.get("D.P").quality) == (7.0, Quality.SUBSTITUTED)
    db.apply_updates([PointUpdate(h, 6.0, Quality.OLD)])  # field keeps changing underneath
    assert db.get("D.P").value == 7.0
    db.unsubstitute("D.P")
    assert (db.get("D.P").value, db.get("D.P").quality) == (6.0, Quality.OLD)


def test_redefinition_keeps_state_removal_frees_handle(db: PointDB) -> None:
    db.apply_updates([PointUpdate(db.handle("D.Q"), 4.0)])
    db.define([point("D.Q", deadband=2.0)])
    assert db.get("D.Q").value == 4.0
    h = db.handle("D.S")
    db.remove(["D.S"])
    with pytest.raises(UnknownPointError):
        db.get("D.S")
    assert db.define([point("E.X")]) == [h]
    assert db.get("E.X").quality == Quality.NOT_INIT


def test_growth_beyond_initial_capacity(db: PointDB) -> None:
    handles = db.define([point(f"G.P{i}") for i in range(5000)])
    db.apply(
        np.array(handles),
        np.arange(5000.0),
        np.zeros(5000, np.uint32),
        np.full(5000, np.nan),
        np.full(5000, 1.0),
    )
    assert db.get("G.P4999").value == 4999.0 and db.get("D.P").quality == Quality.NOT_INIT


def test_unsubscribe(db: PointDB) -> None:
    batches: list[ChangeBatch] = []
    sub = db.subscribe(batches.append)
    sub.close()
    db.apply_updates([PointUpdate(db.handle("D.P"), 1.0)])
    assert batches == []


def test_repeated_updates_of_a_point_in_one_batch_are_applied_in_order(db: PointDB) -> None:
    """Coalesced arrivals (a breaker opening and closing again): every change is reported,
    the last value stays, and no change batch holds a point twice."""
    s, q = db.handle("D.S"), db.handle("D.Q")
    db.apply_updates([PointUpdate(s, 2.0, Quality.GOOD, 1.0, 1.0)])
    batches = collect(db)
    db.apply_updates(
        [
            PointUpdate(s, 1.0, Quality.GOOD, 2.0, 3.0),  # open
            PointUpdate(q, 5.0, Quality.GOOD, 2.5, 3.0),
            PointUpdate(s, 2.0, Quality.GOOD, 2.1, 3.0),  # closed again
            PointUpdate(s, 2.0, Quality.GOOD, 2.2, 3.0),  # no change: not reported
        ]
    )
    seen = [
        (h, v, t)
        for b in batches
        for h, v, t in zip(
            b.handles.tolist(), b.values.tolist(), b.source_time.tolist(), strict=True
        )
    ]
    assert seen == [(s, 1.0, 2.0), (q, 5.0, 2.5), (s, 2.0, 2.1)]
    assert all(len(set(b.handles.tolist())) == len(b) for b in batches)
    v = db.get("D.S")
    assert (v.value, v.source_time) == (2.0, 2.2)
