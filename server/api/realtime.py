"""Real-time state: points, devices, substitution, the alarm list and operator alarm acts.

These routes run on the event loop (they touch the point database and the
alarm manager, which the FEP updates there); alarm history reads the
historian and runs in the thread pool.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from protocols.base import PointKind
from scada.config import PointConfig
from scada.pointdb import UnknownPointError
from server.api.deps import ApiContext, Ctx, Operator, Viewer, invalid
from server.api.schemas import (
    DEVICE_NAME,
    POINT_NAME,
    AckDeviceIn,
    AckManyIn,
    AlarmCountsOut,
    AlarmHistoryOut,
    AlarmOut,
    DeviceOut,
    PointOut,
    ShelveIn,
    SubstituteIn,
)
from server.api.timeparams import End, Limit, MaxPriority, Start
from server.views import alarm_view, point_view

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["real time"])

PointPath = Annotated[str, Path(pattern=POINT_NAME, description="<device>.<point>")]
DevicePath = Annotated[str, Path(pattern=DEVICE_NAME)]
AlarmId = Annotated[int, Path(ge=0, le=2**63 - 1)]

_STATUS_VALUES = {PointKind.DOUBLE: {0.0, 1.0, 2.0, 3.0}, PointKind.SINGLE: {0.0, 1.0}}


def _point(ctx: ApiContext, name: str) -> dict[str, Any]:
    db = ctx.cc.pointdb
    try:
        cfg = db.config(name)
    except UnknownPointError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown point {name!r}") from None
    return _view(ctx, cfg)


def _view(ctx: ApiContext, cfg: PointConfig) -> dict[str, Any]:
    t = cfg.template
    return point_view(
        ctx.cc.pointdb.get(cfg.name), cfg.device, t.description, t.control is not None
    )


def _device_points(ctx: ApiContext, device: str) -> list[PointConfig]:
    config = ctx.cc.fep.config
    if config is None or device not in config.devices:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown device {device!r}")
    return list(config.device_points(device).points)


# ------------------------------------------------------------------- points
@router.get("/points", response_model=list[PointOut])
async def list_points(
    _: Viewer,
    ctx: Ctx,
    device: Annotated[str | None, Query(pattern=DEVICE_NAME)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200_000)] = 200_000,
) -> list[dict[str, Any]]:
    """Current value, quality and times of every point (of one device), in name order."""
    if device is not None:
        configs = _device_points(ctx, device)
    else:
        db = ctx.cc.pointdb
        configs = [db.config(n) for n in sorted(db.names())]
    return [_view(ctx, c) for c in configs[offset : offset + limit]]


@router.get("/points/{name}", response_model=PointOut, responses={404: {}})
async def get_point(name: PointPath, _: Viewer, ctx: Ctx) -> dict[str, Any]:
    return _point(ctx, name)


@router.post("/points/{name}/substitute", response_model=PointOut, responses={404: {}})
async def substitute(
    name: PointPath, body: SubstituteIn, session: Operator, ctx: Ctx
) -> dict[str, Any]:
    """Replace the field value by an operator's (quality SUBSTITUTED) until removed."""
    _point(ctx, name)
    kind = ctx.cc.pointdb.config(name).kind
    allowed = _STATUS_VALUES.get(kind)
    if allowed is not None and body.value not in allowed:
        raise invalid(
            "body",
            "value",
            f"a {kind} point ({name}) takes one of {sorted(allowed)}, got {body.value:g}",
            body.value,
        )
    ctx.cc.pointdb.substitute(name, body.value)
    ctx.cc.audit(session.username, "substitute", "substituted", name, f"value={body.value:g}")
    return _point(ctx, name)


@router.delete("/points/{name}/substitute", response_model=PointOut, responses={404: {}})
async def unsubstitute(name: PointPath, session: Operator, ctx: Ctx) -> dict[str, Any]:
    """Remove a substitution; the latest field value returns."""
    _point(ctx, name)
    ctx.cc.pointdb.unsubstitute(name)
    ctx.cc.audit(session.username, "unsubstitute", "removed", name)
    return _point(ctx, name)


# ------------------------------------------------------------------ devices
@router.get("/devices", response_model=list[DeviceOut])
async def list_devices(_: Viewer, ctx: Ctx) -> list[DeviceOut]:
    config = ctx.cc.fep.config
    if config is None:
        return []
    links = ctx.cc.fep.link_states()
    return [
        DeviceOut(
            name=name,
            protocol=d.protocol,
            kind=d.kind,
            enabled=d.enabled,
            link_up=links.get(name, False),
            points=len(config.templates[d.template].expanded_points()),
        )
        for name, d in config.devices.items()
    ]


