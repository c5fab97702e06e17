"""Credentials stay out of everything a job leaves behind: logs (at DEBUG, with whole events
logged), job records, events and error answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from imagejobs_local import lambdas
from imagejobs_local.stack import LocalStack
from tests.helpers import EventCapture, wait_for_job

GENERATIONS = "/v1/images/generations?async=true"
CHATTY = {"POWERTOOLS_LOG_LEVEL": "DEBUG", "POWERTOOLS_LOGGER_LOG_EVENT": "true"}


@pytest.fixture
def chatty_functions(stack: LocalStack) -> Iterator[list[str]]:
    """Every function at DEBUG with Powertools logging each whole event, as an operator
    debugging an incident might set them; put back afterwards."""
    assert stack.deployment is not None
    names = list(stack.deployment.function_names.values())
    client = stack.client("lambda")
    saved = {  # str(): moto keeps Number parameters as ints in the environment
        name: {
            k: str(v)
            for k, v in client.get_function_configuration(FunctionName=name)["Environment"]["Variables"].items()
        }
        for name in names
    }
    for name, variables in saved.items():
        client.update_function_configuration(FunctionName=name, Environment={"Variables": {**variables, **CHATTY}})
    lambdas.recycle(names)
    try:
        yield names
    finally:
        for name, variables in saved.items():
            quiet = {**variables, "POWERTOOLS_LOGGER_LOG_EVENT": "false"}  # env vars are process-wide offline
            client.update_function_configuration(FunctionName=name, Environment={"Variables": quiet})
        lambdas.recycle(names)


def all_log_lines(stack: LocalStack, names: list[str], since_ms: int) -> str:
    logs = stack.client("logs")
    lines: list[str] = []
    for name in names:
        try:
            pages = logs.get_paginator("filter_log_events").paginate(
                logGroupName=f"/aws/lambda/{name}", startTime=since_ms
            )
            lines.extend(event["message"] for page in pages for event in page["events"])
        except logs.exceptions.ResourceNotFoundException:
            continue
    return "\n".join(lines)


def test_keys_never_appear_in_logs_records_events_or_errors(
    stack: LocalStack, api: httpx.Client, captured: EventCapture, chatty_functions: list[str]
) -> None:
    since = int(time.time() * 1000) - 1000
    bearer = stack.api_key
    provider_key = stack.provider.api_key

    job_id = api.post(GENERATIONS, json={"prompt": "a lighthouse, logged loudly", "quality": "low"}).json()["id"]
    job = wait_for_job(api, job_id)
    assert job["status"] == "succeeded"
    events = captured.for_job(job_id)
    wrong = httpx.get(f"{stack.base_url}/v1/jobs/{job_id}", headers={"Authorization": "Bearer sk-wrong-but-secret"})
    assert wrong.status_code == 401
    time.sleep(0.5)  # the notify step logs after the job settles

    logs = all_log_lines(stack, chatty_functions, since)
    # The capture saw the job's whole life, whole API Gateway events (headers and all) included...
    assert job_id in logs and '"httpMethod":"POST"' in logs.replace(" ", "")
    assert '"Authorization":"[redacted]"' in logs.replace(" ", "")
    # ...and no credential anywhere.
    record = stack.store.get(job_id)
    assert record is not None
    everything = "\n".join([logs, record.model_dump_json(), json.dumps(events), json.dumps(job), wrong.text])
    for secret in (bearer, provider_key, "sk-wrong-but-secret"):
        assert secret not in everything
