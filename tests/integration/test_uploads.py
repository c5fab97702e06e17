"""The S3 inbox through the real template on moto: upload -> queue -> submit -> loop -> edited output."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from PIL import Image

from imagejobs.domain import identity
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import JobStatus, ObjectRef
from imagejobs_local.stack import LocalStack
from tests.helpers import emf_documents, load_event, peek_queue, settled, wait_for_record


def photo(fmt: str = "PNG", size: tuple[int, int] = (320, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(out, format=fmt)
    return out.getvalue()


def upload(stack: LocalStack, key: str, body: bytes, **metadata: str) -> str:
    """Put an object in the inbox; return the id of the job it becomes."""
    bucket = stack.outputs["InboxBucketName"]
    answer = stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
    return identity.upload_job_id(ObjectRef(bucket=bucket, key=key, etag=answer["ETag"].strip('"')), metadata)


def wait_for_upload_job(stack: LocalStack, job_id: str, timeout: float = 60) -> JobRecord:
    deadline = time.monotonic() + timeout
    while stack.store.get(job_id) is None:
        assert time.monotonic() < deadline, f"no job {job_id} was created for the upload"
        time.sleep(0.05)
    return wait_for_record(stack, job_id, timeout)


def queue_depth(stack: LocalStack, output: str) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs[output],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def dead_letters(stack: LocalStack) -> list[dict[str, Any]]:
    """Every message in the DLQ, read without consuming them."""
    return peek_queue(stack.client("sqs"), stack.outputs["SubmitDeadLetterQueueUrl"])


def upload_jobs(stack: LocalStack) -> int:
    items = stack.client("dynamodb").scan(
        TableName=stack.outputs["JobsTableName"],
        Select="COUNT",
        FilterExpression="#s = :upload",
        ExpressionAttributeNames={"#s": "source"},
        ExpressionAttributeValues={":upload": {"S": "upload"}},
    )
    return int(items["Count"])


def test_upload_with_a_metadata_prompt_is_edited(stack: LocalStack) -> None:
    job_id = upload(stack, "uploads/garden.jpg", photo("JPEG"), prompt="make it autumn", size="1536x1024")

    record = wait_for_upload_job(stack, job_id)

    assert record.status is JobStatus.SUCCEEDED, record
    assert (record.source, record.kind, record.tenant) == ("upload", "edit", "inbox")
    (output,) = record.outputs
    assert output.key == f"edits/uploads/garden/{job_id}-0.png"
    stored = stack.client("s3").get_object(Bucket=output.bucket, Key=output.key)
    assert Image.open(io.BytesIO(stored["Body"].read())).size == (1536, 1024)
    assert stored["Metadata"]["source-bucket"] == stack.outputs["InboxBucketName"]
    assert stored["Metadata"]["source-key"] == "uploads/garden.jpg"
    assert stored["Metadata"]["job-id"] == job_id and stored["Metadata"]["source-etag"]


def test_outputs_never_trigger_another_edit(stack: LocalStack) -> None:
    job_id = upload(stack, "uploads/loop-check.png", photo(), prompt="once only")
    wait_for_upload_job(stack, job_id)
    before = upload_jobs(stack)
    time.sleep(1.0)  # time for any event an output might have caused
    assert upload_jobs(stack) == before
    # an object outside the prefix in the inbox itself is not an upload either
    stack.client("s3").put_object(
        Bucket=stack.outputs["InboxBucketName"], Key="drafts/x.png", Body=photo(), Metadata={"prompt": "no"}
    )
    time.sleep(0.5)
    assert upload_jobs(stack) == before


def test_rules_document_gives_the_prompt_and_metadata_wins(stack: LocalStack) -> None:
    rules = {"rules": [{"match": "uploads/products/*.png", "prompt": "studio backdrop", "quality": "low"}]}
    stack.client("s3").put_object(
        Bucket=stack.outputs["InboxBucketName"], Key="config/rules.json", Body=json.dumps(rules).encode()
    )
    by_rule = wait_for_upload_job(stack, upload(stack, "uploads/products/shoe.png", photo()))
    overridden = wait_for_upload_job(stack, upload(stack, "uploads/products/bag.png", photo(), quality="medium"))

    assert by_rule.status is JobStatus.SUCCEEDED
    assert by_rule.request is not None and overridden.request is not None
    assert (by_rule.request.prompt, by_rule.request.quality) == ("studio backdrop", "low")
    assert (overridden.request.prompt, overridden.request.quality) == ("studio backdrop", "medium")


def test_upload_without_instructions_fails_visibly(stack: LocalStack) -> None:
    job_id = upload(stack, "uploads/misc/no-prompt.png", photo())

    record = wait_for_upload_job(stack, job_id)

    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "no_instructions"
    counted = [doc for doc in emf_documents(stack, "SubmitFunction") if doc.get("job_id") == job_id]
    assert len(counted) == 1 and counted[0]["JobFailed"] == [1.0]


def test_key_with_spaces_and_plus_signs(stack: LocalStack) -> None:
    job_id = upload(stack, "uploads/cat photo+1.png", photo(), prompt="add a hat")
    record = wait_for_upload_job(stack, job_id)
    assert record.status is JobStatus.SUCCEEDED
    assert record.origin is not None and record.origin.key == "uploads/cat photo+1.png"
    assert record.outputs[0].key == f"edits/uploads/cat photo+1/{job_id}-0.png"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"this is not an image at all", "unsupported_image_format"),
        (photo("PNG", (800, 600))[:-300], "corrupt_image"),
        (photo("GIF"), "unsupported_image_format"),
    ],
)
def test_bad_image_fails_the_job_and_leaves_the_queue(stack: LocalStack, body: bytes, reason: str) -> None:
    job_id = upload(stack, f"uploads/bad-{reason}.png", body, prompt="fix it")
    record = wait_for_upload_job(stack, job_id)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == reason
    assert stack.provider.stats.submissions[job_id] == 0
    assert not any(job_id in message["Body"] for message in dead_letters(stack))


def test_duplicate_s3_event_is_one_job(stack: LocalStack) -> None:
    job_id = upload(stack, "uploads/dup.png", photo(), prompt="dedupe me")
    record = wait_for_upload_job(stack, job_id)
    assert record.origin is not None
    # S3 delivers at least once: the same event twice more, in AWS's own event shape
    event = load_event("submit_s3_upload")["Records"][0]["body"]
    event = event.replace("inbox-bucket-replace-me", record.origin.bucket).replace(
        "uploads/cat+photo.png", "uploads/dup.png"
    )
    event = event.replace("etag-replace-me", record.origin.etag or "")
    for _ in range(2):
        stack.client("sqs").send_message(QueueUrl=stack.outputs["SubmitQueueUrl"], MessageBody=event)
    deadline = time.monotonic() + 10
    while queue_depth(stack, "SubmitQueueUrl") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.provider.stats.submissions[job_id] == 1
    assert settled(stack.store.get(job_id)) == settled(record)


def test_the_same_bytes_again_with_new_instructions_are_a_new_job(stack: LocalStack) -> None:
    """Issue #15.11: re-uploading the same bytes to the same key with another prompt was silently
    ignored (the job id came from the key and ETag alone)."""
    first = wait_for_upload_job(stack, upload(stack, "uploads/again.png", photo(), prompt="in watercolour"))
    second = wait_for_upload_job(stack, upload(stack, "uploads/again.png", photo(), prompt="in charcoal"))
    assert first.id != second.id
    assert first.request is not None and second.request is not None
    assert (first.request.prompt, second.request.prompt) == ("in watercolour", "in charcoal")
    assert first.status is second.status is JobStatus.SUCCEEDED


def test_s3_test_event_is_acknowledged_and_ignored(stack: LocalStack) -> None:
    before = upload_jobs(stack)
    stack.client("lambda").invoke(
        FunctionName=stack.function_name("SubmitFunction"),
        Payload=json.dumps(load_event("submit_s3_test_event")).encode(),
    )
    answer = stack.client("lambda").invoke(
        FunctionName=stack.function_name("SubmitFunction"),
        Payload=json.dumps(load_event("submit_s3_test_event")).encode(),
    )
    assert json.loads(answer["Payload"].read()) == {"batchItemFailures": []}
    assert upload_jobs(stack) == before
    assert not any("s3:TestEvent" in message["Body"] for message in dead_letters(stack))


def test_foreign_message_is_parked_in_the_dlq_with_its_reason(stack: LocalStack) -> None:
    stack.client("sqs").send_message(QueueUrl=stack.outputs["SubmitQueueUrl"], MessageBody='{"hello": "world"}')
    deadline = time.monotonic() + 10
    parked: list[dict[str, Any]] = []
    while not parked and time.monotonic() < deadline:
        parked = [m for m in dead_letters(stack) if m["Body"] == '{"hello": "world"}']
        time.sleep(0.05)
    assert parked, "the message did not reach the dead-letter queue"
    assert "not an S3 event" in parked[0]["MessageAttributes"]["reason"]["StringValue"]


def test_rate_limited_submit_retries_then_succeeds(stack: LocalStack) -> None:
    job_id = upload(stack, "uploads/busy.png", photo(), prompt="[sim:ratelimit=2] [sim:retry_after=0] make it blue")
    record = wait_for_upload_job(stack, job_id)
    assert record.status is JobStatus.SUCCEEDED
    assert stack.provider.stats.rate_limited[job_id] == 2
    assert stack.provider.stats.submissions[job_id] == 1


def test_rate_limited_until_the_dlq_ends_the_job_rate_limited(stack: LocalStack) -> None:
    job_id = upload(stack, "uploads/always-busy.png", photo(), prompt="[sim:ratelimit=99] [sim:retry_after=0] no")
    record = wait_for_upload_job(stack, job_id)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "rate_limited"
    assert stack.provider.stats.rate_limited[job_id] == 5  # SubmitMaxReceiveCount deliveries, no more
    deadline = time.monotonic() + 15
    while not any("always-busy" in m["Body"] for m in dead_letters(stack)):
        assert time.monotonic() < deadline, "the message did not reach the dead-letter queue"
        time.sleep(0.1)
    assert stack.provider.stats.submissions[job_id] == 0


@pytest.mark.parametrize(
    "document",
    [
        b'{"rules": [ {"prefix": "uploads/"',
        b'["a list"]',
        b'{"rules": [{"prompt": "no prefix or match"}]}',
        b"\xff\xfe",
    ],
)
def test_a_broken_rules_document_fails_only_the_uploads_that_need_it(stack: LocalStack, document: bytes) -> None:
    """Issue #15.3: one bad config/rules.json used to stop every upload into the DLQ with no job.
    Now an upload with its own prompt goes on; one that needs the rules ends failed, saying which
    document is broken and why, counted (UploadRulesInvalid); nothing reaches the DLQ."""
    s3, bucket = stack.client("s3"), stack.outputs["InboxBucketName"]
    s3.put_object(Bucket=bucket, Key="config/rules.json", Body=document)
    try:
        own = wait_for_upload_job(stack, upload(stack, "uploads/broken-rules/own.png", photo(), prompt="in ink"))
        needs = wait_for_upload_job(stack, upload(stack, "uploads/broken-rules/needs.png", photo()))
    finally:
        s3.delete_object(Bucket=bucket, Key="config/rules.json")

    assert own.status is JobStatus.SUCCEEDED, own.error
    assert needs.status is JobStatus.FAILED and needs.error is not None
    assert needs.error.code == "invalid_rules" and "config/rules.json" in needs.error.message
    counted = [doc for doc in emf_documents(stack, "SubmitFunction") if doc.get("job_id") == needs.id]
    assert counted and counted[0]["UploadRulesInvalid"] == [1.0]
    assert not any(needs.id in message["Body"] or "broken-rules" in message["Body"] for message in dead_letters(stack))


def test_an_inbox_object_overwritten_while_its_job_waits_is_never_sent(stack: LocalStack) -> None:
    """Issue #21.8: the job was checked against the PNG and sent the SVG that replaced it. Its
    input is pinned to the object of its event (the ETag): the replacement is another upload."""
    inbox = stack.outputs["InboxBucketName"]
    job_id = upload(stack, "uploads/pinned.png", photo(), prompt="[sim:submit_429=1] [sim:retry_after=200] pin")
    deadline = time.monotonic() + 30
    while stack.store.get(job_id) is None:  # checked and recorded, its submission held back by the 429
        assert time.monotonic() < deadline
        time.sleep(0.02)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    stack.client("s3").put_object(Bucket=inbox, Key="uploads/pinned.png", Body=svg, Metadata={"prompt": "x"})
    record = wait_for_upload_job(stack, job_id)
    assert record.status is JobStatus.FAILED and record.error is not None
    assert record.error.code == "source_changed", record.error
    assert stack.provider.stats.submissions[job_id] == 0


def test_a_deleted_upload_redelivered_is_still_one_job(stack: LocalStack) -> None:
    """Issue #21.9: an object deleted while its job waited out a 429 got a second job when its
    event came again, since the job's id hashes metadata that could no longer be read."""
    inbox = stack.outputs["InboxBucketName"]
    job_id = upload(stack, "uploads/deleted.png", photo(), prompt="a deleted one")
    record = wait_for_upload_job(stack, job_id)
    stack.client("s3").delete_object(Bucket=inbox, Key="uploads/deleted.png")
    assert record.origin is not None
    event = {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": inbox},
                    "object": {"key": "uploads/deleted.png", "eTag": record.origin.etag, "size": 100},
                },
            }
        ]
    }

    def jobs() -> set[str]:
        scanned = stack.client("dynamodb").scan(
            TableName=stack.outputs["JobsTableName"],
            FilterExpression="begins_with(pk, :job)",
            ExpressionAttributeValues={":job": {"S": "job#"}},
            ProjectionExpression="pk",
        )
        return {item["pk"]["S"] for item in scanned["Items"]}

    before = jobs()
    stack.client("sqs").send_message(QueueUrl=stack.outputs["SubmitQueueUrl"], MessageBody=json.dumps(event))
    deadline = time.monotonic() + 3
    while queue_depth(stack, "SubmitQueueUrl") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert jobs() == before  # the redelivery found the first job; no second one
