"""What every route needs: the control centre, the caller's session and role checks.

Contract:
- Every route but ``POST /api/login`` and ``GET /api/health`` depends on
  :func:`require` with the lowest role allowed: no or an unknown/expired
  bearer token is 401; a role below the one needed is 403, and that refusal
  is written to the audit trail (who, which method and path, which role was
  needed) before the response is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server.auth import Role, Session, Sessions
from server.wiring import ControlCentre

__all__ = [
    "Admin",
    "ApiContext",
    "Ctx",
    "Engineer",
    "Operator",
    "Viewer",
    "context",
    "invalid",
    "require",
]


@dataclass
class ApiContext:
    """What the routes share; one per application."""

    cc: ControlCentre
    sessions: Sessions


async def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]

_bearer = HTTPBearer(auto_error=False, description="the token from POST /api/login")


async def current_session(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Session:
    """The caller's session; 401 without a live bearer token."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: log in with POST /api/login",
            headers={"WWW-Authenticate": "Bearer"},
        )
    session = ctx.sessions.get(credentials.credentials)
    if session is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or expired token: log in again with POST /api/login",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return session


def require(role: Role) -> Callable[..., Awaitable[Session]]:
    """A dependency admitting sessions of ``role`` or above (403, audited, otherwise)."""

    async def check(
        request: Request, ctx: Ctx, session: Annotated[Session, Depends(current_session)]
    ) -> Session:
        if session.role.allows(role):
            return session
        what = f"{request.method} {request.url.path}"
        ctx.cc.audit(
            session.username,
            "api",
            "refused: 403 forbidden",
            target=what,
            details=f"needs role {role} or above; {session.username} is {session.role}",
        )
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{what} needs role {role} or above; {session.username} is {session.role}",
        )

    return check


Viewer = Annotated[Session, Depends(require(Role.VIEWER))]
Operator = Annotated[Session, Depends(require(Role.OPERATOR))]
Engineer = Annotated[Session, Depends(require(Role.ENGINEER))]
Admin = Annotated[Session, Depends(require(Role.ADMIN))]


def invalid(where: str, name: str, message: str, value: object) -> RequestValidationError:
    """A 422 shaped like FastAPI's own: ``detail`` lists ``{loc, msg, type, input}``.

    ``where`` is ``"query"``, ``"path"`` or ``"body"``; ``name`` the field.
    """
    return RequestValidationError(
        [{"type": "value_error", "loc": (where, name), "msg": message, "input": value}]
    )
