"""Status: one provider poll per call; tells the state machine to wait, finalize or end."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from imagejobs.adapters.observability import make_logger
from imagejobs.domain.models import PollInput
from imagejobs.domain.settings import Settings
from imagejobs.edge.wiring import build_deps
from imagejobs.flows.poll import await_provider, poll

logger = make_logger("status")
deps = build_deps(Settings.from_env(), provider=True, warm=("store", "provider"))  # every poll uses both


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "task_token" in event:  # AwaitProvider: keep the wait's token (its answer is not read)
        done = await_provider(deps, str(event["job_id"]), str(event["task_token"]))
        logger.info("awaiting provider", extra={"job_id": event["job_id"], "outcome": done})
        return {"job_id": event["job_id"], "outcome": done}
    result = poll(
        deps, PollInput.model_validate(event), time_left=lambda: context.get_remaining_time_in_millis() / 1000
    )
    # Nested: PollResult has a `message`, which a LogRecord does not take as an extra field.
    logger.info("polled", extra={"job_id": result.job_id, "poll": result.model_dump(mode="json", exclude_none=True)})
    return result.model_dump(mode="json")
