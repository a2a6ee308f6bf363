"""Errors raised by the ADMS study applications (FLISR, reconfiguration, volt-VAR, switching).

Every error names what is at fault: the element (GIS id) and, where it
applies, the field or step. The hierarchy is its own, rooted at
:class:`AdmsError` (``adms`` sits above ``models`` and never imports
``protocols``); state estimation has its own in :mod:`adms.estimation.errors`.
"""

from __future__ import annotations

__all__ = [
    "AdmsError",
    "FaultLocationError",
    "PowerFlowError",
    "StudyInputError",
    "SwitchOrderError",
    "UnsupportedNetworkError",
]


class AdmsError(Exception):
    """Base of the study applications' errors.

    ``element`` is the GIS id at fault (``None`` for the whole study) and
    ``field`` the attribute or argument at fault.
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


class StudyInputError(AdmsError, ValueError):
    """An argument that does not fit the model: unknown id, wrong element kind, bad value."""


class UnsupportedNetworkError(AdmsError):
    """The network holds something a study cannot handle (e.g. a bus-bus switch to operate)."""


class PowerFlowError(AdmsError):
    """A power flow did not converge (``element`` names the configuration's first open switch)."""


class FaultLocationError(AdmsError):
    """Protection and FPI indications that locate no fault (or contradict each other)."""


class SwitchOrderError(AdmsError):
    """A switch order that cannot be built, stored, loaded or executed as asked."""
