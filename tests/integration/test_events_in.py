"""ImageJobRequested events in: the same submit path as uploads, one job per event id."""

from __future__ import annotations

import io
import json
import time

from PIL import Image

from imagejobs.domain.identity import event_job_id
from imagejobs.domain.models import JobStatus
from imagejobs_local.stack import LocalStack
from tests.helpers import EventCapture, settled, wait_for_record


def request_event(stack: LocalStack, detail: dict) -> str:
    """Put an ImageJobRequested event on the stack's bus, as a pipeline does; return its job id."""
    answer = stack.client("events").put_events(
        Entries=[{"Source": "imagejobs.requests", "DetailType": "ImageJobRequested", "Detail": json.dumps(detail)}]
    )
    assert answer["FailedEntryCount"] == 0
    return event_job_id(answer["Entries"][0]["EventId"])


def wait_created(stack: LocalStack, job_id: str, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while stack.store.get(job_id) is None:
        assert time.monotonic() < deadline, f"no job {job_id} for the event"
        time.sleep(0.05)
    return wait_for_record(stack, job_id)


def test_event_in_job_event_out(stack: LocalStack, captured: EventCapture) -> None:
    job_id = request_event(stack, {"prompt": "a barn owl", "quality": "low", "correlation_id": "pipeline-run-9"})

    record = wait_created(stack, job_id)

    assert record.status is JobStatus.SUCCEEDED
    assert (record.source, record.tenant, record.correlation_id) == ("event", "events", "pipeline-run-9")
    (event,) = captured.for_job(job_id)
    assert event["detail-type"] == "ImageJobSucceeded"
    assert (event["detail"]["source"], event["detail"]["correlation_id"]) == ("event", "pipeline-run-9")


def test_a_retried_event_is_one_job(stack: LocalStack) -> None:
    answer = stack.client("events").put_events(
        Entries=[
            {
                "Source": "imagejobs.requests",
                "DetailType": "ImageJobRequested",
                "Detail": json.dumps({"prompt": "a moth", "quality": "low"}),
            }
        ]
    )
    event_id = answer["Entries"][0]["EventId"]
    record = wait_created(stack, event_job_id(event_id))
    # EventBridge retries deliveries: the same envelope (same id) twice more on the queue
    envelope = {
        "version": "0",
        "id": event_id,
        "detail-type": "ImageJobRequested",
        "source": "imagejobs.requests",
        "account": "123456789012",
        "time": "2026-11-25T12:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"prompt": "a moth", "quality": "low"},
    }
    for _ in range(2):
        stack.client("sqs").send_message(QueueUrl=stack.outputs["SubmitQueueUrl"], MessageBody=json.dumps(envelope))
    time.sleep(1.0)
    assert stack.provider.stats.submissions[record.id] == 1
    assert settled(stack.store.get(record.id)) == settled(record)


def test_edit_requested_by_event_reads_its_input_from_s3(stack: LocalStack) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (300, 200), (10, 90, 200)).save(picture, format="PNG")
    inbox = stack.outputs["InboxBucketName"]
    stack.client("s3").put_object(Bucket=inbox, Key="library/boat.png", Body=picture.getvalue())

    job_id = request_event(stack, {"prompt": "paint it red", "images": [f"s3://{inbox}/library/boat.png"]})
    record = wait_created(stack, job_id)

    assert record.status is JobStatus.SUCCEEDED and record.kind == "edit"
    output = record.outputs[0]
    body = stack.client("s3").get_object(Bucket=output.bucket, Key=output.key)["Body"].read()
    assert Image.open(io.BytesIO(body)).size == (300, 200)


def test_inputs_outside_the_allowed_buckets_fail_the_job(stack: LocalStack) -> None:
    job_id = request_event(stack, {"prompt": "steal", "images": ["s3://someone-elses-bucket/secret.png"]})
    record = wait_created(stack, job_id)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "input_not_allowed"


def test_invalid_request_in_an_event_fails_the_job_saying_why(stack: LocalStack) -> None:
    job_id = request_event(stack, {"prompt": "x", "size": "12x12"})
    record = wait_created(stack, job_id)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "invalid_value" and "size" in record.error.message


def test_a_refused_event_keeps_its_correlation_id(stack: LocalStack, captured: EventCapture) -> None:
    """Issue #21.14: `images: 5` is refused, and its failed job and ImageJobFailed event still carry
    the caller's correlation_id, so the pipeline can tell which of its requests failed."""
    job_id = request_event(stack, {"prompt": "x", "images": 5, "correlation_id": "run-5"})
    record = wait_created(stack, job_id)
    assert record.status is JobStatus.FAILED and record.correlation_id == "run-5"
    (event,) = captured.for_job(job_id)
    assert event["detail"]["correlation_id"] == "run-5"
