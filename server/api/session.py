"""Login, logout, the caller's own account, and health."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from server.api.deps import Ctx, Viewer
from server.api.schemas import HealthOut, LoginIn, LoginOut, PasswordIn, UserOut

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["session"])


@router.post(
    "/login",
    response_model=LoginOut,
    responses={401: {"description": "unknown user, wrong password or disabled account"}},
)
def login(body: LoginIn, ctx: Ctx) -> LoginOut:
    """Exchange a user name and password for a bearer token (audited either way)."""
    user = ctx.cc.users.authenticate(body.username, body.password)
    if user is None:
        ctx.cc.audit(body.username, "login", "refused: bad credentials or disabled")
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "login refused: unknown user, wrong password or disabled"
        )
    session = ctx.sessions.issue(user)
    ctx.cc.audit(user.username, "login", "ok", details=f"role={user.role}")
    return LoginOut(
        token=session.token,
        expires_s=session.expires_s,
        username=session.username,
        role=session.role,
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(session: Viewer, ctx: Ctx) -> Response:
    ctx.sessions.revoke(session.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=UserOut)
def me(session: Viewer, ctx: Ctx) -> UserOut:
    user = ctx.cc.users.get(session.username)
    return UserOut(
        username=user.username,
        role=user.role,
        enabled=user.enabled,
        created_s=user.created_s,
        updated_s=user.updated_s,
    )


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"description": "the old password is wrong"}},
)
def change_password(body: PasswordIn, session: Viewer, ctx: Ctx) -> Response:
    """Change one's own password (the old one is needed); every session of the user ends."""
    if ctx.cc.users.authenticate(session.username, body.old_password) is None:
        ctx.cc.audit(session.username, "password change", "refused: wrong old password")
        raise HTTPException(status.HTTP_403_FORBIDDEN, "old_password is wrong")
    ctx.cc.users.update(session.username, password=body.new_password)
    ctx.sessions.revoke_user(session.username)
    ctx.cc.audit(session.username, "password change", "changed", target=session.username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/health", response_model=HealthOut)
async def health(ctx: Ctx) -> HealthOut:
    """Liveness without login: device and point counts only."""
    fep = ctx.cc.fep
    return HealthOut(
        status="ok",
        devices=len(fep.device_names()),
        devices_connected=fep.connected_count(),
        points=len(ctx.cc.pointdb),
        consoles=ctx.cc.push.consoles,
    )
