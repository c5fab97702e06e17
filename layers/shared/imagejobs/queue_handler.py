"""The one shape of every SQS-fed handler: Powertools batch processing with partial failures,
one message at a time into a `process(body, receipt_handle=, receive_count=, log=)` function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def queue_handler(logger: Logger, process: Callable[..., str]) -> Handler:
    processor = BatchProcessor(event_type=EventType.SQS)

    def log(message: str, **fields: Any) -> None:
        logger.info(message, extra=fields)

    def record_handler(record: SQSRecord) -> str:
        return process(
            record.body,
            receipt_handle=record.receipt_handle,
            receive_count=int(record.attributes.approximate_receive_count or 1),
            log=log,
        )

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return dict(
            process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
        )

    return handler
