"""Scenario files: timed steps that drive a :class:`~rig.field.SimulatedField`.

A scenario is YAML or TOML with a list ``steps``; each step has ``at_s``
(seconds from the start) and exactly one action:

- ``set: {point, value, quality?}``: a field value changes (quality names from
  :class:`protocols.base.Quality`, e.g. ``[invalid, substituted]``)
- ``comm_loss: {device, duration_s?}``: the device goes off the network (and
  comes back after ``duration_s`` if given)
- ``comm_restore: {device}``
- ``behaviour: {device, refuse?, stuck?, operate_delay_s?}``: how it answers controls
- ``expect: {point, value, timeout_s?}``: an operator-free check: wait until the
  simulated point has this value (e.g. a breaker the control centre opens), or
  fail the scenario with :class:`ScenarioFailed`.

Steps for a power-flow rig (:class:`rig.grid.GridSimulator`; a scenario that
uses them needs one, see :meth:`Scenario.run`):

- ``fault: {line, reclose_attempts?}``: a permanent fault on a line (protection
  trips, FPIs on the supply path are set)
- ``clear_fault: {line?}``: the fault on ``line`` (every fault without it) is
  removed and the FPIs reset
- ``load: {scale}`` scales every load that follows the daily profile;
  ``load: {element, p_mw}`` fixes one load
- ``time_scale: N``: simulated seconds per real second from now on (0 freezes)
- ``measurement: {point, failure}``: ``invalid`` or ``frozen``; ``none`` ends it
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from protocols.base import Quality
from rig.field import SimulatedField

if TYPE_CHECKING:
    from rig.grid import GridSimulator

__all__ = ["Scenario", "ScenarioError", "ScenarioFailed", "load_scenario"]

QualityName = Literal[
    "invalid", "questionable", "old", "comm_fail", "substituted", "overflow", "blocked", "test"
]


class ScenarioError(ValueError):
    """A scenario file is malformed (the message names the file, step and key)."""


class ScenarioFailed(AssertionError):
    """An ``expect`` step was not met in time."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SetValue(_Strict):
    point: str
    value: float
    quality: list[QualityName] = Field(default_factory=list)

    def flags(self) -> Quality:
        q = Quality.GOOD
        for name in self.quality:
            q |= Quality[name.upper()]
        return q


class CommLoss(_Strict):
    device: str
    duration_s: float | None = Field(default=None, gt=0)


class CommRestore(_Strict):
    device: str


class SetBehaviour(_Strict):
    device: str
    refuse: bool | None = None
    stuck: bool | None = None
    operate_delay_s: float | None = Field(default=None, ge=0)


class Expect(_Strict):
    point: str
    value: float
    timeout_s: float = Field(default=10.0, gt=0)


class Fault(_Strict):
    line: str
    reclose_attempts: int = Field(default=0, ge=0)


class ClearFault(_Strict):
    line: str | None = None


class Load(_Strict):
    scale: float | None = Field(default=None, ge=0)
    element: str | None = None
    p_mw: float | None = None

    @model_validator(mode="after")
    def _scale_or_element(self) -> Load:
        if (self.scale is None) == (self.element is None and self.p_mw is None):
            raise ValueError("load takes either 'scale' or 'element' with 'p_mw'")
        if self.scale is None and (self.element is None or self.p_mw is None):
            raise ValueError("load with 'element' needs 'p_mw' (and the reverse)")
        return self


class MeasurementFailure(_Strict):
    point: str
    failure: Literal["invalid", "frozen", "none"]


_ACTIONS = (
    "set",
    "comm_loss",
    "comm_restore",
    "behaviour",
    "expect",
    "fault",
    "clear_fault",
    "load",
    "time_scale",
    "measurement",
)
#: actions that need a power-flow rig
_GRID_ACTIONS = ("fault", "clear_fault", "load", "time_scale", "measurement")


class Step(_Strict):
    at_s: float = Field(ge=0)
    set: SetValue | None = None
    comm_loss: CommLoss | None = None
    comm_restore: CommRestore | None = None
    behaviour: SetBehaviour | None = None
    expect: Expect | None = None
    fault: Fault | None = None
    clear_fault: ClearFault | None = None
    load: Load | None = None
    time_scale: float | None = Field(default=None, ge=0)
    measurement: MeasurementFailure | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        if sum(getattr(self, a) is not None for a in _ACTIONS) != 1:
            raise ValueError(f"a step needs exactly one of {', '.join(_ACTIONS)}")
        return self

    @property
    def action(self) -> str:
        return next(a for a in _ACTIONS if getattr(self, a) is not None)


