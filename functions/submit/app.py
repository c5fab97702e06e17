"""Submit: fed by the submit queue (HTTP jobs and inbox uploads); sends each job to the provider
once and starts its poll loop. Reports partial batch failures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagejobs import submit_queue
from imagejobs.observability import make_logger
from imagejobs.settings import Settings
from imagejobs.wiring import build_deps

logger = make_logger("submit")
deps = build_deps(Settings.from_env(), provider=True)
processor = BatchProcessor(event_type=EventType.SQS)


def _log(message: str, **fields: Any) -> None:
    logger.info(message, extra=fields)


def submit_record(record: SQSRecord) -> str:
    return submit_queue.process(
        deps,
        record.body,
        receipt_handle=record.receipt_handle,
        receive_count=int(record.attributes.approximate_receive_count or 1),
        log=_log,
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=submit_record, processor=processor, context=context)
    )
