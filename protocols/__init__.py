"""RTU-facing protocol adapters: the only package that imports c104, opendnp3 and pymodbus.

``protocols.base`` holds the protocol-neutral contract; each subpackage
(``iec104``, ``dnp3``, ``modbus``) provides a ``Master`` and an ``Outstation``.
"""
