"""Test helpers: event files, polling a job to its end, reading EMF metrics from function logs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from imagejobs.jobs import JobRecord
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
            return record
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end within {timeout} s: {stack.store.get(job_id)}")


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in FINAL:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end within {timeout} s")


def emf_documents(stack: LocalStack, function_logical_id: str) -> list[dict[str, Any]]:
    """The EMF documents a function wrote to its CloudWatch log group (what CloudWatch would ingest)."""
    logs = stack.client("logs")
    group = f"/aws/lambda/{stack.function_name(function_logical_id)}"
    try:
        events = logs.filter_log_events(logGroupName=group)["events"]
    except logs.exceptions.ResourceNotFoundException:
        return []
    documents = []
    for event in events:
        for line in event["message"].splitlines():
            if line.startswith("{") and '"_aws"' in line:
                documents.append(json.loads(line))
    return documents


def execution_count(stack: LocalStack, job_id: str) -> int:
    assert stack.deployment is not None
    executions = stack.client("stepfunctions").list_executions(stateMachineArn=stack.deployment.state_machine_arn)
    return sum(1 for execution in executions["executions"] if execution["name"] == job_id)
