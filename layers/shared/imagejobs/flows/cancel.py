"""Cancel: a caller stops a running job, unless the provider has already made its images."""

from __future__ import annotations

from typing import Any

from imagejobs.domain.errors import (
    ImageJobsError,
)
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import (
    JobStatus,
    ProviderJob,
)
from imagejobs.flows.ports import Deps, need
from imagejobs.flows.settle import charge_fields, settle
from imagejobs.flows.steps import closing_fields, load


# -- cancel ---------------------------------------------------------------------------------------
class JobAlreadyFinal(ImageJobsError):
    reason = "job_already_final"
    status, error_type, param = 409, "invalid_request_error", "id"

    def __init__(self, record: JobRecord) -> None:
        super().__init__(f"Job '{record.id}' is already {record.status.value}; only a running job can be cancelled.")
        self.record = record


class JobFinishedUpstream(ImageJobsError):
    """The provider finished the job (its images made and billed) before the cancel reached it:
    the job is not cancelled, its poll loop goes on and stores the images."""

    reason = "job_finished_at_provider"
    status, error_type, param = 409, "invalid_request_error", "id"

    def __init__(self, record: JobRecord) -> None:
        super().__init__(
            f"Job '{record.id}' finished at the provider before it could be cancelled: it is not cancelled, "
            "its images are being stored and it will show succeeded."
        )
        self.record = record


class CancelUnknown(ImageJobsError):
    """The provider answered neither the cancel nor a look at the job: whether it has finished
    (and billed) it is unknown, so the job is left as it is; its loop goes on. Try again."""

    reason = "provider_unavailable"
    status, error_type, param, retry_after = 503, "server_error", None, 5.0

    def __init__(self, record: JobRecord) -> None:
        super().__init__(
            f"Job '{record.id}' could not be cancelled: the provider did not answer, and it may have finished "
            "the job already. Nothing was changed; try again in a few seconds."
        )


def cancel(deps: Deps, job_id: str) -> JobRecord:
    """Ask the provider to stop, then stop the poll loop and end the job `cancelled`; the cost is
    what the provider says it billed (its usage for the cancelled job), nothing when it says nothing.

    The provider is asked first: a job it has already finished (succeeded) is never cancelled here,
    since that would bill its images and store none. It stays with its loop, which stores them
    (JobFinishedUpstream). A provider without a cancel route is asked for the job's state instead."""
    record = load(deps, job_id)
    if record.status.final:
        raise JobAlreadyFinal(record)
    provider_job: ProviderJob | None = None
    if record.provider_job_id:
        provider = need(deps.provider, "provider")
        try:
            provider_job = provider.cancel(record.provider_job_id)
        except ImageJobsError:
            provider_job = None  # the cancel failed (a timeout, a 5xx): what the job is, is asked next
        if provider_job is None:
            try:
                provider_job = provider.get(record.provider_job_id)
            except ImageJobsError:
                # Neither answered: it may be finished and billed there. Cancelling here would
                # bill images nobody keeps, so nothing changes and the caller tries again.
                raise CancelUnknown(record) from None
        if provider_job.status is JobStatus.SUCCEEDED:
            raise JobFinishedUpstream(record)
    if record.execution_arn:
        need(deps.loops, "loops").stop(record.execution_arn, "cancelled by the caller")
    usage = provider_job.usage if provider_job else None
    fields: dict[str, Any] = {
        "error": {"code": "cancelled_by_user", "message": "the job was cancelled by its caller"},
        **closing_fields(record),
    }
    if usage is not None and usage.total_tokens > 0:
        fields |= charge_fields(record, 0, usage)
    settled = settle(deps, record, JobStatus.CANCELLED, fields)
    if settled.status is not JobStatus.CANCELLED:
        raise JobAlreadyFinal(settled)  # it finished while we were cancelling
    return settled
