"""Lambda's SQS event source mapping, done the way AWS does it, and SQS's fair queues.

moto invokes a mapped function inline inside SendMessage, with a fixed receive count and without
partial batch responses. We take the mappings away from moto's queues and poll instead: receive a
batch (ApproximateReceiveCount and all), invoke the function, delete what succeeded (honouring
ReportBatchItemFailures), and let the rest come back after the queue's visibility timeout (on the
job clock: messages are received with the timeout scaled) or whatever visibility the function set
itself (e.g. a provider's Retry-After), so redrive to the dead-letter queue happens in moto's SQS
as configured.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from typing import Any

import boto3

from imagejobs.domain import clock
from imagejobs_local import iam


class QueuePoller:
    def __init__(self, mapping: dict[str, Any], region: str, workers: int = 4) -> None:
        self._mapping = mapping
        # Lambda's poller reads, deletes and looks up the queue with the function's execution role
        # (Lambda developer guide, "Using Lambda with Amazon SQS": the role needs
        # sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes), so this one does too:
        # a role missing one of them stops the queue here as it would on AWS.
        function_name = mapping["FunctionArn"].rsplit(":", 1)[-1]
        with iam.acting_as(function_name):
            self._sqs = boto3.client("sqs", region_name=region)
        self._lambda = boto3.client("lambda", region_name=region)
        queue_name = mapping["EventSourceArn"].rsplit(":", 1)[1]
        self._queue_url = boto3.client("sqs", region_name=region).get_queue_url(QueueName=queue_name)["QueueUrl"]
        attributes = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["All"])["Attributes"]
        self._visibility = int(attributes.get("VisibilityTimeout", 30))
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"sqs-poller-{queue_name}-{i}", daemon=True) for i in range(workers)
        ]
        self.batches = 0

    def start(self) -> QueuePoller:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once(wait_seconds=1)
            except Exception:  # the poller must outlive a failed batch; the message comes back
                if self._stop.wait(0.2):
                    return

    def poll_once(self, wait_seconds: int = 0) -> int:
        received = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(10, int(self._mapping.get("BatchSize", 10))),
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=max(1, math.ceil(self._visibility * clock.time_scale())),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = received.get("Messages", [])
        if not messages:
            return 0
        self.batches += 1
        event = {"Records": [self._record(message) for message in messages]}
        response = self._lambda.invoke(FunctionName=self._mapping["FunctionArn"], Payload=json.dumps(event).encode())
        payload = response["Payload"].read()
        failed: set[str] = {m["MessageId"] for m in messages}
        if "FunctionError" not in response:
            failed = set()
            if "ReportBatchItemFailures" in (self._mapping.get("FunctionResponseTypes") or []):
                body = json.loads(payload or b"null") or {}
                failed = {item["itemIdentifier"] for item in body.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] not in failed:
                self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return len(messages)

    def _record(self, message: Any) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._mapping["EventSourceArn"],
            "awsRegion": self._mapping["EventSourceArn"].split(":")[3],
        }


def take_over_mappings(region: str) -> list[dict[str, Any]]:
    """Detach moto's inline SQS invocation; return the SQS mappings for our pollers."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    for queue in sqs_backends[DEFAULT_ACCOUNT_ID][region].queues.values():
        queue.lambda_event_source_mappings.clear()
    mappings = boto3.client("lambda", region_name=region).list_event_source_mappings()["EventSourceMappings"]
    return [m for m in mappings if m["EventSourceArn"].startswith("arn:aws:sqs:") and m.get("State") == "Enabled"]


def install_fair_queues() -> None:
    """Deliver a standard queue's messages the way SQS fair queues do; moto hands them out in
    arrival order, so one tenant's backlog would hold every other tenant's messages behind it.

    The SQS Developer Guide ("How Amazon SQS fair queues work") says: tenants are told apart by
    MessageGroupId (a message without one is a tenant of its own); a tenant is a noisy neighbour
    when it holds over 10% of the queue's in-flight messages and at least 30 of its own, or over
    10% of the consumers' recent processing time; messages of quiet tenants are delivered first,
    and among noisy tenants, the one with the fewest messages in flight first; nothing is dropped.
    With a few tenants, each busy one passes the 10% of processing time, so here the order is: by
    how many messages the message's tenant has in flight (received, not yet deleted, still
    invisible), fewest first, and in arrival order within that. Fair queues need no setting: a
    standard queue whose messages carry MessageGroupId is one."""
    from moto.sqs.models import Queue

    if getattr(Queue, "_imagejobs_fair", False):
        return
    arrival_order = Queue.messages.fget  # type: ignore[attr-defined]

    def fair(queue: Any) -> list[Any]:
        visible = arrival_order(queue)
        if queue.fifo_queue or len(visible) < 2:
            return list(visible)
        in_flight = Counter(
            message.group_id
            for message in queue._messages
            if message.group_id and message.approximate_receive_count and not message.visible
        )
        return sorted(visible, key=lambda message: in_flight.get(message.group_id, 0) if message.group_id else 0)

    Queue.messages = property(fair)  # type: ignore[method-assign, assignment]
    Queue._imagejobs_fair = True  # type: ignore[attr-defined]
