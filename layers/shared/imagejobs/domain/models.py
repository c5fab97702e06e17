"""Typed edges: requests, jobs, provider answers and Step Functions task payloads."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

MAX_PROMPT_CHARS = 32_000


class Model(BaseModel):
    """Every model of the package: validators are built on first use, not at import, so a cold
    start pays only for the models its invocation touches."""

    model_config = ConfigDict(defer_build=True)


class JobStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED})

# "auto" or WIDTHxHEIGHT; which sizes a model takes is its catalog entry's `rules.size`
# (gpt-image-1: three fixed sizes; gpt-image-2: any within bounds), checked at every intake.
SIZE_PATTERN = r"^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$"
FIXED_SIZES: list[JsonValue] = ["1024x1024", "1536x1024", "1024x1536", "auto"]
Size = Annotated[str, Field(pattern=SIZE_PATTERN, examples=[*FIXED_SIZES, "2048x1152"])]
# Models whose catalog entry takes custom sizes (prices.json rules.size.custom); kept here for
# the OpenAPI document's rule below, and checked against the catalog by a test.
CUSTOM_SIZE_MODELS: list[JsonValue] = ["gpt-image-2", "openai/gpt-image-2"]
Quality = Literal["low", "medium", "high", "auto"]
Background = Literal["transparent", "opaque", "auto"]
OutputFormat = Literal["png", "jpeg", "webp"]
Moderation = Literal["auto", "low"]

# Request fields that are ours, never sent to the provider (response_format: how we answer).
OUR_FIELDS = {"webhook_url", "response_format"}
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,9}")  # ASCII digits: str.isdigit() takes "²" and int() takes "٣"


def whole_number(text: str) -> int | None:
    """Text as an int, the same on every path (form fields, queries, upload metadata, rules), or
    None when it is not a (reasonable) whole number in ASCII digits."""
    stripped = text.strip()
    return int(stripped) if WHOLE_NUMBER.fullmatch(stripped) else None


UploadFile = tuple[str, bytes, str]  # an edit input for the provider: file name, content, content type
CONTENT_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


FORMAT_RULES_SCHEMA: list[JsonValue] = [
    {  # output_compression applies to jpeg and webp only (output_format defaults to png)
        "if": {"required": ["output_compression"], "properties": {"output_compression": {"type": "integer"}}},
        "then": {"required": ["output_format"], "properties": {"output_format": {"enum": ["jpeg", "webp"]}}},
    },
    {  # only models that take custom sizes take a WIDTHxHEIGHT beyond the fixed ones
        # (a request without `model` runs as DefaultModel, gpt-image-1 unless configured)
        "if": {"not": {"required": ["model"], "properties": {"model": {"enum": CUSTOM_SIZE_MODELS}}}},
        "then": {"properties": {"size": {"enum": FIXED_SIZES}}},
    },
    {  # a transparent background needs png or webp
        "if": {"required": ["background"], "properties": {"background": {"const": "transparent"}}},
        "then": {"properties": {"output_format": {"enum": ["png", "webp"]}}},
    },
]


class GenerationRequest(Model):
    """POST /v1/images/generations: every parameter of OpenAI's image API for GPT image models and its rules
    (per-model values: the catalog's rules, checked at intake)."""

    # The cross-field rules of _format_rules, in JSON Schema too (the OpenAPI document shows them).
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"allOf": FORMAT_RULES_SCHEMA})

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str | None = None
    n: int = Field(default=1, ge=1, le=10)
    size: Size = "auto"
    quality: Quality = "auto"
    background: Background = "auto"
    output_format: OutputFormat = "png"
    output_compression: int | None = Field(default=None, ge=0, le=100)
    moderation: Moderation = "auto"
    user: str | None = Field(default=None, max_length=256)
    webhook_url: str | None = Field(default=None, max_length=2048)  # ours: told when the job ends
    # How a plain call's answer carries the images. OpenAI's API reference: GPT image models always
    # return base64 (b64_json) and do not take response_format (dall-e's); an app written for dall-e
    # sends it, so "b64_json" is taken as the default it is, and "url" gets presigned result URLs.
    response_format: Literal["b64_json", "url"] | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("prompt must not be blank")
        return prompt

    @field_validator("n", "output_compression", mode="before")
    @classmethod
    def _integers_only(cls, value: Any) -> Any:
        # JSON true/1.5/"3" are not integers (pydantic's lax mode would accept some of them);
        # 6.0 is one, as JSON Schema says.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("must be an integer")
        return value

    @model_validator(mode="after")
    def _format_rules(self) -> GenerationRequest:
        if self.background == "transparent" and self.output_format == "jpeg":
            raise ValueError("background 'transparent' needs output_format 'png' or 'webp'")
        if self.output_compression is not None and self.output_format == "png":
            raise ValueError("output_compression applies to jpeg and webp only")
        return self

    def with_model(self, default_model: str) -> GenerationRequest:
        return self if self.model else self.model_copy(update={"model": default_model})

    def provider_body(self) -> dict[str, Any]:
        """What is sent upstream: the caller's parameters, our own fields left out."""
        return self.model_dump(exclude_none=True, exclude=OUR_FIELDS)


