"""Console benchmark: diagram load time and frame cost under 1,000 point changes per second.

``run()`` (offscreen, no server) loads a network's GeoJSON (default: the
bundled mv_oberrhein, read as a file) into the console model the way
``GET /api/network`` would deliver it, with a status point bound to every
switch and a current point to every line, and times the diagram: parse,
layout, scene build, fit and first paint (wall and CPU time of the GUI
thread). It then pushes ``updates_per_s`` point changes per second from a
feeder thread through the client's delivery path (as the push channel
does: 100 messages a second, switch positions and analog values) while
the main window shows its default layout (diagram, alarm list, trends and
the ADMS panel), and times every
frame: draining, applying to the model, the views' updates and the
paint. ``frame_ms_p99`` is the 99th percentile frame.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication

from hmi.app import application
from hmi.client import ConsoleClient
from hmi.model.console import ConnectionState, ConsoleModel, Session
from hmi.qt.main_window import MainWindow

__all__ = ["DEFAULT_NETWORK", "run"]

#: the bundled network file (a data file beside the model package, read, not imported)
DEFAULT_NETWORK = (
    Path(__file__).resolve().parents[1] / "models" / "networks" / "mv_oberrhein.geojson"
)
MESSAGES_PER_S = 100


def _with_bindings(fc: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Bind a status point to every switch and a current point to every line; the point views."""
    bindings: dict[str, list[dict[str, Any]]] = {}
    points: list[dict[str, Any]] = []
    for f in fc["features"]:
        p = f["properties"]
        if p["kind"] == "switch":
            name, kind, table, qualifier, unit = f"B-{p['id']}.SW", "double", "switch", None, ""
        elif p["kind"] == "line":
            name, kind, table, qualifier, unit = f"B-{p['id']}.I", "analog", "line", "from", "A"
        else:
            continue
        bindings[p["id"]] = [{"point": name, "table": table, "qualifier": qualifier}]
        points.append(
            {
                "name": name,
                "device": f"B-{p['id']}",
                "kind": kind,
                "unit": unit,
                "description": "",
                "controllable": kind == "double",
                "value": 2.0 if kind == "double" else 100.0,
                "quality": 0,
                "quality_flags": [],
                "source_time": None,
                "receive_time": time.time(),
            }
        )
    fc = {**fc, "pyadms": {**fc.get("pyadms", {}), "bindings": bindings}}
    return fc, points


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def run(
    network: str | Path = DEFAULT_NETWORK,
    updates_per_s: int = 1000,
    seconds: float = 5.0,
    size: tuple[int, int] = (1600, 1000),
) -> dict[str, Any]:
    """Measure the console offscreen; see the module docstring for what each figure is."""
    app: QApplication = application(offscreen=True)
    fc, points = _with_bindings(json.loads(Path(network).read_text(encoding="utf-8")))
    model = ConsoleModel()
    client = ConsoleClient("http://127.0.0.1:9")  # never connects: the bench feeds it
    window = MainWindow(model, client)
    window.resize(*size)
    window.show()
    app.processEvents()
    model.set_session(Session(client.server_url, "bench", "operator"))

    wall0, cpu0 = time.perf_counter(), time.thread_time()
    model.set_network(fc)
    window.diagram.view.viewport().repaint()
    load_ms = (time.perf_counter() - wall0) * 1e3
    load_cpu_ms = (time.thread_time() - cpu0) * 1e3

    client.deliver(
        {
            "type": "snapshot",
            "epoch": "bench",
            "seq": 0,
            "points": points,
            "alarms": [],
            "topology": None,
        }
    )
    window.apply_frame()
    model.set_connection(ConnectionState.CONNECTED, "bench")
    app.processEvents()

    stop = threading.Event()
    sent = [0]
    per_message = max(1, updates_per_s // MESSAGES_PER_S)
    rng = random.Random(1)
    names = [p["name"] for p in points]

    def feed() -> None:
        seq, period, next_t = 0, 1.0 / MESSAGES_PER_S, time.perf_counter()
        while not stop.is_set():
            seq += 1
            now = time.time()
            changes = []
            for name in rng.sample(names, per_message):
                value = float(rng.choice((1, 2))) if name.endswith(".SW") else rng.uniform(0, 400)
                changes.append(
                    {
                        "name": name,
                        "value": value,
                        "quality": 0,
                        "quality_flags": [],
                        "source_time": now,
                        "receive_time": now,
                    }
                )
            client.deliver(
                {
                    "type": "changes",
                    "epoch": "bench",
                    "seq": seq,
                    "points": changes,
                    "alarms": [],
                    "topology": [],
                }
            )
            sent[0] += len(changes)
            next_t += period
            stop.wait(max(0.0, next_t - time.perf_counter()))

    feeder = threading.Thread(target=feed, name="bench-feeder", daemon=True)
    frames: list[float] = []
    applied_before = len(window.frame_ms)
    t_start = time.perf_counter()
    feeder.start()
    next_frame = t_start
    while time.perf_counter() - t_start < seconds:
        t0 = time.perf_counter()
        window.apply_frame()
        app.processEvents()  # the views' repaints (offscreen backing store) and queued signals
        frames.append((time.perf_counter() - t0) * 1e3)
        next_frame += window.FRAME_MS / 1000
        time.sleep(max(0.0, next_frame - time.perf_counter()))
    stop.set()
    feeder.join(5)
    elapsed = time.perf_counter() - t_start
    applies = list(window.frame_ms)[applied_before:]
    window.close()
    client.close()
    client.deleteLater()
    window.deleteLater()
    app.processEvents()
    return {
        "network": Path(network).stem,
        "elements": len(model.network) if model.network else 0,
        "points": len(points),
        "diagram_load_ms": round(load_ms, 1),
        "diagram_load_cpu_ms": round(load_cpu_ms, 1),
        "updates_per_s": round(sent[0] / elapsed),
        "frames": len(frames),
        "frame_ms_p50": round(statistics.median(frames), 2),
        "frame_ms_p99": round(_percentile(frames, 99), 2),
        "frame_ms_max": round(max(frames), 2),
        "apply_ms_p99": round(_percentile(applies, 99), 2) if applies else None,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
