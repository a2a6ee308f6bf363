"""Shared test helpers: polling with a timeout instead of fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: how late the event loop of a loaded 2-core CI machine may run a callback; tests of a
#: timing requirement ("loss detected within two scan periods") allow this on top of it
LOOP_LAG_S = 0.5


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> float:
    """Poll ``predicate`` until true; return the seconds it took, or fail with ``what``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start
