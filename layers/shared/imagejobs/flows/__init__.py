"""The application: the job logic, one module per flow, talking to the world only through the
ports (`ports.py`: Protocols the adapters implement), so the same code runs on AWS, offline on moto
and with the fakes of the unit tier. It imports the domain and the ports; never boto3, botocore,
httpx or Powertools (tests/unit/test_layers.py).

    intake   a request (HTTP, event, upload) becomes a queued job, or a failed one saying why
    submit   a queued job is sent to the provider once and its poll loop starts
    poll     one status call of the loop
    settle   a job ends exactly once: images stored or reason recorded, cost charged
    cancel   a caller stops a job the provider has not finished
    views    the job as callers see it
"""

from imagejobs.flows.cancel import CancelUnknown, JobAlreadyFinal, JobFinishedUpstream, cancel
from imagejobs.flows.intake import (
    Caller,
    EnqueueFailed,
    IdempotencyConflict,
    ModelShutdown,
    UnsupportedModel,
    UnsupportedParameter,
    accept_edit,
    accept_event,
    accept_generation,
    accept_upload,
    check_model,
    checked_request,
    create_upload,
    new_job_id,
    request_hash,
)
from imagejobs.flows.poll import poll
from imagejobs.flows.ports import Deps, need
from imagejobs.flows.settle import end_job, finalize, output_key, output_metadata, outputs_prefix, settle
from imagejobs.flows.steps import TIME_RESERVE_SECONDS, closing_fields, load
from imagejobs.flows.submit import submission_in_flight_seconds, submit
from imagejobs.flows.views import (
    DEFAULT_PAGE,
    SYNC_CHECK_SECONDS,
    images_response,
    job_view,
    list_jobs,
    output_urls,
    wait_until_final,
)

__all__ = [
    "DEFAULT_PAGE",
    "SYNC_CHECK_SECONDS",
    "TIME_RESERVE_SECONDS",
    "Caller",
    "CancelUnknown",
    "Deps",
    "EnqueueFailed",
    "IdempotencyConflict",
    "JobAlreadyFinal",
    "JobFinishedUpstream",
    "ModelShutdown",
    "UnsupportedModel",
    "UnsupportedParameter",
    "accept_edit",
    "accept_event",
    "accept_generation",
    "accept_upload",
    "cancel",
    "check_model",
    "checked_request",
    "closing_fields",
    "create_upload",
    "end_job",
    "finalize",
    "images_response",
    "job_view",
    "list_jobs",
    "load",
    "need",
    "new_job_id",
    "output_key",
    "output_metadata",
    "output_urls",
    "outputs_prefix",
    "poll",
    "request_hash",
    "settle",
    "submission_in_flight_seconds",
    "submit",
    "wait_until_final",
]
