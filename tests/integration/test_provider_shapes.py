"""The provider as its documents show it, each variant through the whole stack (simulator markers).

TheRouter's pages disagree with each other: `expires_at` as unix seconds and as an ISO string;
results in `unsigned_urls[]` and, on the async-media page, in `result.data[].url`; no `usage` on
the job object. OpenAI's image response carries `data[].url` or `data[].b64_json`. Nothing
documents job id shapes or every status value."""

from __future__ import annotations

import io
from decimal import Decimal

import httpx
import pytest
from PIL import Image

from imagejobs.domain.models import JobStatus
from imagejobs_local.stack import LocalStack
from tests.helpers import wait_for_record

VARIANTS = {
    "therouter_job_page": "",
    "async_media_page": "[sim:result_data][sim:auth_downloads][sim:no_usage][sim:iso_times]",
    "openai_data_urls": "[sim:data_url]",
    "inline_b64_json": "[sim:b64_json][sim:no_usage]",
    "unknown_status_while_running": "[sim:unknown_status]",
    "ids_of_another_shape": "[sim:odd_id]",
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_documented_shape_ends_stored_and_priced(stack: LocalStack, api: httpx.Client, variant: str) -> None:
    markers = VARIANTS[variant]
    answer = api.post(
        "/v1/images/generations",
        params={"async": "true"},
        json={"prompt": f"A harbour at night {markers}", "n": 2, "quality": "low", "output_format": "png"},
    )
    assert answer.status_code == 202, answer.text

    record = wait_for_record(stack, answer.json()["id"])

    assert record.status is JobStatus.SUCCEEDED, record.error
    s3 = stack.client("s3")
    for output in record.outputs:
        stored = s3.get_object(Bucket=stack.outputs["ResultsBucketName"], Key=output.key)["Body"].read()
        assert Image.open(io.BytesIO(stored)).format == "PNG"
    assert len(record.outputs) == 2
    assert record.cost is not None
    if "no_usage" in markers:  # priced on the per-image basis: 2 x $0.0132 for gpt-image-1 low
        assert (record.cost.basis, Decimal(record.cost.amount)) == ("per_image", Decimal("0.0264"))
    else:
        assert record.cost.basis == "usage" and record.usage is not None


@pytest.mark.parametrize(
    ("model", "size", "per_image"),
    [("openai/gpt-image-1", "auto", "0.0132"), ("openai/gpt-image-2", "2048x1152", "0.0162")],
)
def test_a_provider_as_the_async_media_page_shows_it_and_without_idempotency(
    stack: LocalStack, api: httpx.Client, model: str, size: str, per_image: str
) -> None:
    """Issue #14's bar: ISO times, results only in `result.data[].url` behind the bearer key, no
    `usage`, an Idempotency-Key ignored (ProviderIdempotency=none): the job succeeds, is stored,
    sent once, and costs its model's per-image price (gpt-image-2's $0.0072 low at 1024x1024,
    x 2.25 for 2048x1152's pixels)."""
    markers = VARIANTS["async_media_page"] + "[sim:no_idempotency]"
    body = {"prompt": f"A quay at dusk {markers}", "model": model, "size": size, "quality": "low", "n": 2}
    with stack.function_settings("SubmitFunction", PROVIDER_IDEMPOTENCY="none"):
        answer = api.post("/v1/images/generations", params={"async": "true"}, json=body)
        assert answer.status_code == 202, answer.text
        record = wait_for_record(stack, answer.json()["id"])

    assert record.status is JobStatus.SUCCEEDED, record.error
    assert stack.provider.stats.submissions[record.id] == 1
    s3 = stack.client("s3")
    for output in record.outputs:
        stored = s3.get_object(Bucket=stack.outputs["ResultsBucketName"], Key=output.key)["Body"].read()
        expected = (2048, 1152) if size == "2048x1152" else (1024, 1024)
        assert Image.open(io.BytesIO(stored)).size == expected
    assert len(record.outputs) == 2 and record.cost is not None
    assert (record.cost.basis, Decimal(record.cost.amount)) == ("per_image", 2 * Decimal(per_image))
