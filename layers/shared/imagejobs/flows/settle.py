"""Settle: a job's end, exactly once: its images stored (finalize) or its reason recorded (end_job),
its cost charged and its reservation settled in the same write, its metrics and notices sent by
the writer that won."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from imagejobs.domain import budget, failpoints, polling, pricing, uploads
from imagejobs.domain.errors import (
    ImageJobsError,
    JobNotFound,
    ProviderUnavailable,
)
from imagejobs.domain.images import CheckedOutput
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import (
    FinalizeInput,
    JobStatus,
    Output,
    Usage,
)
from imagejobs.flows import admission
from imagejobs.flows.ports import Deps, need
from imagejobs.flows.steps import closing_fields, load


# -- finalize -----------------------------------------------------------------------------------
def outputs_prefix(record: JobRecord) -> str:
    """What every output key of the job starts with (and nothing else's does)."""
    if record.origin is not None:
        return f"{uploads.output_prefix(record.origin.key)}{record.id}-"
    return f"results/{record.id}/"


def output_key(record: JobRecord, index: int, output_format: str) -> str:
    """results/<job id>/<index>.<ext>; auto-edits of uploads: edits/<source key sans ext>/<job id>-<index>.<ext>."""
    extension = "jpg" if output_format == "jpeg" else output_format
    return f"{outputs_prefix(record)}{index}.{extension}"


def output_metadata(record: JobRecord, provider_job_id: str) -> dict[str, str]:
    """Object metadata (ASCII only: the source key is URL-quoted)."""
    metadata = {"job-id": record.id, "provider-job-id": provider_job_id}
    if record.origin is not None:
        metadata["source-bucket"] = record.origin.bucket
        metadata["source-key"] = quote(record.origin.key)
        if record.origin.version_id:
            metadata["source-version-id"] = record.origin.version_id
        if record.origin.etag:
            metadata["source-etag"] = record.origin.etag
    return metadata


def finalize(deps: Deps, event: FinalizeInput) -> JobRecord:
    if event.action == "finalize" and event.error is None:
        return _store_outputs(deps, event.job_id)
    if event.error is not None:
        code, message = _caught_error(event.error)
        billed = code in ("download_failed", "download_refused", "output_refused")  # the provider made them
        return end_job(deps, event.job_id, JobStatus.FAILED, code, message, billed=billed)
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
    if name not in known:
        # Not one of ours (a ValidationError, a KeyError, a runtime's timeout): its text is an
        # internal dump, never a public message; it stays in the function's log.
        return "internal_error", f"the job could not be completed because of an internal error ({name[:64]})"
    return known[name], f"{name}: {message}" if message else name


def _error_classes() -> list[type[ImageJobsError]]:
    seen: list[type[ImageJobsError]] = []
    pending: list[type[ImageJobsError]] = [ImageJobsError]
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    return seen


def _unsettled(deps: Deps, job_id: str) -> tuple[JobRecord, bool]:
    """(the job, whether it still needs settling). A retried step that finds the job final
    re-announces it if that was never done, and has nothing else to do."""
    record = load(deps, job_id)
    if record.status.final:
        _announce(deps, record)
        return record, False
    return record, True


def _store_outputs(deps: Deps, job_id: str) -> JobRecord:
    record, open_ = _unsettled(deps, job_id)
    if not open_:
        return record
    provider = need(deps.provider, "provider")
    results = need(deps.results, "results")
    provider_job = provider.get(need(record.provider_job_id, "provider job id"))
    if not provider_job.status.final:
        # It said succeeded at the poll and now says it is not done: a status never goes back, so
        # this answer is not believed; the step is retried (ProviderUnavailable, with backoff).
        raise ProviderUnavailable(f"the provider reported {provider_job.status.value} after succeeded")
    if provider_job.status is not JobStatus.SUCCEEDED or not provider_job.unsigned_urls:
        return end_job(
            deps,
            job_id,
            JobStatus.FAILED,
            "provider_inconsistent",
            f"provider reported {provider_job.status.value} with {len(provider_job.unsigned_urls)} outputs",
        )
    # At most the images asked for are fetched, stored and billed, whatever the provider lists.
    urls = provider_job.unsigned_urls[: record.wanted_images]
    metadata = output_metadata(record, provider_job.id)
    outputs: list[Output] = []
    for index, url in enumerate(urls):
        with provider.download(url) as chunks:
            image = CheckedOutput(chunks)  # sniffed and bounded as it streams: OutputRefused otherwise
            key = output_key(record, index, image.format)
            stored = results.put_stream(key, iter(image), image.content_type, metadata)
            made = {"width": image.width, "height": image.height, "alpha": image.alpha}
            outputs.append(stored.model_copy(update=made))
    failpoints.hit("finalize.after_store")
    charged = charge_fields(record, len(outputs), provider_job.usage)
    # completed_at on our own clock (closing_fields), like submitted_at, so the job's durations come
    # from one clock: a provider's timestamps are another clock's (and its word), and a duration
    # across two clocks came out at -114 s offline (the provider's instant fell before our record
    # of its submission).
    fields: dict[str, Any] = {
        "outputs": [output.model_dump() for output in outputs],
        **charged,
        **closing_fields(record),
    }
    return settle(deps, record, JobStatus.SUCCEEDED, fields)


def charge_fields(record: JobRecord, images: int, usage: Usage | None) -> dict[str, Any]:
    """What a job is charged, as fields of its settling write: its cost from the provider's
    (checked) usage or the per-image table, never more than its reservation (the excess beyond
    it is recorded, never charged, and counted by the CostOverReservation metric and alarm)."""
    cost = pricing.job_cost(record.model, record.quality, images, usage, size=record.size, provider=record.provider)
    cost, excess = pricing.within_reservation(cost, reservation_of(record))
    return {
        "usage": usage.model_dump() if usage else None,
        "cost": cost.model_dump(),
        "cost_excess_usd": str(excess) if excess else None,
    }


def reservation_of(record: JobRecord) -> Decimal:
    """The most a job may be charged: what it reserved against its tenant's budget, or (a job of a
    stack without budgets) what it would have reserved."""
    if record.reserved_usd is not None:
        return Decimal(record.reserved_usd)
    if record.request is None:  # refused at intake: it never ran
        return Decimal(0)
    return pricing.reserve_amount(record.model, record.request, len(record.inputs) + (1 if record.mask else 0))


def end_job(deps: Deps, job_id: str, status: JobStatus, code: str, message: str, *, billed: bool = False) -> JobRecord:
    """Record why a job ended without images. Nothing was billed unless the provider says so:
    with `billed` (it finished but we could not fetch its images) its reported usage is the cost.
    Outputs stored before the failure are removed: a record and its bucket always agree."""
    record, open_ = _unsettled(deps, job_id)
    if not open_:
        return record
    if status is JobStatus.EXPIRED and record.provider_job_id and deps.provider is not None:
        # Past our deadline the provider is told to stop, or it would go on and bill a job nobody
        # follows; one it has finished meanwhile is stored and billed as what it is.
        try:
            upstream = deps.provider.cancel(record.provider_job_id)
        except ImageJobsError:
            upstream = None  # best effort: the deadline stands
        if upstream is not None and upstream.status is JobStatus.SUCCEEDED:
            return _store_outputs(deps, job_id)
    fields: dict[str, Any] = {
        "error": {"code": code, "message": message[:1000]},
        **closing_fields(record),
    }
    if billed and record.provider_job_id and deps.provider is not None:
        try:
            provider_job = deps.provider.get(record.provider_job_id)
        except ImageJobsError:
            provider_job = None
        if provider_job is not None and provider_job.status is JobStatus.SUCCEEDED:
            images = min(len(provider_job.unsigned_urls), record.wanted_images)
            fields |= charge_fields(record, images, provider_job.usage)
    if deps.results is not None and record.provider_job_id:
        deps.results.delete_prefix(outputs_prefix(record))
    return settle(deps, record, status, fields)


def settle(deps: Deps, record: JobRecord, status: JobStatus, fields: dict[str, Any]) -> JobRecord:
    won = deps.store.settle(record.id, status, fields, _charge(record, fields))
    if won:  # what we just wrote (no read needed); otherwise whoever won decided the outcome
        settled: JobRecord | None = JobRecord.model_validate({**record.model_dump(), **fields, "status": status})
    else:
        settled = deps.store.get(record.id)
    if settled is None:
        raise JobNotFound(f"job {record.id} vanished")
    # Its place at the provider (or in line) goes to the next; should that write fail, the job has
    # ended all the same, and the sweeper gives back the places of ended jobs.
    with contextlib.suppress(Exception):
        admission.leave(deps, record)
    if won and deps.metrics is not None:
        # Only the writer that moved the job to its final state emits: once per job, whatever
        # the retries and redeliveries around it.
        deps.metrics.job_settled(settled, Decimal(settled.orchestration_cost_usd or "0"))
    if won:
        _announce(deps, settled)
        if settled.status is JobStatus.SUCCEEDED and settled.submitted_at and settled.completed_at:
            # What the poll schedule learns from: how long this kind of job took at the provider.
            deps.store.record_latency(polling.latency_kind(settled), settled.completed_at - settled.submitted_at)
    return settled


def _charge(record: JobRecord, fields: dict[str, Any]) -> budget.Charge | None:
    """A reserved job settles its tenant's spend to what it cost: the difference to what it
    reserved (all of it back when the provider billed nothing)."""
    if record.reserved_usd is None or record.budget_day is None:
        return None
    cost = fields.get("cost")
    actual = Decimal(str(cost["amount"])) if cost else Decimal(0)
    day = record.budget_day
    return budget.Charge(record.tenant, day, day[:7], actual - Decimal(record.reserved_usd))


def _announce(deps: Deps, record: JobRecord) -> None:
    """Queue the job's event and webhook. Also called when a retried step finds the job already
    final and not yet announced, so a lost notice is sent again (the notify step is idempotent)."""
    if deps.notices is not None and record.event_published_at is None:
        deps.notices.send(record.id, tenant=record.tenant)
