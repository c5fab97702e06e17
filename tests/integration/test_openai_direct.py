"""OpenAI direct, the second provider: a model routed to it (ProviderRoutes) runs as a background
response with the image generation tool, on the simulator's OpenAI dialect (sim_openai), and
everything else keeps going to TheRouter."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from PIL import Image

from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import JobStatus
from imagejobs_local.stack import LocalStack
from tests.helpers import NOTIFICATION_FIELDS, wait_for_record

GENERATIONS = "/v1/images/generations"
ROUTE = {"PROVIDER_ROUTES": "openai/gpt-image-2=openai"}


@pytest.fixture
def routed(stack: LocalStack) -> Iterator[None]:
    """ProviderRoutes=openai/gpt-image-2=openai, as a deployment sets it (the route is read where
    jobs are sent: the submit function, and the API's plain calls)."""
    with stack.function_settings("SubmitFunction", **ROUTE), stack.function_settings("ApiFunction", **ROUTE):
        yield


def settled(record: JobRecord, *also: str) -> dict[str, object]:
    """A record without what the notify step adds after it settles (it runs on its own), nor `also`."""
    return record.model_dump(exclude={*NOTIFICATION_FIELDS, *also})


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


HOOKED = {**ROUTE, "OPENAI_WEBHOOKS": "true"}
NOTED = ("provider_event", "provider_event_at", "provider_events", "updated_at")  # what a webhook writes


@pytest.fixture
def webhooks_on(stack: LocalStack) -> Iterator[None]:
    """OpenAIWebhooks=true, as a deployment sets it once OpenAI's dashboard sends webhooks here
    (the simulator sends them to the stack's gateway: sim_openai). Read where the loop starts
    (submit) and where a poll decides what next (status)."""
    with (
        stack.function_settings("SubmitFunction", **HOOKED),
        stack.function_settings("ApiFunction", **HOOKED),
        stack.function_settings("StatusFunction", **HOOKED),
    ):
        yield


def test_with_the_webhook_a_job_completes_without_a_single_status_poll(
    stack: LocalStack, api: httpx.Client, webhooks_on: None
) -> None:
    """The loop waits on a task token; OpenAI's signed response.completed ends the wait and the
    job goes straight to finalize, which reads the response itself before it stores or bills."""
    answers = stack.provider.openai.webhook_answers[200]
    record = wait_for_record(stack, submit(api, "A harbour at noon"))
    assert record.status is JobStatus.SUCCEEDED, record.error
    assert (record.polls, record.provider_event, record.waits) == (0, "completed", 1)
    assert stack.provider.openai.webhook_answers[200] == answers + 1
    assert record.cost is not None and Decimal(record.cost.amount) > 0


def test_a_dropped_webhook_loses_nothing_the_wait_times_out_into_a_poll(
    stack: LocalStack, api: httpx.Client, webhooks_on: None
) -> None:
    record = wait_for_record(stack, submit(api, "A pier [sim:webhook_drop]"))
    assert record.status is JobStatus.SUCCEEDED, record.error
    assert record.polls >= 1 and record.provider_event is None


@pytest.mark.parametrize("fault", ["forged", "stale"])
def test_a_forged_or_replayed_webhook_is_refused_and_changes_nothing(
    stack: LocalStack, api: httpx.Client, webhooks_on: None, fault: str
) -> None:
    """Signed with another secret, or with a timestamp outside the 5-minute window: answered 400
    before anything is read, so the job is still followed by polling, and ends as the provider
    says (not as the webhook says)."""
    refused = stack.provider.openai.webhook_answers[400]
    record = wait_for_record(stack, submit(api, f"A buoy [sim:webhook_{fault}]"))
    assert stack.provider.openai.webhook_answers[400] == refused + 1
    assert record.status is JobStatus.SUCCEEDED and record.polls >= 1 and record.provider_event is None


def test_a_duplicated_webhook_ends_the_wait_once_and_bills_once(
    stack: LocalStack, api: httpx.Client, webhooks_on: None
) -> None:
    job_id = submit(api, "A tide pool [sim:webhook_duplicate]")
    record = wait_for_record(stack, job_id)
    assert record.status is JobStatus.SUCCEEDED and record.polls == 0
    raw = record.provider_job_id.split(":", 1)[1] if record.provider_job_id else ""
    deadline = time.monotonic() + 10
    while stack.provider.openai.sent[raw] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.provider.openai.sent[raw] == 2
    again = stack.store.get(job_id)
    assert again is not None and again.provider_events == 2 and again.cost == record.cost


def test_a_webhook_after_the_job_ended_by_polling_is_taken_and_changes_nothing(
    stack: LocalStack, api: httpx.Client, webhooks_on: None
) -> None:
    """Later than the wait's fallback (300 s): the poll finds the job done first; the webhook that
    comes after is answered 200 (so OpenAI stops sending it) and moves nothing."""
    job_id = submit(api, "A lighthouse keeper [sim:latency=20] [sim:webhook_late=400]")
    record = wait_for_record(stack, job_id)
    assert record.status is JobStatus.SUCCEEDED and record.polls >= 1
    raw = record.provider_job_id.split(":", 1)[1] if record.provider_job_id else ""
    deadline = time.monotonic() + 10
    while not stack.provider.openai.sent[raw] and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    after = stack.store.get(job_id)
    assert after is not None and after.provider_event == "completed"  # noted, and nothing else moved
    assert settled(after, *NOTED) == settled(record, *NOTED)


def test_the_webhook_route_takes_no_api_key_and_refuses_what_is_unsigned(stack: LocalStack) -> None:
    """OpenAI sends no key (the route has no authorizer); an unsigned or badly signed POST gets a
    400 in OpenAI's error shape, never a 5xx (which would make OpenAI retry it for days)."""
    url = f"{stack.base_url}/v1/providers/openai/webhooks"
    body = '{"id": "evt_1", "type": "response.completed", "data": {"id": "resp_x"}}'
    unsigned = httpx.post(url, content=body, headers={"content-type": "application/json"})
    assert unsigned.status_code == 400 and unsigned.json()["error"]["code"] == "webhook_refused"
    from imagejobs.domain import webhooks

    headers = webhooks.signed_headers(stack.provider.openai.webhook_secret, "evt_1", body)
    taken = httpx.post(url, content=body, headers=headers)  # signed, about no job of ours
    assert taken.status_code == 200 and taken.json() == {"received": True}
    tampered = httpx.post(url, content=body.replace("resp_x", "resp_y"), headers=headers)
    assert tampered.status_code == 400
