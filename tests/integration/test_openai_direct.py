"""OpenAI direct, the second provider: a model routed to it (ProviderRoutes) runs as a background
response with the image generation tool, on the simulator's OpenAI dialect (sim_openai), and
everything else keeps going to TheRouter."""

from __future__ import annotations

import io
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from PIL import Image

from imagejobs.domain.models import JobStatus
from imagejobs_local.stack import LocalStack
from tests.helpers import wait_for_record

GENERATIONS = "/v1/images/generations"
ROUTE = {"PROVIDER_ROUTES": "openai/gpt-image-2=openai"}


@pytest.fixture
def routed(stack: LocalStack) -> Iterator[None]:
    """ProviderRoutes=openai/gpt-image-2=openai, as a deployment sets it (the route is read where
    jobs are sent: the submit function, and the API's plain calls)."""
    with stack.function_settings("SubmitFunction", **ROUTE), stack.function_settings("ApiFunction", **ROUTE):
        yield


def submit(api: httpx.Client, prompt: str, **fields: object) -> str:
    body = {"prompt": prompt, "model": "openai/gpt-image-2", "quality": "low", "size": "1024x1024", **fields}
    answer = api.post(GENERATIONS, params={"async": "true"}, json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def test_a_routed_model_runs_at_openai_and_is_billed_at_openai_prices(
    stack: LocalStack, api: httpx.Client, routed: None
) -> None:
    """The job is a background response there (not a TheRouter job), its image is the tool call's
    base64 result stored as a real PNG, the record and the job view name the provider, and the
    cost is OpenAI's own token rates (not TheRouter's 1.2x) plus the mainline model's tokens."""
    before = stack.provider.stats.submissions.copy()
    job_id = submit(api, "A lighthouse in fog [sim:webhook_drop]")
    record = wait_for_record(stack, job_id)

    assert record.status is JobStatus.SUCCEEDED, record.error
    assert record.provider == "openai" and record.provider_job_id and record.provider_job_id.startswith("openai:resp_")
    assert stack.provider.stats.submissions[job_id] == before[job_id] + 1
    assert api.get(f"/v1/jobs/{job_id}").json()["provider"] == "openai"
    stored = stack.client("s3").get_object(Bucket=stack.outputs["ResultsBucketName"], Key=record.outputs[0].key)
    assert Image.open(io.BytesIO(stored["Body"].read())).size == (1024, 1024)
    usage = record.usage
    assert usage is not None and record.cost is not None and record.cost.basis == "usage"
    # $5 text in, $30 image out per 1M (OpenAI), and gpt-5-nano's $0.05 / $0.40 for 120 in, 64 out
    expected = (
        usage.text_input_tokens * Decimal("5")
        + usage.output_tokens * Decimal("30")
        + 120 * Decimal("0.05")
        + 64 * Decimal("0.40")
    ) / 1_000_000
    assert Decimal(record.cost.amount) == expected.quantize(Decimal("0.000001"))


def test_what_openai_cannot_make_stays_on_therouter(stack: LocalStack, api: httpx.Client, routed: None) -> None:
    """The image tool makes one image per call: a job for two images of the routed model goes
    to TheRouter, whole, at its prices; so does every model without a route."""
    two = submit(api, "Two lanterns", n=2)
    other = api.post(GENERATIONS, params={"async": "true"}, json={"prompt": "A kite", "quality": "low"}).json()["id"]
    for job_id in (two, other):
        record = wait_for_record(stack, job_id)
        assert record.status is JobStatus.SUCCEEDED and record.provider == "therouter", record.error
        assert record.provider_job_id is not None and record.provider_job_id.startswith("img_sim_")
    assert "provider" in api.get(f"/v1/jobs/{two}").json()


@pytest.mark.parametrize(
    ("marker", "status", "code"),
    [("[sim:fail]", JobStatus.FAILED, "generation_failed"), ("[sim:expired]", JobStatus.FAILED, "incomplete")],
)
def test_a_response_that_fails_or_stops_short_ends_the_job_with_its_reason_unbilled(
    stack: LocalStack, api: httpx.Client, routed: None, marker: str, status: JobStatus, code: str
) -> None:
    record = wait_for_record(stack, submit(api, f"A bridge {marker} [sim:webhook_drop]"))
    assert record.status is status and record.error is not None and record.error.code == code
    assert record.cost is None or Decimal(record.cost.amount) == 0


def test_the_openai_key_goes_to_openai_only(stack: LocalStack) -> None:
    """Each provider has its own key in its own secret: TheRouter's key does not open the OpenAI
    dialect, nor the other way round (the simulator checks both, as the providers do)."""
    base = stack.provider.base_url
    therouter = {"Authorization": f"Bearer {stack.provider.api_key}"}
    openai = {"Authorization": f"Bearer {stack.provider.openai.api_key}"}
    assert httpx.get(f"{base}/v1/responses/resp_x", headers=therouter).status_code == 401
    assert httpx.get(f"{base}/v1/jobs/img_x", headers=openai).status_code == 401
