"""After a job ends: its EventBridge event, then its webhook (if the request asked for one).

Fed by the notify queue, so every step is retried by redelivery: the event is published until it
is recorded as published; a webhook that fails is tried again with exponential backoff (10 s,
20 s, 40 s, ... with jitter) up to WEBHOOK_MAX_ATTEMPTS deliveries, each attempt recorded on the job.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any, Protocol

from imagejobs.adapters import webhooks
from imagejobs.domain import clock, events
from imagejobs.domain import webhooks as signing
from imagejobs.domain.errors import ImageJobsError
from imagejobs.domain.models import WebhookState
from imagejobs.flows.ports import Deps, need
from imagejobs.flows.views import job_view

BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 900.0


class Bus(Protocol):
    def put(self, detail_type: str, detail: dict[str, Any], resources: list[str] | None = None) -> None: ...


class WebhookFailed(ImageJobsError):
    reason = "webhook_failed"
    transient = True


def process_message(deps: Deps, bus: Bus, body: str, **delivery: Any) -> str:
    """One notify-queue message: {"job_id": ...} of a job that exists. Anything else is parked in
    the notify dead-letter queue with its reason at once (retrying it would never help)."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = None
    job_id = parsed.get("job_id") if isinstance(parsed, dict) else None
    if not isinstance(job_id, str):
        reason = 'the message is not {"job_id": "<id>"}'
    elif deps.store.get(job_id) is None:
        reason = f"no job {job_id!r}"
    else:
        return process(deps, bus, job_id, **delivery)
    need(deps.notices, "notices").dead_letter(body, reason)
    delivery.get("log", lambda *_, **__: None)("message parked in the dead-letter queue", reason=reason)
    return "parked"


def process(
    deps: Deps,
    bus: Bus,
    job_id: str,
    *,
    receipt_handle: str,
    receive_count: int,
    deliver: Callable[..., webhooks.Delivery] = webhooks.deliver,
    log: Callable[..., None] = lambda *_, **__: None,
) -> str:
    record = deps.store.get(job_id)
    if record is None or not record.status.final:
        log("notice for a job that is not final; nothing to say yet", job_id=job_id)
        return "not_final"
    if record.event_published_at is None:
        bus.put(events.detail_type(record), events.job_event_detail(record), [job_id])
        deps.store.record_event_published(job_id, clock.now())
        log("job event published", job_id=job_id, detail_type=events.detail_type(record))
    if not record.webhook_url or record.webhook_state in ("delivered", "failed"):
        return "done"
    # Every tenant that may send a webhook_url has a secret: made on first use if it has none yet
    # (its operator reads it with `imagejobs webhook-secret`, which returns the same one).
    # Within a rotation's overlap the previous secret signs too.
    secrets = deps.store.webhook_signing_secrets(record.tenant, signing.new_secret(), clock.wall_now())
    payload = signing.envelope(f"image_job.{record.status.value}", job_view(deps, record, record.base_url or ""))
    delivery = deliver(
        record.webhook_url,
        secrets,
        signing.message_id(record.id, record.status.value),
        payload,
        allow_loopback=deps.settings.webhook_allow_loopback,
    )
    out_of_tries = receive_count >= deps.settings.webhook_max_attempts
    state: WebhookState = "delivered" if delivery.ok else ("failed" if out_of_tries else "pending")
    deps.store.record_webhook_attempt(job_id, delivery.as_attempt(clock.now()), state)
    log("webhook attempt", job_id=job_id, ok=delivery.ok, status_code=delivery.status_code, error=delivery.error)
    if state == "pending":
        backoff = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (receive_count - 1))
        wait = backoff * random.uniform(1.0, 1.25)
        need(deps.notices, "notices").retry_after(receipt_handle, clock.real_seconds(wait))
        raise WebhookFailed(f"webhook answered {delivery.status_code or delivery.error}; retrying in {wait:.0f} s")
    return state
