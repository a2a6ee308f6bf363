"""Device templates, device lists and their validation.

A configuration is one or more YAML/TOML files holding ``templates`` (a
template lists points: name suffix, kind, protocol address, scaling, deadband,
limits, control mapping) and ``devices`` (a device names its template,
protocol, host/port/link address and scan settings). Files are merged in the
order given; a later file may add templates and devices but not redefine them.

Validation is two-stage: pydantic checks each record, then cross-record checks
run over the whole set (duplicate names and addresses, unknown templates,
timeouts longer than scan periods). Every error names the file, device,
point and key; :class:`ConfigError` carries them all at once.

Expanded form: :meth:`ScadaConfig.expand` produces one :class:`PointConfig`
per point of every device, named ``<device>.<suffix>``. Templates keep the
config small: 90,000 points on 3,000 devices are ~30 templates plus a device
list, and a point or device entry may use ``repeat`` / ``count`` to stamp out
numbered copies.

Model elements: a template point's ``element`` may hold placeholders,
``switch:{cb}`` or ``line:{feeder}:from``, that each device fills from its
``elements`` mapping (``elements: {cb: SW12, feeder: L3}``), so devices of
one kind share a template while measuring different parts of the network. A
placeholder a device does not fill is an error naming the device, point and
key ``elements.<name>``. A point's ``description`` may use the same
placeholders (filled where the device gives them all, left as written
otherwise). :meth:`ScadaConfig.device_points` yields points with both filled.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from protocols.base import (
    ByteOrder,
    CommandMode,
    ControlKind,
    ControlSpec,
    DataType,
    LinkSpec,
    ModbusTable,
    PointKind,
    PointSpec,
)

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "ControlConfig",
    "DeviceConfig",
    "DevicePoints",
    "Limits",
    "PointConfig",
    "PointTemplate",
    "ScadaConfig",
    "TemplateConfig",
    "load_config",
    "parse_config",
]

Protocol = Literal["iec104", "dnp3", "modbus"]


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem found in a configuration, located as precisely as known."""

    file: str
    message: str
    device: str | None = None
    template: str | None = None
    point: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.template:
            where.append(f"template {self.template!r}")
        if self.device:
            where.append(f"device {self.device!r}")
        if self.point:
            where.append(f"point {self.point!r}")
        if self.key:
            where.append(f"key {self.key!r}")
        return f"{': '.join(where)}: {self.message}"


class ConfigError(ValueError):
    """A configuration could not be loaded; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        lines = "\n".join(f"  - {i}" for i in self.issues)
        super().__init__(f"{len(self.issues)} configuration error(s):\n{lines}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    """Alarm limits in engineering units (any may be omitted)."""

    low_low: float | None = None
    low: float | None = None
    high: float | None = None
    high_high: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        given = [v for v in (self.low_low, self.low, self.high, self.high_high) if v is not None]
        if given != sorted(given):
            raise ValueError("limits must satisfy low_low <= low <= high <= high_high")
        return self


class ControlConfig(_Strict):
    """How a point is commanded: the output's address and kind."""

    kind: ControlKind
    address: int = Field(ge=0)
    address_lower: int | None = Field(default=None, ge=0)
    mode: CommandMode = CommandMode.SBO
    table: ModbusTable | None = None
    dtype: DataType = DataType.UINT16
    #: seconds to wait for the status to confirm the command (check-back)
    checkback_timeout_s: float = Field(default=10.0, gt=0)

    def spec(self) -> ControlSpec:
        return ControlSpec(
            kind=self.kind,
            address=self.address,
            address_lower=self.address_lower,
            mode=self.mode,
            table=self.table,
            dtype=self.dtype,
        )