@router.get("/devices/{device}/points", response_model=list[PointOut], responses={404: {}})
async def device_points(device: DevicePath, _: Viewer, ctx: Ctx) -> list[dict[str, Any]]:
    return [_view(ctx, c) for c in _device_points(ctx, device)]


# ------------------------------------------------------------------- alarms
@router.get("/alarms", response_model=list[AlarmOut])
async def list_alarms(
    _: Viewer,
    ctx: Ctx,
    device: Annotated[str | None, Query(pattern=DEVICE_NAME)] = None,
    include_shelved: bool = False,
    include_suppressed: bool = False,
) -> list[dict[str, Any]]:
    """The alarm list, most urgent first, then newest first."""
    alarms = ctx.cc.alarms.alarms(
        device=device, include_shelved=include_shelved, include_suppressed=include_suppressed
    )
    return [alarm_view(a) for a in alarms]


@router.get("/alarms/counts", response_model=AlarmCountsOut)
async def alarm_counts(_: Viewer, ctx: Ctx) -> AlarmCountsOut:
    counts = ctx.cc.alarms.counts()
    return AlarmCountsOut(**{state.value: n for state, n in counts.items()})


@router.get("/alarms/history", response_model=list[AlarmHistoryOut])
def alarm_history(
    _: Viewer,
    ctx: Ctx,
    start_s: Start = None,
    end_s: End = None,
    device: Annotated[str | None, Query(pattern=DEVICE_NAME)] = None,
    max_priority: MaxPriority = None,
    alarm_id: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    limit: Limit = 1000,
) -> list[Any]:
    """Archived alarm transitions (who acknowledged, when), newest first."""
    return list(
        ctx.cc.historian.alarm_history(
            start_s=start_s,
            end_s=end_s,
            device=device,
            max_priority=max_priority,
            alarm_id=alarm_id,
            limit=limit,
        )
    )


@router.post("/alarms/ack", response_model=list[AlarmOut])
async def ack_many(body: AckManyIn, session: Operator, ctx: Ctx) -> list[dict[str, Any]]:
    """Acknowledge the listed ones of ``ids``; returns those acknowledged now."""
    done = ctx.cc.alarms.acknowledge_many(body.ids, session.username)
    ctx.cc.audit(session.username, "alarm ack", f"acknowledged {len(done)}", "", f"ids={body.ids}")
    return [alarm_view(a) for a in done]


@router.post("/alarms/ack-device", response_model=list[AlarmOut], responses={404: {}})
async def ack_device(body: AckDeviceIn, session: Operator, ctx: Ctx) -> list[dict[str, Any]]:
    """Acknowledge every alarm of a device (shown, shelved or suppressed)."""
    _device_points(ctx, body.device)
    done = ctx.cc.alarms.acknowledge_device(body.device, session.username)
    ctx.cc.audit(session.username, "alarm ack", f"acknowledged {len(done)}", body.device)
    return [alarm_view(a) for a in done]


@router.get("/alarms/{alarm_id}", response_model=AlarmOut, responses={404: {}})
async def get_alarm(alarm_id: AlarmId, _: Viewer, ctx: Ctx) -> dict[str, Any]:
    return alarm_view(ctx.cc.alarms.get(alarm_id))


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmOut, responses={404: {}})
async def ack(alarm_id: AlarmId, session: Operator, ctx: Ctx) -> dict[str, Any]:
    alarm = ctx.cc.alarms.acknowledge(alarm_id, session.username)
    ctx.cc.audit(session.username, "alarm ack", "acknowledged", alarm.source, f"alarm {alarm_id}")
    return alarm_view(alarm)


@router.post("/alarms/{alarm_id}/shelve", response_model=AlarmOut, responses={404: {}})
async def shelve(alarm_id: AlarmId, body: ShelveIn, session: Operator, ctx: Ctx) -> dict[str, Any]:
    """Hide an alarm (and new occurrences of it) for ``duration_s``."""
    alarm = ctx.cc.alarms.shelve(alarm_id, body.duration_s, session.username)
    ctx.cc.audit(
        session.username,
        "alarm shelve",
        "shelved",
        alarm.source,
        f"alarm {alarm_id} for {body.duration_s:g} s",
    )
    return alarm_view(alarm)


@router.post("/alarms/{alarm_id}/unshelve", response_model=AlarmOut, responses={404: {}})
async def unshelve(alarm_id: AlarmId, session: Operator, ctx: Ctx) -> dict[str, Any]:
    alarm = ctx.cc.alarms.unshelve(alarm_id, session.username)
    ctx.cc.audit(session.username, "alarm unshelve", "unshelved", alarm.source, f"alarm {alarm_id}")
    return alarm_view(alarm)
