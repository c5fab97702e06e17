"""Named places where a test can make a function crash, to prove that redelivery completes the job.

`hit(name)` does nothing unless a test armed that name; then it raises `Crash`, a BaseException
like the runtime dying (it is not caught by `except Exception` handlers, exactly as a killed
process is not). Production code pays one dict lookup per point.
"""

from __future__ import annotations

import threading

_armed: dict[str, int] = {}
_fired: dict[str, int] = {}
_lock = threading.Lock()


class Crash(BaseException):
    pass


def arm(name: str, times: int = 1) -> None:
    with _lock:
        _armed[name] = times


def disarm_all() -> None:
    with _lock:
        _armed.clear()
        _fired.clear()


def fired(name: str) -> int:
    """How often the point crashed since the last disarm_all()."""
    with _lock:
        return _fired.get(name, 0)


def hit(name: str) -> None:
    if not _armed:
        return
    with _lock:
        if _armed.get(name, 0) <= 0:
            return
        _armed[name] -= 1
        _fired[name] = _fired.get(name, 0) + 1
    raise Crash(f"injected crash at {name}")
