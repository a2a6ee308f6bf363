"""Errors raised by state estimation.

Every error names what is at fault: the measurement file with its line and
field, the element (GIS id) a measurement refers to, or the unobservable
buses. The hierarchy is its own (``adms`` sits above ``models`` and never
imports ``protocols``), rooted at :class:`EstimationError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adms.estimation.observability import UnobservableArea

__all__ = [
    "EstimationError",
    "FileProblem",
    "MeasurementError",
    "MeasurementFileError",
    "UnknownSolverError",
    "UnobservableError",
]


class EstimationError(Exception):
    """Base of every state-estimation error."""


class MeasurementError(EstimationError, ValueError):
    """A measurement that cannot be used: unknown element, wrong side, bad value.

    ``element`` is the GIS id it refers to and ``field`` the attribute at fault.
    """

    def __init__(self, message: str, *, element: str | None = None, field: str | None = None):
        self.element = element
        self.field = field
        self.detail = message
        where = " ".join(
            part
            for part in (
                f"element {element}" if element else "",
                f"field '{field}'" if field else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class FileProblem:
    """One problem found in a measurement file."""

    line: int | None
    field: str | None
    element: str | None
    message: str

    def __str__(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field:
            parts.append(f"field '{self.field}'")
        if self.element:
            parts.append(f"element {self.element}")
        where = ", ".join(parts)
        return f"{where}: {self.message}" if where else self.message


class MeasurementFileError(EstimationError, ValueError):
    """A measurement file that cannot be read; ``problems`` lists every problem found."""

    def __init__(self, path: str, problems: Iterable[FileProblem]):
        self.path = path
        self.problems: tuple[FileProblem, ...] = tuple(problems)
        lines = [f"{path}: {len(self.problems)} problem(s)"]
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


class UnobservableError(EstimationError):
    """Raised (with ``on_unobservable="raise"``) when part of the network is unobservable."""

    def __init__(self, areas: Sequence[UnobservableArea]):
        self.areas = tuple(areas)
        lines = [f"{len(self.areas)} unobservable area(s)"]
        lines += [f"  - {area.reason}" for area in self.areas]
        super().__init__("\n".join(lines))


class UnknownSolverError(EstimationError, KeyError):
    """A solver name not in :data:`adms.estimation.solvers.SOLVERS`."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
