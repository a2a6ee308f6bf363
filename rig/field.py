"""Simulated field devices: one real protocol outstation per configured device.

Contract:
- :class:`SimulatedField` is built from the same :class:`~scada.config.ScadaConfig`
  as the control centre, so both agree on addresses. Each enabled device gets
  an outstation of its protocol; port 0 lets the OS choose (read
  :meth:`SimulatedField.resolved_config` for the ports actually used).
- Values are set in engineering units (:meth:`SimulatedField.set`); the rig
  converts to the raw protocol value with the point's scale and offset.
- A received control is accepted or refused at once (per-device behaviour:
  ``refuse``, ``stuck``); an accepted one changes the simulated state after the
  device's ``operate_delay_s`` (a stuck device accepts but never moves). By
  default the commanded status point takes the new value; an ``on_operate``
  hook receives the :class:`Operation` instead and applies it (e.g. to a
  simulated network, setting the resulting values itself).
- Comm loss: :meth:`stop_device` / :meth:`start_device` take a device's
  outstation off the network and bring it back on the same port, serving
  each point's last value and quality.
- ``outstation_options`` gives the outstations of a protocol extra keyword
  arguments, e.g. ``{"dnp3": {"unsolicited": True}}`` for DNP3 RTUs that
  report events unsolicited.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from protocols.base import (
    CommandRequest,
    ControlKind,
    DoubleState,
    Outstation,
    PointKind,
    PointSpec,
    Quality,
)
from protocols.registry import outstation_class
from scada.config import DevicePoints, PointConfig, ScadaConfig

__all__ = ["Behaviour", "Operation", "ReceivedCommand", "SimulatedDevice", "SimulatedField"]

log = logging.getLogger(__name__)


@dataclass
class Behaviour:
    """How a simulated device answers controls."""

    operate_delay_s: float = 0.05
    refuse: bool = False
    stuck: bool = False


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    device: str
    point: str
    value: float
    mode: str
    accepted: bool


@dataclass(frozen=True, slots=True)
class Operation:
    """An accepted control taking effect.

    ``target`` (the check-back point) should become ``value`` (engineering
    units); ``point`` is the commanded point.
    """

    device: str
    point: PointConfig
    target: str
    value: float


@dataclass
class SimulatedDevice:
    points: DevicePoints
    specs: list[PointSpec]
    by_name: dict[str, PointConfig]
    handles: dict[str, int]
    values: dict[str, float] = field(default_factory=dict)
    qualities: dict[str, Quality] = field(default_factory=dict)
    behaviour: Behaviour = field(default_factory=Behaviour)
    outstation: Outstation | None = None
    port: int = 0

    @property
    def name(self) -> str:
        return self.points.device.name


class SimulatedField:
    """Every simulated RTU of a configuration, in one process."""

    def __init__(
        self,
        config: ScadaConfig,
        on_command: Callable[[ReceivedCommand], None] | None = None,
        on_operate: Callable[[Operation], None] | None = None,
        outstation_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self._options = outstation_options or {}
        self.devices: dict[str, SimulatedDevice] = {}
        self.commands: list[ReceivedCommand] = []
        self._on_command = on_command
        self._on_operate = on_operate
        self._loop: asyncio.AbstractEventLoop | None = None
        self._device_of: dict[str, str] = {}
        handle = 0
        for dp in config.expand():
            if not dp.device.enabled:
                continue
            handles: dict[str, int] = {}
            for p in dp.points:
                handles[p.name] = handle
                self._device_of[p.name] = dp.device.name
                handle += 1
            self.devices[dp.device.name] = SimulatedDevice(
                points=dp,
                specs=dp.point_specs(handles),
                by_name={p.name: p for p in dp.points},
                handles=handles,
                port=dp.device.port,
            )

    # ------------------------------------------------------------ lifecycle
    async def start(self, progress: Callable[[int, int], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        total = len(self.devices)
        for n, name in enumerate(self.devices, 1):
            await self.start_device(name)
            if progress is not None:
                progress(n, total)

    async def stop(self) -> None:
        for name in self.devices:
            await self.stop_device(name)

    async def start_device(self, name: str) -> None:
        """Put a device's outstation on the network (again), serving its current values."""
        dev = self.devices[name]
        if dev.outstation is not None:
            return
        cfg = dev.points.device
        link = dataclasses.replace(cfg.link(), port=dev.port)
        cls = outstation_class(cfg.protocol)
        outstation = cls(
            link,
            dev.specs,
            functools.partial(self._handle, dev),
            **self._options.get(cfg.protocol, {}),
        )
        await outstation.start()
        dev.outstation = outstation
        dev.port = outstation.port
        for point, value in dev.values.items():
            self._send(dev, point, value, dev.qualities.get(point, Quality.GOOD), None)

    async def stop_device(self, name: str) -> None:
        """Take a device off the network (comm loss); its values are kept."""
        dev = self.devices[name]
        outstation, dev.outstation = dev.outstation, None
        if outstation is not None:
            await outstation.stop()

    def resolved_config(self) -> ScadaConfig:
        """The configuration with every device's actual port filled in."""
        devices = {
            name: cfg.model_copy(update={"port": self.devices[name].port})
            if name in self.devices
            else cfg
            for name, cfg in self.config.devices.items()
        }
        return ScadaConfig(self.config.templates, devices, self.config.sources)

    # ---------------------------------------------------------------- values
    def set(
        self,
        point: str,
        value: float,
        quality: Quality = Quality.GOOD,
        source_time: float | None = None,
    ) -> None:
        """Set a point's value in engineering units and report it to the master."""
        dev = self._device(point)
        dev.values[point] = value
        dev.qualities[point] = quality
        self._send(dev, point, value, quality, source_time)

    def get(self, point: str) -> float | None:
        return self._device(point).values.get(point)

    def behaviour(self, device: str) -> Behaviour:
        return self.devices[device].behaviour

    def _device(self, point: str) -> SimulatedDevice:
        try:
            return self.devices[self._device_of[point]]
        except KeyError:
            raise KeyError(f"no simulated point {point!r}") from None

    def _send(
        self,
        dev: SimulatedDevice,
        point: str,
        value: float,
        quality: Quality,
        source_time: float | None,
    ) -> None:
        cfg = dev.by_name[point]
        if cfg.template.address < 0 or dev.outstation is None:
            return
        t = cfg.template
        raw = value
        if cfg.kind not in (PointKind.SINGLE, PointKind.DOUBLE) and t.scale:
            raw = (value - t.offset) / t.scale
        dev.outstation.update(dev.handles[point], raw, quality, source_time)

    # -------------------------------------------------------------- commands
    def _handle(self, dev: SimulatedDevice, spec: PointSpec, request: CommandRequest) -> bool:
        """Called by an outstation, maybe on a protocol thread: decide now, act later."""
        b = dev.behaviour
        accepted = not b.refuse
        received = ReceivedCommand(dev.name, spec.name, request.value, request.mode, accepted)
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._received, dev, spec, request, received)
        return accepted

    def _received(
        self,
        dev: SimulatedDevice,
        spec: PointSpec,
        request: CommandRequest,
        received: ReceivedCommand,
    ) -> None:
        self.commands.append(received)
        if self._on_command is not None:
            self._on_command(received)
        if not received.accepted or dev.behaviour.stuck or self._loop is None:
            return
        self._loop.call_later(dev.behaviour.operate_delay_s, self._operate, dev, spec, request)

    def _operate(self, dev: SimulatedDevice, spec: PointSpec, request: CommandRequest) -> None:
        cfg = dev.by_name[spec.name]
        target = f"{dev.name}.{cfg.template.checkback}" if cfg.template.checkback else spec.name
        control = cfg.template.control
        assert control is not None
        t = cfg.template
        if control.kind == ControlKind.STEP:
            new = (dev.values.get(target) or 0.0) + (1 if request.value > 0 else -1)
        elif control.kind == ControlKind.SETPOINT:
            new = request.value * t.scale + t.offset
        elif dev.by_name[target].kind == PointKind.DOUBLE:
            new = float(DoubleState.ON if request.value else DoubleState.OFF)
        else:
            new = 1.0 if request.value else 0.0
        log.debug("%s operated: %s -> %s", dev.name, target, new)
        if self._on_operate is not None:
            self._on_operate(Operation(dev.name, cfg, target, new))
        else:
            self.set(target, new)
