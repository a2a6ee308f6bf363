"""IEC 60870-5-104 adapter on c104 (lib60870): master (FEP side) and outstation (simulated RTU).

Contract (see ``protocols.base`` for the protocol-neutral part):

- Addresses: ``LinkSpec.address`` is the common address (1..65534),
  ``PointSpec.address`` the IOA of a monitored point, ``ControlSpec.address``
  the IOA its commands go to.
- Types: analog and monitored setpoints M_ME_NC_1 / M_ME_TF_1, single
  M_SP_NA_1 / M_SP_TB_1, double M_DP_NA_1 / M_DP_TB_1, counter M_IT_NA_1 /
  M_IT_TB_1, monitored STEP command points M_ST_NA_1 / M_ST_TB_1 (GI type /
  spontaneous type with CP56Time2a). The master accepts any monitoring type
  for any IOA, so GI and spontaneous types may differ per IOA (real RTUs do
  that); it also reads scaled and normalised measurands.
- Commands: SINGLE C_SC_NA_1, DOUBLE C_DC_NA_1, STEP C_RC_NA_1 (+1 higher,
  -1 lower), SETPOINT C_SE_NC_1; ``CommandRequest.mode`` picks
  select-before-operate or direct execute.
- Values: single 0/1, double :class:`~protocols.base.DoubleState` 0..3,
  analog float, counter int; quality and time mapping in
  :mod:`protocols.iec104.mapping`.
- Sharing and threads: masters of one ``host:port`` share one c104 client
  and TCP link, outstations of one ``host:port`` one c104 server (see
  :mod:`protocols.iec104.master` and :mod:`protocols.iec104.outstation`);
  both registries are per asyncio event loop and created on first start.
  c104 calls back on its own threads; those callbacks only decode and hand
  over to the :class:`~protocols.base.UpdateSink` or the event loop.

Measured (c104 2.2.1, 2-core VM, loopback, RTUs of 30 points; the VM was
shared with other jobs, so CPU figures are upper bounds):

- master: a link is two threads (c104 client + lib60870 receive thread, which
  polls every 0.1 s) and ~17-57 kB, plus ~1.5 kB per monitored IOA (see
  :mod:`protocols.iec104.master`). One FEP process that runs nothing but
  FEPs holds 1,000 RTUs on 100 links (p99 0.11 s at 1,000 changes/s, 0.17
  core, 175 MB) and 600 RTUs on 300 links (p99 0.13 s at 300 changes/s, 0.22
  core); with 500 links it aborted once the machine was overloaded (load
  40). Limit: c104 keeps a mutex locked while its thread waits for the GIL,
  and a c104 thread that waits more than 100 ms for such a mutex terminates
  the process ("Potential Deadlock: mutex ... waiting for lock > 100ms").
  More links per process mean more threads waiting for the GIL; long GIL
  holds in the same process (the control centre's JSON pushes, historian,
  ADMS) do the same, which is why FEP processes hosting c104 should run
  apart from the control centre (``pyadms bench acquisition`` does) and
  hold at most ~100-300 links.
- outstation: a started c104 server is 4.7 MB and two threads (its accept
  loop polls every 10 ms) plus one per connected master; 300 dedicated
  servers: 1.5 GB, 35-48 % CPU idle; 1000: 5 GB and 1.6 cores idle, too much
  for a 2-core rig. 1000 RTUs as 20 endpoints of 50 stations: rig ~430 MB.
"""

from protocols.iec104.master import MasterImpl
from protocols.iec104.outstation import OutstationImpl

__all__ = ["MasterImpl", "OutstationImpl"]
