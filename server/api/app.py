"""The FastAPI application over one :class:`~server.wiring.ControlCentre`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from scada.alarms import AlarmError, UnknownAlarmError
from scada.historian import HistorianError
from scada.pointdb import UnknownPointError
from server.api import admin, adms, control, network, realtime, records, session, ws
from server.api.deps import ApiContext
from server.auth import Sessions, UnknownUserError, UserError, UserExistsError
from server.wiring import ControlCentre

__all__ = ["create_app"]

DESCRIPTION = """\
The pyadms control centre's API for operator consoles and tools.

Log in with `POST /api/login` and send the token as `Authorization: Bearer <token>`.
Roles: viewer < operator < engineer < admin. Commands and alarm acts need
operator, configuration reload and the audit trail engineer, user accounts admin.
The online ADMS (state estimate, FLISR / reconfiguration / volt-VAR plans) is
under `/api/adms` when the server has a network model.
Live point, alarm, topology and ADMS changes come over the WebSocket `/api/ws`
(see `server/api/ws.py`).
"""

log = logging.getLogger(__name__)

_Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def _message(exc: Exception) -> str:
    # KeyError subclasses would repr their message in str()
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _handler(code: int) -> _Handler:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": _message(exc)}, status_code=code)

    return handle


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    # the details (URL, SQL) are for the server's log, not for API callers
    log.error("database error serving a request: %s", exc)
    return JSONResponse(
        {"detail": "database unavailable: the server log has the details"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


def create_app(cc: ControlCentre, sessions: Sessions | None = None) -> FastAPI:
    """The API of ``cc``; sessions expire after the settings' ``api.session_ttl_s``."""
    app = FastAPI(title="pyadms control centre", version="1", description=DESCRIPTION)
    app.state.ctx = ApiContext(cc, sessions or Sessions(cc.settings.api.session_ttl_s))
    for module in (session, realtime, records, control, admin, network, adms, ws):
        app.include_router(module.router)
    app.add_exception_handler(UnknownPointError, _handler(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(UnknownAlarmError, _handler(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(AlarmError, _handler(status.HTTP_409_CONFLICT))
    app.add_exception_handler(UnknownUserError, _handler(status.HTTP_404_NOT_FOUND))
    app.add_exception_handler(UserExistsError, _handler(status.HTTP_409_CONFLICT))
    # the database itself failing is the server's fault, and says so
    app.add_exception_handler(UserError, _unavailable)
    app.add_exception_handler(HistorianError, _unavailable)
    return app
