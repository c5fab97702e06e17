"""Scale Step Functions Wait and Retry sleeps by the job clock (IMAGEJOBS_TIME_SCALE), without
touching the definition: a 30 s Wait costs 0.3 s at scale 0.01 and still shows in the history."""

from __future__ import annotations

import time
from typing import Any

from imagejobs.domain import clock

_installed = False


class _ScaledTime:
    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(max(0.0, seconds) * clock.time_scale())


def _scaled_wait(self: Any, env: Any, wait_seconds: int) -> None:
    if wait_seconds > 0:
        env.program_state_event.wait(wait_seconds * clock.time_scale())


def _scaled_timeout(self: Any, env: Any) -> None:
    """A Task's TimeoutSeconds(Path) on the job clock: AwaitProvider's fallback of 300 job seconds
    waits 1.5 real seconds at scale 0.005 (moto waits it in real time otherwise)."""
    seconds = self._eval_seconds(env=env)
    env.stack.append(max(0.05, seconds * clock.time_scale()))


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.common.timeouts import timeout
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

    wait_function.WaitFunction._wait_interval = _scaled_wait  # type: ignore[method-assign]
    retrier_decl.time = _ScaledTime()  # type: ignore[assignment]
    timeout.Timeout._eval_body = _scaled_timeout  # type: ignore[method-assign]
    _installed = True
