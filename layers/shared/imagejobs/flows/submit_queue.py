"""What the submit function does with one queue message.

The submit queue carries four kinds of message: a job the HTTP intake queued ({"job_id": ...}),
S3 event notifications from the inbox bucket (including S3's one-off s3:TestEvent),
ImageJobRequested events from EventBridge, and, for
anything else, nothing we can act on: such a message is parked in the dead-letter queue with its
reason at once instead of being retried.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from imagejobs.domain import clock, requests_in, uploads
from imagejobs.domain.errors import ImageJobsError, JobNotFound, ProviderUnavailable, RateLimited
from imagejobs.domain.models import JobStatus
from imagejobs.domain.settings import Settings
from imagejobs.flows import admission
from imagejobs.flows.intake.event import accept_event
from imagejobs.flows.intake.upload import accept_upload
from imagejobs.flows.ports import Deps, need
from imagejobs.flows.settle import end_job
from imagejobs.flows.submit import submission_in_flight_seconds, submit

RETRY_BASE_SECONDS, RETRY_MAX_SECONDS = 15.0, 300.0  # a transient failure's next try: 15 s, 30 s, 60 s, ...
DEFAULT_RATE_LIMIT_BACKOFF_SECONDS = 30.0
SUBMIT_TURNS = "provider-submit"  # the rate cap's shared schedule (ProviderSubmitsPerMinute)


def seconds_per_message(settings: Settings) -> float:
    """The most one message may take: reading its inputs and the provider POST (each up to the
    provider timeout), then the record and StartExecution."""
    return submission_in_flight_seconds(settings)


def release(deps: Deps, receipt_handle: str) -> None:
    """A message this invocation has no time for: visible again at once, for another invocation."""
    need(deps.queue, "queue").retry_after(receipt_handle, 0)


def process(
    deps: Deps,
    body_text: str,
    *,
    receipt_handle: str,
    receive_count: int,
    log: Callable[..., None],
) -> str:
    """Returns what was done; raises (so the message comes back) when a job should be retried."""
    queue = need(deps.queue, "queue")
    try:
        body: Any = json.loads(body_text)
    except ValueError:
        return _park(queue, body_text, "the message body is not JSON", log)
    envelope = requests_in.parse_envelope(body)
    if isinstance(body, dict) and isinstance(body.get("job_id"), str):
        job_ids = [body["job_id"]]
    elif envelope is not None:
        if envelope.detail_type != requests_in.DETAIL_TYPE:
            return _park(queue, body_text, f"event of detail-type {envelope.detail_type!r} is not a job request", log)
        record = accept_event(deps, envelope)
        log("event accepted", job_id=record.id, event_id=envelope.id, status=record.status.value)
        job_ids = [record.id]
    else:
        try:
            events = uploads.parse_s3_message(body)
        except uploads.NotAnS3Event as exc:
            return _park(queue, body_text, str(exc), log)
        if not events:
            log("s3:TestEvent acknowledged")
            return "test_event"
        job_ids = _accept_uploads(deps, events, log)
    outcomes = []
    for job_id in job_ids:
        try:
            outcomes.append(_submit(deps, job_id, receipt_handle, receive_count, log))
        except JobNotFound:  # a message naming no job of ours: nothing to retry
            return _park(queue, body_text, f"no job {job_id!r}", log)
    return ",".join(outcomes) or "ignored"


def _accept_uploads(deps: Deps, events: list[uploads.S3EventRecord], log: Callable[..., None]) -> list[str]:
    settings = deps.settings
    rules: Any = None
    rules_loaded = False
    job_ids = []
    for event in events:
        upload = event.object_ref()
        if not event.eventName.startswith("ObjectCreated") or not upload.key.startswith(settings.inbox_prefix):
            log("upload event ignored", key=upload.key, event=event.eventName)
            continue
        if not rules_loaded and settings.inbox_bucket:
            rules = _rules(deps, log)
            rules_loaded = True
        record = accept_upload(deps, upload, rules)
        log("upload accepted", job_id=record.id, key=upload.key, status=record.status.value)
        job_ids.append(record.id)
    return job_ids


def _rules(deps: Deps, log: Callable[..., None]) -> Any:
    """The inbox's rules document; an unusable one as uploads.BrokenRules, logged (one bad
    document must not stop the uploads that carry their own instructions)."""
    where = f"s3://{deps.settings.inbox_bucket}/{deps.settings.rules_key}"
    try:
        inbox = need(deps.settings.inbox_bucket, "inbox bucket")
        document = need(deps.objects, "objects").read_json(inbox, deps.settings.rules_key)
    except ValueError as exc:  # not JSON, or not UTF-8
        problem: str | None = f"{where} is not JSON ({exc})"
    else:
        problem = uploads.rules_problem(document)
        problem = f"{where} {problem}" if problem else None
    if problem is None:
        return document
    log("rules document unusable", problem=problem)
    return uploads.BrokenRules(problem)


def _submit(deps: Deps, job_id: str, receipt_handle: str, receive_count: int, log: Callable[..., None]) -> str:
    queue = need(deps.queue, "queue")
    record = deps.store.get(job_id) if deps.settings.provider_limited else None
    suffix, _, cap = deps.settings.provider_limits(record.model) if record is not None else ("", 0, 0)
    turns = SUBMIT_TURNS + suffix  # a model with limits of its own has its own turns
    unsent = record is not None and record.provider_job_id is None and not record.status.final
    if record is not None and unsent and admission.enabled(deps, record):
        decision = admission.admit(deps, record)
        if not decision.admitted:
            # In line for a place at the provider: a fresh message comes back at its estimated turn
            # (a place that frees wakes it sooner), so waiting never uses up the job's deliveries.
            queue.send(job_id, delay_seconds=clock.real_seconds(admission.wake_after(decision)), tenant=record.tenant)
            log("waiting for a place at the provider", job_id=job_id, position=decision.position)
            return "waiting"
    if cap and unsent and record is not None:
        wait = deps.store.take_turn(turns, 60.0 / cap, clock.now())
        if wait > 0:
            # Over our own cap: come back later as a fresh message, so waiting for a turn never
            # uses up the job's deliveries (the way a provider 429 does).
            queue.send(job_id, delay_seconds=clock.real_seconds(wait * random.uniform(1.0, 1.25)), tenant=record.tenant)
            log("provider cap reached; job deferred", job_id=job_id, seconds=round(wait, 2))
            return "deferred"
    try:
        return submit(deps, job_id)
    except JobNotFound:
        raise
    except ImageJobsError as exc:
        out_of_tries = receive_count >= deps.settings.submit_max_receive_count
        if not exc.transient or out_of_tries:
            # The job ends with the reason instead of waiting forever in a dead-letter queue.
            end_job(deps, job_id, JobStatus.FAILED, exc.reason, exc.message)
            log("job ended at submit", job_id=job_id, reason=exc.reason)
            if not exc.transient:
                return "ended"
        elif isinstance(exc, RateLimited):
            # Its place goes back, and the limit in force is cut: the provider said it had enough.
            if record is not None:
                admission.leave(deps, record, rate_limited=True)
            # Come back when the provider said, with jitter so a burst does not return as one.
            wait = (exc.retry_after or DEFAULT_RATE_LIMIT_BACKOFF_SECONDS) * random.uniform(1.0, 1.25)
            if cap:  # and the rate cap's turns spread out, none before the provider's Retry-After
                stretch = deps.store.slow_down(turns, clock.now(), wait)
                if deps.metrics is not None:
                    deps.metrics.rate_state(cap / stretch, model=record.model if suffix and record else None)
            queue.retry_after(receipt_handle, clock.real_seconds(wait))
            log("rate limited; message comes back later", job_id=job_id, seconds=round(wait, 1))
        else:
            if isinstance(exc, ProviderUnavailable) and not exc.outcome_unknown and record is not None:
                admission.leave(deps, record)  # the provider did not take it: its place goes back
            # The queue's visibility timeout is 6x the function's, as AWS advises for a queue that
            # feeds Lambda (15 min): a transient failure of ours comes back sooner, with backoff.
            backoff = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, receive_count - 1))
            wait = backoff * random.uniform(1.0, 1.25)
            queue.retry_after(receipt_handle, clock.real_seconds(wait))
            log("transient failure; message comes back later", job_id=job_id, seconds=round(wait, 1))
        raise


def _park(queue: Any, body_text: str, reason: str, log: Callable[..., None]) -> str:
    queue.dead_letter(body_text, reason)
    log("message parked in the dead-letter queue", reason=reason)
    return "parked"
