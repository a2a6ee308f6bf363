"""``pyadms bench pointdb``: in-process ingest through quality, deadband and subscriptions."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from protocols.base import PointKind, PointUpdate
from scada.config import PointConfig, PointTemplate
from scada.pointdb import ChangeBatch, PointDB


def run(points: int = 90_000, batch: int = 10_000, seconds: float = 3.0) -> dict[str, Any]:
    """Feed random batches for ``seconds``; report sustained rates.

    Half of the points have a deadband that about half of the moves exceed,
    one in fifty updates changes quality, and one subscriber receives every
    reported change (it counts them, as a consumer's queue hand-off would).
    """
    rng = np.random.default_rng(1)
    db = PointDB(capacity=points)
    templates = [
        PointTemplate(name="P", kind=PointKind.ANALOG, address=0, deadband=0.0),
        PointTemplate(name="P", kind=PointKind.ANALOG, address=0, deadband=0.5),
    ]
    db.define(
        PointConfig(f"D{i // 30}.P{i % 30}", f"D{i // 30}", "P", templates[i % 2])
        for i in range(points)
    )
    reported = 0

    def consumer(b: ChangeBatch) -> None:
        nonlocal reported
        reported += len(b)

    db.subscribe(consumer)
    batches = []
    for _ in range(16):
        h = rng.integers(0, points, batch, dtype=np.int64)
        v = rng.normal(0.0, 1.0, batch)
        q = np.where(rng.random(batch) < 0.02, 2, 0).astype(np.uint32)
        batches.append((h, v, q, np.full(batch, np.nan), np.full(batch, time.time())))

    applied = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for h, v, q, st, rt in batches:
            db.apply(h, v, q, st, rt)
            applied += batch
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0

    # The object path (one PointUpdate per value, as adapters deliver them)
    objects = [
        PointUpdate(int(h), float(v)) for h, v in zip(batches[0][0], batches[0][1], strict=True)
    ]
    n_obj = 0
    t1 = time.perf_counter()
    while time.perf_counter() - t1 < seconds / 3:
        db.apply_updates(objects)
        n_obj += len(objects)
    obj_elapsed = time.perf_counter() - t1
    return {
        "points": points,
        "batch": batch,
        "updates": applied,
        "updates_per_s": round(applied / elapsed),
        "reported_per_s": round(reported / elapsed),
        "cpu_s": round(cpu, 3),
        "object_path_updates_per_s": round(n_obj / obj_elapsed),
    }
