"""The job record and its state rules: the one place that says which status may follow which."""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue, ValidationError, model_validator

from imagejobs.domain.models import (
    Cost,
    EditRequest,
    GenerationRequest,
    JobError,
    JobStatus,
    Kind,
    Model,
    ObjectRef,
    Output,
    Source,
    Usage,
    WebhookState,
)

# Which status may follow which. Final states have no successors: a settled job never changes.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(
        {JobStatus.IN_PROGRESS, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
    ),
    JobStatus.IN_PROGRESS: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.EXPIRED: frozenset(),
}


DEFAULT_PROVIDER = "therouter"
# Providers whose job ids are stored as "<name>:<id>" (imagejobs.adapters.provider_router); a bare
# id is TheRouter's, as in every record written before there was a second provider.
QUALIFIED_PROVIDERS = ("openai",)


def split_provider_id(value: str) -> tuple[str, str]:
    """(provider, its own job id) of a stored provider job id."""
    name, sep, rest = value.partition(":")
    return (name, rest) if sep and name in QUALIFIED_PROVIDERS else (DEFAULT_PROVIDER, value)


def qualified_provider_id(name: str, raw: str) -> str:
    if name == DEFAULT_PROVIDER or split_provider_id(raw)[0] == name:
        return raw
    return f"{name}:{raw}"


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    return new in TRANSITIONS[current]


def predecessors(new: JobStatus) -> list[JobStatus]:
    """Statuses a job may be in for `new` to be written (used in conditional writes)."""
    return [status for status, nexts in TRANSITIONS.items() if new in nexts]


class JobRecord(Model):
    id: str
    tenant: str
    source: Source = "api"
    kind: Kind = "generation"
    status: JobStatus = JobStatus.QUEUED
    model: str
    # The request as checked at intake: an EditRequest for an edit. None when intake refused it
    # (a failed job from an event or an upload); `refused_request` then keeps what it could of it.
    request: EditRequest | GenerationRequest | None = None
    refused_request: dict[str, JsonValue] | None = None
    request_hash: str  # imagejobs.domain.identity.fingerprint
    created_at: float
    updated_at: float
    deadline_at: float
    submitted_at: float | None = None
    completed_at: float | None = None
    inputs: list[ObjectRef] = Field(default_factory=list)  # edit images, stored before the job is queued
    mask: ObjectRef | None = None
    origin: ObjectRef | None = None  # the upload an auto-edit came from
    provider_job_id: str | None = None
    # Set just before the provider POST, cleared when it was definitely not accepted: found set
    # without a provider id, a submission's outcome is unknown (imagejobs.flows.submit).
    submission_started_at: float | None = None
    submitting_to: str | None = None  # the provider that submission went to (a resend goes there too)
    execution_arn: str | None = None
    polls: int = 0  # status calls
    provider_checks: int = 0  # provider GETs made by those calls (a holding call makes several)
    held_seconds: float = 0.0  # time status calls spent following the provider
    poll_window: dict[str, float] | None = None  # polling.Window chosen at submit (start, end, samples)
    # Until when (job clock) a caller is waiting on the answer (a plain call, no async=true): the
    # poll loop looks every half second till then instead of following the learned schedule.
    caller_waits_until: float | None = None
    resumes: int = 0  # poll loops the sweeper started again after the first one died
    # Waiting for the provider's webhook instead of polling (OpenAI direct): the wait's task token
    # (Step Functions), the waits made, and the provider's word once it came (its event, when, how
    # many deliveries of it).
    task_token: str | None = None
    waits: int = 0
    provider_event: str | None = None
    provider_event_at: float | None = None
    provider_events: int = 0
    outputs: list[Output] = Field(default_factory=list)
    usage: Usage | None = None
    cost: Cost | None = None
    orchestration_cost_usd: str | None = None
    reserved_usd: str | None = None  # held against the tenant's budget until the job settles
    # What the provider's report priced the job at beyond its reservation, never charged (an alarm).
    cost_excess_usd: str | None = None
    budget_day: str | None = None  # the UTC day (and so month) the reservation counts against
    error: JobError | None = None
    correlation_id: str | None = None
    base_url: str | None = None  # the API base URL the caller used (for polling_url in webhooks)
    event_published_at: float | None = None
    webhook_state: WebhookState | None = None  # None: no webhook
    webhook_attempts: list[dict[str, Any]] = Field(default_factory=list)
    ttl: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _request_of_its_kind(cls, data: Any) -> Any:
        """A stored request is read back as the type its kind takes (an edit's has input_fidelity).
        Records written before requests were typed kept a refused request in `request`: it is
        read as the refused request it was."""
        if isinstance(data, dict) and isinstance(data.get("request"), dict):
            typed = EditRequest if data.get("kind") == "edit" else GenerationRequest
            try:
                data = {**data, "request": typed.model_validate(data["request"])}
            except ValidationError:
                data = {**data, "request": None, "refused_request": data["request"]}
        return data

    @property
    def provider(self) -> str | None:
        """The provider that has (or had) the job; None before it was sent."""
        return split_provider_id(self.provider_job_id)[0] if self.provider_job_id else None

    @property
    def webhook_url(self) -> str | None:
        return self.request.webhook_url if self.request else None

    @property
    def quality(self) -> str:
        return self.request.quality if self.request else "auto"

    @property
    def size(self) -> str:
        return self.request.size if self.request else "auto"

    @property
    def wanted_images(self) -> int:
        return self.request.n if self.request else 1
