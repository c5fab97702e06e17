"""Malformed and hostile input thrown at every trigger, generated (hypothesis, derandomized and
bounded): an ImageJobRequested event, an inbox upload, a raw message on either queue. (HTTP has
its own generator: schemathesis in tests/e2e/test_fuzz.py.)

The invariant, for each: it ends as a job in a final state that says why (or succeeds), or as a
message parked in its dead-letter queue with a `reason` attribute. Never a crash loop, never a
dead letter without a reason, never silence."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from PIL import Image

from imagejobs.domain import identity
from imagejobs.domain.identity import event_job_id
from imagejobs.domain.models import JobStatus, ObjectRef
from imagejobs_local.stack import LocalStack
from tests.helpers import peek_queue, wait_for_record

# Bounded and repeatable: the same examples on every run (derandomize), a few dozen in all.
BOUNDED = settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as generated, in bounded time
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# URLs that pass a naive check and break a sender, or lead somewhere private (issue #15.4, .5, .15).
HOSTILE_URLS = [
    "https://example.com/a\r\nX-Injected: 1",
    "http://0177.0.0.1/",
    "https://" + "a" * 64 + ".example.com/",
    "https://example.com:99999/",
    "https://[::1/",
    "http://:@127.0.0.1/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[2002:a9fe:a9fe::1]/",
    "https://192.0.0.9/",
    "https://169.254.169.254/latest/meta-data/",
]
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
SIZES = st.sampled_from(["1024x1024", "auto", "12x12", "2048x1152", "0x0", "1024x1024x1", "٣٣x٣٣", ""])
NUMBERS = st.sampled_from(["1", "0", "11", "²", "٣", "-1", "9" * 30, "1.5", " 2 "])


def _final(stack: LocalStack, job_id: str) -> None:
    """The job exists, ends, and if it did not succeed it says why."""
    deadline = time.monotonic() + 30
    while stack.store.get(job_id) is None:
        assert time.monotonic() < deadline, f"no job {job_id}: the input was lost"
        time.sleep(0.05)
    record = wait_for_record(stack, job_id)
    assert record.status.final
    if record.status is not JobStatus.SUCCEEDED:
        assert record.error is not None and record.error.code and record.error.message, record


@BOUNDED
@given(
    detail=st.fixed_dictionaries(
        {},
        optional={
            "prompt": st.text(max_size=30) | JSON,
            "images": JSON | st.lists(st.sampled_from(["s3://nowhere/x.png", "not a uri", ""]), max_size=2),
            "mask": JSON,
            "size": SIZES | JSON,
            "n": JSON,
            "quality": st.sampled_from(["low", "ultra"]) | JSON,
            "model": st.sampled_from(["gpt-image-2", "gpt-image-1.5", "othervendor/gpt-image-1"]) | JSON,
            "webhook_url": st.sampled_from(HOSTILE_URLS) | JSON,
            "correlation_id": JSON,
            "colour": JSON,
        },
    )
)
def test_every_event_ends_as_a_job_that_says_why(stack: LocalStack, detail: dict[str, Any]) -> None:
    answer = stack.client("events").put_events(
        Entries=[{"Source": "imagejobs.requests", "DetailType": "ImageJobRequested", "Detail": json.dumps(detail)}]
    )
    assert answer["FailedEntryCount"] == 0
    _final(stack, event_job_id(answer["Entries"][0]["EventId"]))


def _picture() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


PICTURE = _picture()
ASCII = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20)


@BOUNDED
@given(
    metadata=st.fixed_dictionaries(
        {},
        optional={
            "prompt": ASCII,
            "size": SIZES.filter(str.isascii) | ASCII,
            "n": NUMBERS.filter(str.isascii) | ASCII,
            "quality": ASCII,
            "output-format": st.sampled_from(["png", "gif", ""]),
            "background": st.sampled_from(["transparent", "auto", "x"]),
            "model": st.sampled_from(["gpt-image-2", "gpt-image-1.5", "x/y"]),
        },
    ),
    body=st.sampled_from([PICTURE, b"", b"GIF89a not really", PICTURE[:40]]),
)
def test_every_upload_ends_as_a_job_that_says_why(stack: LocalStack, metadata: dict[str, str], body: bytes) -> None:
    bucket = stack.outputs["InboxBucketName"]
    key = f"uploads/hostile/{time.monotonic_ns()}.png"
    answer = stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)
    _final(stack, identity.upload_job_id(ObjectRef(bucket=bucket, key=key, etag=answer["ETag"].strip('"')), metadata))


def test_a_rules_documents_webhook_url_is_checked_like_any_other(stack: LocalStack) -> None:
    """Issue #15.6: the upload path stored a rules document's webhook_url unchecked."""
    s3, bucket = stack.client("s3"), stack.outputs["InboxBucketName"]
    rules = {"rules": [{"prefix": "uploads/hooked/", "prompt": "in chalk", "webhook_url": "http://0177.0.0.1/"}]}
    s3.put_object(Bucket=bucket, Key="config/rules.json", Body=json.dumps(rules).encode())
    try:
        answer = s3.put_object(Bucket=bucket, Key="uploads/hooked/a.png", Body=PICTURE)
        job_id = identity.upload_job_id(
            ObjectRef(bucket=bucket, key="uploads/hooked/a.png", etag=answer["ETag"].strip('"')), {}
        )
        _final(stack, job_id)
    finally:
        s3.delete_object(Bucket=bucket, Key="config/rules.json")
    record = stack.store.get(job_id)
    assert record is not None and record.error is not None and record.error.code == "webhook_url_refused"


