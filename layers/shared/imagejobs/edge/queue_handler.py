"""The one shape of every SQS-fed handler: partial batch failures, one message at a time into a
`process(body, receipt_handle=, receive_count=, log=)` function.

Lambda's contract for an SQS source with ReportBatchItemFailures is small: answer
`{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}` and only those messages come back
(https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html). It is written
out here instead of using Powertools' batch utility, which brings asyncio and its data classes
into the cold start (0.2x `import boto3` on submit and notify, `make bench`). Unlike that utility,
a batch whose every message failed is answered the same way, not raised: Lambda puts back the
messages named either way.

A batch holds up to BatchSize messages and the invocation has one timeout for all of them: a
message is started only while the invocation has `reserve_seconds` left (what one message may
take at worst); the rest go back to the queue at once (`release`), as failures of this batch,
instead of being cut off by the timeout halfway."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagejobs.domain.models import whole_number

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
    def log(message: str, **fields: Any) -> None:
        logger.info(message, extra=fields)

    def one(record: dict[str, Any], context: LambdaContext | None) -> str:
        left = context.get_remaining_time_in_millis() / 1000 if context is not None else None
        if left is not None and left < reserve_seconds:
            log("message put back: too little time left in this invocation", seconds_left=round(left, 1))
            if release is not None:
                release(record["receiptHandle"])
            raise NotEnoughTime(f"{left:.1f} s left, {reserve_seconds:.1f} s needed")
        receive_count = whole_number(str((record.get("attributes") or {}).get("ApproximateReceiveCount") or "1"))
        return process(
            record["body"],
            receipt_handle=record["receiptHandle"],
            receive_count=receive_count if receive_count and receive_count > 0 else 1,
            log=log,
        )

    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        failures: list[dict[str, str]] = []
        for record in event.get("Records") or []:
            try:
                one(record, context)
            except Exception:  # this message only: it comes back (and, past maxReceiveCount, to the DLQ)
                logger.exception("message failed", extra={"message_id": record.get("messageId")})
                failures.append({"itemIdentifier": str(record.get("messageId", ""))})
        return {"batchItemFailures": failures}

    return handler
