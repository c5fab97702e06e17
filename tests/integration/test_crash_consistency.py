"""A function dying at the worst moment: redelivery (SQS, Step Functions retry, the client retrying
with the same Idempotency-Key) still completes the job, with one provider submission and one
cost metric."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from imagejobs.domain import failpoints
from imagejobs.domain.models import JobStatus
from imagejobs_local.stack import LocalStack
from tests.helpers import execution_count, wait_for_record

GENERATIONS = "/v1/images/generations?async=true"


@pytest.fixture(autouse=True)
def disarmed() -> Iterator[None]:
    yield
    failpoints.disarm_all()


def assert_completed_once(stack: LocalStack, job_id: str) -> None:
    record = wait_for_record(stack, job_id, timeout=60)
    assert record.status is JobStatus.SUCCEEDED
    assert stack.provider.stats.submissions[job_id] == 1
    assert execution_count(stack, job_id) == 1
    time.sleep(0.3)
    cost_metrics = [doc for doc in stack.job_metrics(job_id) if "JobCostUSD" in doc]
    assert len(cost_metrics) == 1
    listed = stack.client("s3").list_objects_v2(Bucket=stack.outputs["ResultsBucketName"], Prefix=f"results/{job_id}/")
    assert sorted(item["Key"] for item in listed["Contents"]) == sorted(output.key for output in record.outputs)


@pytest.mark.parametrize("point", ["submit.after_provider", "submit.after_start_execution", "finalize.after_store"])
def test_crash_then_redelivery_completes_the_job_once(stack: LocalStack, api: httpx.Client, point: str) -> None:
    failpoints.arm(point)
    job_id = api.post(GENERATIONS, json={"prompt": f"crash at {point}", "quality": "low", "n": 2}).json()["id"]
    assert_completed_once(stack, job_id)
    assert failpoints.fired(point) == 1


def test_crash_between_record_and_queue_is_healed_by_the_clients_retry(stack: LocalStack, api: httpx.Client) -> None:
    failpoints.arm("intake.after_record")
    headers = {"Idempotency-Key": "crash-in-intake-1"}
    body = {"prompt": "crash in the intake", "quality": "low"}

    first = api.post(GENERATIONS, json=body, headers=headers)
    retried = api.post(GENERATIONS, json=body, headers=headers)

    assert first.status_code == 502  # the function died: API Gateway answers for it
    assert retried.status_code == 202
    assert_completed_once(stack, retried.json()["id"])
    assert failpoints.fired("intake.after_record") == 1
