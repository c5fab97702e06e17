"""Test helpers: event files, polling a job to its end, reading EMF metrics from function logs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from imagejobs.domain.jobs import JobRecord

if TYPE_CHECKING:  # the unit tier imports this module too (load_event), without the stack
    from imagejobs_local.stack import LocalStack

EVENTS = Path(__file__).resolve().parents[1] / "events"
FINAL = {"succeeded", "failed", "cancelled", "expired"}


def load_event(name: str, **replace: str) -> dict[str, Any]:
    """events/<name>.json, with placeholder strings (e.g. img_replace_me) swapped."""
    text = (EVENTS / f"{name}.json").read_text(encoding="utf-8")
    for old, new in replace.items():
        text = text.replace(old, new)
    return json.loads(text)


def wait_for_record(stack: LocalStack, job_id: str, timeout: float = 60.0) -> JobRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = stack.store.get(job_id)
        if record is not None and record.status.final:
            return stack.store.get(job_id) or record  # read again: moto's updates are not atomic
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end within {timeout} s: {stack.store.get(job_id)}")


NOTIFICATION_FIELDS = {"event_published_at", "webhook_state", "webhook_attempts"}


def settled(record: JobRecord | None) -> dict[str, Any]:
    """A job record without what the notify step adds after it settles (it runs on its own)."""
    assert record is not None
    return record.model_dump(exclude=NOTIFICATION_FIELDS)


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in FINAL:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end within {timeout} s")


def emf_documents(stack: LocalStack, function_logical_id: str) -> list[dict[str, Any]]:
    return stack.emf_documents(function_logical_id)


def execution_count(stack: LocalStack, job_id: str) -> int:
    assert stack.deployment is not None
    executions = stack.client("stepfunctions").list_executions(stateMachineArn=stack.deployment.state_machine_arn)
    return sum(1 for execution in executions["executions"] if execution["name"] == job_id)


class EventCapture:
    """A queue subscribed to our job events on the stack's bus."""

    def __init__(self, stack: LocalStack) -> None:
        self._sqs = stack.client("sqs")
        self.url = stack.job_events_queue("captured-job-events")
        self.seen: list[dict[str, Any]] = []

    def for_job(self, job_id: str, timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
                self.seen.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            found = [event for event in self.seen if event["detail"]["job_id"] == job_id]
            if found:
                time.sleep(0.3)  # room for a duplicate to show up, if there were one
                for message in self._sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", []):
                    self.seen.append(json.loads(message["Body"]))
                return [event for event in self.seen if event["detail"]["job_id"] == job_id]
            time.sleep(0.05)
        return []


def peek_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message in a queue, read without consuming it: each is hidden while the rest are
    read, then all are made visible again at once."""
    seen: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, MessageAttributeNames=["All"]
    ).get("Messages", []):
        seen += batch
    for message in seen:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return seen