class EditRequest(GenerationRequest):
    """POST /v1/images/edits (and uploads): the generation parameters plus input_fidelity.
    The images and the mask travel beside the request, as stored objects."""

    input_fidelity: Literal["high", "low"] | None = None


class UploadRequest(Model):
    """POST /v1/uploads: the image the caller will send to S3 (the fields of OpenAI's Uploads API;
    `purpose` is accepted for SDK callers and must be "vision" if given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str = Field(min_length=1, max_length=255)
    # The limits are checked by imagejobs.domain.staged (with image error codes); documented here.
    bytes: int = Field(ge=1, json_schema_extra={"maximum": 50 * 1024 * 1024 - 1})
    mime_type: str = Field(json_schema_extra={"enum": ["image/jpeg", "image/png", "image/webp"]})
    purpose: Literal["vision"] | None = None


class UploadView(Model):
    """POST /v1/uploads' answer: where to send the file (a presigned POST) and the id to edit with."""

    id: str = Field(examples=["upload_0a1b2c3d4e5f60718293a4b5"])
    object: Literal["upload"] = "upload"
    filename: str
    bytes: int
    mime_type: str
    status: Literal["pending"] = "pending"
    expires_at: int
    upload_url: str
    upload_fields: dict[str, str]


class ObjectRef(Model):
    """An object in S3: an edit input, a mask, or the upload an edit came from."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    content_type: str | None = None


class ObjectInfo(Model):
    size: int
    etag: str | None
    version_id: str | None
    content_type: str | None
    metadata: dict[str, str]


class Usage(Model):
    """OpenAI-style usage block as reported by the provider."""

    model_config = ConfigDict(extra="allow")

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: dict[str, int] = Field(default_factory=dict)

    @property
    def text_input_tokens(self) -> int:
        details = self.input_tokens_details
        if "text_tokens" in details:
            return details["text_tokens"]
        return self.input_tokens - details.get("image_tokens", 0)

    @property
    def image_input_tokens(self) -> int:
        return self.input_tokens_details.get("image_tokens", 0)

    @property
    def mainline_tokens(self) -> tuple[int, int]:  # OpenAI direct's mainline model's (in, out); else (0, 0)
        tokens_in, tokens_out = ((self.model_extra or {}).get(f"mainline_{k}_tokens", 0) for k in ("input", "output"))
        return (tokens_in, tokens_out) if all(type(n) is int and n >= 0 for n in (tokens_in, tokens_out)) else (0, 0)


class ProviderJob(Model):
    """The provider's job object (TheRouter's async contract), normalised."""

    model_config = ConfigDict(extra="ignore")

    id: str
    status: JobStatus
    reported_status: str | None = None  # a status the contract does not name (read as in_progress)
    created_at: float | None = None
    completed_at: float | None = None
    unsigned_urls: list[str] = Field(default_factory=list)  # http(s) URLs, or data: URLs of inline images
    usage: Usage | None = None
    error_code: str | None = None
    error_message: str | None = None


class Cost(Model):
    amount: str  # decimal string, never a float
    currency: str = "USD"
    basis: Literal["usage", "per_image"]


class JobError(Model):
    code: str
    message: str


class Output(Model):
    bucket: str
    key: str
    content_type: str
    bytes: int
    # What was made, read from the image's header as it was stored (imagejobs.domain.images.CheckedOutput).
    width: int | None = None
    height: int | None = None
    alpha: bool | None = None


class PollInput(Model):
    """What the state machine hands the status step (and the Wait reads back)."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    next_poll_seconds: int = 0
    action: str = "poll"  # "await": wait for the provider's webhook first (Begin); other values poll


