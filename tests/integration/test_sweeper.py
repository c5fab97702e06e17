"""Orphan recovery: the scheduled sweeper finishes jobs whose poll loop or queue message was lost."""

from __future__ import annotations

import json
import time

import boto3
import httpx

from imagejobs.domain import clock, polling
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import GenerationRequest, JobStatus
from imagejobs.flows.ports import need
from imagejobs_local.stack import LocalStack
from tests.helpers import load_event, wait_for_record


def sweep(stack: LocalStack) -> dict[str, int]:
    answer = stack.client("lambda").invoke(
        FunctionName=stack.function_name("SweeperFunction"),
        Payload=json.dumps(load_event("sweeper_scheduled")).encode(),
    )
    assert "FunctionError" not in answer
    return dict(json.loads(answer["Payload"].read()))


def test_a_killed_poll_loop_is_resumed_and_the_job_completes(stack: LocalStack, api: httpx.Client) -> None:
    # 2400 job s = 12 s real: room to stop the loop, and for the job to fall silent, before the
    # provider finishes, on a busy machine too
    job_id = api.post(
        "/v1/images/generations?async=true", json={"prompt": "[sim:latency=2400] a slow owl", "quality": "low"}
    ).json()["id"]
    deadline = time.monotonic() + 20
    while (record := stack.store.get(job_id)) is None or record.polls < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert record.execution_arn is not None
    # kill the loop mid-poll, the way a deleted execution or an account-level stop would
    stack.client("stepfunctions").stop_execution(executionArn=record.execution_arn)
    while stack.client("stepfunctions").describe_execution(executionArn=record.execution_arn)["status"] == "RUNNING":
        time.sleep(0.02)
    assert not stack.store.get(job_id).status.final  # type: ignore[union-attr]
    # A job that moved lately is taken to be alive (its loop is not even described); once it has been
    # silent for longer than a live loop leaves one, its loop is looked at, found dead, and resumed.
    silence = polling.loop_silence_seconds(need(stack.store.get(job_id), "job"), 4)
    while clock.now() - need(stack.store.get(job_id), "job").updated_at <= silence:
        time.sleep(0.05)

    done = sweep(stack)

    assert done.get("resumed", 0) >= 1
    finished = wait_for_record(stack, job_id)
    assert finished.status is JobStatus.SUCCEEDED
    assert finished.resumes == 1
    assert stack.provider.stats.submissions[job_id] == 1


def test_a_job_whose_queue_message_was_lost_is_queued_again(stack: LocalStack) -> None:
    long_ago = clock.now() - 3_600
    record = JobRecord(
        id="img_" + "0" * 20 + "lost",
        tenant="local",
        model="openai/gpt-image-1",
        request=GenerationRequest(prompt="never queued", quality="low"),
        request_hash="-",
        created_at=long_ago,
        updated_at=long_ago,
        deadline_at=clock.now() + 1_000,
    )
    assert stack.store.create(record)  # recorded, but its message never reached the queue

    done = sweep(stack)

    assert done.get("requeued", 0) >= 1
    assert wait_for_record(stack, record.id).status is JobStatus.SUCCEEDED


def test_the_sweeper_leaves_healthy_jobs_alone(stack: LocalStack, api: httpx.Client) -> None:
    job_id = api.post(
        "/v1/images/generations?async=true", json={"prompt": "[sim:latency=100] steady", "quality": "low"}
    ).json()["id"]
    deadline = time.monotonic() + 20
    while (record := stack.store.get(job_id)) is None or record.execution_arn is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    sweep(stack)
    finished = wait_for_record(stack, job_id)
    assert finished.status is JobStatus.SUCCEEDED and finished.resumes == 0


def test_a_job_the_sweeper_expires_keeps_no_partial_outputs(stack: LocalStack) -> None:
    """Issue #21.17: the sweeper's s3:DeleteObject was proven by nothing. A job whose loop died past
    its deadline, with one output already stored, ends expired and its bucket prefix is empty."""
    long_ago = clock.now() - 3_600
    job_id = "img_" + "0" * 18 + "partly"
    status, provider_job, _ = stack.provider.create_job({"prompt": "[sim:never] stuck"}, idempotency_key=job_id)
    assert status == 202
    record = JobRecord(
        id=job_id,
        tenant="local",
        model="openai/gpt-image-1",
        request=GenerationRequest(prompt="[sim:never] stuck", quality="low"),
        request_hash="-",
        created_at=long_ago,
        updated_at=long_ago,
        deadline_at=long_ago + 600,
        submitted_at=long_ago,
        provider_job_id=provider_job["id"],
        execution_arn=stack.state_machine_arn.replace(":stateMachine:", ":execution:") + ":gone",
    )
    assert stack.store.create(record)
    bucket = stack.outputs["ResultsBucketName"]
    stack.client("s3").put_object(Bucket=bucket, Key=f"results/{job_id}/0.png", Body=b"a partial output")

    done = sweep(stack)

    assert done.get("expired", 0) >= 1
    assert stack.store.get(job_id).status is JobStatus.EXPIRED  # type: ignore[union-attr]
    left = stack.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"results/{job_id}/")
    assert left.get("KeyCount", 0) == 0


def test_open_jobs_come_oldest_first_from_every_shard_and_the_old_key(stack: LocalStack) -> None:
    """The open-jobs index's key is spread over shards (one DynamoDB partition takes 1,000 write
    units/s, an index's too); the sweeper still reads the oldest open jobs first, across every shard
    and the key records written before the shards carry, and never an ended job."""
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(stack.outputs["JobsTableName"])
    ten_days_ago, now = clock.now() - 864_000, clock.now()

    def record(index: int) -> JobRecord:
        return JobRecord(
            id=f"img_{'0' * 16}shard{index:03d}",
            tenant="local",
            model="openai/gpt-image-1",
            request=GenerationRequest(prompt="sharded", quality="low"),
            request_hash="-",
            created_at=ten_days_ago + index,  # older than any other test's jobs
            updated_at=now,  # and not silent: a sweep that runs meanwhile leaves them alone
            deadline_at=now + 100_000,
        )

    mine = [record(index) for index in range(1, 21)]
    legacy = record(0)
    try:
        for one in mine:
            assert stack.store.create(one)
        assert stack.store.create(legacy)
        old_key = {":old": "open"}  # as records written before the shards were
        table.update_item(
            Key={"pk": "job#" + legacy.id}, UpdateExpression="SET open_pk = :old", ExpressionAttributeValues=old_key
        )
        keys = {str(table.get_item(Key={"pk": "job#" + one.id})["Item"]["open_pk"]) for one in mine}
        assert len(keys) > 4 and all(key.startswith("open#") for key in keys)  # spread, not one partition
        ended = mine[3]
        assert stack.store.settle(ended.id, JobStatus.CANCELLED, {"updated_at": now})

        oldest = [one.id for one in stack.store.open_jobs(limit=12)]

        assert oldest == [one.id for one in [legacy, *mine] if one.id != ended.id][:12]
    finally:
        for one in [legacy, *mine]:
            table.delete_item(Key={"pk": "job#" + one.id})