class PointTemplate(_Strict):
    """One point of a template. ``name`` is the suffix after ``<device>.``.

    With ``repeat: N`` the entry stands for N points: ``{i}`` in ``name``
    (and ``description``) is replaced by 1..N and ``address`` (and the
    control's addresses) advance by ``address_step`` each time.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.{}:\-]+$")
    kind: PointKind
    #: protocol address (IOA / DNP3 index / Modbus address); -1 = not monitored
    address: int = Field(ge=-1)
    description: str = ""
    unit: str = ""
    scale: float = 1.0
    offset: float = 0.0
    #: absolute deadband in engineering units (changes smaller are not reported)
    deadband: float = Field(default=0.0, ge=0)
    limits: Limits | None = None
    control: ControlConfig | None = None
    #: suffix of the point whose value confirms a command (default: this point)
    checkback: str | None = None
    #: model element this point measures or controls, e.g. "switch:S12" or "line:L3:from";
    #: ``{name}`` placeholders are filled from the device's ``elements``
    element: str | None = None
    table: ModbusTable | None = None
    dtype: DataType = DataType.UINT16
    byte_order: ByteOrder = ByteOrder.BIG
    word_order: ByteOrder = ByteOrder.BIG
    repeat: int = Field(default=1, ge=1)
    address_step: int = 1

    @model_validator(mode="after")
    def _consistent(self) -> PointTemplate:
        if self.repeat > 1 and "{i}" not in self.name:
            raise ValueError("repeat > 1 needs '{i}' in name")
        if self.kind in (PointKind.SETPOINT, PointKind.COMMAND) and self.control is None:
            raise ValueError(f"a {self.kind} point needs a 'control'")
        if self.address < 0 and self.control is None:
            raise ValueError("a point with address -1 (not monitored) needs a 'control'")
        if (
            self.control is not None
            and self.control.kind == ControlKind.STEP
            and self.control.address_lower is None
            and self.table is not None
        ):
            raise ValueError("a Modbus step control needs 'address_lower'")
        return self

    def expand(self) -> Iterator[PointTemplate]:
        if self.repeat == 1:
            yield self
            return
        for n in range(self.repeat):
            step = n * self.address_step
            control = self.control
            if control is not None:
                control = control.model_copy(
                    update={
                        "address": control.address + step,
                        "address_lower": None
                        if control.address_lower is None
                        else control.address_lower + step,
                    }
                )
            yield self.model_copy(
                update={
                    "name": self.name.replace("{i}", str(n + 1)),
                    "description": self.description.replace("{i}", str(n + 1)),
                    "address": self.address + step if self.address >= 0 else -1,
                    "control": control,
                    "checkback": None
                    if self.checkback is None
                    else self.checkback.replace("{i}", str(n + 1)),
                    "element": None
                    if self.element is None
                    else self.element.replace("{i}", str(n + 1)),
                    "repeat": 1,
                }
            )


class TemplateConfig(_Strict):
    description: str = ""
    points: list[PointTemplate] = Field(min_length=1)

    def expanded_points(self) -> list[PointTemplate]:
        return [p for entry in self.points for p in entry.expand()]


class DeviceConfig(_Strict):
    """A field device.

    With ``count: N`` the entry stands for N devices: ``{i}`` in ``name``
    becomes 1..N (formatted with any spec, e.g. ``{i:04d}``), and
    ``port`` and ``address`` advance by ``port_step`` / ``address_step``.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-{}:]+$")
    template: str
    protocol: Protocol
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    #: IEC common address / DNP3 outstation link address / Modbus unit id
    address: int = Field(default=1, ge=0, le=65535)
    master_address: int = Field(default=1, ge=0, le=65519)
    kind: Literal["rtu", "frtu", "meter", "relay"] = "rtu"
    scan_period_s: float = Field(default=2.0, gt=0)
    integrity_period_s: float = Field(default=300.0, ge=0)
    timeout_s: float = Field(default=1.0, gt=0)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=10.0, gt=0)
    enabled: bool = True
    count: int = Field(default=1, ge=1)
    port_step: int = 1
    address_step: int = 0
    #: fills the ``{name}`` placeholders of its template's point elements (model ids)
    elements: dict[str, str] = Field(default_factory=dict)

    def expand(self) -> Iterator[DeviceConfig]:
        if self.count == 1:
            yield self
            return
        for n in range(self.count):
            yield self.model_copy(
                update={
                    "name": self.name.format(i=n + 1),
                    "port": self.port + n * self.port_step if self.port else 0,
                    "address": self.address + n * self.address_step,
                    "count": 1,
                }
            )

    def link(self) -> LinkSpec:
        return LinkSpec(
            device=self.name,
            host=self.host,
            port=self.port,
            address=self.address,
            master_address=self.master_address,
            scan_period_s=self.scan_period_s,
            integrity_period_s=self.integrity_period_s,
            timeout_s=self.timeout_s,
            reconnect_min_s=self.reconnect_min_s,
            reconnect_max_s=self.reconnect_max_s,
        )


