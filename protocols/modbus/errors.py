"""Errors of the Modbus adapter; all derive from :class:`protocols.base.ProtocolError`."""

from __future__ import annotations

from protocols.base import ProtocolError

__all__ = ["ModbusConfigError", "ModbusEncodeError"]


class ModbusConfigError(ProtocolError):
    """A LinkSpec/PointSpec the adapter cannot serve; the message names device, point and field."""


class ModbusEncodeError(ProtocolError):
    """A value that does not fit the register type it is written to."""
