"""Configuration by templates: expansion, validation, error locations (R-ACQ-4, R-ACQ-5)."""

from pathlib import Path

import pytest
import yaml

from scada.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "field.yaml"

TEMPLATE = {
    "rtu": {
        "points": [
            {
                "name": "CB",
                "kind": "double",
                "address": 1,
                "control": {"kind": "double", "address": 11},
            },
            {"name": "P{i}", "kind": "analog", "address": 100, "repeat": 29},
        ]
    }
}


def issues(exc: ConfigError) -> list[str]:
    return [str(i) for i in exc.issues]


def test_example_config_expands_templates() -> None:
    cfg = load_config([EXAMPLE])
    assert set(cfg.devices) == {"SS1", "SS2", "FR1", "FR2", "M1"}
    names = [p.name for p in cfg.device_points("SS1").points]
    assert names[:2] == ["SS1.F1.CB", "SS1.F2.CB"]
    f2 = cfg.device_points("SS1").points[1].template
    assert f2.address == 101 and f2.control is not None and f2.control.address == 2101
    assert f2.element == "switch:F2_CB"
    assert cfg.point_count == 9 * 2 + 3 * 2 + 5


def test_90000_points_from_templates_and_a_device_list() -> None:
    devices = [
        {
            "name": "RTU{i:04d}",
            "template": "rtu",
            "protocol": "iec104",
            "port": 20000,
            "count": 3000,
            "port_step": 1,
        }
    ]
    cfg = parse_config([("big.yaml", {"templates": TEMPLATE, "devices": devices})])
    assert len(cfg.devices) == 3000
    assert cfg.point_count == 90_000
    assert cfg.devices["RTU3000"].port == 22999


FEEDER_RTU = {
    "points": [
        {
            "name": "CB",
            "kind": "double",
            "address": 1,
            "element": "switch:{cb}",
            "control": {"kind": "double", "address": 11},
        },
        {"name": "I{i}", "kind": "analog", "address": 100, "repeat": 2, "element": "line:{line}"},
    ]
}


def test_devices_share_a_template_and_name_their_own_elements() -> None:
    devices = [
        {"name": d, "template": "feeder", "protocol": "iec104", "port": 0, "elements": e}
        for d, e in (("F1", {"cb": "SW1", "line": "L1"}), ("F2", {"cb": "SW7", "line": "L9"}))
    ]
    cfg = parse_config([("f.yaml", {"templates": {"feeder": FEEDER_RTU}, "devices": devices})])
    elements = {p.name: p.template.element for dp in cfg.expand() for p in dp.points}
    assert elements == {
        "F1.CB": "switch:SW1",
        "F1.I1": "line:L1",
        "F1.I2": "line:L1",
        "F2.CB": "switch:SW7",
        "F2.I1": "line:L9",
        "F2.I2": "line:L9",
    }
    assert len(cfg.templates) == 1


def test_an_unfilled_element_placeholder_names_device_point_and_key() -> None:
    devices = [{"name": "F1", "template": "feeder", "protocol": "iec104", "port": 0,
                "elements": {"cb": "SW1"}}]  # fmt: skip
    with pytest.raises(ConfigError) as err:
        parse_config([("f.yaml", {"templates": {"feeder": FEEDER_RTU}, "devices": devices})])
    assert issues(err.value) == [
        f"f.yaml: device 'F1': point 'I{i}': key 'elements.line': element 'line:{{line}}' "
        "needs 'line', which the device does not give"
        for i in (1, 2)
    ]


def test_toml_and_split_files(tmp_path: Path) -> None:
    (tmp_path / "templates.yaml").write_text(yaml.safe_dump({"templates": TEMPLATE}))
    (tmp_path / "devices.toml").write_text(
        '[[devices]]\nname = "A"\ntemplate = "rtu"\nprotocol = "dnp3"\nport = 20000\n'
    )
    cfg = load_config([tmp_path / "templates.yaml", tmp_path / "devices.toml"])
    assert cfg.devices["A"].protocol == "dnp3"
    assert cfg.sources["device:A"].endswith("devices.toml")


@pytest.mark.parametrize(
    ("devices", "templates", "expected"),
    [
        (
            [{"name": "A", "template": "nope", "protocol": "iec104", "port": 1}],
            TEMPLATE,
            "device 'A': key 'template': unknown template 'nope'",
        ),
        (
            [
                {
                    "name": "A",
                    "template": "rtu",
                    "protocol": "iec104",
                    "port": 1,
                    "scan_period_s": 1,
                    "timeout_s": 3,
                }
            ],
            TEMPLATE,
            "device 'A': key 'timeout_s': timeout_s 3.0 is longer than scan_period_s 1.0",
        ),
        (
            [
                {"name": "A", "template": "rtu", "protocol": "iec104", "port": 1},
                {"name": "A", "template": "rtu", "protocol": "iec104", "port": 2},
            ],
            TEMPLATE,
            "device 'A': key 'name': duplicate device name",
        ),
        (
            [{"name": "A", "template": "t", "protocol": "iec104", "port": 1}],
            {
                "t": {
                    "points": [
                        {"name": "X", "kind": "analog", "address": 5},
                        {"name": "Y", "kind": "analog", "address": 5},
                    ]
                }
            },
            "device 'A': point 'Y': key 'address': address 5 already used by point 'X'",
        ),
        (
            [{"name": "A", "template": "t", "protocol": "iec104", "port": 1}],
            {
                "t": {
                    "points": [
                        {"name": "X", "kind": "analog", "address": 5},
                        {"name": "X", "kind": "analog", "address": 6},
                    ]
                }
            },
            "template 't': point 'X': key 'name': duplicate point name",
        ),
        (
            [{"name": "A", "template": "t", "protocol": "modbus", "port": 1}],
            {
                "t": {
                    "points": [
                        {
                            "name": "X",
                            "kind": "analog",
                            "address": 0,
                            "table": "holding_register",
                            "dtype": "float32",
                        },
                        {"name": "Y", "kind": "analog", "address": 1, "table": "holding_register"},
                    ]
                }
            },
            "device 'A': point 'Y': key 'address': address 1 already used by point 'X'",
        ),
        (
            [{"name": "A", "template": "t", "protocol": "dnp3", "port": 1}],
            {"t": {"points": [{"name": "X", "kind": "analog", "address": 0, "scale": "big"}]}},
            "template 't': point 'X': key 'scale': Input should be a valid number",
        ),
        (
            [{"name": "A", "template": "rtu", "protocol": "profibus", "port": 1}],
            TEMPLATE,
            "device 'A': key 'protocol'",
        ),
    ],
)
def test_errors_name_file_device_point_and_key(devices, templates, expected) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config([("cfg.yaml", {"templates": templates, "devices": devices})])
    assert any(expected in line for line in issues(err.value)), issues(err.value)
    assert all(line.startswith("cfg.yaml") for line in issues(err.value))


def test_every_problem_is_reported_at_once() -> None:
    devices = [
        {"name": "A", "template": "nope", "protocol": "iec104", "port": 1},
        {"name": "B", "template": "rtu", "protocol": "iec104", "port": 1, "timeout_s": 9},
    ]
    with pytest.raises(ConfigError) as err:
        parse_config([("cfg.yaml", {"templates": TEMPLATE, "devices": devices})])
    assert len(err.value.issues) == 2


def test_malformed_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices: [ {name: A, template: rtu\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid yaml"):
        load_config([bad])
    with pytest.raises(ConfigError, match="missing.yaml: file not found"):
        load_config([tmp_path / "missing.yaml"])
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config([listing])