class _FileContent(_Strict):
    templates: dict[str, TemplateConfig] = Field(default_factory=dict)
    devices: list[DeviceConfig] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PointConfig:
    """One point of one device, fully expanded (the point database's definition)."""

    name: str
    device: str
    suffix: str
    template: PointTemplate

    @property
    def kind(self) -> PointKind:
        return self.template.kind


@dataclass(frozen=True, slots=True)
class DevicePoints:
    """A device with its expanded points, ready for an adapter."""

    device: DeviceConfig
    points: tuple[PointConfig, ...]

    def point_specs(self, handles: dict[str, int]) -> list[PointSpec]:
        """The adapter's view of the points, with the point database's handles."""
        specs = []
        for p in self.points:
            t = p.template
            specs.append(
                PointSpec(
                    handle=handles[p.name],
                    name=p.name,
                    kind=t.kind,
                    address=t.address,
                    control=t.control.spec() if t.control else None,
                    table=t.table,
                    dtype=t.dtype,
                    byte_order=t.byte_order,
                    word_order=t.word_order,
                )
            )
        return specs


@dataclass(frozen=True)
class ScadaConfig:
    """A validated configuration: templates and devices, with the file each came from."""

    templates: dict[str, TemplateConfig]
    devices: dict[str, DeviceConfig]
    sources: dict[str, str]

    def device_points(self, name: str) -> DevicePoints:
        device = self.devices[name]
        template = self.templates[device.template]
        return DevicePoints(
            device,
            tuple(
                PointConfig(f"{name}.{p.name}", name, p.name, _filled(p, device.elements))
                for p in template.expanded_points()
            ),
        )

    def expand(self) -> Iterator[DevicePoints]:
        for name in self.devices:
            yield self.device_points(name)

    @property
    def point_count(self) -> int:
        per_template = {k: len(t.expanded_points()) for k, t in self.templates.items()}
        return sum(per_template[d.template] for d in self.devices.values())


def _placeholders(text: str | None) -> list[str]:
    """The ``{name}`` placeholders of a point's element or description, in order."""
    if text is None:
        return []
    return [field for _, field, _, _ in string.Formatter().parse(text) if field]


def _filled(p: PointTemplate, elements: dict[str, str]) -> PointTemplate:
    update: dict[str, str] = {}
    if p.element is not None and _placeholders(p.element):
        update["element"] = p.element.format_map(elements)
    try:
        wanted = _placeholders(p.description)
    except ValueError:  # free text with a lone brace
        wanted = []
    if wanted and all(name in elements for name in wanted):
        update["description"] = p.description.format_map(elements)
    return p.model_copy(update=update) if update else p


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        return tomllib.loads(text)
    return yaml.safe_load(text) or {}


