"""Generation jobs through the real template, state machine and handlers on moto."""

from __future__ import annotations

import io
import json
import threading
from decimal import Decimal

import httpx
from PIL import Image

from imagejobs.domain.models import JobStatus
from imagejobs_local.stack import LocalStack
from tests.conftest import TEST_DEADLINE_SECONDS
from tests.helpers import emf_documents, execution_count, load_event, settled, wait_for_record


def submit(api: httpx.Client, **body: object) -> str:
    answer = api.post("/v1/images/generations", params={"async": "true"}, json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def test_job_succeeds_and_its_images_are_in_s3(stack: LocalStack, api: httpx.Client) -> None:
    job_id = submit(api, prompt="A red fox in snow", n=2, size="1536x1024", quality="low", output_format="jpeg")

    record = wait_for_record(stack, job_id)

    assert record.status is JobStatus.SUCCEEDED
    assert [output.key for output in record.outputs] == [f"results/{job_id}/0.jpg", f"results/{job_id}/1.jpg"]
    s3 = stack.client("s3")
    for output in record.outputs:
        stored = s3.get_object(Bucket=stack.outputs["ResultsBucketName"], Key=output.key)
        assert stored["ContentType"] == "image/jpeg"
        picture = Image.open(io.BytesIO(stored["Body"].read()))
        assert (picture.format, picture.size) == ("JPEG", (1536, 1024))
        assert stored["ContentLength"] == output.bytes
    assert record.cost is not None and record.cost.basis == "usage"
    assert record.usage is not None and record.usage.output_tokens == 2 * 272
    assert record.polls >= 1 and record.completed_at is not None


def test_a_provider_job_without_usage_is_stored_and_priced_per_image(stack: LocalStack, api: httpx.Client) -> None:
    """TheRouter's pages show the job object with no `usage`: the job still succeeds, its images
    are kept, and it costs the model's per-image price (before: finalize's settle named a value it
    had dropped, DynamoDB refused it, and the job ended failed with its images deleted)."""
    job_id = submit(api, prompt="A lighthouse [sim:no_usage]", n=2, quality="medium")

    record = wait_for_record(stack, job_id)

    assert record.status is JobStatus.SUCCEEDED, record.error
    assert len(record.outputs) == 2 and record.usage is None
    assert record.cost is not None and record.cost.basis == "per_image"
    assert Decimal(record.cost.amount) == Decimal("0.1008")  # 2 x $0.0504, gpt-image-1 medium
    s3 = stack.client("s3")
    for output in record.outputs:
        assert s3.head_object(Bucket=stack.outputs["ResultsBucketName"], Key=output.key)["ContentLength"] > 0


def test_transparent_png_keeps_its_alpha(stack: LocalStack, api: httpx.Client) -> None:
    job_id = submit(api, prompt="a sticker", background="transparent", size="1024x1024", quality="low")
    record = wait_for_record(stack, job_id)
    body = stack.client("s3").get_object(Bucket=stack.outputs["ResultsBucketName"], Key=record.outputs[0].key)["Body"]
    assert Image.open(io.BytesIO(body.read())).mode == "RGBA"


def test_provider_failure_ends_failed_with_the_providers_reason(stack: LocalStack, api: httpx.Client) -> None:
    record = wait_for_record(stack, submit(api, prompt="[sim:fail] a cat", quality="low"))
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "generation_failed"
    assert record.outputs == [] and record.cost is None


def test_provider_cancelled_and_expired_map_one_to_one(stack: LocalStack, api: httpx.Client) -> None:
    cancelled = wait_for_record(stack, submit(api, prompt="[sim:cancel] a cat", quality="low"))
    expired = wait_for_record(stack, submit(api, prompt="[sim:expire] a cat", quality="low"))
    assert (cancelled.status, cancelled.error.code if cancelled.error else None) == (
        JobStatus.CANCELLED,
        "job_cancelled",
    )
    assert (expired.status, expired.error.code if expired.error else None) == (JobStatus.EXPIRED, "job_expired")


def test_moderation_refusal_at_submit_fails_the_job_without_a_loop(stack: LocalStack, api: httpx.Client) -> None:
    job_id = submit(api, prompt="[sim:moderation] something", quality="low")
    record = wait_for_record(stack, job_id)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "moderation_blocked"
    assert execution_count(stack, job_id) == 0


def test_redelivered_submit_never_submits_twice(stack: LocalStack, api: httpx.Client) -> None:
    job_id = submit(api, prompt="a lighthouse", quality="low")
    # SQS delivers at least once: the same message twice more, at the same moment, while the job runs
    queue_url = stack.outputs["SubmitQueueUrl"]
    senders = [
        threading.Thread(
            target=stack.client("sqs").send_message,
            kwargs={"QueueUrl": queue_url, "MessageBody": json.dumps({"job_id": job_id})},
        )
        for _ in range(2)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    record = wait_for_record(stack, job_id)
    # ...and once more after it finished, straight into the function with the sample event
    answer = stack.client("lambda").invoke(
        FunctionName=stack.function_name("SubmitFunction"),
        Payload=json.dumps(load_event("submit_job_queued", img_replace_me=job_id)).encode(),
    )
    assert json.loads(answer["Payload"].read()) == {"batchItemFailures": []}

    assert record.status is JobStatus.SUCCEEDED
    assert stack.provider.stats.submissions[job_id] == 1
    assert execution_count(stack, job_id) == 1


def test_cost_metric_is_emitted_once_per_job(stack: LocalStack, api: httpx.Client) -> None:
    job_id = submit(api, prompt="a teapot", quality="medium")
    record = wait_for_record(stack, job_id)
    # a retried finalize (Step Functions retry, duplicate delivery) must not count the job again
    for _ in range(2):
        stack.client("lambda").invoke(
            FunctionName=stack.function_name("FinalizeFunction"),
            Payload=json.dumps(load_event("finalize_succeeded", img_replace_me=job_id)).encode(),
        )

    documents = [doc for doc in emf_documents(stack, "FinalizeFunction") if doc.get("job_id") == job_id]

    assert len(documents) == 1
    metric_names = {m["Name"] for m in documents[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {
        "JobCostUSD",
        "ImagesGenerated",
        "JobSucceeded",
        "GenerationSeconds",
        "StatusPolls",
        "OrchestrationCostUSD",
    } <= metric_names
    assert documents[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ImageJobs"
    assert documents[0]["JobCostUSD"] == [float(record.cost.amount)]  # type: ignore[union-attr]
    assert documents[0]["StatusPolls"] == [record.polls]
    assert documents[0]["quality"] == "medium"


def test_status_step_leaves_a_final_job_alone(stack: LocalStack, api: httpx.Client) -> None:
    job_id = submit(api, prompt="a kite", quality="low")
    before = wait_for_record(stack, job_id)
    answer = stack.client("lambda").invoke(
        FunctionName=stack.function_name("StatusFunction"),
        Payload=json.dumps(load_event("status_poll", img_replace_me=job_id)).encode(),
    )
    result = json.loads(answer["Payload"].read())
    assert (result["action"], result["final_status"]) == ("end", "succeeded")
    assert settled(stack.store.get(job_id)) == settled(before)


def test_caught_error_is_recorded_as_the_jobs_reason(stack: LocalStack, api: httpx.Client) -> None:
    job_id = submit(api, prompt="[sim:never] a slow one", quality="low")
    stack.client("lambda").invoke(
        FunctionName=stack.function_name("FinalizeFunction"),
        Payload=json.dumps(load_event("finalize_caught_error", img_replace_me=job_id)).encode(),
    )
    record = stack.store.get(job_id)
    assert record is not None and record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "provider_unavailable"
    assert "503" in record.error.message


def test_execution_history_shows_the_wait_poll_loop(stack: LocalStack, api: httpx.Client) -> None:
    job_id = submit(api, prompt="a loop", quality="low")
    wait_for_record(stack, job_id)
    sfn = stack.client("stepfunctions")
    arn = stack.store.get(job_id).execution_arn  # type: ignore[union-attr]
    for _ in range(100):
        description = sfn.describe_execution(executionArn=arn)
        if description["status"] != "RUNNING":
            break
        threading.Event().wait(0.05)
    assert description["status"] == "SUCCEEDED"
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    assert entered[:2] == ["Begin", "WaitForProvider"]  # a TheRouter job polls from the start
    assert entered[-2:] == ["Decide", "StoreResults"]  # StoreResults ends the execution: no Succeed state to enter
    assert entered.count("PollProvider") == stack.store.get(job_id).polls  # type: ignore[union-attr]


def test_a_job_that_never_finishes_expires_at_the_deadline(stack: LocalStack, api: httpx.Client) -> None:
    job_id = submit(api, prompt="[sim:never] stuck", quality="low")

    record = wait_for_record(stack, job_id)

    assert record.status is JobStatus.EXPIRED
    assert record.error is not None and record.error.code == "deadline_exceeded"
    assert record.completed_at is not None and record.completed_at >= record.deadline_at
    # bounded: growing intervals poll less often than a fixed 10 s poller would have
    assert 3 <= record.polls < TEST_DEADLINE_SECONDS / 10
    assert record.cost is None
