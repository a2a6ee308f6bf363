"""Historian queries: events, SOE, history, breakers, outages, reliability, energy, audit.

These routes block on the database, so they are plain functions (FastAPI runs
them in its thread pool, off the event loop that runs the FEPs).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from scada.historian import energy_blocks, reliability
from server.api.deps import ApiContext, Ctx, Engineer, Operator, Viewer, invalid
from server.api.schemas import (
    DEVICE_NAME,
    POINT_NAME,
    USERNAME,
    AggregateOut,
    AuditOut,
    BreakerOut,
    EnergyBlockOut,
    EventOut,
    OutageOut,
    ReliabilityOut,
    SampleOut,
    SoeOut,
    TripInfoIn,
)
from server.api.timeparams import End, Limit, MaxPriority, Start

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["records"])

PointPath = Annotated[str, Path(pattern=POINT_NAME, description="<device>.<point>")]
Device = Annotated[str | None, Query(pattern=DEVICE_NAME)]
_DAY_S = 86400.0


def _window(start_s: float | None, end_s: float | None) -> None:
    if start_s is not None and end_s is not None and end_s < start_s:
        raise invalid("query", "end_s", f"end_s ({end_s:g}) is before start_s ({start_s:g})", end_s)


def _archived(ctx: ApiContext, point: str) -> None:
    """404 unless the point is configured now or has been archived."""
    if point not in ctx.cc.pointdb and point not in ctx.cc.historian.point_ids():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"point {point!r} is neither configured nor archived"
        )


@router.get("/events", response_model=list[EventOut])
def events(
    _: Viewer,
    ctx: Ctx,
    start_s: Start = None,
    end_s: End = None,
    device: Device = None,
    max_priority: MaxPriority = None,
    kind: Annotated[
        str | None, Query(pattern=r"^[a-z_]{1,32}$", description="link_lost, command, ...")
    ] = None,
    limit: Limit = 1000,
) -> list[Any]:
    """Archived events (link loss and recovery, commands, configuration), newest first."""
    _window(start_s, end_s)
    return list(
        ctx.cc.historian.events(
            start_s=start_s,
            end_s=end_s,
            device=device,
            max_priority=max_priority,
            kind=kind,
            limit=limit,
        )
    )


@router.get("/soe", response_model=list[SoeOut])
def soe(
    _: Viewer,
    ctx: Ctx,
    start_s: Start = None,
    end_s: End = None,
    device: Device = None,
    limit: Limit = 1000,
) -> list[Any]:
    """Sequence of events: status changes with device time stamps (ms), oldest first."""
    _window(start_s, end_s)
    return list(ctx.cc.historian.soe(start_s=start_s, end_s=end_s, device=device, limit=limit))


@router.get("/history/{point}", response_model=list[SampleOut], responses={404: {}})
def history(
    point: PointPath,
    _: Viewer,
    ctx: Ctx,
    start_s: Start = None,
    end_s: End = None,
    limit: Limit = 10_000,
) -> list[Any]:
    """Archived values of a point in ``[start_s, end_s)`` (default: the last day), oldest first."""
    end = time.time() if end_s is None else end_s
    start = end - _DAY_S if start_s is None else start_s
    _window(start, end)
    _archived(ctx, point)
    return list(ctx.cc.historian.history(point, start, end, limit=limit))


@router.get("/history/{point}/aggregate", response_model=list[AggregateOut], responses={404: {}})
def aggregate(
    point: PointPath,
    _: Viewer,
    ctx: Ctx,
    interval_s: Annotated[float, Query(ge=1, le=366 * _DAY_S, allow_inf_nan=False)],
    start_s: Start = None,
    end_s: End = None,
) -> list[Any]:
    """Min/max/average of a point's usable values per ``interval_s`` (default: the last day)."""
    end = time.time() if end_s is None else end_s
    start = end - _DAY_S if start_s is None else start_s
    _window(start, end)
    if (end - start) / interval_s > 100_000:
        raise invalid(
            "query",
            "interval_s",
            "more than 100000 intervals in the window; use a longer interval",
            interval_s,
        )
    _archived(ctx, point)
    return list(ctx.cc.historian.aggregate(point, start, end, interval_s))


