"""The job logic: accept, submit, poll, finalize. Talks to the world only through the adapters in
`Deps` (no boto3, no httpx here), so the same code runs on AWS, offline on moto and with fakes."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from imagejobs import clock, polling, pricing
from imagejobs.errors import ImageJobsError, JobNotFound, JobRejected, StaleTransition
from imagejobs.jobs import JobRecord
from imagejobs.models import (
    CONTENT_TYPES,
    FinalizeInput,
    GenerationRequest,
    JobStatus,
    Output,
    PollInput,
    PollResult,
    ProviderJob,
)
from imagejobs.settings import Settings


class Provider(Protocol):
    def submit(self, request: GenerationRequest, *, idempotency_key: str) -> ProviderJob: ...
    def get(self, provider_job_id: str) -> ProviderJob: ...
    def download(self, url: str) -> AbstractContextManager[Iterator[bytes]]: ...


class Store(Protocol):
    def create(self, record: JobRecord) -> bool: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def record_submission(self, job_id: str, provider_job_id: str, at: float) -> None: ...
    def record_execution(self, job_id: str, execution_arn: str, at: float) -> None: ...
    def record_poll(self, job_id: str, provider_status: JobStatus, at: float) -> JobRecord: ...
    def settle(self, job_id: str, status: JobStatus, fields: dict[str, Any]) -> bool: ...
    def tenant_for_key(self, api_key: str) -> str | None: ...


class Queue(Protocol):
    def send(self, job_id: str) -> None: ...


class Loops(Protocol):
    def start(self, name: str, payload: dict[str, Any]) -> str: ...


class Results(Protocol):
    bucket: str

    def put_stream(self, key: str, chunks: Iterator[bytes], content_type: str, metadata: dict[str, str]) -> Output: ...

    def presigned_url(self, key: str, ttl_seconds: int) -> str: ...


class Metrics(Protocol):
    def job_settled(self, record: JobRecord, orchestration_cost_usd: Decimal) -> None: ...


@dataclass
class Deps:
    settings: Settings
    store: Store
    queue: Queue | None = None
    loops: Loops | None = None
    provider: Provider | None = None
    results: Results | None = None
    metrics: Metrics | None = None


def _need(dependency: Any, name: str) -> Any:
    if dependency is None:
        raise RuntimeError(f"{name} is not configured for this function")
    return dependency


# -- accept (HTTP intake) -----------------------------------------------------------------------
def new_job_id(tenant: str, idempotency_key: str | None) -> str:
    """A caller's Idempotency-Key maps to one job id, so a retried POST finds the first job."""
    if idempotency_key:
        digest = hashlib.sha256(f"{tenant}\x00{idempotency_key}".encode()).hexdigest()
        return "img_" + digest[:24]
    return "img_" + secrets.token_hex(12)


def request_hash(request: GenerationRequest) -> str:
    return hashlib.sha256(json.dumps(request.model_dump(), sort_keys=True).encode()).hexdigest()


class IdempotencyConflict(ImageJobsError):
    reason = "idempotency_key_reused"


class EnqueueFailed(ImageJobsError):
    reason = "enqueue_failed"
    transient = True


def accept_generation(
    deps: Deps, *, tenant: str, request: GenerationRequest, idempotency_key: str | None = None
) -> tuple[JobRecord, bool]:
    """Record a queued job and put it on the submit queue. Returns (job, created)."""
    settings = deps.settings
    request = request.with_model(settings.default_model)
    job_id = new_job_id(tenant, idempotency_key)
    fingerprint = request_hash(request)
    now = clock.now()
    record = JobRecord(
        id=job_id,
        tenant=tenant,
        source="api",
        model=str(request.model),
        request=request.model_dump(exclude_none=True),
        request_hash=fingerprint,
        created_at=now,
        updated_at=now,
        deadline_at=now + settings.job_deadline_seconds,
        ttl=int(now) + settings.job_record_ttl_days * 86_400,
    )
    if not deps.store.create(record):
        existing = deps.store.get(job_id)
        if existing is None or existing.tenant != tenant:
            raise IdempotencyConflict("Idempotency-Key could not be used; try another key")
        if existing.request_hash != fingerprint:
            raise IdempotencyConflict("this Idempotency-Key was already used with a different request body")
        return existing, False
    try:
        _need(deps.queue, "queue").send(job_id)
    except Exception as exc:
        # Never leave a queued job that nothing will pick up: it ends, saying why.
        end_job(deps, job_id, JobStatus.FAILED, "enqueue_failed", f"the job could not be queued: {type(exc).__name__}")
        raise EnqueueFailed("the job could not be queued; try again") from exc
    return record, True


