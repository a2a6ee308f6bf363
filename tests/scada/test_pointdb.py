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
