"""Query parameters shared by the record queries: time windows, limits, priorities."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

__all__ = ["End", "Limit", "MaxPriority", "Start"]

#: POSIX seconds; years 1970..2286 are plenty for a control centre's records
_MAX_S = 1e10

Start = Annotated[
    float | None,
    Query(ge=0, le=_MAX_S, allow_inf_nan=False, description="from this time (POSIX s), inclusive"),
]
End = Annotated[
    float | None,
    Query(ge=0, le=_MAX_S, allow_inf_nan=False, description="to this time (POSIX s), exclusive"),
]
Limit = Annotated[int, Query(ge=1, le=100_000, description="at most this many records")]
MaxPriority = Annotated[
    int | None, Query(ge=1, le=4, description="priorities up to this one (1 is the most urgent)")
]