class Scenario(_Strict):
    steps: list[Step]

    def check(self, field: SimulatedField, grid: GridSimulator | None = None) -> None:
        """Raise ScenarioError for points, devices or elements the rig does not have."""
        problems = []
        points = {p for d in field.devices.values() for p in d.by_name}
        for n, step in enumerate(self.steps):
            for action in (step.set, step.expect, step.measurement):
                if action is not None and action.point not in points:
                    problems.append(f"step {n}: unknown point {action.point!r}")
            for dev_action in (step.comm_loss, step.comm_restore, step.behaviour):
                if dev_action is not None and dev_action.device not in field.devices:
                    problems.append(f"step {n}: unknown device {dev_action.device!r}")
            if step.action not in _GRID_ACTIONS:
                continue
            if grid is None:
                problems.append(f"step {n}: {step.action} needs a power-flow rig (a network)")
                continue
            elements = [
                ("line", step.fault.line if step.fault else None),
                ("line", step.clear_fault.line if step.clear_fault else None),
                ("load", step.load.element if step.load else None),
            ]
            for table, gis_id in elements:
                if gis_id is not None and gis_id not in grid.model.ids(table):
                    problems.append(f"step {n}: {step.action}: no {table} {gis_id!r}")
        if problems:
            raise ScenarioError("; ".join(problems))

    async def run(self, field: SimulatedField, grid: GridSimulator | None = None) -> None:
        """Run the steps in time order against a started field (and its power-flow rig)."""
        self.check(field, grid)
        start = time.monotonic()
        restores: list[asyncio.Task[None]] = []
        for step in sorted(self.steps, key=lambda s: s.at_s):
            delay = start + step.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if step.set is not None:
                field.set(step.set.point, step.set.value, step.set.flags())
            elif step.comm_loss is not None:
                await field.stop_device(step.comm_loss.device)
                if step.comm_loss.duration_s is not None:
                    restores.append(
                        asyncio.create_task(
                            _restore_later(field, step.comm_loss.device, step.comm_loss.duration_s)
                        )
                    )
            elif step.comm_restore is not None:
                await field.start_device(step.comm_restore.device)
            elif step.behaviour is not None:
                b = field.behaviour(step.behaviour.device)
                changes = step.behaviour.model_dump(exclude={"device"}, exclude_none=True)
                for key, value in changes.items():
                    setattr(b, key, value)
            elif step.expect is not None:
                await _expect(field, step.expect)
            else:
                assert grid is not None  # check() made sure
                _grid_step(grid, step)
        if restores:
            await asyncio.gather(*restores)


def _grid_step(grid: GridSimulator, step: Step) -> None:
    if step.fault is not None:
        grid.inject_fault(step.fault.line, step.fault.reclose_attempts)
    elif step.clear_fault is not None:
        grid.clear_fault(step.clear_fault.line)
    elif step.load is not None:
        if step.load.scale is not None:
            grid.scale_loads(step.load.scale)
        elif step.load.element is not None and step.load.p_mw is not None:
            grid.set_load(step.load.element, step.load.p_mw)
    elif step.time_scale is not None:
        grid.set_time_scale(step.time_scale)
    elif step.measurement is not None:
        if step.measurement.failure == "none":
            grid.restore_measurement(step.measurement.point)
        else:
            grid.fail_measurement(step.measurement.point, step.measurement.failure)


async def _restore_later(field: SimulatedField, device: str, delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    await field.start_device(device)


async def _expect(field: SimulatedField, expect: Expect) -> None:
    deadline = time.monotonic() + expect.timeout_s
    while field.get(expect.point) != expect.value:
        if time.monotonic() > deadline:
            raise ScenarioFailed(
                f"{expect.point} is {field.get(expect.point)}, expected {expect.value} "
                f"within {expect.timeout_s:g} s"
            )
        await asyncio.sleep(0.02)


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else yaml.safe_load(text)
        return Scenario.model_validate(data)
    except FileNotFoundError:
        raise ScenarioError(f"{p}: file not found") from None
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{p}: not valid {p.suffix.lstrip('.')}: {exc}") from None
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ScenarioError(f"{p}: {details}") from None
