"""Configuration (engineers and above) and user accounts (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status
from fastapi.responses import JSONResponse

from scada.config import ConfigError
from server.api.deps import Admin, Ctx, Engineer, Viewer
from server.api.schemas import (
    USERNAME,
    ConfigErrorOut,
    ConfigIssueOut,
    ConfigOut,
    ReloadOut,
    UserIn,
    UserOut,
    UserPatch,
)
from server.auth import User

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["administration"])

UserPath = Annotated[str, Path(pattern=USERNAME)]


# ------------------------------------------------------------------- config
@router.get("/config", response_model=ConfigOut)
async def config_summary(_: Viewer, ctx: Ctx) -> ConfigOut:
    config = ctx.cc.fep.config
    return ConfigOut(
        files=[str(p) for p in ctx.cc.config_paths],
        devices=len(config.devices) if config else 0,
        templates=len(config.templates) if config else 0,
        points=len(ctx.cc.pointdb),
    )


@router.post(
    "/config/reload",
    response_model=ReloadOut,
    responses={422: {"model": ConfigErrorOut, "description": "the files have errors"}},
)
async def reload(session: Engineer, ctx: Ctx) -> Any:
    """Re-read the scada configuration files and apply them without a restart.

    Files with errors change nothing: the answer is 422 with every issue
    (file, device, template, point, key, message).
    """
    try:
        report = await ctx.cc.reload()
    except ConfigError as exc:
        n = len(exc.issues)
        ctx.cc.audit(session.username, "config reload", f"refused: {n} issue(s)", "", str(exc))
        body = ConfigErrorOut(
            detail=f"configuration not reloaded: {n} issue(s); the running one is kept",
            issues=[
                ConfigIssueOut(
                    file=i.file,
                    message=i.message,
                    device=i.device,
                    template=i.template,
                    point=i.point,
                    key=i.key,
                )
                for i in exc.issues
            ],
        )
        return JSONResponse(body.model_dump(), status.HTTP_422_UNPROCESSABLE_CONTENT)
    ctx.cc.audit(session.username, "config reload", "applied", "", str(report))
    return ReloadOut(
        devices_added=report.devices_added,
        devices_removed=report.devices_removed,
        devices_changed=report.devices_changed,
        points_added=report.points_added,
        points_removed=report.points_removed,
    )


# -------------------------------------------------------------------- users
def _out(user: User) -> UserOut:
    return UserOut(
        username=user.username,
        role=user.role,
        enabled=user.enabled,
        created_s=user.created_s,
        updated_s=user.updated_s,
    )


@router.get("/users", response_model=list[UserOut])
def list_users(_: Admin, ctx: Ctx) -> list[UserOut]:
    return [_out(u) for u in ctx.cc.users.accounts()]


@router.post(
    "/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, responses={409: {}}
)
def create_user(body: UserIn, session: Admin, ctx: Ctx) -> UserOut:
    user = ctx.cc.users.create(body.username, body.password, body.role)
    ctx.cc.audit(session.username, "user create", "created", body.username, f"role={body.role}")
    return _out(user)


@router.get("/users/{username}", response_model=UserOut, responses={404: {}})
def get_user(username: UserPath, _: Admin, ctx: Ctx) -> UserOut:
    return _out(ctx.cc.users.get(username))


@router.patch("/users/{username}", response_model=UserOut, responses={404: {}, 409: {}})
def update_user(username: UserPath, body: UserPatch, session: Admin, ctx: Ctx) -> UserOut:
    """Change a user's role, password or enabled flag; the user's sessions end.

    Admins cannot demote or disable themselves, nor set their own password
    here (``POST /api/me/password`` asks for the old one): 409.
    """
    if username == session.username and (
        body.password is not None
        or body.enabled is False
        or (body.role is not None and body.role != session.role)
    ):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"user {username!r}: an admin cannot demote, disable or set the password of their "
            "own account here (use POST /api/me/password)",
        )
    user = ctx.cc.users.update(
        username, role=body.role, password=body.password, enabled=body.enabled
    )
    if username != session.username:
        ctx.sessions.revoke_user(username)
    changed = ", ".join(
        f"{k}={'***' if k == 'password' else v}"
        for k, v in body.model_dump(exclude_none=True).items()
    )
    ctx.cc.audit(session.username, "user update", "updated", username, changed)
    return _out(user)


@router.delete(
    "/users/{username}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}, 409: {}}
)
def delete_user(username: UserPath, session: Admin, ctx: Ctx) -> Response:
    """Remove an account and end its sessions (not one's own: 409)."""
    if username == session.username:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"user {username!r}: an admin cannot remove their own account"
        )
    ctx.cc.users.delete(username)
    ctx.sessions.revoke_user(username)
    ctx.cc.audit(session.username, "user delete", "deleted", username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
