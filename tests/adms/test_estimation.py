import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import scipy.sparse as sp

from adms.estimation import (
    SOLVERS,
    Measurement,
    MeasurementError,
    MeasurementFileError,
    Noise,
    PseudoOptions,
    UnknownSolverError,
    UnobservableError,
    check_observability,
    dump_measurements,
    estimate,
    load_measurements,
    pseudo_measurements,
    synthesize,
)
from adms.estimation.bench import run
from adms.estimation.grid import compile_grid
from adms.estimation.observability import ObservabilityInput, determine
from models.loader import load_network
from models.network import NetworkModel

EXACT = Noise(
    v_pu=1e-6,
    pq_pct=1e-4,
    pq_floor_mw=1e-7,
    i_pct=1e-4,
    i_floor_ka=1e-8,
    load_spread=0.0,
    der_spread=0.0,
)


@pytest.fixture(scope="module")
def baran() -> NetworkModel:
    return load_network("baran_wu")


@pytest.fixture(scope="module")
def oberrhein() -> NetworkModel:
    return load_network("mv_oberrhein")


@pytest.fixture(scope="module")
def oberrhein_case(oberrhein):
    return synthesize(oberrhein, seed=1)


def vm_error(result, truth: pd.DataFrame) -> float:
    diff = (result.bus["vm_pu"] - truth["vm_pu"].reindex(result.bus.index)).dropna().abs()
    return float(diff.max())


def first(measurements, **match) -> int:
    return next(
        k
        for k, m in enumerate(measurements)
        if all(getattr(m, key) == value for key, value in match.items())
    )


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize(("network", "limit"), [("baran_wu", 0.005), ("mv_oberrhein", 0.002)])
def test_accurate_estimate_from_noisy_scada_measurements(network, limit):
    model = load_network(network)
    case = synthesize(model, seed=7)
    result = estimate(model, case.measurements)
    assert result.converged, result.message
    assert result.chi2 is not None and result.chi2.passed
    assert not result.bad_data and not result.unobservable
    assert vm_error(result, case.truth_bus) < limit
    assert (result.bus["status"] == "estimated").all()
    loading = (result.line["loading_percent"] - case.truth_line["loading_percent"]).abs()
    assert loading.max() < 5.0  # percent points, with 15 % load spread behind pseudo values


def test_exact_measurements_reproduce_the_power_flow(oberrhein):
    case = synthesize(oberrhein, placement="dense", noise=EXACT, seed=2)
    result = estimate(oberrhein, case.measurements)
    assert vm_error(result, case.truth_bus) < 1e-5
    va = (result.bus["va_degree"] - case.truth_bus["va_degree"]).abs().max()
    assert va < 1e-3
    p_line = (result.line["p_from_mw"] - case.truth_line["p_from_mw"]).abs().max()
    assert p_line < 1e-3
    trafo = (result.trafo["loading_percent"] - case.truth_trafo["loading_percent"]).abs().max()
    assert trafo < 1e-2


def test_solvers_agree(oberrhein, oberrhein_case):
    results = [estimate(oberrhein, oberrhein_case.measurements, solver=s) for s in SOLVERS]
    for other in results[1:]:
        np.testing.assert_allclose(other.bus["vm_pu"], results[0].bus["vm_pu"], atol=1e-8)
    with pytest.raises(UnknownSolverError, match="cholesky"):
        estimate(oberrhein, oberrhein_case.measurements, solver="cholesky")


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_solver_step_matches_dense_least_squares(name):
    rng = np.random.default_rng(3)
    jac = sp.csr_matrix(rng.normal(size=(12, 4)))
    r = rng.normal(size=12)
    w = rng.uniform(1.0, 1e4, size=12)
    empty = sp.csr_matrix((0, 4))
    step = SOLVERS[name](jac, r, w, empty, np.zeros(0))
    dense = jac.toarray()
    expected = np.linalg.solve(dense.T @ (w[:, None] * dense), dense.T @ (w * r))
    np.testing.assert_allclose(step, expected, rtol=1e-8)
    # With an equality constraint the step satisfies it exactly.
    c = sp.csr_matrix(np.array([[1.0, -1.0, 0.0, 0.0]]))
    step = SOLVERS[name](jac, r, w, c, np.array([0.5]))
    assert step[0] - step[1] == pytest.approx(0.5)


