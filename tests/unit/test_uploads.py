"""The S3 inbox: reading real S3 events and deciding what to do with an upload."""

from __future__ import annotations

import json

import pytest

from imagejobs.domain import identity, uploads
from imagejobs.domain.models import ObjectRef
from tests.helpers import load_event


def test_aws_sample_event_decodes_the_key() -> None:
    body = json.loads(load_event("submit_s3_upload")["Records"][0]["body"])
    (record,) = uploads.parse_s3_message(body)  # type: ignore[misc]
    ref = record.object_ref()
    assert ref.key == "uploads/cat photo.png"  # "+" is a space in S3 event keys
    assert ref.etag == "etag-replace-me"


def test_percent_encoded_keys_decode_too() -> None:
    body = json.loads(load_event("submit_s3_upload")["Records"][0]["body"].replace("cat+photo", "caf%C3%A9%2Bt%C3%A9"))
    (record,) = uploads.parse_s3_message(body)  # type: ignore[misc]
    assert record.object_ref().key == "uploads/café+té.png"


def test_s3_test_event_is_recognised() -> None:
    assert uploads.parse_s3_message(json.loads(load_event("submit_s3_test_event")["Records"][0]["body"])) == []


@pytest.mark.parametrize("body", [{"hello": "world"}, [1, 2], "text", {"Records": [{"eventSource": "aws:sns"}]}])
def test_other_messages_are_not_s3_events(body: object) -> None:
    with pytest.raises(uploads.NotAnS3Event):
        uploads.parse_s3_message(body)


def test_same_object_version_is_the_same_job() -> None:
    first = ObjectRef(bucket="b", key="uploads/a.png", etag="e1")
    same = {"prompt": "make it blue", "x-other": "ignored"}
    assert identity.upload_job_id(first, same) == identity.upload_job_id(first.model_copy(), {"Prompt": "make it blue"})
    assert identity.upload_job_id(first, same) != identity.upload_job_id(first.model_copy(update={"etag": "e2"}), same)
    # issue #15.11: the same bytes again with other instructions are another job
    assert identity.upload_job_id(first, same) != identity.upload_job_id(first, {"prompt": "make it red"})


RULES = {
    "rules": [
        {"match": "uploads/products/*.jpg", "prompt": "studio backdrop", "quality": "low", "size": "1024x1024"},
        {"prefix": "uploads/avatars/", "prompt": "cartoon avatar", "n": 2},
    ]
}


def test_rules_by_glob_and_prefix() -> None:
    assert uploads.instructions("uploads/products/shoe.jpg", {}, RULES).prompt == "studio backdrop"
    assert uploads.instructions("uploads/avatars/me.png", {}, RULES).n == 2


def test_metadata_wins_over_rules() -> None:
    request = uploads.instructions(
        "uploads/products/shoe.jpg", {"quality": "high", "output-format": "webp", "n": "3"}, RULES
    )
    assert (request.prompt, request.quality, request.output_format, request.n) == ("studio backdrop", "high", "webp", 3)


def test_no_prompt_anywhere_is_no_instructions() -> None:
    with pytest.raises(uploads.NoInstructions):
        uploads.instructions("uploads/misc/x.png", {"size": "1024x1024"}, RULES)


@pytest.mark.parametrize("metadata", [{"prompt": "p", "n": "many"}, {"prompt": "p", "size": "9x9"}])
def test_bad_metadata_is_invalid_instructions(metadata: dict[str, str]) -> None:
    with pytest.raises(uploads.InvalidInstructions):
        uploads.instructions("uploads/x.png", metadata, None)


def test_outputs_go_under_edits_without_the_extension() -> None:
    assert uploads.output_prefix("uploads/cat photo.png") == "edits/uploads/cat photo/"
    assert uploads.output_prefix("uploads/v1.2/raw") == "edits/uploads/v1.2/raw/"


@pytest.mark.parametrize(
    ("key", "prefix"),
    [
        ("uploads/..png", "edits/uploads/_/"),
        ("uploads/sub/..png", "edits/uploads/sub/_/"),
        ("uploads//a.png", "edits/uploads/_/a/"),
    ],
)
def test_output_keys_have_no_segment_a_client_would_remove(key: str, prefix: str) -> None:
    """Issue #21.12: clients drop "." and ".." segments (RFC 3986 5.2.4) before sending a URL, so
    a key holding one is not fetchable by its presigned URL: outputs never get one."""
    assert uploads.output_prefix(key) == prefix


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"prompt": "p", "n": "٣"}, "whole number"),  # Arabic-Indic 3: int() takes it, HTTP does not
        ({"prompt": "p", "promt": "typo"}, "x-amz-meta-promt"),
        ({"prompt": "p", "mtime": "1700000000"}, "x-amz-meta-mtime"),
    ],
)
def test_metadata_is_read_as_http_reads_parameters(metadata: dict[str, str], problem: str) -> None:
    """Issue #21.11, #21.16: digits in ASCII only and unknown instructions refused, as over HTTP."""
    with pytest.raises(uploads.InvalidInstructions, match=problem):
        uploads.instructions("uploads/x.png", metadata, None)


def test_rules_digits_are_ascii_too() -> None:
    rules = {"rules": [{"prefix": "uploads/", "prompt": "p", "n": "٣"}]}
    with pytest.raises(uploads.InvalidInstructions):
        uploads.instructions("uploads/x.png", {}, rules)


def test_non_ascii_metadata_comes_back_as_it_was_set() -> None:
    """S3 returns user metadata that is not ASCII RFC 2047-encoded: the prompt is the decoded text."""
    encoded = "=?UTF-8?B?" + __import__("base64").b64encode("un phare à l'aube, 灯台".encode()).decode() + "?="
    assert uploads.instructions("uploads/x.png", {"prompt": encoded}, None).prompt == "un phare à l'aube, 灯台"
    assert uploads.instructions("uploads/x.png", {"prompt": "=? not encoded"}, None).prompt == "=? not encoded"
