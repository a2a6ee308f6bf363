"""Look up an adapter's Master/Outstation class by protocol name, importing it on first use."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Literal

from protocols.base import Master, Outstation, ProtocolError

Protocol = Literal["iec104", "dnp3", "modbus"]
PROTOCOLS: tuple[Protocol, ...] = ("iec104", "dnp3", "modbus")


def _module(protocol: str) -> ModuleType:
    if protocol not in PROTOCOLS:
        expected = ", ".join(PROTOCOLS)
        raise ProtocolError(f"unknown protocol {protocol!r}; expected one of {expected}")
    return importlib.import_module(f"protocols.{protocol}")


def master_class(protocol: str) -> type[Master]:
    cls: type[Master] = _module(protocol).MasterImpl
    return cls


def outstation_class(protocol: str) -> type[Outstation]:
    cls: type[Outstation] = _module(protocol).OutstationImpl
    return cls