def test_current_magnitude_near_zero_flow_does_not_disturb(baran):
    case = synthesize(baran, seed=4)
    # L32 is open at TIE1 (bus 20) and energised from bus 7: next to no current.
    near_zero = Measurement("line", "L32", "i", 0.0, 0.0005, side="to")
    result = estimate(baran, [*case.measurements, near_zero])
    assert result.converged and result.chi2 is not None and result.chi2.passed
    assert vm_error(result, case.truth_bus) < 0.005


# --------------------------------------------------------------------------- bad data


@pytest.mark.parametrize(
    ("match", "corrupt"),
    [
        ({"kind": "switch", "quantity": "v"}, lambda v: v + 0.05),
        ({"id": "SW99.P"}, lambda v: -v),
        ({"id": "SW99.I"}, lambda v: 2.0 * v),
    ],
)
def test_gross_error_identified_removed_and_reestimated(oberrhein, oberrhein_case, match, corrupt):
    measurements = list(oberrhein_case.measurements)
    k = first(measurements, **match)
    wrong = dataclasses.replace(measurements[k], value=corrupt(measurements[k].value))
    measurements[k] = wrong

    unchecked = estimate(oberrhein, measurements, bad_data=False)
    assert unchecked.chi2 is not None and unchecked.chi2.passed is False

    result = estimate(oberrhein, measurements)
    assert [b.measurement for b in result.bad_data] == [wrong]
    assert result.bad_data[0].normalised_residual > 3.0
    assert result.chi2 is not None and result.chi2.passed
    assert wrong.label not in set(result.measurements["label"])
    assert vm_error(result, oberrhein_case.truth_bus) < 0.002


def test_bad_quality_measurements_are_excluded_up_front(oberrhein, oberrhein_case):
    measurements = list(oberrhein_case.measurements)
    k = first(measurements, id="SW99.P")
    garbage = dataclasses.replace(measurements[k], value=99.0, quality_ok=False)
    measurements[k] = garbage
    result = estimate(oberrhein, measurements)
    assert [e.measurement for e in result.excluded] == [garbage]
    assert "quality" in result.excluded[0].reason
    assert not result.bad_data
    assert vm_error(result, oberrhein_case.truth_bus) < 0.002


def test_pseudo_measurements_are_never_named_bad(baran):
    case = synthesize(baran, seed=5)
    pseudo = pseudo_measurements(baran, case.measurements)
    assert pseudo and all(m.pseudo and m.kind == "bus" for m in pseudo)
    result = estimate(baran, case.measurements, pseudo_loads=False)
    assert result.unobservable  # loads unmetered without them
    wrong = [dataclasses.replace(pseudo[0], value=pseudo[0].value * 20.0), *pseudo[1:]]
    result = estimate(baran, [*case.measurements, *wrong], pseudo_loads=False)
    assert all(not b.measurement.pseudo for b in result.bad_data)


def test_pseudo_measurements_follow_profiles_and_customer_counts(oberrhein):
    nominal = {m.label: m for m in pseudo_measurements(oberrhein)}
    bus = oberrhein.net.load["bus"].iloc[0]
    label = f"pseudo {oberrhein.gis_id_of('bus', int(bus))} p"
    loads = oberrhein.net.load[oberrhein.net.load["bus"] == bus]
    sgens = oberrhein.net.sgen[oberrhein.net.sgen["bus"] == bus]
    expected = (loads["p_mw"] * loads["scaling"]).sum() - (sgens["p_mw"] * sgens["scaling"]).sum()
    assert nominal[label].value == pytest.approx(expected)
    assert nominal[label].std_dev >= 0.3 * abs(expected)

    halved = {
        m.label: m
        for m in pseudo_measurements(oberrhein, options=PseudoOptions(load_profile={"*": 0.5}))
    }
    assert halved[label].value == pytest.approx(0.5 * expected)
    by_type = PseudoOptions(load_profile={"MV/LV Station": 2.0})
    assert {m.label: m for m in pseudo_measurements(oberrhein, options=by_type)}[
        label
    ].value == pytest.approx(2.0 * expected)

    counted = PseudoOptions(kw_per_customer=1.0)
    by_customers = {m.label: m for m in pseudo_measurements(oberrhein, options=counted)}
    assert by_customers[label].value == pytest.approx(loads["customers"].sum() / 1000.0)

    # A real injection measurement replaces the pseudo one.
    real = Measurement("bus", oberrhein.gis_id_of("bus", int(bus)), "p", 0.1, 0.01)
    assert label not in {m.label for m in pseudo_measurements(oberrhein, [real])}


