"""OpenAI direct: an image job as a background response with the image generation tool.

Why this path and not OpenAI's Images API: the Images API answers only when the image is made (no
async mode, no job to poll, no cancel, no webhook), while a background response is a job:
`POST /v1/responses` with `background: true` answers at once with its id, `GET /v1/responses/{id}`
shows its status (queued, in_progress, completed, failed, cancelled, incomplete:
openai-python `types/responses/response_status.py`), `POST /v1/responses/{id}/cancel` stops it, and
OpenAI signs a `response.completed` webhook when it ends (OpenAI's background mode and webhooks
guides). The image is the `result` (base64) of an `image_generation_call` output item; the image
model's tokens are `tool_usage.image_gen`, the mainline model's own tokens are `usage`, billed on
top (openai-python `types/responses/response.py`, `response_output_item.py`). The tool makes one
image per call, so only jobs with n=1 come here (imagejobs.adapters.provider_router).

Errors, bounds, redaction and inline downloads are TheRouter client's (ProviderClient): the same
OpenAI error shape, the same untrusted answers."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx

from imagejobs.adapters.provider import ProviderClient
from imagejobs.adapters.provider_answers import checked_usage, parse_timestamp
from imagejobs.domain.errors import ProviderUnavailable
from imagejobs.domain.models import EditRequest, GenerationRequest, JobStatus, ProviderJob, UploadFile, Usage

STATUSES = {
    "queued": JobStatus.QUEUED,
    "in_progress": JobStatus.IN_PROGRESS,
    "completed": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
    "incomplete": JobStatus.FAILED,  # stopped short (incomplete_details.reason): no image to keep
}
TOOL_FIELDS = ("size", "quality", "background", "output_format", "output_compression", "moderation")
MAX_IMAGE_CALLS = 4  # output items read at most (one is asked for: tool_choice forces one call)


class OpenAIClient(ProviderClient):
    _parse = staticmethod(lambda body: parse_response(body))  # defined below

    def __init__(self, base_url: str, api_key: str, client: httpx.Client | None = None, **options: Any) -> None:
        self._mainline = str(options.pop("mainline_model", "gpt-5-nano"))
        super().__init__(base_url, api_key, client, **options)

    def _body(self, request: GenerationRequest, content: str | list[dict[str, Any]]) -> dict[str, Any]:
        tool: dict[str, Any] = {"type": "image_generation", "model": (request.model or "").rpartition("/")[2]}
        tool.update({name: getattr(request, name) for name in TOOL_FIELDS if getattr(request, name) is not None})
        return {
            "model": self._mainline,
            "input": content,
            "tools": [tool],
            "tool_choice": {"type": "image_generation"},  # the tool guide: this forces the image call
            "background": True,
            "store": True,  # background mode needs a stored response (OpenAI's background guide)
        }

    def _create(self, body: dict[str, Any], idempotency_key: str) -> ProviderJob:
        response = self._send(
            "POST",
            f"{self._base_url}/v1/responses",
            json=body,
            headers=self._headers({"Idempotency-Key": idempotency_key}),
        )
        return self._submitted(response)

    def submit(self, request: GenerationRequest, *, idempotency_key: str) -> ProviderJob:
        return self._create(self._body(request, request.prompt), idempotency_key)

    def submit_edit(
        self, request: EditRequest, images: list[UploadFile], mask: UploadFile | None, *, idempotency_key: str
    ) -> ProviderJob:
        """The images go in as input_image items (base64 data URLs), the mask as the tool's
        input_image_mask (the image generation guide's edit with the Responses API)."""
        parts: list[dict[str, Any]] = [{"type": "input_text", "text": request.prompt}]
        parts += [{"type": "input_image", "image_url": _data_url(image)} for image in images]
        body = self._body(request, [{"role": "user", "content": parts}])
        if request.input_fidelity:
            body["tools"][0]["input_fidelity"] = request.input_fidelity
        if mask is not None:
            body["tools"][0]["input_image_mask"] = {"image_url": _data_url(mask)}
        return self._create(body, idempotency_key)

    def _job_url(self, provider_job_id: str, *rest: str) -> str:
        """GET /v1/responses/{id} and POST /v1/responses/{id}/cancel (only a background response
        can be cancelled: the background guide); get and cancel themselves, bounds and redaction
        included, are ProviderClient's."""
        return "/".join([f"{self._base_url}/v1/responses/{quote(provider_job_id, safe='')}", *rest])


def _data_url(file: UploadFile) -> str:
    _, data, content_type = file
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def parse_response(body: Any) -> ProviderJob:
    """A Response object read as a provider job: its status mapped, its images (the completed
    image_generation_call results, as data: URLs), the image model's usage checked, and the
    mainline model's usage beside it (`mainline_*` counts, checked alike)."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not 0 < len(body["id"]) <= 256:
        raise ProviderUnavailable("provider answered with something that is not a response object")
    reported = None
    status = STATUSES.get(str(body.get("status")))
    if status is None:  # not in the SDK's enum: followed (and logged) until our deadline
        status, reported = JobStatus.IN_PROGRESS, str(body.get("status"))[:64]
    output: list[Any] = body["output"] if isinstance(body.get("output"), list) else []
    items = [item for item in output if isinstance(item, dict) and item.get("type") == "image_generation_call"]
    images = items[:MAX_IMAGE_CALLS]
    urls = [
        "data:application/octet-stream;base64," + item["result"]
        for item in images
        if item.get("status") == "completed" and isinstance(item.get("result"), str)
    ]
    code, message = _error_of(body, images)
    if status is JobStatus.SUCCEEDED and not urls:
        status, code = JobStatus.FAILED, code or "no_image"
        message = message or "the response completed without an image"
    return ProviderJob(
        id=body["id"],
        status=status,
        reported_status=reported,
        created_at=parse_timestamp(body.get("created_at")),
        completed_at=parse_timestamp(body.get("completed_at")),
        unsigned_urls=urls,
        usage=_usage(body),
        error_code=code,
        error_message=message,
    )


def _error_of(body: dict[str, Any], images: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    sources = [body.get("error"), *(item.get("error") for item in images)]
    for error in sources:
        if isinstance(error, dict) and (error.get("code") or error.get("message")):
            code = error.get("code")
            return (str(code)[:64] if isinstance(code, str) else None), str(error.get("message") or "")[:500]
    details = body.get("incomplete_details")
    if body.get("status") == "incomplete":
        reason = details.get("reason") if isinstance(details, dict) else None
        return "incomplete", f"the response stopped short ({str(reason)[:64] if reason else 'no reason given'})"
    return None, None


def _usage(body: dict[str, Any]) -> Usage | None:
    """The image model's tokens (`tool_usage.image_gen`), with the mainline model's (`usage`) as
    mainline_input_tokens / mainline_output_tokens: both checked, or no usage at all (the job is
    then priced per image)."""
    tool_usage = body.get("tool_usage")
    image = checked_usage(tool_usage.get("image_gen") if isinstance(tool_usage, dict) else None)
    if image is None:
        return None
    mainline = body.get("usage")
    if mainline is None:
        return image
    counts = ("input_tokens", "output_tokens", "total_tokens")
    checked = checked_usage({key: mainline.get(key, 0) for key in counts} if isinstance(mainline, dict) else None)
    if checked is None:
        return None
    extra = {"mainline_input_tokens": checked.input_tokens, "mainline_output_tokens": checked.output_tokens}
    return Usage.model_validate({**image.model_dump(), **extra})
