"""Notify: fed by the notify queue once a job is final; publishes its EventBridge event and
delivers its webhook, retrying by redelivery. Reports partial batch failures."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagejobs import notify
from imagejobs.observability import make_logger
from imagejobs.settings import Settings
from imagejobs.wiring import build_deps, event_bus

logger = make_logger("notify")
settings = Settings.from_env()
deps = build_deps(settings)
bus = event_bus(settings)
processor = BatchProcessor(event_type=EventType.SQS)


def _log(message: str, **fields: Any) -> None:
    logger.info(message, extra=fields)


def notify_record(record: SQSRecord) -> str:
    return notify.process(
        deps,
        bus,
        str(json.loads(record.body)["job_id"]),
        receipt_handle=record.receipt_handle,
        receive_count=int(record.attributes.approximate_receive_count or 1),
        log=_log,
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(event=event, record_handler=notify_record, processor=processor, context=context)
    )
