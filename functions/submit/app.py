"""Submit: fed by the submit queue; sends each job to the provider once and starts its poll loop."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagejobs import service
from imagejobs.errors import ImageJobsError
from imagejobs.models import JobStatus
from imagejobs.observability import make_logger
from imagejobs.settings import Settings
from imagejobs.wiring import build_deps

logger = make_logger("submit")
deps = build_deps(Settings.from_env(), provider=True)
processor = BatchProcessor(event_type=EventType.SQS)


def submit_record(record: SQSRecord) -> str:
    job_id = str(json.loads(record.body)["job_id"])
    try:
        outcome = service.submit(deps, job_id)
    except ImageJobsError as exc:
        receives = int(record.attributes.approximate_receive_count or 1)
        if not exc.transient or receives >= deps.settings.submit_max_receive_count:
            # Out of retries (or never worth one): the job ends with the reason instead of
            # waiting forever in a dead-letter queue.
            service.end_job(deps, job_id, JobStatus.FAILED, exc.reason, exc.message)
            logger.warning("job ended at submit", extra={"job_id": job_id, "reason": exc.reason})
            if not exc.transient:
                return "ended"
        raise
    logger.info("job submitted", extra={"job_id": job_id, "outcome": outcome})
    return outcome


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=submit_record, processor=processor, context=context)
    )
