"""The one opendnp3 ``DNP3Manager`` of a process, shared by every DNP3 master and outstation.

Sharing: :func:`acquire_manager` hands out the manager and counts its users;
:func:`release_manager` gives it back and shuts it down (joining its threads)
when the last user leaves. The first ``start()`` of a master or outstation
creates it, the last ``stop()`` destroys it, so importing this package starts
nothing. The manager runs ``min(2, cpu_count)`` I/O threads for *all*
channels: every callback into Python holds the GIL anyway, so more threads
would only contend for it.

opendnp3 log messages at ERROR level go to the ``protocols.dnp3`` logger.
Warnings are not forwarded: the library warns on every failed reconnect
attempt and on every outstation that refuses unsolicited mode, which would
flood the log during an outage; link state is reported once by the master.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import opendnp3

__all__ = ["LOG_LEVELS", "acquire_manager", "release_manager"]

_log = logging.getLogger("protocols.dnp3")

#: log levels every channel is created with (only errors reach Python)
LOG_LEVELS = opendnp3.LogLevels(opendnp3.flags.ERR)


class _LogBridge(opendnp3.ILogHandler):
    """Forwards opendnp3 log lines to :mod:`logging`; runs on opendnp3 threads."""

    def __init__(self) -> None:
        super().__init__()

    def log(self, module: Any, id: str, level: Any, location: str, message: str) -> None:
        try:
            _log.error("%s: %s", id, message)
        except Exception:  # noqa: S110 - a failing log call must never unwind into C++
            pass


_lock = threading.Lock()
_manager: Any = None
_log_bridge: _LogBridge | None = None
_users = 0


def acquire_manager() -> Any:
    """Return the process-wide ``DNP3Manager``, creating it for the first user."""
    global _manager, _log_bridge, _users
    with _lock:
        if _manager is None:
            _log_bridge = _LogBridge()
            _manager = opendnp3.DNP3Manager(min(2, os.cpu_count() or 1), _log_bridge)
        _users += 1
        return _manager


def release_manager() -> None:
    """Give back one lease; the last one shuts the manager down.

    Blocks while opendnp3 joins its threads: call it from an executor, not
    from the event loop.
    """
    global _manager, _log_bridge, _users
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0 and _manager is not None:
            _manager.Shutdown()
            _manager = None
            _log_bridge = None