# --------------------------------------------------------------------------- topology


def metered_loads(model: NetworkModel, truth_net, skip: set[str]) -> list[Measurement]:
    """Exact P/Q meters at every load bus except ``skip``."""
    out = []
    for bus in sorted(set(model.net.load["bus"])):
        gis_id = model.gis_id_of("bus", int(bus))
        if gis_id in skip:
            continue
        res = truth_net.res_bus.loc[bus]
        out.append(Measurement("bus", gis_id, "p", float(res["p_mw"]), 0.002))
        out.append(Measurement("bus", gis_id, "q", float(res["q_mvar"]), 0.002))
    return out


def test_unobservable_area_is_reported_and_the_rest_estimated(baran):
    case = synthesize(baran, placement="heads", seed=3)
    meters = metered_loads(baran, case.truth_net, skip={"B30", "B31", "B32"})
    result = estimate(baran, [*case.measurements, *meters], pseudo_loads=False)

    assert result.converged
    [area] = result.unobservable
    assert set(area.buses) == {"B31", "B32"}
    assert any("SW12" in b for b in area.behind)
    assert set(area.missing_p) == {"B31", "B32"}
    assert "behind switch SW12" in area.reason and "no P/Q measurement" in area.reason
    status = result.bus["status"]
    assert set(status[status == "unobservable"].index) == {"B31", "B32"}
    assert result.bus.loc[["B31", "B32"], "vm_pu"].isna().all()
    assert math.isnan(result.line.at["L31", "p_from_mw"])
    assert result.line.at["L30", "status"] == "unobservable"
    assert vm_error(result, case.truth_bus) < 0.005  # B30 is still estimated

    [checked] = check_observability(baran, [*case.measurements, *meters], pseudo_loads=False)
    assert checked == area
    assert check_observability(baran, [*case.measurements, *meters]) == []

    with pytest.raises(UnobservableError, match="SW12") as info:
        estimate(baran, [*case.measurements, *meters], pseudo_loads=False, on_unobservable="raise")
    assert set(info.value.areas[0].buses) == {"B31", "B32"}


def test_missing_voltage_reference_is_explained(baran):
    case = synthesize(baran, seed=6)
    no_voltage = [m for m in case.measurements if m.quantity != "v"]
    result = estimate(baran, no_voltage)
    [area] = result.unobservable
    assert area.no_voltage_reference
    assert "no voltage magnitude measurement" in area.reason
    assert result.bus["vm_pu"].isna().all()


@pytest.mark.parametrize("meshed", [False, True])
def test_observability_agrees_with_the_rank_of_the_dc_model(baran, meshed):
    """Random measurement sets: the topological analysis against a dense null space."""
    model = baran.copy()
    if meshed:
        model.net.switch["closed"] = True
    grid = compile_grid(model)
    n = grid.n_bus
    rng = np.random.default_rng(11)
    others = np.delete(np.arange(n), grid.ref_bus)
    for _ in range(40):
        injection = rng.random(n) < rng.uniform(0.3, 0.95)
        flow = rng.random(grid.n_branch) < rng.uniform(0.0, 0.3)
        reference = np.isin(np.arange(n), grid.ref_bus)
        info = ObservabilityInput(injection, injection, flow, flow, reference)
        p_ok, q_ok = determine(grid, info, np.ones(n, dtype=bool))
        np.testing.assert_array_equal(p_ok, q_ok)

        weight = rng.uniform(0.5, 1.5, grid.n_branch)
        incidence = np.zeros((grid.n_branch, n))
        incidence[np.arange(grid.n_branch), grid.f_bus] = weight
        incidence[np.arange(grid.n_branch), grid.t_bus] = -weight
        laplacian = incidence.T @ (incidence / weight[:, None])
        rows = np.vstack([incidence[flow], laplacian[injection]])[:, others]
        null = scipy.linalg.null_space(rows) if len(rows) else np.eye(len(others))
        expected = reference.copy()
        expected[others] = np.linalg.norm(null, axis=1) < 1e-8
        np.testing.assert_array_equal(p_ok, expected)