# -- submit (queue-fed) -------------------------------------------------------------------------
def first_poll_payload(record: JobRecord) -> dict[str, Any]:
    """Execution input. Deterministic for a job, so a repeated StartExecution is idempotent."""
    return PollInput(job_id=record.id, next_poll_seconds=polling.first_wait_seconds(record.quality)).model_dump()


def submit(deps: Deps, job_id: str) -> str:
    """Send a job to the provider once and start its poll loop. Safe to repeat at any point:

    - a final job is left alone;
    - a job with a provider id is not sent again (the loop is (re)started);
    - a job caught between "sent" and "id recorded" is re-sent with the same Idempotency-Key,
      which the provider answers with the job it already has (reconciled, not resubmitted).
    Returns what was done, for logs and tests.
    """
    record = deps.store.get(job_id)
    if record is None:
        raise JobNotFound(f"job {job_id} does not exist")
    if record.status.final:
        return "already_final"
    provider = _need(deps.provider, "provider")
    if record.provider_job_id is None:
        request = GenerationRequest.model_validate(record.request)
        try:
            provider_job = provider.submit(request, idempotency_key=record.id)
        except JobRejected as rejected:
            end_job(deps, job_id, JobStatus.FAILED, rejected.code, rejected.message)
            return "rejected"
        deps.store.record_submission(job_id, provider_job.id, clock.now())
        record = record.model_copy(update={"provider_job_id": provider_job.id})
    arn = _need(deps.loops, "loops").start(record.id, first_poll_payload(record))
    deps.store.record_execution(job_id, arn, clock.now())
    return "submitted"


# -- status (one poll) --------------------------------------------------------------------------
def poll(deps: Deps, poll_input: PollInput) -> PollResult:
    record = deps.store.get(poll_input.job_id)
    if record is None:
        raise JobNotFound(f"job {poll_input.job_id} does not exist")
    if record.status.final:
        return PollResult(
            job_id=record.id,
            action="end",
            provider_status=record.status.value,
            final_status=record.status,
            reason="already_final",
        )
    if record.provider_job_id is None:
        raise StaleTransition(f"job {record.id} has no provider job id")
    provider_job = _need(deps.provider, "provider").get(record.provider_job_id)
    now = clock.now()
    record = deps.store.record_poll(record.id, provider_job.status, now)
    return polling.decide(
        provider_job,
        job_id=record.id,
        quality=record.quality,
        submitted_at=record.submitted_at or record.created_at,
        deadline_at=record.deadline_at,
        now=now,
        polls=record.polls,
        deadline_seconds=record.deadline_at - record.created_at,
    )


# -- finalize -----------------------------------------------------------------------------------
def output_key(job_id: str, index: int, output_format: str) -> str:
    return f"results/{job_id}/{index}.{'jpg' if output_format == 'jpeg' else output_format}"


def finalize(deps: Deps, event: FinalizeInput) -> JobRecord:
    if event.action == "finalize" and event.error is None:
        return _store_outputs(deps, event.job_id)
    if event.error is not None:
        code, message = _caught_error(event.error)
        return end_job(deps, event.job_id, JobStatus.FAILED, code, message)
    status = event.final_status or JobStatus.FAILED
    return end_job(deps, event.job_id, status, event.reason or status.value, event.message or "")


def _caught_error(error: dict[str, Any]) -> tuple[str, str]:
    """A Step Functions Catch hands over {"Error": <errorType>, "Cause": <json>}."""
    name = str(error.get("Error") or "internal_error")
    cause = error.get("Cause")
    message = ""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
            message = str(parsed.get("errorMessage") or "") if isinstance(parsed, dict) else cause
        except ValueError:
            message = cause
    known = {cls.__name__: cls.reason for cls in _error_classes()}
    return known.get(name, "internal_error"), f"{name}: {message}" if message else name


def _error_classes() -> list[type[ImageJobsError]]:
    seen: list[type[ImageJobsError]] = []
    pending: list[type[ImageJobsError]] = [ImageJobsError]
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    return seen


