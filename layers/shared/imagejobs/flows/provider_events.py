"""A provider's word that a job ended (OpenAI direct's signed webhooks): checked, then it ends the
poll loop's wait at once, so a job finishes with no status poll at all.

What is believed of a webhook, and what is not:
- it is OpenAI's only if its Standard Webhooks signature verifies with our secret and its
  timestamp is inside the replay window (5 minutes: the SDK's `verify_signature` tolerance);
- even then it says only *which* response ended (`data.id`) and how (`type`); what ended, and
  what it costs, finalize reads from the provider itself (GET /v1/responses/{id}) and checks,
  as it does after a poll. No money moves on a webhook's word;
- a duplicate (OpenAI retries deliveries that were not answered 2xx, its webhooks guide) finds the
  wait already ended and changes nothing; a forged or stale one is refused (400) before anything
  is read.
A dropped or late webhook loses nothing: the wait has a timeout (OpenAIWebhookFallbackSeconds,
inside the 10 minutes OpenAI keeps a background response for polling), after which the loop polls."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from imagejobs.domain import clock, webhooks
from imagejobs.domain.errors import ImageJobsError
from imagejobs.domain.jobs import JobRecord, qualified_provider_id
from imagejobs.domain.models import PollResult
from imagejobs.flows.ports import Deps, need

MAX_EVENT_BYTES = 64 * 1024  # an event carries an id and a type: anything larger is not one
RESPONSE_EVENTS = {
    "response.completed": "completed",
    "response.failed": "failed",
    "response.cancelled": "cancelled",
    "response.incomplete": "incomplete",
}


class WebhookNotAccepted(ImageJobsError):
    """A provider webhook that is not believed (its signature, its age, its shape): 400."""

    reason = "webhook_refused"
    status, error_type = 400, "invalid_request_error"


@dataclass(frozen=True)
class ProviderEvent:
    webhook_id: str
    type: str
    response_id: str


def pointer(provider_job_id: str) -> str:
    """The name under which a provider job's id finds our job (written when it is submitted)."""
    return f"provider#{provider_job_id}"


def read_event(secret: str, headers: dict[str, str], body: bytes) -> ProviderEvent:
    """The event, once its signature and timestamp check (WebhookNotAccepted otherwise)."""
    if len(body) > MAX_EVENT_BYTES:
        raise WebhookNotAccepted("the webhook body is larger than any event")
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        webhooks.verify(secret, lowered, body, now=clock.wall_now())
    except webhooks.SignatureInvalid as exc:
        raise WebhookNotAccepted(str(exc)) from None
    try:
        event: Any = json.loads(body)
    except ValueError:
        raise WebhookNotAccepted("the webhook body is not JSON") from None
    data = event.get("data") if isinstance(event, dict) else None
    kind, response_id = (event.get("type"), data.get("id")) if isinstance(data, dict) else (None, None)
    if not isinstance(kind, str) or not isinstance(response_id, str) or not 0 < len(response_id) <= 256:
        raise WebhookNotAccepted("the webhook is not an event about a response")
    return ProviderEvent(webhook_id=lowered["webhook-id"], type=kind[:64], response_id=response_id)


def take_event(deps: Deps, provider: str, event: ProviderEvent) -> str:
    """What a checked event does (returned for logs and tests): notes it on the job, and ends the
    job's wait if the loop is waiting on one (its task token)."""
    if event.type not in RESPONSE_EVENTS:
        return "ignored"  # e.g. batch.* or another product's events on the same endpoint
    job_id = deps.store.pointed_job(pointer(qualified_provider_id(provider, event.response_id)))
    if job_id is None:
        return "unknown_response"  # not one of ours (another app on the same OpenAI project)
    record = deps.store.record_provider_event(job_id, RESPONSE_EVENTS[event.type], clock.now())
    if record is None or record.status.final:
        return "already_final"
    if record.task_token and wake(deps, record):
        return "woke"
    return "noted"  # no wait under way: the next one (or the next poll) finds it noted


def wake(deps: Deps, record: JobRecord) -> bool:
    """End the loop's wait on this job: on to finalize (which reads the response itself and
    checks it) when it completed, to one poll otherwise (which reads why it ended). False when
    the wait had ended already (timed out, or another wake came first)."""
    if record.provider_event == "completed":
        result = PollResult(job_id=record.id, action="finalize", provider_status="completed")
    else:
        result = PollResult(job_id=record.id, action="wait", provider_status=str(record.provider_event))
    return need(deps.loops, "loops").complete(need(record.task_token, "task token"), result.model_dump(mode="json"))
