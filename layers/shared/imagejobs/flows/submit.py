"""Submit: a queued job sent to the provider once (never twice, at worst once lost) and its poll
loop started."""

from __future__ import annotations

import contextlib
from typing import Any

from imagejobs.domain import clock, failpoints, polling, pricing
from imagejobs.domain.errors import (
    ImageJobsError,
    JobRejected,
    ObjectMissing,
    ProviderUnavailable,
    RateLimited,
    StaleTransition,
    SubmissionInFlight,
)
from imagejobs.domain.jobs import DEFAULT_PROVIDER, JobRecord, split_provider_id
from imagejobs.domain.models import (
    EditRequest,
    JobStatus,
    ObjectRef,
    ProviderJob,
    UploadFile,
)
from imagejobs.domain.settings import Settings
from imagejobs.flows import failover, provider_events
from imagejobs.flows.ports import Deps, Provider, need
from imagejobs.flows.settle import end_job
from imagejobs.flows.steps import TIME_RESERVE_SECONDS, load


# -- submit (queue-fed) -------------------------------------------------------------------------
def submit(deps: Deps, job_id: str) -> str:
    """Send a job to the provider once and start its poll loop. Safe to repeat at any point:

    - a final job is left alone;
    - a job with a provider id is not sent again (the loop is (re)started);
    - before the POST the record says a submission is in flight; a delivery that finds one in
      flight without a provider id knows the outcome of that one is unknown (a timeout, a crash):
      while the other delivery may still be sending it, it comes back later (SubmissionInFlight);
      after that, with ProviderIdempotency=header it re-sends with the same Idempotency-Key (the
      provider answers with the job it already has), and with "none" (the default: nothing in
      TheRouter's documents promises it) it never re-sends: the job ends failed,
      `submission_unknown`, counted by a metric and an alarm. Never twice, at worst once lost.
    Returns what was done, for logs and tests.
    """
    record = load(deps, job_id)
    if record.status.final:
        return "already_final"
    if record.provider_job_id is None:
        sent = _send_once(deps, record)
        if isinstance(sent, str):
            return sent
        record = sent
    arn = need(deps.loops, "loops").start(record.id, first_payload(deps, record))
    failpoints.hit("submit.after_start_execution")
    deps.store.record_execution(job_id, arn, clock.now())
    return "submitted"


def _send_once(deps: Deps, record: JobRecord) -> JobRecord | str:
    """The job's one POST to the provider, marked in flight (and to which provider) before it is
    sent: the record with the provider's job id, or what was done instead (for logs and tests)."""
    job_id, provider = record.id, need(deps.provider, "provider")
    started, now = record.submission_started_at, clock.now()
    if started is not None and (unknown := _outcome_unknown(deps, record, started, now)):
        return unknown
    target = _target(deps, record, resend=started is not None)
    try:
        deps.store.mark_submitting(job_id, now, previous=started, provider=target)
    except StaleTransition:
        raise SubmissionInFlight(f"job {job_id} was just marked by another delivery") from None
    try:
        provider_job = _send_to_provider(deps, provider, record, target)
    except JobRejected as rejected:
        end_job(deps, job_id, JobStatus.FAILED, rejected.code, rejected.message)
        failover.observe(deps, target, record.model, ok=True)  # it answered: it is up
        return "rejected"
    except ObjectMissing as gone:  # an input deleted or replaced since it was checked: never sent
        end_job(deps, job_id, JobStatus.FAILED, gone.reason, gone.message)
        return gone.reason
    except (RateLimited, ProviderUnavailable) as exc:
        if not getattr(exc, "outcome_unknown", False):
            deps.store.clear_submitting(job_id, clock.now())  # definitely not taken: a retry starts clean
        if isinstance(exc, ProviderUnavailable):  # 5xx, timeout, no connection: the provider's health
            failover.observe(deps, target, record.model, ok=False)
        raise
    failpoints.hit("submit.after_provider")
    if split_provider_id(provider_job.id)[0] != DEFAULT_PROVIDER:
        # How its webhooks find the job (imagejobs.flows.provider_events); kept as long as the job.
        ttl = record.ttl or int(clock.wall_now()) + deps.settings.job_record_ttl_days * 86_400
        deps.store.point(provider_events.pointer(provider_job.id), job_id, ttl)
    kind = polling.latency_kind(record, split_provider_id(provider_job.id)[0])
    win = polling.window(record.quality, deps.store.latency_counts(kind))
    chosen = {"start": win.start, "end": win.end, "samples": win.samples}
    try:
        deps.store.record_submission(job_id, provider_job.id, clock.now(), chosen)
    except StaleTransition:
        # Cancelled (or ended) while the POST was in flight: the provider's new job would run
        # and be billed with nobody following it, so it is cancelled there too (best effort).
        with contextlib.suppress(ImageJobsError):
            provider.cancel(provider_job.id)
        return "ended_in_flight"
    # Counted once the job is recorded: nothing the breaker's write does can lose a job it took.
    failover.observe(deps, target, record.model, ok=True)
    return record.model_copy(update={"provider_job_id": provider_job.id, "poll_window": chosen})