def _store_outputs(deps: Deps, job_id: str) -> JobRecord:
    record = deps.store.get(job_id)
    if record is None:
        raise JobNotFound(f"job {job_id} does not exist")
    if record.status.final:
        return record
    provider = _need(deps.provider, "provider")
    results = _need(deps.results, "results")
    provider_job = provider.get(_need(record.provider_job_id, "provider job id"))
    if provider_job.status is not JobStatus.SUCCEEDED or not provider_job.unsigned_urls:
        return end_job(
            deps,
            job_id,
            JobStatus.FAILED,
            "provider_inconsistent",
            f"provider reported {provider_job.status.value} with {len(provider_job.unsigned_urls)} outputs",
        )
    output_format = str(record.request.get("output_format", "png"))
    content_type = CONTENT_TYPES[output_format]
    outputs: list[Output] = []
    for index, url in enumerate(provider_job.unsigned_urls):
        with provider.download(url) as chunks:
            outputs.append(
                results.put_stream(
                    output_key(job_id, index, output_format),
                    chunks,
                    content_type,
                    {"job-id": job_id, "provider-job-id": provider_job.id},
                )
            )
    cost = pricing.job_cost(record.model, record.quality, len(outputs), provider_job.usage)
    completed_at = provider_job.completed_at or clock.now()
    fields: dict[str, Any] = {
        "outputs": [output.model_dump() for output in outputs],
        "usage": provider_job.usage.model_dump() if provider_job.usage else None,
        "cost": cost.model_dump(),
        "completed_at": completed_at,
        "updated_at": clock.now(),
        "orchestration_cost_usd": str(pricing.orchestration_cost(record.polls)),
    }
    return _settle(deps, record, JobStatus.SUCCEEDED, fields)


def end_job(deps: Deps, job_id: str, status: JobStatus, code: str, message: str) -> JobRecord:
    """Record why a job ended without images. Nothing was billed unless the provider says so."""
    record = deps.store.get(job_id)
    if record is None:
        raise JobNotFound(f"job {job_id} does not exist")
    if record.status.final:
        return record
    fields: dict[str, Any] = {
        "error": {"code": code, "message": message[:1000]},
        "completed_at": clock.now(),
        "updated_at": clock.now(),
        "orchestration_cost_usd": str(pricing.orchestration_cost(record.polls)),
    }
    return _settle(deps, record, status, fields)


def _settle(deps: Deps, record: JobRecord, status: JobStatus, fields: dict[str, Any]) -> JobRecord:
    won = deps.store.settle(record.id, status, fields)
    settled = deps.store.get(record.id)
    if settled is None:
        raise JobNotFound(f"job {record.id} vanished")
    if won and deps.metrics is not None:
        # Only the writer that moved the job to its final state emits: once per job, whatever
        # the retries and redeliveries around it.
        deps.metrics.job_settled(settled, Decimal(settled.orchestration_cost_usd or "0"))
    return settled


# -- the job object served over HTTP --------------------------------------------------------------
def output_urls(deps: Deps, record: JobRecord) -> list[str]:
    """Fresh presigned GET URLs of a job's stored outputs (re-issued on every call)."""
    results = _need(deps.results, "results")
    return [results.presigned_url(output.key, deps.settings.result_url_ttl_seconds) for output in record.outputs]


def job_view(deps: Deps, record: JobRecord, base_url: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": record.id,
        "object": "image_job",
        "status": record.status.value,
        "model": record.model,
        "created_at": int(record.created_at),
        "polling_url": f"{base_url}/v1/jobs/{record.id}",
        "expires_at": int(record.deadline_at),
        "completed_at": int(record.completed_at) if record.completed_at else None,
        "polls": record.polls,
        "usage": record.usage.model_dump(exclude_none=True) if record.usage else None,
        "cost": record.cost.model_dump() if record.cost else None,
        "orchestration_cost": (
            {"amount": record.orchestration_cost_usd, "currency": "USD", "basis": "estimate"}
            if record.orchestration_cost_usd
            else None
        ),
        "error": record.error.model_dump() if record.error else None,
    }
    if record.status is JobStatus.SUCCEEDED:
        view["unsigned_urls"] = output_urls(deps, record)
    return view
