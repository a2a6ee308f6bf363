"""The historian: archives, events, alarms, SOE, energy, breakers, outages, audit.

Contract:
- :class:`Historian` owns one SQLAlchemy database (SQLite by default, WAL and
  ``synchronous=NORMAL``; PostgreSQL by a ``postgresql+psycopg://`` URL). Opening it
  runs the Alembic migrations packaged in ``migrations/`` up to the newest
  revision; the schema is in :mod:`scada.historian.schema`.
- :class:`Archiver` subscribes to the point database, the event log and the
  alarm manager and writes in batches on its own thread (see its module for
  what is archived and the durability guarantee).
- Energy blocks (:mod:`~scada.historian.energy`) and reliability indices
  (:mod:`~scada.historian.reliability`) are computed from archived data.
- Every error is a :class:`HistorianError` naming the database, point,
  breaker or outage concerned.
"""

from scada.historian.archiver import Archiver, ArchiverStats, DurableRecord
from scada.historian.db import HistorianError, create_historian_engine, migrate
from scada.historian.energy import (
    EnergyBlock,
    EnergyQuality,
    FeederMeter,
    compute_day,
    energy_blocks,
)
from scada.historian.reliability import ReliabilityIndices, indices, reliability
from scada.historian.store import (
    Aggregate,
    AlarmHistoryRecord,
    AuditRecord,
    BreakerStatus,
    EventRecord,
    Historian,
    Outage,
    Sample,
    SoeRecord,
    WriteBatch,
)

__all__ = [
    "Aggregate",
    "AlarmHistoryRecord",
    "Archiver",
    "ArchiverStats",
    "AuditRecord",
    "BreakerStatus",
    "DurableRecord",
    "EnergyBlock",
    "EnergyQuality",
    "EventRecord",
    "FeederMeter",
    "Historian",
    "HistorianError",
    "Outage",
    "ReliabilityIndices",
    "Sample",
    "SoeRecord",
    "WriteBatch",
    "compute_day",
    "create_historian_engine",
    "energy_blocks",
    "indices",
    "migrate",
    "reliability",
]
