"""Shared fixtures: the real template deployed into moto (in-process), with the simulated provider.

The offline stack is imported inside the fixtures, by the tiers that use them: the unit tier
(tests/unit) runs without moto and samtranslator, which its conftest keeps out of reach."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from imagejobs_local.stack import LocalStack
    from tests.helpers import EventCapture

# 30-60 job seconds of generation run in 0.15-0.3 s of real time.
TEST_TIME_SCALE = 0.005
# Long enough for every normal test job, short enough that a job that never finishes expires
# within 18 s of real time (slack for a slow or busy machine: 1 real second is 200 job seconds).
AUTHORIZER_CACHE_SECONDS = 2  # short, so a revoked key is seen to stop working
TEST_DEADLINE_SECONDS = 3600
# A plain call (no async=true) waits this many wall-clock seconds: long enough for a normal test
# job through the whole offline pipeline, short enough that a test of a wait that runs out is quick.
TEST_SYNC_WAIT_SECONDS = 4


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    from imagejobs_local.sim_behaviour import Latency
    from imagejobs_local.stack import LocalStack, StackOptions

    options = StackOptions(
        time_scale=TEST_TIME_SCALE,
        latency=Latency(low=30, high=60),
        seed=7,
        log_level="INFO",  # the template's default: every log call runs as it would when deployed
        # 4 s provider timeout (slack under load); the read-timeout faults hold answers back 6 s
        parameters={
            "JobDeadlineSeconds": str(TEST_DEADLINE_SECONDS),
            "ProviderTimeoutSeconds": "4",
            "AuthorizerCacheSeconds": str(AUTHORIZER_CACHE_SECONDS),
            "SyncWaitSeconds": str(TEST_SYNC_WAIT_SECONDS),
        },
    )
    with LocalStack(options) as running:
        yield running


@pytest.fixture
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
def captured(stack: LocalStack) -> EventCapture:
    """Every job event the stack publishes, captured through an SQS target on the bus."""
    from tests.helpers import EventCapture

    return EventCapture(stack)