@router.get("/breakers", response_model=list[BreakerOut])
def breakers(_: Viewer, ctx: Ctx) -> list[Any]:
    """Every breaker's current state and last trip."""
    return list(ctx.cc.historian.breakers())


@router.put(
    "/breakers/{point}/trip-info", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}}
)
def trip_info(point: PointPath, body: TripInfoIn, session: Operator, ctx: Ctx) -> Response:
    """Record the cause and/or the expected outage duration of a breaker's last trip."""
    if point not in {b.point for b in ctx.cc.historian.breakers()}:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"breaker {point!r} is not in the breaker table"
        )
    ctx.cc.historian.set_trip_info(
        point, cause=body.cause, expected_outage_s=body.expected_outage_s
    )
    ctx.cc.audit(
        session.username,
        "trip info",
        "recorded",
        point,
        f"cause={body.cause!r} expected_outage_s={body.expected_outage_s}",
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/outages", response_model=list[OutageOut])
def outages(
    _: Viewer,
    ctx: Ctx,
    start_s: Start = None,
    end_s: End = None,
    current: Annotated[bool, Query(description="only outages still in progress")] = False,
) -> list[Any]:
    """Outages that started in the window (oldest first), or those still in progress."""
    _window(start_s, end_s)
    if current:
        return list(ctx.cc.historian.current_outages())
    return list(ctx.cc.historian.outages(start_s, end_s))


@router.get("/reliability", response_model=ReliabilityOut)
def reliability_indices(
    _: Viewer,
    ctx: Ctx,
    start_s: Annotated[float, Query(ge=0, le=1e10, allow_inf_nan=False)],
    end_s: Annotated[float, Query(ge=0, le=1e10, allow_inf_nan=False)],
    customers_served: Annotated[
        int | None, Query(gt=0, le=2**31 - 1, description="default: the server setting")
    ] = None,
    include_planned: bool = True,
) -> Any:
    """SAIFI, SAIDI, CAIDI and MAIFI over the outages that started in ``[start_s, end_s)``."""
    _window(start_s, end_s)
    served = customers_served or ctx.cc.settings.historian.customers_served
    if served is None:
        raise invalid(
            "query",
            "customers_served",
            "give it, or set historian.customers_served in the server configuration",
            None,
        )
    return reliability(ctx.cc.historian, served, start_s, end_s, include_planned=include_planned)


@router.get("/energy/{feeder}", response_model=list[EnergyBlockOut])
def energy(
    feeder: Annotated[str, Path(pattern=DEVICE_NAME)],
    _: Viewer,
    ctx: Ctx,
    start_s: Annotated[float, Query(ge=0, le=1e10, allow_inf_nan=False)],
    end_s: Annotated[float, Query(ge=0, le=1e10, allow_inf_nan=False)],
    duration_s: Literal[900, 3600] = 900,
) -> list[Any]:
    """Stored energy blocks (15-minute or hourly) of a feeder starting in the window."""
    _window(start_s, end_s)
    return list(energy_blocks(ctx.cc.historian, feeder, start_s, end_s, duration_s))


@router.get("/audit", response_model=list[AuditOut])
def audit_trail(
    _: Engineer,
    ctx: Ctx,
    start_s: Start = None,
    end_s: End = None,
    user: Annotated[str | None, Query(pattern=USERNAME)] = None,
    limit: Limit = 1000,
) -> list[Any]:
    """The append-only audit trail, oldest first (engineers and admins)."""
    _window(start_s, end_s)
    return list(ctx.cc.historian.audit_trail(start_s=start_s, end_s=end_s, user=user, limit=limit))