class PollResult(Model):
    """What the status step returns; the Choice state reads `action`."""

    job_id: str
    action: Literal["wait", "await", "finalize", "end"]  # await: the webhook, at most next_poll_seconds
    next_poll_seconds: int = 0
    provider_status: str
    final_status: JobStatus | None = None
    reason: str | None = None
    message: str | None = None


class FinalizeInput(Model):
    """Input of the finalize step: the success path, a decided end, or a caught error."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    action: Literal["finalize", "end", "fail"] = "finalize"  # what statemachine/jobs.asl.json sends (a test checks)
    final_status: JobStatus | None = None
    reason: str | None = None
    message: str | None = None
    error: dict[str, Any] | None = None  # Step Functions Catch: {"Error": ..., "Cause": ...}


# -- the HTTP API's answers (what GET /v1/jobs/{id} and friends return; the OpenAPI spec uses these) --
class OrchestrationCost(Model):
    amount: str
    currency: str = "USD"
    basis: Literal["estimate"] = "estimate"


WebhookState = Literal["pending", "delivered", "failed"]
Source = Literal["api", "upload", "event"]  # where a job came from
Kind = Literal["generation", "edit"]


class WebhookView(Model):
    """Where the job's webhook stands: pending until the job ends and a delivery succeeds or the
    attempts (WebhookMaxAttempts) run out."""

    state: WebhookState
    attempts: int
    last_attempt_at: int | None = Field(description="unix seconds")
    last_status_code: int | None
    last_error: str | None


class ImageOut(Model):
    b64_json: str | None = Field(default=None, description="the image, base64 (while the answer stays small)")
    url: str | None = Field(default=None, description="a presigned URL of the image (larger answers)")


class ImagesResponse(Model):
    """OpenAI's image response: the 200 of a generation or edit called without async=true, and a
    succeeded job's `result` (TheRouter's async-media page shows `result.data[].url`)."""

    created: int = Field(description="unix seconds: when the images were made")
    data: list[ImageOut]
    background: str
    output_format: str
    quality: str
    size: str
    usage: dict[str, Any] | None = None


class JobView(Model):
    """The job object, in TheRouter's shape plus what we add (cost, polls, source, error)."""

    id: str = Field(examples=["img_0a1b2c3d4e5f60718293a4b5"])
    object: Literal["image_job"] = "image_job"
    status: JobStatus
    model: str
    created_at: int = Field(description="unix seconds")
    polling_url: str
    expires_at: int = Field(
        description="unix seconds: until the job has succeeded, its deadline (not done by then, it ends "
        "'expired'); once it has, the time its images are kept until (ResultRetentionDays after they "
        "were stored; S3 removes them at the next UTC midnight after)"
    )
    completed_at: int | None
    polls: int
    source: Source
    provider: str | None = Field(default=None, description="who has the job (therouter, openai), once sent")
    usage: dict[str, Any] | None
    cost: Cost | None
    orchestration_cost: OrchestrationCost | None
    error: JobError | None
    unsigned_urls: list[str] | None = Field(
        default=None, description="presigned GET URLs of the images, present once the job has succeeded"
    )
    webhook: WebhookView | None = Field(default=None, description="present when the job has a webhook_url")
    result: ImagesResponse | None = Field(default=None, description="present once the job has succeeded")
    queue_position: int | None = Field(
        default=None,
        description="while the job waits for a place at the provider (ProviderMaxConcurrency): its place "
        "in line, from 1 (next)",
    )
    estimated_start_at: int | None = Field(
        default=None, description="unix seconds: when a waiting job is expected to be sent, from its place in line"
    )

    def answer(self) -> dict[str, Any]:
        optional = ("unsigned_urls", "webhook", "queue_position", "estimated_start_at", "provider")
        exclude: dict[str, Any] = {name: True for name in optional if getattr(self, name) is None}
        # a job's result carries URLs only (b64_json is for a waited-for answer)
        exclude["result"] = True if self.result is None else {"data": {"__all__": {"b64_json"}}}
        return self.model_dump(mode="json", exclude=exclude)


class JobList(Model):
    object: Literal["list"] = "list"
    data: list[JobView]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ContentRedirect(Model):
    """The body of GET /v1/jobs/{id}/content's 302 (its Location, for clients that do not follow)."""

    url: str


class ErrorDetail(Model):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(Model):
    """OpenAI's error shape."""

    error: ErrorDetail
