"""Edits over HTTP: multipart in, inputs stored before the 202, the same image rules as uploads."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from imagejobs.domain import clock
from imagejobs_local.stack import LocalStack
from tests.helpers import wait_for_job

EDITS = "/v1/images/edits?async=true"


def picture(fmt: str = "PNG", size: tuple[int, int] = (320, 240), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (200, 60, 60) if mode == "RGB" else None).save(out, format=fmt)
    return out.getvalue()


def test_edit_call_from_therouters_docs_works_unchanged(stack: LocalStack, tmp_path: Path) -> None:
    """curl -F "image=@input.png" -F "prompt=..." exactly as documented (httpx if curl is absent)."""
    source = tmp_path / "input.png"
    source.write_bytes(picture())
    url = stack.base_url + EDITS
    curl = shutil.which("curl")
    if curl:
        answer = json.loads(
            subprocess.run(
                [
                    curl,
                    "-s",
                    "-X",
                    "POST",
                    url,
                    "-H",
                    f"Authorization: Bearer {stack.api_key}",
                    "-F",
                    "model=openai/gpt-image-1",
                    "-F",
                    "image=@" + str(source),
                    "-F",
                    "prompt=Add a red scarf",
                    "-F",
                    "size=1024x1024",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    else:
        answer = httpx.post(
            url,
            headers={"Authorization": f"Bearer {stack.api_key}"},
            data={"model": "openai/gpt-image-1", "prompt": "Add a red scarf", "size": "1024x1024"},
            files={"image": ("input.png", source.read_bytes(), "image/png")},
        ).json()
    assert answer["status"] == "queued"
    record = stack.store.get(answer["id"])
    assert record is not None and record.kind == "edit"
    stored = stack.client("s3").get_object(Bucket=record.inputs[0].bucket, Key=record.inputs[0].key)
    assert stored["Body"].read() == source.read_bytes()  # kept before the 202, for retries

    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.api_key}"}) as api:
        job = wait_for_job(api, answer["id"])
    assert job["status"] == "succeeded"
    output = stack.store.get(answer["id"]).outputs[0]  # type: ignore[union-attr]
    edited = Image.open(io.BytesIO(stack.client("s3").get_object(Bucket=output.bucket, Key=output.key)["Body"].read()))
    assert edited.size == (1024, 1024)
    assert job["usage"]["input_tokens_details"]["image_tokens"] > 0


def test_several_images_and_a_mask(stack: LocalStack, api: httpx.Client) -> None:
    answer = api.post(
        EDITS,
        data={"prompt": "combine them", "quality": "low", "n": "2", "input_fidelity": "high"},
        files=[
            ("image[]", ("a.png", picture(), "image/png")),
            ("image[]", ("b.jpg", picture("JPEG"), "image/jpeg")),
            ("mask", ("mask.png", picture("PNG", mode="RGBA"), "image/png")),
        ],
    )
    assert answer.status_code == 202, answer.text
    job = wait_for_job(api, answer.json()["id"])
    assert job["status"] == "succeeded" and len(job["unsigned_urls"]) == 2


def assert_refused(answer: httpx.Response, status: int, code: str, param: str | None = None) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    if param:
        assert error["param"] == param


@pytest.mark.parametrize(
    ("files", "code", "param"),
    [
        ([("image", ("notes.png", b"just text", "image/png"))], "unsupported_image_format", "image"),
        ([("image", ("cut.png", picture("PNG", (800, 600))[:-300], "image/png"))], "corrupt_image", "image"),
        ([("image", ("anim.png", picture("GIF", mode="P"), "image/png"))], "unsupported_image_format", "image"),
        ([("image", ("bomb.png", picture("PNG", (8000, 6000), "1"), "image/png"))], "too_many_pixels", "image"),
        (
            [("image", ("a.png", picture(), "image/png")), ("mask", ("m.png", picture("PNG", (32, 32)), "image/png"))],
            "invalid_mask",
            "mask",
        ),
        (
            [("image", ("a.png", picture(), "image/png")), ("mask", ("m.jpg", picture("JPEG"), "image/jpeg"))],
            "invalid_mask",
            "mask",
        ),
        ([], "missing_required_parameter", "image"),
    ],
)
def test_bad_images_get_a_clear_400(api: httpx.Client, files: list, code: str, param: str) -> None:
    answer = api.post(EDITS, data={"prompt": "edit"}, files=files or {"placeholder": (None, "x")})
    assert_refused(answer, 400, code, param)


def test_bad_edit_parameters_and_content_types(api: httpx.Client) -> None:
    image = [("image", ("a.png", picture(), "image/png"))]
    assert_refused(api.post(EDITS, data={"prompt": "x", "size": "9x9"}, files=image), 400, "invalid_value", "size")
    assert_refused(api.post(EDITS, data={"prompt": "x", "colour": "red"}, files=image), 400, "unknown_parameter")
    assert_refused(api.post(EDITS, data={}, files=image), 400, "missing_required_parameter", "prompt")
    assert_refused(api.post(EDITS, json={"prompt": "x"}), 415, "unsupported_content_type")


def test_over_10_mb_is_413_pointing_to_the_inbox(stack: LocalStack, api: httpx.Client) -> None:
    big = b"\0" * (10 * 1024 * 1024 + 1)
    answer = api.post(EDITS, data={"prompt": "x"}, files=[("image", ("big.png", big, "image/png"))])
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["code"] == "request_too_large" and "inbox" in error["message"]


def test_an_edit_over_lambdas_payload_never_reaches_the_function(api: httpx.Client) -> None:
    """A 5 MB image fits API Gateway's 10 MB but not Lambda's 6 MB invocation payload once the
    multipart body is base64-encoded into the proxy event (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
    API Gateway answers 413 itself and no job exists. 4 MB still goes through."""
    five_mb = picture() + b"\0" * (5 * 1024 * 1024)
    answer = api.post(EDITS, data={"prompt": "x"}, files=[("image", ("five.png", five_mb, "image/png"))])
    assert answer.status_code == 413
    assert answer.json() == {"message": "Request Too Long"}
    four_mb = picture("PNG", (1024, 1024)) + b"\0" * (4 * 1024 * 1024 - 10_000)
    fits = api.post(EDITS, data={"prompt": "x"}, files=[("image", ("four.png", four_mb, "image/png"))])
    assert fits.status_code != 413, fits.text  # the function answered it (a job, or its own 4xx)


def _named(upload_id: str) -> list[tuple[str, tuple[None, str]]]:
    """A text part of a multipart form, as curl -F image_upload=upload_... sends it."""
    return [("image_upload", (None, upload_id))]


def _upload(api: httpx.Client, data: bytes, mime_type: str = "image/png", declared: int | None = None) -> dict:
    """POST /v1/uploads, then the file straight to S3 as a browser form (moto intercepts `requests`)."""
    import requests

    ticket = api.post(
        "/v1/uploads", json={"filename": "big.png", "bytes": declared or len(data), "mime_type": mime_type}
    )
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    sent = requests.post(
        body["upload_url"], data=body["upload_fields"], files={"file": ("big.png", data, mime_type)}, timeout=60
    )
    return {**body, "s3_status": sent.status_code, "s3_answer": sent.text}


def test_an_image_too_large_for_a_request_is_uploaded_first_then_edited(stack: LocalStack, api: httpx.Client) -> None:
    """Over the ~4.5 MB a request can carry, an image goes to S3 by presigned POST (the upload's
    size and type are held to what was declared, by S3) and the edit names it."""
    import os

    side = 1500
    noisy = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(noisy, format="PNG")
    big = noisy.getvalue()
    assert len(big) > 6 * 1024 * 1024  # more than any edit request could carry

    upload = _upload(api, big)
    assert upload["s3_status"] == 204, upload["s3_answer"]
    assert upload["id"].startswith("upload_") and upload["object"] == "upload"

    answer = api.post(EDITS, data={"prompt": "Make it calm", "quality": "low"}, files=_named(upload["id"]))
    assert answer.status_code == 202, answer.text
    record = wait_for_job(api, answer.json()["id"])
    assert record["status"] == "succeeded", record


def test_uploads_are_held_to_their_declaration_and_their_tenant(stack: LocalStack, api: httpx.Client) -> None:
    """S3 checks the presigned POST's policy (key, type, size range, expiry) and the signer's
    PutObject; our API refuses what it would never accept and ids that are not the caller's."""
    import requests

    small = picture()
    ticket = api.post("/v1/uploads", json={"filename": "a.png", "bytes": len(small), "mime_type": "image/png"}).json()
    tampered = {**ticket["upload_fields"], "key": "results/img_000000000000000000000000/0.png"}
    refused = requests.post(ticket["upload_url"], data=tampered, files={"file": ("a.png", small)}, timeout=30)
    assert refused.status_code == 403 and "Policy Condition failed" in refused.text
    retyped = {**ticket["upload_fields"], "Content-Type": "text/html"}
    refused = requests.post(ticket["upload_url"], data=retyped, files={"file": ("a.png", small)}, timeout=30)
    assert refused.status_code == 403

    assert_refused(
        api.post("/v1/uploads", json={"filename": "x.gif", "bytes": 10, "mime_type": "image/gif"}),
        400,
        "unsupported_image_format",
        "mime_type",
    )
    assert_refused(
        api.post("/v1/uploads", json={"filename": "x.png", "bytes": 60 * 1024 * 1024, "mime_type": "image/png"}),
        400,
        "image_too_large",
        "bytes",
    )
    missing = api.post(EDITS, data={"prompt": "x"}, files=_named(ticket["id"]))  # never sent
    assert_refused(missing, 400, "upload_not_found", "image_upload")

    mine = _upload(api, small)
    assert mine["s3_status"] == 204, mine["s3_answer"]
    stack.tenants.add_key("sk-uploads-other", "uploads-other", clock.now())
    other = httpx.post(
        stack.base_url + EDITS,
        data={"prompt": "x"},
        files=_named(mine["id"]),
        headers={"Authorization": "Bearer sk-uploads-other"},
    )
    assert_refused(other, 400, "upload_not_found", "image_upload")  # another tenant's id names nothing
    assert_refused(api.post(EDITS, data={"prompt": "x"}, files=_named("../../results")), 400, "invalid_upload_id")


def _inputs(stack: LocalStack, job_id: str) -> list[str]:
    listed = stack.client("s3").list_objects_v2(Bucket=stack.outputs["ResultsBucketName"], Prefix=f"inputs/{job_id}/")
    return [item["Key"] for item in listed.get("Contents", [])]


def test_a_refused_edit_leaves_nothing_stored_and_an_accepted_one_keeps_its_inputs_under_its_id(
    stack: LocalStack, api: httpx.Client
) -> None:
    """Issue #15.9: refused edits (unknown model, a refused webhook, a reused Idempotency-Key)
    left their images in the results bucket for 30 days; inputs were stored under another random
    id than the job's."""
    files = {"image": ("a.png", picture(), "image/png")}
    for fields in ({"prompt": "a", "model": "gpt-image-9"}, {"prompt": "a", "webhook_url": "https://10.0.0.1/"}):
        refused = api.post(EDITS, data=fields, files=files, headers={"Idempotency-Key": f"refused-{fields}"})
        assert refused.status_code == 400, refused.text
    first = api.post(EDITS, data={"prompt": "a", "quality": "low"}, files=files, headers={"Idempotency-Key": "edit-k"})
    assert first.status_code == 202, first.text
    job_id = first.json()["id"]
    stored = _inputs(stack, job_id)
    record = stack.store.get(job_id)
    assert record is not None and sorted(ref.key for ref in record.inputs) == stored and len(stored) == 1
    # The same key with another body: 409, and the first job's inputs are untouched.
    other = api.post(EDITS, data={"prompt": "b", "quality": "low"}, files=files, headers={"Idempotency-Key": "edit-k"})
    assert other.status_code == 409
    assert _inputs(stack, job_id) == stored
    listed = stack.client("s3").list_objects_v2(Bucket=stack.outputs["ResultsBucketName"], Prefix="inputs/img_")
    owners = {item["Key"].split("/")[1] for item in listed.get("Contents", [])}
    assert all(stack.store.get(owner) is not None for owner in owners), "inputs of a job that does not exist"


def test_a_chunked_edit_is_read_as_api_gateway_reads_it(stack: LocalStack, api: httpx.Client) -> None:
    """Issue #16.7: the Node SDK streams files (fs.createReadStream) as Transfer-Encoding: chunked;
    the local gateway answered 400 invalid_multipart."""
    form = httpx.Request(
        "POST",
        stack.base_url + EDITS,
        data={"prompt": "in pencil", "quality": "low"},
        files={"image": ("a.png", picture(), "image/png")},
    )
    body, content_type = form.read(), form.headers["Content-Type"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    answer = api.post(EDITS, content=chunks(), headers={"Content-Type": content_type})
    assert answer.request.headers.get("Transfer-Encoding") == "chunked"
    assert answer.status_code == 202, answer.text
    assert wait_for_job(api, answer.json()["id"])["status"] == "succeeded"


def test_an_upload_ticket_used_again_after_the_check_changes_nothing_sent(stack: LocalStack, api: httpx.Client) -> None:
    """Issue #21.7: the same presigned POST can write the key again until it expires. An edit is
    pinned to the upload it checked (its ETag): the SVG written after the check is never sent; the
    job ends source_changed, charged nothing. (The 429 holds the submit back, as in the finding.)"""
    import requests

    png = picture()
    upload = _upload(api, png)
    assert upload["s3_status"] == 204, upload["s3_answer"]
    answer = api.post(
        EDITS,
        data={"prompt": "[sim:submit_429=1] [sim:retry_after=200] pinned", "quality": "low"},
        files=_named(upload["id"]),
    )
    assert answer.status_code == 202, answer.text
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    again = requests.post(
        upload["upload_url"], data=upload["upload_fields"], files={"file": ("a.png", svg, "image/png")}
    )
    assert again.status_code == 204  # S3 takes it: the ticket is still valid
    job = wait_for_job(api, answer.json()["id"])
    assert (job["status"], job["error"]["code"]) == ("failed", "source_changed"), job
    assert job["cost"] is None and stack.provider.stats.submissions[job["id"]] == 0