# What SQS takes in a body (#x9 #xA #xD, #x20 up, no surrogates); anything else it refuses itself.
SQS_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs"], blacklist_characters=[chr(c) for c in range(32) if c not in (9, 10, 13)]
    ),
    max_size=40,
)
RAW_BODIES = (
    SQS_TEXT
    | JSON.map(json.dumps)
    | st.builds(lambda job_id: json.dumps({"job_id": job_id}), JSON)
    | st.builds(
        lambda event_id, detail_type, detail: json.dumps(
            {"id": event_id, "source": "x", "detail-type": detail_type, "detail": detail}
        ),
        JSON,
        JSON,
        st.dictionaries(st.text(max_size=5), JSON, max_size=2),
    )
    | st.builds(lambda records: json.dumps({"Records": records}), JSON)
)


def _parked_or_a_job(stack: LocalStack, queue: str, dead_letters: str, bodies: list[str]) -> None:
    """Each body sent to `queue` is, within 30 s, parked in `dead_letters` with a reason, or (an
    event) became a job that says why."""
    sqs = stack.client("sqs")
    url, dlq = stack.outputs[queue], stack.outputs[dead_letters]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)
    pending = set(bodies)
    deadline = time.monotonic() + 30
    while pending:
        assert time.monotonic() < deadline, f"neither parked with a reason nor a job: {sorted(pending)[:3]}"
        for message in peek_queue(sqs, dlq):
            if message["Body"] in pending:
                reason = message.get("MessageAttributes", {}).get("reason", {}).get("StringValue")
                assert reason, f"a dead letter without a reason: {message['Body']!r}"
                pending.discard(message["Body"])
        for body in list(pending):
            job_id = _event_job(body)
            if job_id is not None and stack.store.get(job_id) is not None:
                _final(stack, job_id)
                pending.discard(body)
        time.sleep(0.1)


def _event_job(body: str) -> str | None:
    """The job an EventBridge-shaped body would become, if it is one."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("detail"), dict):
        return event_job_id(event["id"])
    return None


@BOUNDED
@given(bodies=st.lists(RAW_BODIES, min_size=1, max_size=4, unique=True))
def test_every_raw_submit_message_is_parked_with_a_reason_or_becomes_a_job(
    stack: LocalStack, bodies: list[str]
) -> None:
    marked = [body for body in bodies if body.strip()]  # SQS refuses an empty body itself
    if marked:
        _parked_or_a_job(stack, "SubmitQueueUrl", "SubmitDeadLetterQueueUrl", marked)


@BOUNDED
@given(bodies=st.lists(RAW_BODIES, min_size=1, max_size=4, unique=True))
def test_every_raw_notify_message_is_parked_with_a_reason(stack: LocalStack, bodies: list[str]) -> None:
    marked = [body for body in bodies if body.strip()]
    if marked:
        _parked_or_a_job(stack, "NotifyQueueUrl", "NotifyDeadLetterQueueUrl", marked)


@pytest.mark.parametrize("body", ['{"job_id": "img_000000000000000000000000"}', '{"job_id": 7}', "not json"])
def test_a_notify_message_for_no_job_is_parked_not_retried(stack: LocalStack, body: str) -> None:
    _parked_or_a_job(stack, "NotifyQueueUrl", "NotifyDeadLetterQueueUrl", [body])