def _locate(file: str, content: Any, loc: tuple[int | str, ...]) -> ConfigIssue:
    """Turn a pydantic error location into file/template/device/point/key."""
    template = device = point = None
    key_parts: list[str] = []
    if len(loc) >= 2 and loc[0] == "templates":
        template = str(loc[1])
        rest = loc[2:]
        if len(rest) >= 2 and rest[0] == "points" and isinstance(rest[1], int):
            try:
                point = str(content["templates"][template]["points"][rest[1]]["name"])
            except (KeyError, IndexError, TypeError):
                point = f"#{rest[1]}"
            rest = rest[2:]
        key_parts = [str(x) for x in rest]
    elif len(loc) >= 2 and loc[0] == "devices" and isinstance(loc[1], int):
        try:
            device = str(content["devices"][loc[1]]["name"])
        except (KeyError, IndexError, TypeError):
            device = f"#{loc[1]}"
        key_parts = [str(x) for x in loc[2:]]
    else:
        key_parts = [str(x) for x in loc]
    return ConfigIssue(
        file, "", device=device, template=template, point=point, key=".".join(key_parts) or None
    )


def _parse_file(file: str, content: Any) -> tuple[_FileContent | None, list[ConfigIssue]]:
    if not isinstance(content, dict):
        return None, [ConfigIssue(file, "top level must be a mapping with 'templates'/'devices'")]
    try:
        return _FileContent.model_validate(content), []
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            base = _locate(file, content, tuple(err["loc"]))
            issues.append(
                ConfigIssue(file, err["msg"], base.device, base.template, base.point, base.key)
            )
        return None, issues


def _address_space(t: PointTemplate, protocol: str) -> tuple[str, ...]:
    """Which namespace a monitored address lives in, per protocol."""
    if protocol == "iec104":
        return ("ioa",)
    if protocol == "modbus":
        return (str(t.table),)
    return (str(t.kind),)


