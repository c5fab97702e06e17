"""The job events we publish on EventBridge when a job ends, and their detail (schemas/job-event.schema.json)."""

from __future__ import annotations

from typing import Any

from imagejobs.domain import clock
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import JobStatus

DETAIL_TYPES = {
    JobStatus.SUCCEEDED: "ImageJobSucceeded",
    JobStatus.FAILED: "ImageJobFailed",
    JobStatus.CANCELLED: "ImageJobCancelled",
    JobStatus.EXPIRED: "ImageJobExpired",
}
SUMMARY_FIELDS = ("model", "n", "size", "quality", "background", "output_format")
PROMPT_SUMMARY_CHARS = 200


def detail_type(record: JobRecord) -> str:
    return DETAIL_TYPES[record.status]


def job_event_detail(record: JobRecord) -> dict[str, Any]:
    asked = record.request.model_dump(exclude_none=True) if record.request else record.refused_request or {}
    request = {name: asked[name] for name in SUMMARY_FIELDS if name in asked}
    prompt = str(asked.get("prompt", ""))
    request["prompt"] = prompt[:PROMPT_SUMMARY_CHARS]
    generation = record.completed_at - record.submitted_at if record.completed_at and record.submitted_at else None
    return {
        "job_id": record.id,
        "status": record.status.value,
        "tenant": record.tenant,
        "source": record.source,
        "kind": record.kind,
        "correlation_id": record.correlation_id,
        "request": request,
        "outputs": [output.model_dump() for output in record.outputs],
        "cost": record.cost.model_dump() if record.cost else None,
        "orchestration_cost_usd": record.orchestration_cost_usd,
        "usage": record.usage.model_dump() if record.usage else None,
        "error": record.error.model_dump() if record.error else None,
        "polls": record.polls,
        "timings": {  # instants on the wall clock; durations in job seconds (the same on AWS)
            "created_at": clock.to_wall(record.created_at),
            "submitted_at": clock.to_wall(record.submitted_at) if record.submitted_at else None,
            "completed_at": clock.to_wall(record.completed_at) if record.completed_at else None,
            "generation_seconds": generation,
            "total_seconds": record.completed_at - record.created_at if record.completed_at else None,
        },
    }
