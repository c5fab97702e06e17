"""Routes for the providers themselves: POST /v1/providers/openai/webhooks, where OpenAI sends the
signed `response.*` events of OpenAI direct's jobs. No API key: the signature is the authentication
(the template's route has no authorizer), checked before anything else is read."""

from __future__ import annotations

import base64
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

from imagejobs.edge.api.common import _answers, event, logger, wired
from imagejobs.edge.httpapi import ApiError
from imagejobs.edge.wiring import provider_api_key
from imagejobs.flows import provider_events

router = Router()


@router.post(
    "/v1/providers/openai/webhooks",
    summary="OpenAI's webhooks for OpenAI direct's jobs (Standard Webhooks signature, no API key)",
    responses=_answers(200, "the event was taken (or was not about one of our jobs)", 400, 404, model=None),
)
def openai_webhook() -> dict[str, Any]:
    deps = wired()
    settings = deps.settings
    secret = (
        provider_api_key(settings, settings.openai_secret_id, field="webhook_secret")
        if settings.openai_secret_id
        else ""
    )
    if not secret.startswith("whsec_"):
        raise ApiError(404, "OpenAI direct's webhooks are not configured here.", code="not_found")
    request = event()
    raw = request.body or ""
    body = base64.b64decode(raw) if request.is_base64_encoded else raw.encode("utf-8")
    checked = provider_events.read_event(secret, dict(request.headers or {}), body)
    outcome = provider_events.take_event(deps, "openai", checked)
    logger.info(
        "provider webhook", extra={"outcome": outcome, "event_type": checked.type, "webhook_id": checked.webhook_id}
    )
    return {"received": True}
