import random

import networkx as nx
import pytest

from models.errors import UnknownElementError
from models.gis_import import from_geojson
from models.loader import load_network
from models.network import NetworkModel
from models.topology import TopologyProcessor, benchmark
from tests.models.netfactory import small_network


@pytest.fixture
def oberrhein() -> NetworkModel:
    return load_network("mv_oberrhein")


def reference_energised(model: NetworkModel) -> set[str]:
    """Energised buses computed independently with networkx from the net's switch states."""
    net = model.net
    graph = nx.MultiGraph()
    graph.add_nodes_from(net.bus.index)
    open_ends = {(r.et, r.element, r.bus) for r in net.switch.itertuples() if not r.closed}
    for r in net.line.itertuples():
        if (
            r.in_service
            and ("l", r.Index, r.from_bus) not in open_ends
            and ("l", r.Index, r.to_bus) not in open_ends
        ):
            graph.add_edge(r.from_bus, r.to_bus)
    for r in net.trafo.itertuples():
        if (
            r.in_service
            and ("t", r.Index, r.hv_bus) not in open_ends
            and ("t", r.Index, r.lv_bus) not in open_ends
        ):
            graph.add_edge(r.hv_bus, r.lv_bus)
    for r in net.switch.itertuples():
        if r.et == "b" and r.closed:
            graph.add_edge(r.bus, r.element)
    live: set[int] = set()
    for bus in net.ext_grid.bus[net.ext_grid.in_service]:
        live |= nx.node_connected_component(graph, bus)
    return {net.bus.gis_id[b] for b in live}


def test_all_buses_energised_in_normal_state(oberrhein: NetworkModel):
    proc = TopologyProcessor(oberrhein)
    state = proc.state
    assert len(state.energised_buses) == 179
    assert state.loop_count == 0
    assert state.earthed_buses == frozenset()
    assert state.paralleled_feeders == ()


def test_feeder_assignment_on_mv_oberrhein(oberrhein: NetworkModel):
    state = TopologyProcessor(oberrhein).state
    buses = state.buses()
    substation_buses = {"B39", "B58", "B318", "B319"}
    for bus_id, bus in buses.items():
        assert (bus.feeder is None) == (bus_id in substation_buses), bus_id
    # the live assignment equals the normal one stored on import, feeder by feeder
    for feeder in oberrhein.feeders.values():
        assert state.feeder_buses(feeder.id) == frozenset(feeder.buses)
    sizes = {f: len(state.feeder_buses(f)) for f in oberrhein.feeders}
    assert sizes == {"SS1-F1": 36, "SS1-F2": 32, "SS2-F1": 44, "SS2-F2": 63}
    stored = dict(zip(oberrhein.net.bus.gis_id, oberrhein.net.bus.feeder, strict=True))
    assert all(stored[b] == s.feeder for b, s in buses.items())


def test_opening_a_switch_deenergises_exactly_the_downstream_buses(oberrhein: NetworkModel):
    proc = TopologyProcessor(oberrhein)
    net = oberrhein.net
    # the normal state is a forest rooted at the sources: downstream = cut off from the source
    for switch_id in ("SW265", "SW1", "SW200", "SW50"):
        before = proc.state.energised_buses
        change = proc.set_switch(switch_id, False)
        expected = before - reference_energised(oberrhein)
        assert set(change.deenergised_buses) == expected, switch_id
        assert change.energised_buses == ()
        lost = {
            g
            for g, b in zip(net.load.gis_id, net.load.bus, strict=True)
            if net.bus.gis_id[b] in expected
        }
        assert set(change.deenergised_loads) == lost
        assert change.customers_interrupted == net.load.customers[net.load.gis_id.isin(lost)].sum()
        back = proc.set_switch(switch_id, True)
        assert set(back.energised_buses) == expected
        assert back.customers_restored == change.customers_interrupted
    assert len(proc.state.energised_buses) == 179


def test_opening_feeder_breaker_kills_its_feeder_only(oberrhein: NetworkModel):
    proc = TopologyProcessor(oberrhein)
    feeder = oberrhein.feeders["SS1-F1"]
    change = proc.set_switch(feeder.head_switch, False)
    assert set(change.deenergised_buses) == set(feeder.buses)
    assert all(new is None for _, new in change.feeder_changes.values())
    assert oberrhein.net.switch.closed[oberrhein.index_of("switch", feeder.head_switch)] == False  # noqa: E712


def test_closing_a_tie_forms_a_loop_that_is_reported(oberrhein: NetworkModel):
    proc = TopologyProcessor(oberrhein)
    assert proc.loops() == []
    change = proc.set_switch("SW14", True)
    assert change.loop_formed and change.loops_after == 1
    loops = proc.loops()
    assert len(loops) == 1
    (loop,) = loops
    assert loop.energised and not loop.via_sources
    line_of_sw14 = oberrhein.gis_id_of("line", int(oberrhein.net.switch.element[14]))
    assert line_of_sw14 in loop.branches
    change = proc.set_switch("SW14", False)
    assert change.loops_after == 0 and proc.loops() == []


