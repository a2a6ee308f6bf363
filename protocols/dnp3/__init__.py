"""DNP3 (IEEE 1815) adapter on yadnp3 (``opendnp3``): a master and an outstation.

Contract (see ``protocols.base`` for the protocol-neutral part):

- Point mapping: ``PointSpec.address`` is the DNP3 index within the input
  type of the point's kind: SINGLE -> binary input (g1/g2), DOUBLE ->
  double-bit binary (g3/g4), ANALOG -> analog input (g30/g32, read as
  float), COUNTER -> counter (g20/g22). Monitored SETPOINT points read back
  as analog inputs; monitored COMMAND points by their control kind.
- Values: binary 0/1, double :class:`~protocols.base.DoubleState` code 0..3,
  analog float, counter int.
- Controls (``PointSpec.control``): SINGLE -> CROB LATCH_ON/LATCH_OFF,
  DOUBLE -> CROB PULSE_ON with trip/close code CLOSE/TRIP, STEP -> CROB
  PULSE_ON on ``address`` (raise, +1) or ``address_lower`` (lower, -1),
  SETPOINT -> analog output g41v3 (float32). ``CommandRequest.mode`` SBO ->
  select-before-operate, DIRECT -> direct operate.
- Quality: DNP3 flags <-> :class:`~protocols.base.Quality`, see
  :func:`protocols.dnp3.codec.quality_from_flags`.
- Link addresses: the master uses ``LinkSpec.master_address`` as its own
  address and ``LinkSpec.address`` as the outstation's; the outstation the
  reverse.
- Threads: one opendnp3 ``DNP3Manager`` per process is shared by every
  master and outstation; the first ``start()`` creates it, the last
  ``stop()`` shuts it down (``protocols.dnp3._runtime``). Importing this
  package starts nothing. Callbacks run on the manager's threads and only
  hand data to the :class:`~protocols.base.UpdateSink` or the event loop.
"""

from protocols.dnp3.master import MasterImpl
from protocols.dnp3.outstation import OutstationImpl

__all__ = ["MasterImpl", "OutstationImpl"]
