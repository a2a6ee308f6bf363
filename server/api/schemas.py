"""Request and response bodies of the API (they make the published OpenAPI schema).

Inputs are strict where a bad value could reach a database or the field:
names match the configuration's name patterns, floats are finite, integers
fit a 64-bit column, strings have a maximum length. A request that breaks
one of these gets 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat

from protocols.base import CommandMode, CommandStatus
from scada.control import TagKind
from server.auth import Role

__all__ = [
    "POINT_NAME",
    "USERNAME",
    "AckDeviceIn",
    "AckManyIn",
    "AggregateOut",
    "AlarmCountsOut",
    "AlarmHistoryOut",
    "AlarmOut",
    "AuditOut",
    "BreakerOut",
    "CancelIn",
    "CommandOut",
    "ConfigErrorOut",
    "ConfigIssueOut",
    "ConfigOut",
    "DeviceOut",
    "DirectIn",
    "EnergyBlockOut",
    "EventOut",
    "ExecuteIn",
    "FaultOut",
    "FaultReleaseIn",
    "HealthOut",
    "LoginIn",
    "LoginOut",
    "OutageOut",
    "PasswordIn",
    "PointOut",
    "ReliabilityOut",
    "ReloadOut",
    "SampleOut",
    "SelectIn",
    "SelectOut",
    "ShelveIn",
    "SoeOut",
    "SubstituteIn",
    "TagIn",
    "TagOut",
    "TripInfoIn",
    "UserIn",
    "UserOut",
    "UserPatch",
]

#: point names: ``<device>.<suffix>`` as the scada configuration allows them
POINT_NAME = r"^[A-Za-z0-9_.{}:\-]{1,300}$"
#: device names as the scada configuration allows them
DEVICE_NAME = r"^[A-Za-z0-9_\-{}:]{1,100}$"
USERNAME = r"^[A-Za-z0-9_.@\-]{1,100}$"

PointName = Annotated[str, Field(pattern=POINT_NAME)]
DeviceName = Annotated[str, Field(pattern=DEVICE_NAME)]
Username = Annotated[str, Field(pattern=USERNAME)]
Password = Annotated[str, Field(min_length=8, max_length=1024)]
#: free text: no NUL (PostgreSQL text cannot hold one)
Text = Annotated[str, Field(max_length=1000, pattern=r"^[^\x00]*$")]
#: an id of an alarm, selection or tag (fits a signed 64-bit column)
Id = Annotated[int, Field(ge=0, le=2**63 - 1)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ session
class LoginIn(_In):
    username: Username
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class LoginOut(BaseModel):
    token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    #: POSIX seconds when the token stops working
    expires_s: float
    username: str
    role: Role


class PasswordIn(_In):
    old_password: Annotated[str, Field(min_length=1, max_length=1024)]
    new_password: Password


class HealthOut(BaseModel):
    status: str
    devices: int
    devices_connected: int
    points: int
    consoles: int


# ------------------------------------------------------------------- points
class PointOut(BaseModel):
    name: str
    device: str
    kind: str
    unit: str
    description: str
    controllable: bool
    value: float | None
    #: quality flags as an integer (protocols.base.Quality) and by name
    quality: int
    quality_flags: list[str]
    source_time: float | None
    receive_time: float | None


class DeviceOut(BaseModel):
    name: str
    protocol: str
    kind: str
    enabled: bool
    link_up: bool
    points: int


class SubstituteIn(_In):
    value: FiniteFloat


# ------------------------------------------------------------------- alarms
class AlarmOut(BaseModel):
    id: int
    source: str
    condition: str
    tag: str
    detail: str
    priority: int
    message: str
    device: str | None
    point: str | None
    value: float | None
    normal: float | None
    raised_time: float
    receive_time: float
    active: bool
    acknowledged: bool
    ack_operator: str | None
    ack_time: float | None
    cleared_time: float | None
    shelved_until: float | None
    suppressed_by: str | None
    state: str


class AlarmCountsOut(BaseModel):
    unacknowledged: int
    acknowledged: int
    cleared: int
    closed: int


class AckManyIn(_In):
    ids: Annotated[list[Id], Field(min_length=1, max_length=10_000)]


class AckDeviceIn(_In):
    device: DeviceName


class ShelveIn(_In):
    #: at most a week
    duration_s: Annotated[float, Field(gt=0, le=7 * 86400)]


class AlarmHistoryOut(BaseModel):
    alarm_id: int
    source: str
    condition: str
    device: str | None
    point: str | None
    time_s: float
    transition: str
    state: str
    priority: int
    message: str
    value: float | None
    operator: str | None


# ------------------------------------------------------------------ records
class EventOut(BaseModel):
    id: int
    time_s: float
    kind: str
    device: str | None
    point: str | None
    message: str
    priority: int


class SoeOut(BaseModel):
    id: int
    point: str
    device: str
    value: float
    previous: float
    text: str
    source_time_ms: int | None
    receive_time_s: float
    quality: int
    commanded: bool


class SampleOut(BaseModel):
    time_s: float
    value: float | None
    quality: int
    receive_time_s: float
    snapshot: bool


class AggregateOut(BaseModel):
    start_s: float
    min: float
    max: float
    avg: float
    count: int


class BreakerOut(BaseModel):
    point: str
    device: str
    element: str | None
    state: str
    value: float | None
    quality: int
    changed_s: float | None
    last_trip_s: float | None
    last_trip_cause: str | None
    expected_outage_s: float | None


class TripInfoIn(_In):
    cause: Text | None = None
    expected_outage_s: Annotated[float | None, Field(ge=0, le=365 * 86400)] = None


class OutageOut(BaseModel):
    id: int
    device: str
    feeder: str | None
    cause: str
    start_s: float
    end_s: float | None
    customers: int
    planned: bool


class ReliabilityOut(BaseModel):
    start_s: float
    end_s: float
    customers_served: int
    saifi: float
    saidi_min: float
    caidi_min: float | None
    maifi: float
    sustained_interruptions: int
    momentary_interruptions: int
    customer_minutes: float


class EnergyBlockOut(BaseModel):
    feeder: str
    start_s: float
    duration_s: int
    energy_kwh: float | None
    quality: str
    method: str


class AuditOut(BaseModel):
    id: int
    time_s: float
    user: str
    action: str
    target: str
    details: str
    result: str


# ------------------------------------------------------------------ control
class SelectIn(_In):
    point: PointName
    #: 1 = close/on, 0 = open/off; +1/-1 for steps; the engineering value for setpoints
    value: FiniteFloat


class SelectOut(BaseModel):
    #: "selected", or "refused" with the reason
    status: str
    reason: str = ""
    selection_id: int | None = None
    point: str
    value: float
    #: seconds left to execute
    expires_in_s: float | None = None


class ExecuteIn(_In):
    selection_id: Id


class CancelIn(_In):
    selection_id: Id


class DirectIn(_In):
    point: PointName
    value: FiniteFloat
    #: default: the point's configured mode
    mode: CommandMode | None = None


class CommandOut(BaseModel):
    status: CommandStatus
    reason: str = ""


class FaultOut(BaseModel):
    """A section locked out after a trip (see :mod:`server.interlocks`)."""

    #: the breaker or recloser that tripped (GIS id)
    device: str
    since: float
    #: the device is still open with its trip indication set
    tripped_out: bool
    #: FPIs that indicated fault passage downstream of it since the trip, and those still set
    evidence_fpis: list[str]
    indicating_fpis: list[str]
    #: the deepest indicating FPI the section lies beyond (None: right behind the device)
    upstream_fpi: str | None
    #: the faulted section: closing a switch that would energise any of these is refused
    buses: list[str]
    lines: list[str]
    warnings: list[str]


class FaultReleaseIn(_In):
    #: why the section may be energised again (e.g. "cable repaired, crew clear")
    reason: Annotated[str, Field(min_length=1, max_length=1000, pattern=r"^[^\x00]*$")]


class TagIn(_In):
    #: a point name or a device name
    target: PointName
    kind: TagKind
    reason: Annotated[str, Field(min_length=1, max_length=1000, pattern=r"^[^\x00]*$")]


class TagOut(BaseModel):
    id: int
    target: str
    kind: TagKind
    owner: str
    reason: str
    time: float


# ------------------------------------------------------------------- config
class ReloadOut(BaseModel):
    devices_added: list[str]
    devices_removed: list[str]
    devices_changed: list[str]
    points_added: int
    points_removed: int


class ConfigIssueOut(BaseModel):
    file: str
    message: str
    device: str | None = None
    template: str | None = None
    point: str | None = None
    key: str | None = None


class ConfigErrorOut(BaseModel):
    detail: str
    issues: list[ConfigIssueOut]


class ConfigOut(BaseModel):
    files: list[str]
    devices: int
    templates: int
    points: int


# -------------------------------------------------------------------- users
class UserOut(BaseModel):
    username: str
    role: Role
    enabled: bool
    created_s: float
    updated_s: float


class UserIn(_In):
    username: Username
    password: Password
    role: Role


class UserPatch(_In):
    role: Role | None = None
    password: Password | None = None
    enabled: bool | None = None
