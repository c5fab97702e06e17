"""Finalize: stores a succeeded job's images, or records why a job ended; settles it once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from imagejobs.adapters.observability import make_logger
from imagejobs.domain.models import FinalizeInput
from imagejobs.domain.settings import Settings
from imagejobs.edge.wiring import build_deps
from imagejobs.flows.settle import finalize

logger = make_logger("finalize")
deps = build_deps(Settings.from_env(), provider=True, warm=("store", "notices", "results"))  # every end, most stores


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    record = finalize(deps, FinalizeInput.model_validate(event))
    logger.info("job settled", extra={"job_id": record.id, "status": record.status.value})
    return {"job_id": record.id, "status": record.status.value}
