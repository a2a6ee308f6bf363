"""Errors raised by the network-model package.

Every error names the offending feature (GIS id, with its kind when known) and
the field, so an engineer can fix the export at its source. Import-time
validation collects all problems it can find and raises them together as a
:class:`ModelValidationError`, whose ``errors`` holds the individual ones.

The hierarchy is independent of ``protocols.base.ProtocolError``: the layer
contract forbids ``models`` from importing ``protocols``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "CimImportError",
    "DanglingLineError",
    "DuplicateIdError",
    "MissingParameterError",
    "MissingRatingError",
    "ModelError",
    "ModelValidationError",
    "NonRadialError",
    "SchemaError",
    "UnknownElementError",
    "UnknownNetworkError",
    "UnknownReferenceError",
    "UnknownStdTypeError",
    "UnsuppliedIslandError",
    "UnsupportedElementError",
    "VoltageMismatchError",
]


class ModelError(Exception):
    """Base of every network-model error.

    ``feature_id`` is the GIS id of the offending feature (``None`` when the
    problem concerns a whole file), ``kind`` its feature kind and ``field`` the
    property at fault.
    """

    def __init__(
        self,
        message: str,
        *,
        feature_id: str | None = None,
        kind: str | None = None,
        field: str | None = None,
    ) -> None:
        self.feature_id = feature_id
        self.kind = kind
        self.field = field
        self.detail = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = " ".join(part for part in (self.kind, self.feature_id) if part)
        if self.field:
            where = f"{where} field '{self.field}'" if where else f"field '{self.field}'"
        return f"{where}: {self.detail}" if where else self.detail


class SchemaError(ModelError):
    """A feature (or the collection) does not follow the GeoJSON schema."""


class DuplicateIdError(ModelError):
    """Two features share one GIS id."""


class UnknownReferenceError(ModelError):
    """A reference names an id that does not exist, or a feature of the wrong kind."""


class DanglingLineError(ModelError):
    """A line end is not attached to any bus (or both ends are on one bus)."""


class MissingRatingError(ModelError):
    """A branch has no thermal rating and no standard type to take one from."""


class MissingParameterError(ModelError):
    """An electrical parameter is missing and cannot be derived."""


class UnknownStdTypeError(ModelError):
    """A ``std_type`` is not in the pandapower standard-type library."""


class VoltageMismatchError(ModelError):
    """A line or switch joins buses of different nominal voltage."""


class UnsuppliedIslandError(ModelError):
    """Buses that no source supplies in the normal switching state."""


class NonRadialError(ModelError):
    """A closed loop in the normal switching state where radial operation is expected."""


class UnknownElementError(ModelError, KeyError):
    """A GIS id that the model does not hold (or not of the expected kind)."""

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return self._format()


class UnknownNetworkError(ModelError):
    """``load_network`` got neither a bundled name nor a supported file."""


class UnsupportedElementError(ModelError):
    """A pandapower element table the GeoJSON schema cannot express."""


class CimImportError(ModelError):
    """A CGMES/CIM file could not be read or converted."""


class ModelValidationError(ModelError):
    """Several validation errors found in one import; ``errors`` lists them all."""

    def __init__(self, errors: Iterable[ModelError], *, source: str | None = None) -> None:
        self.errors: tuple[ModelError, ...] = tuple(errors)
        self.source = source
        lines = [f"{len(self.errors)} validation error(s)" + (f" in {source}" if source else "")]
        lines += [f"  - {err}" for err in self.errors]
        super().__init__("\n".join(lines))

    def of_type(self, cls: type[ModelError]) -> Sequence[ModelError]:
        """Return the collected errors that are instances of ``cls``."""
        return [err for err in self.errors if isinstance(err, cls)]
