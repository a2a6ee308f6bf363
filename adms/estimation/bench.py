"""Benchmark: our estimator against pandapower's WLS on the same measurements.

``run(network)`` runs a pandapower power flow (the truth), synthesises SCADA
measurements with noise (:func:`adms.estimation.synthesize`), then times
:func:`adms.estimation.estimate` and ``pandapower.estimation.estimate``
(algorithm ``wls``) on the same measurements in this process: warm-up runs
first, then the median (p50) of repeated runs, the two alternating so that
load from other processes falls on both alike (``load_average`` records the
1-minute load when the run ended). Each is compared with the truth (voltage
magnitude error over the energised buses).

pandapower gets exactly what our estimator uses: the real measurements, the
same pseudo-measurements (:func:`adms.estimation.pseudo_measurements`), and
zero injections at the buses without loads, generators or sources (as
virtual measurements, where ours uses equality constraints).

Networks: a bundled name (``mv_oberrhein``, ``baran_wu``, ``cigre_mv``), a
network file, or ``<bundled>_x<N>``: N copies of a bundled network joined at
one source bus (e.g. ``mv_oberrhein_x6``: 1,063 buses, 24 feeders).

``python -m adms.estimation.bench NETWORK [NETWORK...]`` prints JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandapower as pp
import pandapower.estimation as pp_estimation
import pandas as pd
from pandapower.auxiliary import pandapowerNet
from pandapower.toolbox import fuse_buses, merge_nets

from adms.estimation.estimator import estimate, pseudo_measurements
from adms.estimation.grid import compile_grid
from adms.estimation.measurements import ElementKind, Measurement, Quantity
from adms.estimation.results import plain
from adms.estimation.synthetic import synthesize
from models.importers import from_pandapower
from models.loader import load_network
from models.network import NetworkModel

__all__ = ["build_network", "joined_network", "run", "to_pandapower_measurements"]

_JOINED = re.compile(r"^(?P<base>[a-z0-9_]+?)_x(?P<copies>\d+)$")
_GIS_TABLES = ("bus", "line", "trafo", "switch", "load", "sgen", "ext_grid", "shunt")
_TIME_BUDGET_S = 20.0


def joined_network(base: str, copies: int) -> NetworkModel:
    """``copies`` copies of bundled network ``base``, their sources fused into one bus.

    GIS ids get a ``C<k>:`` prefix per copy; the first copy's ``ext_grid``
    supplies them all (a larger network with the same feeders, for scaling).
    """
    source = load_network(base).net
    nets = []
    for k in range(copies):
        part = copy.deepcopy(source)
        for table in ("substation", "fpi", "earthing_switch"):
            if table in part:
                del part[table]
        if "substation" in part.bus.columns:
            part.bus = part.bus.drop(columns=["substation"])
        for table in _GIS_TABLES:
            frame = part[table]
            for column in ("gis_id", "feeder"):
                if len(frame) and column in frame.columns:
                    frame[column] = [
                        f"C{k}:{v}" if isinstance(v, str) else v for v in frame[column]
                    ]
        nets.append(part)
    net = nets[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for part in nets[1:]:
            net = merge_nets(net, part, validate=False, net2_reindex_log_level=None)
    buses = net.ext_grid["bus"].tolist()
    fuse_buses(net, buses[0], buses[1:])
    net.ext_grid = net.ext_grid.iloc[:1]
    return from_pandapower(net, name=f"{base}_x{copies}")


def build_network(network: str) -> NetworkModel:
    """A bundled network, a file, or ``<bundled>_x<N>`` (see module doc)."""
    match = _JOINED.match(network)
    if match:
        return joined_network(match["base"], int(match["copies"]))
    return load_network(network)


def to_pandapower_measurements(
    model: NetworkModel, net: pandapowerNet, measurements: Sequence[Measurement]
) -> None:
    """Add ``measurements`` to ``net.measurement`` (pandapower indices and sides)."""
    mnet = model.net
    for m in measurements:
        if not m.quality_ok:
            continue
        index = model.locate(m.element).index
        element_type, element, side = m.kind.value, index, m.side
        if m.kind is ElementKind.SWITCH:
            bus = int(mnet.switch.at[index, "bus"])
            if m.quantity is Quantity.V:
                element_type, element, side = "bus", bus, None
            elif mnet.switch.at[index, "et"] == "l":
                element = int(mnet.switch.at[index, "element"])
                element_type = "line"
                side = "from" if int(mnet.line.at[element, "from_bus"]) == bus else "to"
            else:
                element = int(mnet.switch.at[index, "element"])
                element_type = "trafo"
                side = "hv" if int(mnet.trafo.at[element, "hv_bus"]) == bus else "lv"
        pp.create_measurement(
            net, m.quantity.value, element_type, m.value, m.std_dev, element, side=side
        )


def _timed(
    calls: Sequence[Callable[[], Any]], repeats: int, warmup: int
) -> list[tuple[list[float], Any]]:
    """Time each call (ms): ``warmup`` untimed runs each, then ``repeats`` rounds.

    The calls alternate within each round, so load from other processes falls
    on all of them alike. Stops early (after 3 rounds at least) past the time
    budget. Returns, per call, its times and its last result.
    """
    results: list[Any] = [None] * len(calls)
    for _ in range(warmup):
        for k, call in enumerate(calls):
            results[k] = call()
    times: list[list[float]] = [[] for _ in calls]
    started = time.perf_counter()
    for round_ in range(repeats):
        for k, call in enumerate(calls):
            t0 = time.perf_counter()
            results[k] = call()
            times[k].append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() - started > _TIME_BUDGET_S and round_ >= 2:
            break
    return list(zip(times, results, strict=True))


def _errors(estimated: pd.Series, truth: pd.Series) -> tuple[float, float]:
    """Max and RMS absolute error over the buses both have a value for."""
    diff = (estimated - truth.reindex(estimated.index)).dropna().abs()
    if not len(diff):
        return float("nan"), float("nan")
    return float(diff.max()), float(np.sqrt(np.mean(np.square(diff.to_numpy()))))


def run(
    network: str, *, repeats: int = 30, seed: int = 0, solver: str = "normal"
) -> dict[str, Any]:
    """Time and score both estimators on ``network`` (see module doc); figures in ms and p.u."""
    model = build_network(network)
    case = synthesize(model, seed=seed)
    pseudo = pseudo_measurements(model, case.measurements)

    grid = compile_grid(model)
    # The buses without any load, generator or source: pandapower's "no_inj_bus"
    # finds the same, but fails (IndexError) when two loads share a bus (cigre_mv).
    zero_buses = [
        b
        for b in model.net.bus.index.tolist()
        if grid.grid_bus(b) >= 0 and grid.zero_injection[grid.grid_bus(b)]
    ]
    net = copy.deepcopy(model.net)
    net.measurement = net.measurement.iloc[0:0]
    to_pandapower_measurements(model, net, [*case.measurements, *pseudo])

    with warnings.catch_warnings():
        # pandapower's estimation floods pandas SettingWithCopyWarning on every run.
        warnings.simplefilter("ignore")
        (times, result), (pp_times, pp_out) = _timed(
            [
                lambda: estimate(model, case.measurements, solver=solver),
                lambda: pp_estimation.estimate(
                    net, algorithm="wls", init="flat", zero_injection=zero_buses
                ),
            ],
            repeats,
            warmup=3,
        )
    vm_max, vm_rms = _errors(result.bus["vm_pu"], case.truth_bus["vm_pu"])
    va_max, _ = _errors(result.bus["va_degree"], case.truth_bus["va_degree"])
    pp_ok = bool(pp_out["success"]) if isinstance(pp_out, dict) else bool(pp_out)
    pp_bus = net.res_bus_est.copy() if pp_ok else pd.DataFrame(columns=["vm_pu", "va_degree"])
    pp_bus.index = pd.Index([model.gis_id_of("bus", int(i)) for i in pp_bus.index], name="gis_id")
    pp_vm_max, pp_vm_rms = _errors(pp_bus["vm_pu"], case.truth_bus["vm_pu"])
    pp_va_max, _ = _errors(pp_bus["va_degree"], case.truth_bus["va_degree"])

    p50 = statistics.median(times)
    pp_p50 = statistics.median(pp_times)
    return {
        "network": network,
        "buses": len(model.net.bus),
        "lines": len(model.net.line),
        "measurements": sum(1 for m in case.measurements if m.quality_ok),
        "pseudo_measurements": len(pseudo),
        "zero_injection_constraints": result.counts.get("zero_injection_constraints", 0),
        "states": result.counts.get("states", 0),
        "solver": solver,
        "estimate_ms_p50": p50,
        "estimate_ms_p90": float(np.percentile(times, 90)),
        "estimate_phase_ms": result.timings_ms,
        "runs": len(times),
        "load_average": os.getloadavg()[0],
        "converged": result.converged,
        "iterations": result.iterations,
        "chi2_passed": result.chi2.passed if result.chi2 else None,
        "vm_error_pu_max": vm_max,
        "vm_error_pu_rms": vm_rms,
        "va_error_degree_max": va_max,
        "pandapower_estimate_ms_p50": pp_p50,
        "pandapower_estimate_ms_p90": float(np.percentile(pp_times, 90)),
        "pandapower_converged": pp_ok,
        "pandapower_iterations": pp_out.get("num_iterations") if isinstance(pp_out, dict) else None,
        "pandapower_vm_error_pu_max": pp_vm_max,
        "pandapower_vm_error_pu_rms": pp_vm_rms,
        "pandapower_va_error_degree_max": pp_va_max,
        "speedup": pp_p50 / p50 if p50 else float("nan"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print the JSON figures of each network."""
    parser = argparse.ArgumentParser(prog="python -m adms.estimation.bench", description=__doc__)
    parser.add_argument("networks", nargs="+", metavar="NETWORK")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solver", default="normal")
    args = parser.parse_args(argv)
    figures = [
        run(name, repeats=args.repeats, seed=args.seed, solver=args.solver)
        for name in args.networks
    ]
    output = plain(figures[0] if len(figures) == 1 else figures)
    json.dump(output, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