def test_network_without_source_is_all_deenergised(baran):
    model = baran.copy()
    model.net.ext_grid["in_service"] = False
    result = estimate(model, [Measurement("bus", "B0", "v", 1.0, 0.003)])
    assert not result.converged
    assert len(result.deenergised_buses) == len(model.net.bus)
    assert "de-energised" in result.excluded[0].reason
    json.loads(result.to_json())


def test_deenergised_buses_and_their_measurements_are_reported(baran):
    model = baran.copy()
    sw = model.net.switch
    sw.loc[sw["gis_id"] == "SW12", "closed"] = False
    case = synthesize(model, seed=8)
    live_reading = Measurement("bus", "B31", "v", 0.97, 0.003, id="B31.V")
    result = estimate(model, [*case.measurements, live_reading])

    assert result.deenergised_buses == ["B31", "B32"]
    assert (result.bus.loc[["B31", "B32"], "status"] == "deenergised").all()
    assert result.line.at["L31", "p_from_mw"] == 0.0
    [excluded] = result.excluded
    assert excluded.measurement is live_reading
    assert "de-energised" in excluded.reason and "topology" in excluded.reason
    assert vm_error(result, case.truth_bus) < 0.005


def test_model_is_left_untouched(oberrhein, oberrhein_case):
    net = oberrhein.net
    before = {key: id(net[key]) for key in net if key.startswith("_")}
    closed = net.switch["closed"].copy()
    estimate(oberrhein, oberrhein_case.measurements)
    assert {key: id(net[key]) for key in net if key.startswith("_")} == before
    pd.testing.assert_series_equal(net.switch["closed"], closed)


# --------------------------------------------------------------------------- measurements


def test_measurement_validation_names_element_and_field(oberrhein):
    with pytest.raises(MeasurementError, match="element L1 field 'side'"):
        Measurement("line", "L1", "p", 1.0, 0.1)
    with pytest.raises(MeasurementError, match="field 'std_dev'"):
        Measurement("bus", "B1", "v", 1.0, 0.0)
    with pytest.raises(MeasurementError, match="field 'quantity'"):
        Measurement("bus", "B1", "i", 1.0, 0.1)
    assert Measurement("transformer", "TR114", "p", 1.0, 0.1, side="to").side == "lv"
    with pytest.raises(MeasurementError, match="element L9999"):
        estimate(oberrhein, [Measurement("line", "L9999", "p", 1.0, 0.1, side="from")])
    with pytest.raises(MeasurementError, match="is a line, not a bus"):
        estimate(oberrhein, [Measurement("bus", "L1", "v", 1.0, 0.1)])


def test_measurement_files_round_trip(tmp_path: Path, oberrhein, oberrhein_case):
    for suffix in (".csv", ".json"):
        path = tmp_path / f"snapshot{suffix}"
        dump_measurements(oberrhein_case.measurements, path)
        assert load_measurements(path, oberrhein) == oberrhein_case.measurements


def test_malformed_csv_lists_every_problem(tmp_path: Path, oberrhein):
    path = tmp_path / "bad.csv"
    path.write_text(
        "# exported by SCADA\n"
        "kind,element,quantity,side,value,std_dev,quality_ok\n"
        "bus,B39,v,,1.01,0.003,true\n"
        "bus,B39,v,,1.01,-0.003,true\n"
        "line,L9999,p,from,1.0,0.01,true\n"
        "line,L165,p,hv,1.0,0.01,true\n"
        "bus,B39,v,,abc,0.003,true\n"
        "bus,B39,v,,1.0,0.003,maybe\n"
        "bus,B39,v,,1.0\n",
        encoding="utf-8",
    )
    with pytest.raises(MeasurementFileError) as info:
        load_measurements(path, oberrhein)
    problems = {(p.line, p.field, p.element) for p in info.value.problems}
    assert problems == {(9, None, None)}  # row width is checked first
    path.write_text(path.read_text(encoding="utf-8").rsplit("bus,B39,v,,1.0\n", 1)[0])
    with pytest.raises(MeasurementFileError) as info:
        load_measurements(path, oberrhein)
    problems = {(p.line, p.field, p.element) for p in info.value.problems}
    assert problems == {
        (4, "std_dev", "B39"),
        (5, "element", "L9999"),
        (6, "side", "L165"),
        (7, "value", "B39"),
        (8, "quality_ok", "B39"),
    }
    text = str(info.value)
    assert "bad.csv: 5 problem(s)" in text
    assert "line 5, field 'element', element L9999: no such element in the model" in text