def _target(deps: Deps, record: JobRecord, *, resend: bool) -> str:
    """Where the POST goes: a resend (the same Idempotency-Key) where the first one went; a first
    submission to its model's route, or, failing over, to the other provider that makes it."""
    if resend and record.submitting_to:
        return record.submitting_to
    return failover.choose(deps, need(record.request, "request"))


def first_payload(deps: Deps, record: JobRecord) -> dict[str, Any]:
    """The poll loop's input: it waits for the provider's webhook first where one will come."""
    return polling.first_poll_payload(record, polling.await_seconds(record, deps.settings, clock.now()))


def _outcome_unknown(deps: Deps, record: JobRecord, started: float, now: float) -> str | None:
    """A submission was marked in flight and never recorded a provider id: while another delivery
    may still be sending it, come back later; after that, re-send only if the provider recognises
    a resubmission (ProviderIdempotency=header, TheRouter's jobs only: OpenAI's API reference
    documents no Idempotency-Key for responses), else end the job saying so."""
    job_id = record.id
    if now - started < submission_in_flight_seconds(deps.settings):
        raise SubmissionInFlight(f"job {job_id} is being sent to the provider by another delivery")
    tried = record.submitting_to or pricing.routed(record.model, deps.settings.routes) or DEFAULT_PROVIDER
    if deps.settings.provider_idempotency != "none" and tried == DEFAULT_PROVIDER:
        return None
    end_job(
        deps,
        job_id,
        JobStatus.FAILED,
        "submission_unknown",
        "the provider may or may not have taken this job (its answer never came), and it does not "
        "promise to recognise a resubmission, so it was not sent again",
    )
    return "submission_unknown"


def submission_in_flight_seconds(settings: Settings) -> float:
    """How long another delivery may still be sending a job: one message's worst case in submit
    (its inputs and the POST, each up to the provider timeout), with the writes around them."""
    return 2 * settings.provider_timeout_seconds + TIME_RESERVE_SECONDS


def _send_to_provider(deps: Deps, provider: Provider, record: JobRecord, target: str) -> ProviderJob:
    request = need(record.request, "request")  # a job whose request was refused is never queued
    if not isinstance(request, EditRequest):
        return provider.submit(request, idempotency_key=record.id, provider=target)
    objects = need(deps.objects, "objects")

    def upload_file(ref: ObjectRef, name: str) -> UploadFile:
        content_type = ref.content_type or "image/png"
        extension = content_type.rsplit("/", 1)[-1].replace("jpeg", "jpg")
        return (f"{name}.{extension}", objects.read(ref), content_type)

    images = [upload_file(ref, f"image-{index}") for index, ref in enumerate(record.inputs)]
    mask = upload_file(record.mask, "mask") if record.mask else None
    return provider.submit_edit(request, images, mask, idempotency_key=record.id, provider=target)
