"""Sweeper: on a schedule, finds jobs nothing is moving any more and moves them (see imagejobs.flows.sweeper)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from imagejobs.adapters.observability import make_logger
from imagejobs.domain.settings import Settings
from imagejobs.edge.wiring import build_deps
from imagejobs.flows import sweeper

logger = make_logger("sweeper")
deps = build_deps(Settings.from_env(), provider=True, warm=("store", "loops"))  # every sweep
STALE_AFTER_SECONDS = float(os.environ.get("SWEEP_STALE_SECONDS", "600"))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    done = sweeper.sweep(deps, stale_after_seconds=STALE_AFTER_SECONDS)
    logger.info("swept", extra=dict(done))
    return dict(done)
