"""Controls (select-before-operate, direct), tags and locked-out sections, for operators and above.

A command's outcome is the response body, with HTTP 200: ``selected`` /
``confirmed`` / ``accepted`` / ``timed_out`` / ``refused`` with the reason
(a tag, an interlock, another operator's selection, the device). Requests
naming a point or tag that does not exist are 404. Everything is audited
by the control service (or here, for what never reaches it).

``GET /api/control/faults`` lists the sections the ``locked-out section``
interlock protects (:mod:`server.interlocks`; empty without a network
model); ``POST /api/control/faults/{device}/release`` is an operator's word
that the fault behind a tripped device is repaired (audited, with the
reason): closing onto its section is allowed again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from protocols.base import CommandResult
from scada.control import Selection, Tag
from server.api.deps import ApiContext, Ctx, Operator, Viewer
from server.api.schemas import (
    POINT_NAME,
    CancelIn,
    CommandOut,
    DirectIn,
    ExecuteIn,
    FaultOut,
    FaultReleaseIn,
    SelectIn,
    SelectOut,
    TagIn,
    TagOut,
)

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["control"])

#: a GIS id in a path (no slash, no NUL)
SWITCH_ID = r"^[^/\x00]{1,200}$"


def _known_point(ctx: ApiContext, point: str, operator: str, action: str, value: float) -> None:
    if point not in ctx.cc.pointdb:
        ctx.cc.audit(operator, action, "refused: unknown point", point, f"value={value:g}")
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown point {point!r}")


def _command_out(result: CommandResult) -> CommandOut:
    return CommandOut(status=result.status, reason=result.reason)


@router.post("/control/select", response_model=SelectOut, responses={404: {}})
async def select(body: SelectIn, session: Operator, ctx: Ctx) -> SelectOut:
    """Reserve a point for the caller with the intended value; execute or cancel follows."""
    _known_point(ctx, body.point, session.username, "select", body.value)
    sel = ctx.cc.control.select(body.point, body.value, session.username)
    if isinstance(sel, Selection):
        return SelectOut(
            status="selected",
            selection_id=sel.id,
            point=sel.point,
            value=sel.value,
            expires_in_s=ctx.cc.control.select_timeout_s,
        )
    return SelectOut(status="refused", reason=sel.reason, point=body.point, value=body.value)


@router.post("/control/execute", response_model=CommandOut)
async def execute(body: ExecuteIn, session: Operator, ctx: Ctx) -> CommandOut:
    """Execute the caller's selection; waits for check-back (confirmed) or its timeout."""
    return _command_out(await ctx.cc.control.execute(body.selection_id, session.username))


@router.post("/control/cancel", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
async def cancel(body: CancelIn, session: Operator, ctx: Ctx) -> Response:
    if not ctx.cc.control.cancel(body.selection_id, session.username):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"selection_id {body.selection_id}: no such selection"
        )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/control/direct", response_model=CommandOut, responses={404: {}})
async def direct(body: DirectIn, session: Operator, ctx: Ctx) -> CommandOut:
    """Command without selection (same tag and interlock checks)."""
    _known_point(ctx, body.point, session.username, "command", body.value)
    return _command_out(
        await ctx.cc.control.direct(body.point, body.value, session.username, body.mode)
    )


@router.get("/control/faults", response_model=list[FaultOut])
async def faults(_: Viewer, ctx: Ctx) -> list[FaultOut]:
    """Sections locked out after a trip: closing a switch onto one is refused."""
    interlocks = ctx.cc.network_interlocks
    if interlocks is None:
        return []
    return [
        FaultOut(
            device=f.device,
            since=f.since,
            tripped_out=f.tripped_out,
            evidence_fpis=list(f.evidence_fpis),
            indicating_fpis=list(f.indicating_fpis),
            upstream_fpi=f.upstream_fpi,
            buses=list(f.buses),
            lines=list(f.lines),
            warnings=list(f.warnings),
        )
        for f in interlocks.faults()
    ]


@router.post(
    "/control/faults/{device}/release",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {}},
)
async def release_fault(
    device: Annotated[str, Path(pattern=SWITCH_ID, description="the tripped device's GIS id")],
    body: FaultReleaseIn,
    session: Operator,
    ctx: Ctx,
) -> Response:
    """Declare the fault behind a tripped device repaired: its section may be energised."""
    interlocks = ctx.cc.network_interlocks
    if interlocks is None or not interlocks.release(device):
        ctx.cc.audit(session.username, "fault release", "refused: no locked-out section", device)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no section is locked out behind {device!r}"
        )
    ctx.cc.audit(session.username, "fault release", "released", device, body.reason)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _tag_out(tag: Tag) -> TagOut:
    return TagOut(
        id=tag.id,
        target=tag.target,
        kind=tag.kind,
        owner=tag.owner,
        reason=tag.reason,
        time=tag.time,
    )


@router.get("/tags", response_model=list[TagOut])
async def list_tags(
    _: Viewer,
    ctx: Ctx,
    target: Annotated[
        str | None,
        Query(pattern=POINT_NAME, description="tags on this point or its device"),
    ] = None,
) -> list[TagOut]:
    return [_tag_out(t) for t in ctx.cc.control.tags(target)]


@router.post(
    "/tags", response_model=TagOut, status_code=status.HTTP_201_CREATED, responses={404: {}}
)
async def place_tag(body: TagIn, session: Operator, ctx: Ctx) -> TagOut:
    """Tag a point or a whole device (do_not_operate and hold block commands)."""
    config = ctx.cc.fep.config
    if body.target not in ctx.cc.pointdb and (config is None or body.target not in config.devices):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"target {body.target!r} is neither a point nor a device"
        )
    return _tag_out(ctx.cc.control.place_tag(body.target, body.kind, session.username, body.reason))


@router.delete("/tags/{tag_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}})
async def remove_tag(
    tag_id: Annotated[int, Path(ge=0, le=2**63 - 1)], session: Operator, ctx: Ctx
) -> Response:
    if not ctx.cc.control.remove_tag(tag_id, session.username):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"tag {tag_id} does not exist")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
