"""The one shape of every SQS-fed handler: Powertools batch processing with partial failures,
one message at a time into a `process(body, receipt_handle=, receive_count=, log=)` function.

A batch holds up to BatchSize messages and the invocation has one timeout for all of them: a
message is started only while the invocation has `reserve_seconds` left (what one message may
take at worst); the rest go back to the queue at once (`release`), as failures of this batch,
instead of being cut off by the timeout halfway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class NotEnoughTime(Exception):
    """Too little of the invocation is left to process this message: it goes back to the queue."""


def queue_handler(
    logger: Logger,
    process: Callable[..., str],
    *,
    reserve_seconds: float = 0.0,
    release: Callable[[str], None] | None = None,
) -> Handler:
    processor = BatchProcessor(event_type=EventType.SQS)

    def log(message: str, **fields: Any) -> None:
        logger.info(message, extra=fields)

    def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> str:
        left = lambda_context.get_remaining_time_in_millis() / 1000 if lambda_context is not None else None
        if left is not None and left < reserve_seconds:
            log("message put back: too little time left in this invocation", seconds_left=round(left, 1))
            if release is not None:
                release(record.receipt_handle)
            raise NotEnoughTime(f"{left:.1f} s left, {reserve_seconds:.1f} s needed")
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