def test_tie_between_two_substations_parallels_feeders_then_transfers(oberrhein: NetworkModel):
    proc = TopologyProcessor(oberrhein)
    # find a normally-open point whose two sides belong to different substations
    state = proc.state
    net = oberrhein.net
    for sw in net.switch[net.switch.normal_open].itertuples():
        line = net.line.loc[sw.element]
        ends = {
            state[net.bus.gis_id[line.from_bus]].feeder,
            state[net.bus.gis_id[line.to_bus]].feeder,
        }
        if len(ends) == 2 and len({f.split("-")[0] for f in ends if f}) == 2:
            tie, feeders = sw.gis_id, ends
            break
    else:
        pytest.fail("mv_oberrhein has a tie between its substations")
    change = proc.set_switch(tie, True)
    assert change.loop_formed
    (loop,) = proc.loops()
    assert loop.via_sources
    assert set(proc.state.paralleled_feeders[0]) == feeders
    # open the head of one feeder: its buses move to the other feeder, none go dead
    victim, other = sorted(feeders)
    change = proc.set_switch(oberrhein.feeders[victim].head_switch, False)
    assert change.deenergised_buses == ()
    state = proc.state
    assert all(state[b].feeder == other for b in oberrhein.feeders[victim].buses)
    assert state.feeder_buses(other) == frozenset(
        oberrhein.feeders[victim].buses + oberrhein.feeders[other].buses
    )
    assert change.loops_after == 0


def test_earthing_switch_earths_its_island_and_flags_live_earth():
    model = from_geojson(small_network())
    proc = TopologyProcessor(model)
    # earthing a live bus: both energised and earthed (an earth fault the operator must see)
    change = proc.set_switch("ES1", True)
    assert set(change.earthed_buses) == {"B0", "B1", "B2", "B3", "B4", "B5", "B6"}
    assert "B3" in change.energised_and_earthed
    proc.set_switch("ES1", False)
    # isolate B3..B4 (open S1 at B2), then earth: only the dead section is earthed
    proc.set_switch("S1", False)
    change = proc.set_switch("ES1", True)
    assert set(change.earthed_buses) == {"B3", "B4"}
    assert change.energised_and_earthed == ()
    state = proc.state
    assert state.is_earthed("L3") and state.is_earthed("LDB3")
    assert not state.is_energised("L3")
    # S1 sits at L2's B2 end: L2 hangs on the earthed, dead side
    assert state.is_earthed("L2") and not state.is_energised("L2")
    assert state.is_energised("L1") and not state.is_earthed("L1")
    assert model.net.earthing_switch.closed[0]


def test_element_energisation_respects_line_end_switches():
    model = from_geojson(small_network())
    state = TopologyProcessor(model).state
    # the tie line is live from B6 even though its switch at B4 is open
    assert state.is_energised("L6")
    assert state.is_energised("TIE") and state.is_energised("FPI1")
    assert state.is_energised("SS1") and state.is_energised("TR1")
    assert state.deenergised_elements() == []


def test_batch_apply_and_unknown_switch(oberrhein: NetworkModel):
    proc = TopologyProcessor(oberrhein)
    change = proc.apply({"SW265": False, "SW270": False})
    assert len(change.deenergised_buses) == 36 + 32
    unchanged = proc.set_switch("SW265", False)
    assert not unchanged.changed and unchanged.deenergised_buses == ()
    with pytest.raises(UnknownElementError, match="NOPE"):
        proc.set_switch("NOPE", True)
    with pytest.raises(UnknownElementError):
        proc.state["L1"]


def test_random_toggles_agree_with_networkx(oberrhein: NetworkModel):
    proc = TopologyProcessor(oberrhein)
    rng = random.Random(7)
    ids = proc.switch_ids
    for step in range(150):
        sw = rng.choice(ids)
        proc.set_switch(sw, not proc.is_closed(sw))
        if step % 10 == 0:
            assert proc.state.energised_buses == reference_energised(oberrhein)


def test_benchmark_reports_its_figures(oberrhein: NetworkModel):
    # the 10 ms target is checked by `pyadms bench topology --json`, not by a timed test
    figures = benchmark(oberrhein, changes=500)
    assert figures["buses"] == 179 and figures["switches"] == 322
    assert figures["changes"] == 500
    assert 0 < figures["update_ms_p50"] <= figures["update_ms_p99"] <= figures["update_ms_max"]
    # the benchmark works on a copy: the model's switch states are untouched
    assert (oberrhein.net.switch.closed == ~oberrhein.net.switch.normal_open).all()


def test_state_is_a_snapshot(oberrhein: NetworkModel):
    proc = TopologyProcessor(oberrhein)
    before = proc.state
    proc.set_switch("SW265", False)
    assert len(before.energised_buses) == 179
    line = oberrhein.gis_id_of("line", int(oberrhein.net.switch.element[265]))
    assert before.is_energised(line)
    assert len(proc.state.energised_buses) == 179 - 36


def test_normal_state_processor_does_not_write_to_the_net(oberrhein: NetworkModel):
    oberrhein.net.switch.loc[14, "closed"] = True  # live state differs from normal
    study = TopologyProcessor(oberrhein, normal_state=True)
    assert study.state.loop_count == 0
    study.set_switch("SW265", False)
    assert oberrhein.net.switch.closed[14] and oberrhein.net.switch.closed[265]
    assert TopologyProcessor(oberrhein).state.loop_count == 1