def _cross_check(
    templates: dict[str, TemplateConfig],
    devices: dict[str, DeviceConfig],
    sources: dict[str, str],
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for tname, template in templates.items():
        file = sources[f"template:{tname}"]
        seen: set[str] = set()
        for p in template.expanded_points():
            if p.name in seen:
                issues.append(
                    ConfigIssue(
                        file, "duplicate point name", template=tname, point=p.name, key="name"
                    )
                )
            seen.add(p.name)
        for p in template.expanded_points():
            if p.checkback is not None and p.checkback not in seen:
                issues.append(
                    ConfigIssue(
                        file,
                        f"check-back point {p.checkback!r} is not in the template",
                        template=tname,
                        point=p.name,
                        key="checkback",
                    )
                )
    endpoints: dict[tuple[str, str, int, int], str] = {}
    for dname, device in devices.items():
        file = sources[f"device:{dname}"]
        if device.template not in templates:
            issues.append(
                ConfigIssue(
                    file, f"unknown template {device.template!r}", device=dname, key="template"
                )
            )
            continue
        if device.timeout_s > device.scan_period_s:
            issues.append(
                ConfigIssue(
                    file,
                    f"timeout_s {device.timeout_s} is longer than "
                    f"scan_period_s {device.scan_period_s}",
                    device=dname,
                    key="timeout_s",
                )
            )
        if device.reconnect_min_s > device.reconnect_max_s:
            issues.append(
                ConfigIssue(
                    file,
                    "reconnect_min_s exceeds reconnect_max_s",
                    device=dname,
                    key="reconnect_min_s",
                )
            )
        if device.port:
            ep = (device.protocol, device.host, device.port, device.address)
            if ep in endpoints:
                issues.append(
                    ConfigIssue(
                        file,
                        f"same {device.protocol} endpoint "
                        f"{device.host}:{device.port}/{device.address} "
                        f"as device {endpoints[ep]!r}",
                        device=dname,
                        key="port",
                    )
                )
            endpoints[ep] = dname
        issues.extend(_check_addresses(file, dname, device, templates[device.template]))
        issues.extend(_check_elements(file, dname, device, templates[device.template]))
    return issues


def _check_elements(
    file: str, dname: str, device: DeviceConfig, template: TemplateConfig
) -> Iterator[ConfigIssue]:
    for p in template.expanded_points():
        try:
            names = _placeholders(p.element)
        except ValueError as exc:  # an unbalanced brace
            yield ConfigIssue(
                file, f"element {p.element!r}: {exc}", device=dname, point=p.name, key="element"
            )
            continue
        for name in names:
            if name not in device.elements:
                yield ConfigIssue(
                    file,
                    f"element {p.element!r} needs {name!r}, which the device does not give",
                    device=dname,
                    point=p.name,
                    key=f"elements.{name}",
                )


def _check_addresses(
    file: str, dname: str, device: DeviceConfig, template: TemplateConfig
) -> Iterator[ConfigIssue]:
    used: dict[tuple[str, ...], str] = {}
    outputs: dict[tuple[str, ...], str] = {}
    for p in template.expanded_points():
        if device.protocol == "modbus":
            if p.address >= 0 and p.table is None:
                yield ConfigIssue(
                    file, "Modbus point needs 'table'", device=dname, point=p.name, key="table"
                )
                continue
            if p.control is not None and p.control.table is None:
                yield ConfigIssue(
                    file,
                    "Modbus control needs 'table'",
                    device=dname,
                    point=p.name,
                    key="control.table",
                )
                continue
        if p.address >= 0:
            width = p.dtype.registers if device.protocol == "modbus" else 1
            for a in range(p.address, p.address + width):
                key = (*_address_space(p, device.protocol), str(a))
                if key in used:
                    yield ConfigIssue(
                        file,
                        f"address {a} already used by point {used[key]!r}",
                        device=dname,
                        point=p.name,
                        key="address",
                    )
                used[key] = p.name
        if p.control is not None:
            c = p.control
            space: tuple[str, ...]
            if device.protocol == "iec104":
                space, target = ("ioa",), used
            elif device.protocol == "modbus":
                space, target = (str(c.table),), outputs
            else:
                space, target = ("ao" if c.kind == ControlKind.SETPOINT else "crob",), outputs
            for a in (c.address, c.address_lower or -1):
                if a < 0:
                    continue
                key = (*space, str(a))
                if key in target or (device.protocol == "iec104" and key in outputs):
                    other = target.get(key) or outputs.get(key)
                    yield ConfigIssue(
                        file,
                        f"control address {a} already used by point {other!r}",
                        device=dname,
                        point=p.name,
                        key="control.address",
                    )
                outputs[key] = p.name


def parse_config(documents: Iterable[tuple[str, Any]]) -> ScadaConfig:
    """Validate already-parsed documents ``(file name, content)``; raise :class:`ConfigError`."""
    issues: list[ConfigIssue] = []
    templates: dict[str, TemplateConfig] = {}
    devices: dict[str, DeviceConfig] = {}
    sources: dict[str, str] = {}
    for file, content in documents:
        parsed, errs = _parse_file(file, content)
        issues.extend(errs)
        if parsed is None:
            continue
        for tname, template in parsed.templates.items():
            if tname in templates:
                issues.append(
                    ConfigIssue(
                        file,
                        f"template already defined in {sources[f'template:{tname}']}",
                        template=tname,
                    )
                )
                continue
            templates[tname] = template
            sources[f"template:{tname}"] = file
        for entry in parsed.devices:
            for device in entry.expand():
                if device.name in devices:
                    issues.append(
                        ConfigIssue(
                            file,
                            f"duplicate device name (also in {sources[f'device:{device.name}']})",
                            device=device.name,
                            key="name",
                        )
                    )
                    continue
                devices[device.name] = device
                sources[f"device:{device.name}"] = file
    issues.extend(_cross_check(templates, devices, sources))
    if issues:
        raise ConfigError(issues)
    return ScadaConfig(templates, devices, sources)


def load_config(paths: Sequence[str | Path]) -> ScadaConfig:
    """Read and validate configuration files (YAML or TOML); raise :class:`ConfigError`."""
    docs: list[tuple[str, Any]] = []
    issues: list[ConfigIssue] = []
    for raw in paths:
        path = Path(raw)
        try:
            docs.append((str(path), _read(path)))
        except FileNotFoundError:
            issues.append(ConfigIssue(str(path), "file not found"))
        except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            issues.append(
                ConfigIssue(str(path), f"not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}")
            )
    if issues:
        raise ConfigError(issues)
    return parse_config(docs)
