"""The one time source of the package.

On AWS this is wall-clock time. The offline runtime runs the stack on a scaled clock
(IMAGEJOBS_TIME_SCALE=0.01 makes a 60 s generation take 0.6 s of real time while every
timestamp, wait and deadline still reads in job seconds), so all code asks this module for
"now" instead of calling time.time(). IMAGEJOBS_CLOCK_ANCHOR is the real instant where the
scaled clock and the wall clock agree (the runtime's start), so timestamps stay near today.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

_IMPORTED_AT = time.time()


def time_scale() -> float:
    try:
        scale = float(os.environ.get("IMAGEJOBS_TIME_SCALE") or 1)
    except ValueError:
        return 1.0
    return scale if scale > 0 else 1.0


def real_seconds(job_seconds: float) -> int:
    """A duration on the job clock as whole real seconds, for timers outside our code (SQS)."""
    return max(0, math.ceil(job_seconds * time_scale()))


def job_seconds(wall_seconds: float) -> float:
    """A wall-clock duration on the job clock: how far ahead a caller's wall-clock wait reaches
    there (the status function, which follows the job clock, compares with it)."""
    return wall_seconds / time_scale()


def now() -> float:
    """Seconds since the epoch on the job clock."""
    scale = time_scale()
    real = time.time()
    if scale == 1.0:
        return real
    anchor = _anchor()
    return anchor + (real - anchor) / scale


def to_wall(job_time: float) -> float:
    """A job-clock instant as the wall clock reads it: what clients are shown (job timestamps), so
    they agree with their own clocks offline too; the scaled clock only shortens the waits."""
    scale = time_scale()
    if scale == 1.0:
        return job_time
    anchor = _anchor()
    return anchor + (job_time - anchor) * scale


def _anchor() -> float:
    """The real instant where the job clock and the wall clock agree."""
    return float(os.environ.get("IMAGEJOBS_CLOCK_ANCHOR") or _IMPORTED_AT)


def wall_now() -> float:
    """Seconds since the epoch on the wall clock, even offline: for what is compared with other
    clocks (rotation overlaps an operator set in real hours, receivers' timestamps)."""
    return time.time()


def today() -> date:
    """The calendar date (UTC) on the wall clock, even offline: model lifecycles are dated in it."""
    return datetime.fromtimestamp(time.time(), UTC).date()


# The offline runtime runs every function in one process, one invocation at a time; while a
# handler sleeps it lets others run (on Lambda each function is its own process anyway). The hook
# gets the real seconds and whether they were asked for on the wall clock (True) or the job clock.
_sleep_hook: Callable[[float, bool], None] | None = None


def set_sleep_hook(hook: Callable[[float, bool], None] | None) -> None:
    global _sleep_hook
    _sleep_hook = hook


def sleep(job_seconds: float) -> None:
    """Sleep on the job clock (scaled offline)."""
    _sleep(max(0.0, job_seconds * time_scale()), wall=False)


def wall_sleep(seconds: float) -> None:
    """Sleep on the wall clock, even offline: a caller waiting for its answer waits real seconds
    (API Gateway's integration timeout is real time, whatever the job clock does)."""
    _sleep(max(0.0, seconds), wall=True)


def _sleep(real: float, *, wall: bool) -> None:
    if _sleep_hook is not None:
        _sleep_hook(real, wall)
    else:
        time.sleep(real)
