"""Modbus TCP adapter (pymodbus 3.16, asyncio): a master for the FEP and an outstation for the rig.

Contract, on top of :mod:`protocols.base`:

- ``LinkSpec.address`` is the unit (device) id. ``PointSpec.table`` and the
  0-based ``PointSpec.address`` place a monitored value; ``dtype``,
  ``byte_order`` and ``word_order`` say how registers decode. Kinds: SINGLE is a
  bit (or a register, non-zero = 1), DOUBLE is a register holding a
  DoubleState or two consecutive bits (OFF contact, ON contact), ANALOG and
  COUNTER are registers decoded by ``dtype``. :mod:`.codec` holds every
  encoding, :mod:`.layout` every location and the read planning.
- Controls: SINGLE/DOUBLE write a coil (or a register: 1/0, DoubleState 2/1),
  STEP pulses 1 then 0 on the raise (``control.address``) or lower
  (``control.address_lower``) output, SETPOINT writes ``control.dtype``
  registers in the point's byte/word order. The default ``control.table`` is
  coil, holding register for SETPOINT. There is no select-before-operate:
  SBO is operated directly. Every write is checked back by reading it.
- Modbus has no quality and no time tag: ``source_time`` is always None;
  Quality.INVALID travels as the type's SunSpec "not available" value.
- The pymodbus library is imported only here.
"""

from protocols.modbus.errors import ModbusConfigError, ModbusEncodeError
from protocols.modbus.master import ModbusMaster
from protocols.modbus.outstation import ModbusOutstation

MasterImpl = ModbusMaster
OutstationImpl = ModbusOutstation

__all__ = [
    "MasterImpl",
    "ModbusConfigError",
    "ModbusEncodeError",
    "ModbusMaster",
    "ModbusOutstation",
    "OutstationImpl",
]
