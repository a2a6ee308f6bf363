"""The online ADMS for consoles: ``/api/adms`` (estimate, plans, reconfiguration, volt-VAR).

Contract (``/work/notes/adms_api.md``; the service is :mod:`server.adms`):
- ``GET /api/adms/estimate`` (viewer): the latest state estimate, 404
  ``no estimate yet`` before the first; ``POST`` (operator) runs one now.
- ``GET /api/adms/plans`` (viewer): open plans and the last closed ones,
  newest first; ``GET /api/adms/plans/{id}``.
- ``POST /api/adms/plans/{id}/approve`` (operator): execute every remaining
  step (in the background: the plan comes back ``executing``, progress is
  pushed); ``.../step``: execute the next step and return the plan after it;
  ``.../reject`` (optional body ``{"reason": str}``): close it unexecuted.
  404 for an unknown plan, 409 when its state does not allow it (the
  message says which state). Every one is audited, refusals too.
- ``POST /api/adms/reconfigure`` and ``POST /api/adms/voltvar``
  (``{"objective": "losses"|"cvr"}``) (operator): a proposed plan from the
  live state; 409 with the reason when the study cannot run.
- On a server without a network model every route answers 404 saying so.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, status
from pydantic import BaseModel, ConfigDict, Field

from adms.errors import AdmsError
from models.errors import ModelError
from server.adms import AdmsService, Plan, PlanStateError, UnknownPlanError
from server.api.deps import ApiContext, Ctx, Operator, Viewer

__all__ = ["router"]

router = APIRouter(prefix="/api/adms", tags=["adms"])

PlanId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no such plan, or no network"}}
_PLAN_ERRORS: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    409: {"description": "the plan's state does not allow it"},
}


_STUDY_ERRORS: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    409: {"description": "the study cannot run on the live network (the message says why)"},
}


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500)


class VoltVarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: Literal["losses", "cvr"] = "losses"


def _service(ctx: ApiContext) -> AdmsService:
    adms = ctx.cc.adms
    if adms is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "no network model loaded on this server: the ADMS applications need one "
            "(settings 'network' or server --network)",
        )
    return adms


async def _acting(act: Awaitable[Plan]) -> dict[str, Any]:
    try:
        plan = await act
    except UnknownPlanError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0])) from None
    except PlanStateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return plan.view()


async def _proposing(what: str, act: Awaitable[Plan]) -> dict[str, Any]:
    try:
        plan = await act
    except (AdmsError, ModelError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{what} failed: {exc}") from None
    return plan.view()


@router.get("/estimate", responses={404: {"description": "no estimate yet, or no network"}})
async def latest_estimate(_: Viewer, ctx: Ctx) -> dict[str, Any]:
    """The latest state estimate."""
    estimate = _service(ctx).latest_estimate
    if estimate is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no estimate yet")
    return estimate


@router.post("/estimate", responses=_NOT_FOUND)
async def run_estimate(session: Operator, ctx: Ctx) -> dict[str, Any]:
    """Estimate the state now, from a fresh snapshot of the point database."""
    adms = _service(ctx)
    result = await adms.run_estimate("demand")
    ctx.cc.audit(
        session.username,
        "adms estimate",
        "converged" if result["converged"] else f"not converged: {result['error']}",
        target=f"estimate {result['id']}",
    )
    return result


@router.get("/plans", responses=_NOT_FOUND)
async def plans(_: Viewer, ctx: Ctx) -> list[dict[str, Any]]:
    """Open plans and the last closed ones, newest first."""
    return _service(ctx).plan_views()


@router.get("/plans/{plan_id}", responses=_NOT_FOUND)
async def plan(plan_id: PlanId, _: Viewer, ctx: Ctx) -> dict[str, Any]:
    adms = _service(ctx)
    try:
        return adms.plan(plan_id).view()
    except UnknownPlanError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc.args[0])) from None


@router.post("/plans/{plan_id}/approve", responses=_PLAN_ERRORS)
async def approve(plan_id: PlanId, session: Operator, ctx: Ctx) -> dict[str, Any]:
    """Execute every remaining step (select-before-operate with check-back, as the caller)."""
    return await _acting(_service(ctx).approve(plan_id, session.username))


@router.post("/plans/{plan_id}/step", responses=_PLAN_ERRORS)
async def step(plan_id: PlanId, session: Operator, ctx: Ctx) -> dict[str, Any]:
    """Execute the next step only; returns the plan after it."""
    return await _acting(_service(ctx).step(plan_id, session.username))


@router.post("/plans/{plan_id}/reject", responses=_PLAN_ERRORS)
async def reject(
    plan_id: PlanId,
    session: Operator,
    ctx: Ctx,
    body: Annotated[RejectIn | None, Body()] = None,
) -> dict[str, Any]:
    """Close the plan without executing its remaining steps."""
    reason = body.reason if body is not None else None
    return await _acting(_service(ctx).reject(plan_id, session.username, reason))


@router.post("/reconfigure", responses=_STUDY_ERRORS)
async def reconfigure(session: Operator, ctx: Ctx) -> dict[str, Any]:
    """Reconfiguration of the live network for least losses, as a proposed plan."""
    return await _proposing(
        "reconfiguration", _service(ctx).propose_reconfiguration(session.username)
    )


@router.post("/voltvar", responses=_STUDY_ERRORS)
async def voltvar(
    session: Operator, ctx: Ctx, body: Annotated[VoltVarIn | None, Body()] = None
) -> dict[str, Any]:
    """Volt-VAR optimisation of the live network, as a proposed plan."""
    objective = body.objective if body is not None else "losses"
    return await _proposing("volt-VAR", _service(ctx).propose_voltvar(session.username, objective))
