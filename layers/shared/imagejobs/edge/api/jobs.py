"""Routes on jobs: get, list, cancel, content."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from imagejobs.domain.models import (
    ContentRedirect,
    JobList,
    JobStatus,
    whole_number,
)
from imagejobs.edge.api.common import _answers, _own_job, _tenant, event, logger, wired
from imagejobs.edge.httpapi import (
    ApiError,
    base_url,
)
from imagejobs.flows import views
from imagejobs.flows.cancel import cancel
from imagejobs.flows.views import DEFAULT_PAGE, job_view, output_urls

router = Router()


@router.get(
    "/v1/jobs/<job_id>", summary="Get a job (fresh result URLs on every call)", responses=_answers(200, "the job", 404)
)
def get_job(job_id: str) -> dict[str, Any]:
    return job_view(wired(), _own_job(job_id), base_url(event()))


@router.get(
    "/v1/jobs",
    summary="List your jobs, newest first",
    responses=_answers(200, "a page of jobs", 400, 404, model=JobList),
)
def list_jobs() -> dict[str, Any]:
    tenant = _tenant()
    request = event()
    # A parameter given empty is given (and invalid), not absent; the listing judges the values.
    raw_limit = request.get_query_string_value("limit")
    return views.list_jobs(
        wired(),
        tenant,
        base_url(request),
        limit=DEFAULT_PAGE if raw_limit is None else whole_number(raw_limit),
        status=request.get_query_string_value("status"),
        after=request.get_query_string_value("after"),
    )


def _cancel(job_id: str) -> dict[str, Any]:
    _own_job(job_id)
    record = cancel(wired(), job_id)  # JobAlreadyFinal, JobFinishedUpstream: 409 (refused() below)
    logger.info("job cancelled", extra={"job_id": job_id})
    return job_view(wired(), record, base_url(event()))


@router.post(
    "/v1/jobs/<job_id>/cancel", summary="Cancel a running job", responses=_answers(200, "the job, cancelled", 404, 409)
)
def cancel_job(job_id: str) -> dict[str, Any]:
    return _cancel(job_id)


@router.delete(
    "/v1/jobs/<job_id>", summary="Cancel a running job", responses=_answers(200, "the job, cancelled", 404, 409)
)
def delete_job(job_id: str) -> dict[str, Any]:
    return _cancel(job_id)


@router.get(
    "/v1/jobs/<job_id>/content",
    summary="Redirect to one of the job's images (?index=N, from 0; the first by default)",
    responses=_answers(302, "redirect to a presigned URL of the image", 400, 404, 409, model=ContentRedirect),
)
def get_content(job_id: str) -> Response[str]:
    record = _own_job(job_id)
    raw_index = event().get_query_string_value("index")
    index = 0 if raw_index is None else whole_number(raw_index)
    if record.status is not JobStatus.SUCCEEDED or not record.outputs:
        raise ApiError(
            409,
            f"Job '{job_id}' is {record.status.value}; its content is available once it has succeeded.",
            param="id",
            code="job_not_succeeded",
        )
    if index is None or not 0 <= index < len(record.outputs):
        last = len(record.outputs) - 1
        raise ApiError(400, f"index must be a whole number from 0 to {last}.", param="index", code="invalid_value")
    url = output_urls(wired(), record)[index]
    return Response(
        status_code=302,
        headers={"Location": url},
        content_type="application/json",
        body=ContentRedirect(url=url).model_dump_json(),
    )
