"""Wiring of the control centre: FEPs, point database, alarms, historian, control, users.

Contract:
- :class:`ControlCentre` composes, for one scada configuration and one
  :class:`~server.settings.ServerSettings`: the point database, the event log,
  the FEP (protocol adapters by device protocol), the alarm manager, the
  historian with its archiver, the control service, the user store and the
  push hub for consoles. The API (:mod:`server.api`) is served on top of it.
- With a network model (``network=`` or settings ``network``) it also keeps
  :attr:`ControlCentre.topology`, a :class:`~server.topology.TopologyFeed`
  over the model synced from the point database at start (with
  :attr:`ControlCentre.network_interlocks`, :mod:`server.interlocks`, on the
  control service, and the breakers and reclosers of :mod:`server.breakers`
  in the breaker status table and as the alarm manager's breakers), and
  :attr:`ControlCentre.adms`, the online ADMS (:class:`server.adms.AdmsService`,
  started after the FEP and stopped before it); without one all three are
  None (SCADA only).
- Without settings (tests, the demo) the historian is a temporary SQLite file
  removed on :meth:`ControlCentre.stop`; the same components run either way.
- Every command through the FEP, from the control service or not, is first
  announced to the alarm manager (:meth:`scada.alarms.AlarmManager.expect_command`),
  so the status change it causes is a commanded change, not an alarm.
- Control audit records go to the historian's append-only audit trail,
  committed before the control call returns.
- On first start with an empty users table an admin account is created
  (settings ``users``): with the password from the environment variable, or a
  generated one left in :attr:`ControlCentre.bootstrap_password` for the CLI
  to print once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from argon2 import PasswordHasher

from models.loader import load_network
from models.network import NetworkModel
from models.topology import TopologyProcessor
from protocols.base import (
    LinkListener,
    LinkSpec,
    Master,
    PointSpec,
    UpdateSink,
)
from protocols.registry import master_class
from scada.alarms import AlarmManager
from scada.config import ScadaConfig, load_config
from scada.control import AuditRecord, ControlService
from scada.events import EventLog
from scada.fep import FrontEnd, ReloadReport
from scada.historian import Archiver, Historian
from scada.pointdb import PointDB
from server.adms import AdmsService
from server.auth import UserStore
from server.breakers import ProtectiveDevices
from server.interlocks import NetworkInterlocks
from server.push import PushHub
from server.settings import ServerSettings, load_settings
from server.topology import TopologyFeed

__all__ = ["ControlCentre", "master_factory"]

log = logging.getLogger(__name__)

#: an announced command's status change counts as commanded this long past its check-back timeout
_EXPECT_MARGIN_S = 5.0


def master_factory(
    protocol: str,
    link: LinkSpec,
    points: Sequence[PointSpec],
    sink: UpdateSink,
    listener: LinkListener,
) -> Master:
    """The FEP's master factory: picks the adapter for the device's protocol."""
    return master_class(protocol)(link, points, sink, listener)


class ControlCentre:
    """Everything the headless server runs, for one configuration."""

    def __init__(
        self,
        config: ScadaConfig,
        config_paths: Sequence[str | Path] = (),
        settings: ServerSettings | None = None,
        network: NetworkModel | None = None,
    ) -> None:
        self.settings = settings or ServerSettings()
        if network is None and self.settings.network is not None:
            network = load_network(self.settings.network)
        #: the network model (GIS-derived), None for a SCADA-only server
        self.network = network
        #: the live topology of :attr:`network`, from :meth:`start` on
        self.topology: TopologyFeed | None = None
        self.config_paths = [Path(p) for p in config_paths]
        self.pointdb = PointDB(capacity=max(1024, config.point_count))
        self.events = EventLog()
        self.alarms = AlarmManager(self.pointdb, self.events)
        self.fep = FrontEnd(
            self.pointdb,
            self.events,
            master_factory,
            announce=lambda point, value, timeout_s: self.alarms.expect_command(
                point, value, timeout_s + _EXPECT_MARGIN_S
            ),
        )
        self._tmpdir: str | None = None
        url = self.settings.database.url
        if url is None:
            self._tmpdir = tempfile.mkdtemp(prefix="pyadms-")
            url = f"sqlite:///{Path(self._tmpdir) / 'historian.sqlite'}"
        self.historian = Historian(url, schema=self.settings.database.db_schema)
        hs = self.settings.historian
        #: the network's breakers and reclosers with their points (None: SCADA only)
        self.protective = ProtectiveDevices(network, config) if network is not None else None
        breakers = self.protective
        self.archiver = Archiver(
            self.historian,
            self.pointdb,
            self.events,
            self.alarms,
            flush_interval_s=hs.flush_interval_s,
            snapshot_period_s=hs.snapshot_period_s,
            breakers=breakers.status_points if breakers is not None else (),
            breaker_customers=breakers.customers(hs.breaker_customers)
            if breakers is not None
            else hs.breaker_customers,
            breaker_feeders=breakers.feeders if breakers is not None else None,
        )
        for point in breakers.status_points if breakers is not None else ():
            self.alarms.set_downstream(point)  # an uncommanded opening is a TRIP alarm
        cs = self.settings.control
        self.control = ControlService(
            self.fep, self._audit_control, select_timeout_s=cs.select_timeout_s
        )
        #: closing onto locked-out sections and paralleling feeders (with a network)
        self.network_interlocks = (
            NetworkInterlocks(
                breakers.graph,
                self.pointdb,
                allow_parallel=cs.allow_parallel,
                allow_same_substation=cs.allow_parallel_same_substation,
                allow_in_orders=cs.allow_parallel_in_orders,
            )
            if breakers is not None
            else None
        )
        if self.network_interlocks is not None:
            self.control.interlocks.extend(self.network_interlocks.rules)
        us = self.settings.users
        self.users = UserStore(
            self.historian.engine,
            PasswordHasher(time_cost=us.hash_time_cost, memory_cost=us.hash_memory_kib),
        )
        self.push = PushHub(
            self.pointdb,
            self.alarms,
            interval_s=self.settings.api.push_interval_s,
            keep_batches=self.settings.api.resume_batches,
        )
        #: the online ADMS applications (only with a network model)
        self.adms = (
            AdmsService(
                network,
                self.pointdb,
                lambda: self.fep.config,
                self.control,
                self.push,
                self.audit,
                self.settings.adms,
                self.network_interlocks,
            )
            if network is not None
            else None
        )
        self._reload_lock = asyncio.Lock()
        #: the generated password of the admin account created on this start, if any
        self.bootstrap_password: str | None = None
        self._initial = config

    @classmethod
    def from_files(cls, paths: Sequence[str | Path]) -> ControlCentre:
        """A control centre for scada configuration files, with default server settings."""
        return cls(load_config(paths), paths)

    @classmethod
    def from_settings(cls, settings: ServerSettings | str | Path) -> ControlCentre:
        """A control centre for a server configuration (a file, or settings already read)."""
        if not isinstance(settings, ServerSettings):
            settings = load_settings(settings)
        return cls(load_config(settings.scada), settings.scada, settings)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Restore alarms, start archiving and pushing, then connect to the field."""
        self._bootstrap_users()
        # points exist before any value arrives, so restored alarms find their points
        self.pointdb.define(p for dp in self._initial.expand() for p in dp.points)
        self.alarms.restore(self.historian.listed_alarms())
        self.archiver.start()
        await self.alarms.start()
        await self.push.start()
        await self.fep.start(self._initial)
        if self.network is not None:
            self.topology = TopologyFeed(
                TopologyProcessor(self.network), self.pointdb, self._initial
            )
            self.topology.sync()
            if self.network_interlocks is not None:
                self.network_interlocks.start(self.topology)
        if self.adms is not None:
            await self.adms.start()

    async def stop(self) -> None:
        if self.adms is not None:
            await self.adms.stop()
        if self.network_interlocks is not None:
            self.network_interlocks.close()
        if self.topology is not None:
            self.topology.close()
        await self.fep.stop()
        await self.push.stop()
        await self.alarms.close()
        self.archiver.stop()
        self.historian.close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    async def reload(self) -> ReloadReport:
        """Re-read the configuration files and apply them without a restart.

        A file with errors raises :class:`scada.config.ConfigError` and the
        running configuration stays as it was. Reloads run one at a time.
        """
        async with self._reload_lock:
            new = load_config(self.config_paths)
            report = await self.fep.apply_config(new)
        log.info("configuration reloaded: %s", report)
        return report

    # -------------------------------------------------------------- helpers
    def audit(
        self,
        user: str,
        action: str,
        result: str,
        target: str = "",
        details: str = "",
        time_s: float | None = None,
    ) -> None:
        """Append one record to the audit trail (committed when this returns).

        Texts are cut to the audit columns' widths and NUL characters replaced
        (PostgreSQL refuses both; an API caller may send either).
        """
        self.historian.audit(
            _text(user, 100),
            _text(action, 100),
            _text(result, 200),
            target=_text(target, 200),
            details=_text(details, None),
            time_s=time_s,
        )

    def _audit_control(self, record: AuditRecord) -> None:
        self.audit(
            record.operator, record.action, record.result, record.target, record.detail, record.time
        )

    def _bootstrap_users(self) -> None:
        us = self.settings.users
        password = os.environ.get(us.admin_password_env)
        generated = password is None
        if password is None:
            password = secrets.token_urlsafe(12)
        if self.users.bootstrap(us.admin, password):
            self.audit("system", "user create", "created", target=us.admin, details="role=admin")
            if generated:
                self.bootstrap_password = password


def _text(s: str, width: int | None) -> str:
    return s.replace("\x00", "\ufffd")[:width]