def test_malformed_csv_header_and_json(tmp_path: Path, oberrhein):
    path = tmp_path / "header.csv"
    path.write_text("kind,element,quantity,value,stddev\nbus,B39,v,1.0,0.003\n", encoding="utf-8")
    with pytest.raises(MeasurementFileError) as info:
        load_measurements(path, oberrhein)
    assert {(p.line, p.field) for p in info.value.problems} == {(1, "stddev"), (1, "std_dev")}

    path = tmp_path / "broken.json"
    path.write_text('[\n {"kind": "bus", "element": "B39",\n "quantity": "v" "value": 1}\n]')
    with pytest.raises(MeasurementFileError, match="line 3") as info:
        load_measurements(path, oberrhein)
    assert "invalid JSON" in str(info.value)

    path = tmp_path / "records.json"
    path.write_text(
        '{"format_version": 1, "measurements": [\n'
        '  {"kind": "bus", "element": "B39", "quantity": "v", "value": 1.0, "std_dev": 0.003},\n'
        '  {"kind": "switch", "element": "SW270", "quantity": "p", "value": 1.0},\n'
        '  {"kind": "bus", "element": "B39", "quantity": "v", "value": 1.0, "std_dev": 0.003,\n'
        '   "unit": "pu"}\n'
        "]}\n",
        encoding="utf-8",
    )
    with pytest.raises(MeasurementFileError) as info:
        load_measurements(path, oberrhein)
    assert {(p.line, p.field, p.element) for p in info.value.problems} == {
        (3, "std_dev", "SW270"),
        (4, "unit", "B39"),
    }

    path = tmp_path / "snapshot.xml"
    path.write_text("<x/>")
    with pytest.raises(MeasurementFileError, match="unsupported extension"):
        load_measurements(path, oberrhein)


# --------------------------------------------------------------------------- result, bench


def test_result_serialises_to_json(baran):
    case = synthesize(baran, placement="heads", seed=3)
    meters = metered_loads(baran, case.truth_net, skip={"B30", "B31", "B32"})
    bad = Measurement("bus", "B0", "v", 1.0, 0.003, quality_ok=False)
    result = estimate(baran, [*case.measurements, *meters, bad], pseudo_loads=False)
    data = json.loads(result.to_json())
    assert data["converged"] is True
    assert data["bus"]["B31"] == {"vm_pu": None, "va_degree": None, "status": "unobservable"}
    assert data["bus"]["B0"]["vm_pu"] == pytest.approx(result.bus.at["B0", "vm_pu"])
    assert data["line"]["L0"]["loading_percent"] > 0
    assert data["chi2"]["passed"] is True and data["chi2"]["dof"] > 0
    assert data["unobservable"][0]["behind"]
    assert data["excluded"][0]["measurement"]["element"] == "B0"
    assert data["counts"]["states"] == result.counts["states"]
    assert set(data["timings_ms"]) >= {"compile_ms", "solve_ms"}
    assert len(data["measurements"]) == len(result.measurements)


def test_bench_compares_with_pandapower():
    figures = run("baran_wu", repeats=3)
    assert figures["buses"] == 33
    assert figures["converged"] and figures["pandapower_converged"]
    assert figures["vm_error_pu_max"] < 0.005
    assert figures["vm_error_pu_max"] <= figures["pandapower_vm_error_pu_max"] + 1e-4
    assert figures["estimate_ms_p50"] > 0 and figures["pandapower_estimate_ms_p50"] > 0
    json.dumps(figures, allow_nan=False)
