"""OpenAI direct's client and the provider router (httpx.MockTransport, no network).

The answers here are written from openai-python 3.63.0's Response types (types/responses/
response.py, response_output_item.py, response_status.py), not from our simulator."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from imagejobs.adapters.openai_direct import OpenAIClient, parse_response
from imagejobs.adapters.provider import ProviderClient
from imagejobs.adapters.provider_router import ProviderRouter
from imagejobs.domain import pricing
from imagejobs.domain.errors import ProviderUnavailable
from imagejobs.domain.jobs import split_provider_id
from imagejobs.domain.models import EditRequest, GenerationRequest, JobStatus, Usage

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 32).decode()
IMAGE_USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"text_tokens": 12, "image_tokens": 0},
    "output_tokens": 200,
    "total_tokens": 212,
}


def response(status: str = "queued", **fields: Any) -> dict[str, Any]:
    return {"id": "resp_abc", "object": "response", "created_at": 1_800_000_000, "status": status, **fields}


def completed(**fields: Any) -> dict[str, Any]:
    call = {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": PNG}
    usage = {"input_tokens": 120, "output_tokens": 64, "total_tokens": 184}
    shape = {"output": [call], "tool_usage": {"image_gen": IMAGE_USAGE}, "usage": usage, **fields}
    return response("completed", **shape)


def client(answer: Any, seen: list[httpx.Request] | None = None) -> OpenAIClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return answer(request) if callable(answer) else httpx.Response(200, json=answer)

    transport = httpx.Client(transport=httpx.MockTransport(handler))
    return OpenAIClient("https://openai.test", "sk-openai", transport, mainline_model="gpt-5-nano")


def test_a_job_is_a_background_response_forced_to_call_the_image_tool() -> None:
    seen: list[httpx.Request] = []
    request = GenerationRequest(prompt="a cat", model="openai/gpt-image-2", size="1024x1024", quality="low")
    job = client(response(), seen).submit(request, idempotency_key="img_ours")
    body = json.loads(seen[0].content)
    assert seen[0].url.path == "/v1/responses" and seen[0].headers["authorization"] == "Bearer sk-openai"
    assert (body["model"], body["input"], body["background"], body["store"]) == ("gpt-5-nano", "a cat", True, True)
    assert body["tool_choice"] == {"type": "image_generation"}
    assert body["tools"] == [
        {
            "type": "image_generation",
            "model": "gpt-image-2",
            "size": "1024x1024",
            "quality": "low",
            "background": "auto",
            "output_format": "png",
            "moderation": "auto",
        }
    ]
    assert (job.id, job.status) == ("resp_abc", JobStatus.QUEUED)


def test_an_edit_sends_its_images_and_mask_as_data_urls() -> None:
    seen: list[httpx.Request] = []
    request = EditRequest(prompt="make it blue", model="openai/gpt-image-2")
    images = [("a.png", b"one", "image/png"), ("b.webp", b"two", "image/webp")]
    client(response(), seen).submit_edit(request, images, ("m.png", b"mask", "image/png"), idempotency_key="k")
    body = json.loads(seen[0].content)
    parts = body["input"][0]["content"]
    assert parts[0] == {"type": "input_text", "text": "make it blue"}
    assert [part["image_url"] for part in parts[1:]] == [
        "data:image/png;base64," + base64.b64encode(b"one").decode(),
        "data:image/webp;base64," + base64.b64encode(b"two").decode(),
    ]
    assert body["tools"][0]["input_image_mask"] == {"image_url": "data:image/png;base64,bWFzaw=="}


def test_a_completed_response_gives_its_image_inline_and_both_usages() -> None:
    job = client(completed()).get("resp_abc")
    assert job.status is JobStatus.SUCCEEDED
    assert job.unsigned_urls == ["data:application/octet-stream;base64," + PNG]
    assert job.usage is not None and job.usage.output_tokens == 200 and job.usage.mainline_tokens == (120, 64)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (response("in_progress"), JobStatus.IN_PROGRESS, None),
        (response("failed", error={"code": "server_error", "message": "boom"}), JobStatus.FAILED, "server_error"),
        (response("incomplete", incomplete_details={"reason": "max_output_tokens"}), JobStatus.FAILED, "incomplete"),
        (response("cancelled"), JobStatus.CANCELLED, None),
        (response("completed", output=[{"type": "message", "content": []}]), JobStatus.FAILED, "no_image"),
        (
            response(
                "completed",
                output=[
                    {
                        "type": "image_generation_call",
                        "status": "failed",
                        "error": {"code": "moderation_blocked", "message": "blocked"},
                    }
                ],
            ),
            JobStatus.FAILED,
            "moderation_blocked",
        ),
        (response("thinking"), JobStatus.IN_PROGRESS, None),
    ],
)
def test_each_status_of_a_response_is_read_as_a_job_status(
    body: dict[str, Any], status: JobStatus, code: str | None
) -> None:
    job = parse_response(body)
    assert (job.status, job.error_code) == (status, code)
    assert job.reported_status == ("thinking" if body["status"] == "thinking" else None)


@pytest.mark.parametrize(
    "usage",
    [
        {"image_gen": {**IMAGE_USAGE, "output_tokens": "200"}},
        {"image_gen": {**IMAGE_USAGE, "output_tokens": -5}},
        "lots",
    ],
)
def test_usage_that_fails_its_check_is_no_usage_at_all(usage: Any) -> None:
    assert parse_response(completed(tool_usage=usage)).usage is None
    bad_mainline = completed(usage={"input_tokens": 1e40, "output_tokens": 1, "total_tokens": 1})
    assert parse_response(bad_mainline).usage is None


def test_an_answer_that_is_not_a_response_is_a_provider_fault() -> None:
    bodies: list[Any] = [[], {"status": "queued"}, {"id": "", "status": "queued"}, {"id": 7, "status": "queued"}]
    for body in bodies:
        with pytest.raises(ProviderUnavailable):
            parse_response(body)


def test_a_key_in_an_error_message_is_redacted() -> None:
    job = client(response("failed", error={"code": "x", "message": "bad key sk-openai"})).get("resp_abc")
    assert job.error_message is not None and "sk-openai" not in job.error_message


def test_cancel_and_get_go_to_the_response_by_id() -> None:
    seen: list[httpx.Request] = []
    openai = client(response("cancelled"), seen)
    assert openai.cancel("resp_abc") is not None and openai.get("resp_a/b") is not None
    assert [request.url.raw_path for request in seen] == [b"/v1/responses/resp_abc/cancel", b"/v1/responses/resp_a%2Fb"]


class Recorder(ProviderClient):
    def __init__(self, name: str) -> None:
        super().__init__("https://x.test", "k")
        self.name, self.calls = name, []  # type: ignore[var-annotated]

    def submit(self, request: GenerationRequest, *, idempotency_key: str) -> Any:
        self.calls.append(("submit", request.n))
        return parse_response(response()) if self.name == "openai" else parse_response(response(id="img_1"))

    def get(self, provider_job_id: str) -> Any:
        self.calls.append(("get", provider_job_id))
        return parse_response(response(id=provider_job_id))


def test_the_router_sends_a_routed_model_there_and_follows_the_job_by_its_qualified_id() -> None:
    therouter, openai = Recorder("therouter"), Recorder("openai")
    router = ProviderRouter({"therouter": lambda: therouter, "openai": lambda: openai}, {"gpt-image-2": "openai"})
    job = router.submit(GenerationRequest(prompt="a", model="openai/gpt-image-2"), idempotency_key="k")
    assert job.id == "openai:resp_abc" and split_provider_id(job.id) == ("openai", "resp_abc")
    assert router.get(job.id).id == "openai:resp_abc" and openai.calls[-1] == ("get", "resp_abc")
    two = router.submit(GenerationRequest(prompt="a", model="openai/gpt-image-2", n=2), idempotency_key="k2")
    other = router.submit(GenerationRequest(prompt="a", model="openai/gpt-image-1"), idempotency_key="k3")
    assert (two.id, other.id) == ("img_1", "img_1") and therouter.calls == [("submit", 2), ("submit", 1)]
    # a bare id is TheRouter's (every record from before there were two providers), whatever it holds
    assert router.get("9f0c:v2").id == "9f0c:v2" and therouter.calls[-1] == ("get", "9f0c:v2")


def test_without_openai_configured_a_route_to_it_falls_back_to_therouter() -> None:
    therouter = Recorder("therouter")
    router = ProviderRouter({"therouter": lambda: therouter}, {"gpt-image-2": "openai"})
    assert router.submit(GenerationRequest(prompt="a", model="openai/gpt-image-2"), idempotency_key="k").id == "img_1"


def test_openai_direct_is_priced_from_openais_own_rates_with_its_mainline_tokens() -> None:
    usage = Usage.model_validate({**IMAGE_USAGE, "mainline_input_tokens": 120, "mainline_output_tokens": 64})
    theirs = pricing.job_cost("openai/gpt-image-2", "low", 1, usage, size="1024x1024", provider="openai")
    via_therouter = pricing.job_cost("openai/gpt-image-2", "low", 1, usage, size="1024x1024")
    # 12 x $5 + 200 x $30, + 120 x $0.05 + 64 x $0.40 (per 1M); TheRouter: 12 x $6 + 200 x $36
    assert Decimal(theirs.amount) == Decimal("0.006092")
    assert Decimal(via_therouter.amount) == Decimal("0.007272")
    per_image = pricing.job_cost("openai/gpt-image-2", "medium", 2, None, size="1024x1024", provider="openai")
    assert Decimal(per_image.amount) == Decimal("0.106")
