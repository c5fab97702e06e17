"""Views: the job as a caller sees it (TheRouter's job object, OpenAI's image response), and the
wait of a caller that asked to wait."""

from __future__ import annotations

import base64
from typing import Any

from imagejobs.domain import clock
from imagejobs.domain.errors import (
    ImageJobsError,
    InvalidValue,
)
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import (
    CONTENT_TYPES,
    ImageOut,
    ImagesResponse,
    JobStatus,
    JobView,
    ObjectRef,
    OrchestrationCost,
    WebhookView,
)
from imagejobs.flows import admission
from imagejobs.flows.ports import Deps, need
from imagejobs.flows.steps import load


# -- the job object served over HTTP --------------------------------------------------------------
def output_urls(deps: Deps, record: JobRecord) -> list[str]:
    """Fresh presigned GET URLs of a job's stored outputs (re-issued on every call)."""
    results = need(deps.results, "results")
    return [results.presigned_url(output.key, deps.settings.result_url_ttl_seconds) for output in record.outputs]


def job_view(deps: Deps, record: JobRecord, base_url: str) -> dict[str, Any]:
    succeeded = record.status is JobStatus.SUCCEEDED
    urls = output_urls(deps, record) if succeeded else None
    # Instants as the wall clock reads them (clock.to_wall: the same offline, where the job clock
    # runs fast); how long results are kept is the bucket's lifecycle, in real days.
    wall = clock.to_wall
    kept_until = wall(record.completed_at or record.updated_at) + deps.settings.result_retention_days * 86_400
    waiting = record.status is JobStatus.QUEUED and record.provider_job_id is None
    in_line = admission.place(deps, record) if waiting else None
    view = JobView(
        id=record.id,
        status=record.status,
        model=record.model,
        created_at=int(wall(record.created_at)),
        polling_url=f"{base_url}/v1/jobs/{record.id}",
        expires_at=int(kept_until if succeeded else wall(record.deadline_at)),
        completed_at=int(wall(record.completed_at)) if record.completed_at else None,
        polls=record.polls,
        source=record.source,
        provider=record.provider,
        usage=record.usage.model_dump(exclude_none=True) if record.usage else None,
        cost=record.cost,
        orchestration_cost=(
            OrchestrationCost(amount=record.orchestration_cost_usd) if record.orchestration_cost_usd else None
        ),
        error=record.error,
        unsigned_urls=urls,
        webhook=webhook_view(record),
        result=_result(record, [ImageOut(url=url) for url in urls]) if urls is not None else None,
        queue_position=in_line[0] if in_line else None,
        estimated_start_at=int(wall(in_line[1])) if in_line else None,
    )
    return view.answer()


DEFAULT_PAGE, MAX_PAGE = 20, 100


class InvalidListing(InvalidValue):
    """A listing's parameter out of its range."""


class UnknownCursor(ImageJobsError):
    reason = "job_not_found"
    status, error_type, param = 404, "invalid_request_error", "after"


def list_jobs(
    deps: Deps, tenant: str, base_url: str, *, limit: int | None, status: str | None, after: str | None
) -> dict[str, Any]:
    """A page of the tenant's jobs, newest first (`after`: the last id of the page before, one of
    the tenant's jobs): OpenAI's list shape."""
    if limit is None or not 1 <= limit <= MAX_PAGE:
        raise InvalidListing(f"limit must be a whole number from 1 to {MAX_PAGE}.", param="limit")
    wanted = None
    if status is not None:
        try:
            wanted = JobStatus(status)
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise InvalidListing(f"status must be one of {allowed}.", param="status") from None
    cursor = None
    if after is not None:
        cursor = deps.store.get(after) if after else None
        if cursor is None or cursor.tenant != tenant:
            raise UnknownCursor(f"after must be the id of one of your jobs, not '{after}'.")
    records, has_more = deps.store.list_jobs(tenant, limit=limit, after=cursor, status=wanted)
    data = [job_view(deps, record, base_url) for record in records]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


SYNC_CHECK_SECONDS = 0.25  # how often a waiting caller's job is read (wall seconds)


def wait_until_final(deps: Deps, job_id: str, until: float) -> JobRecord:
    """The job once it is final, or as it stands at `until` (a wall-clock instant: a caller's
    wait is real time, offline too): a plain call (no async=true) reads its record until then."""
    while True:
        record = load(deps, job_id)
        left = until - clock.wall_now()
        if record.status.final or left <= 0:
            return record
        clock.wall_sleep(min(SYNC_CHECK_SECONDS, left))


def images_response(deps: Deps, record: JobRecord, *, inline_bytes: int) -> dict[str, Any]:
    """A succeeded job as OpenAI's image API answers a call: `data[].b64_json` (what GPT image
    models return) while the images' base64 fits in `inline_bytes`, else `data[].url` (presigned)."""
    if sum(output.bytes for output in record.outputs) * 4 // 3 + 4 <= inline_bytes:
        objects = need(deps.objects, "objects")
        data = [
            ImageOut(b64_json=base64.b64encode(objects.read(ObjectRef(bucket=output.bucket, key=output.key))).decode())
            for output in record.outputs
        ]
    else:
        data = [ImageOut(url=url) for url in output_urls(deps, record)]
    return _result(record, data).model_dump(mode="json", exclude_none=True)


def _result(record: JobRecord, data: list[ImageOut]) -> ImagesResponse:
    """OpenAI's image response. Like OpenAI's, it says what was made, not what was asked ("auto"):
    size, background and format as the first image's header says (read as it was stored)."""
    made = record.outputs[0] if record.outputs else None
    size = f"{made.width}x{made.height}" if made and made.width and made.height else record.size
    background: str = record.request.background if record.request else "auto"
    if background == "auto" and made is not None and made.alpha is not None:
        background = "transparent" if made.alpha else "opaque"
    formats = {content_type: name for name, content_type in CONTENT_TYPES.items()}
    output_format = formats.get(made.content_type, "") if made else ""
    return ImagesResponse(
        created=int(clock.to_wall(record.completed_at or record.updated_at)),
        data=data,
        background=background,
        output_format=output_format or (record.request.output_format if record.request else "png"),
        quality=record.quality,
        size=size,
        usage=record.usage.model_dump(exclude_none=True) if record.usage else None,
    )


def webhook_view(record: JobRecord) -> WebhookView | None:
    if not record.webhook_url:
        return None
    last = record.webhook_attempts[-1] if record.webhook_attempts else {}
    state = record.webhook_state if record.webhook_state in ("delivered", "failed") else "pending"
    return WebhookView(
        state=state,
        attempts=len(record.webhook_attempts),
        last_attempt_at=int(clock.to_wall(last["at"])) if last.get("at") is not None else None,
        last_status_code=last.get("status_code"),
        last_error=last.get("error"),
    )
