"""Webhooks, the rules: Standard Webhooks signatures and the envelope (no I/O).

Signature: `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with the
tenant's secret (`whsec_<base64>`), beside `webhook-id` and `webhook-timestamp`
(https://www.standardwebhooks.com/). The id is stable for a job's final state, so a receiver can
drop the retries it already took. Sending, and the URL check that resolves names, are the
adapter's (imagejobs.adapters.webhooks)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import Any

from imagejobs.domain.errors import ImageJobsError

MAX_URL_LENGTH = 2048


class WebhookRefused(ImageJobsError):
    """A webhook URL we will not call."""

    reason = "webhook_url_refused"
    status, error_type, param = 400, "invalid_request_error", "webhook_url"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


USER_AGENT = "imagejobs-webhooks/1 (+https://www.standardwebhooks.com/)"


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secrets: str | list[str], webhook_id: str, body: str, timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers; several secrets (a rotation's overlap) give several signatures,
    space-separated, any of which a receiver may verify."""
    # The wire timestamp is wall-clock time: receivers compare it with their own clocks.
    stamp = int(time.time()) if timestamp is None else timestamp
    keys = [secrets] if isinstance(secrets, str) else secrets
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": " ".join(sign(key, webhook_id, stamp, body) for key in keys),
        "content-type": "application/json",
    }


def message_id(job_id: str, status: str) -> str:
    """The webhook-id of a job's final notice: the same for every retry, so a receiver drops the
    ones it took; no "." (the signed content is id.timestamp.body)."""
    return f"{job_id}_{status}"


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The payload shape Standard Webhooks recommends: type, timestamp (ISO 8601, UTC), data."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"type": event_type, "timestamp": stamp, "data": data}


class SignatureInvalid(ValueError):
    """A Standard Webhooks delivery whose signature or timestamp does not check."""


REPLAY_WINDOW_SECONDS = 300  # the tolerance of OpenAI's SDKs (`webhooks.verify_signature`)


def verify(
    secret: str, headers: dict[str, str], body: bytes, *, now: float, tolerance: int = REPLAY_WINDOW_SECONDS
) -> None:
    """Check a delivery as Standard Webhooks receivers do (lower-case header names): its
    timestamp within `tolerance` seconds of `now` either way (a replay, or a clock far off), and
    one of its space-separated `v1,<signature>`s the HMAC of "id.timestamp.body" (compared in
    constant time). Raises SignatureInvalid saying which check failed."""
    webhook_id, stamp, signatures = (
        headers.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not webhook_id or not stamp or not signatures:
        raise SignatureInvalid("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureInvalid("webhook-timestamp is not a number of seconds") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureInvalid(f"webhook-timestamp is more than {tolerance} s from now")
    try:
        text = body.decode("utf-8")
        expected = sign(secret, webhook_id, timestamp, text).encode()
    except (UnicodeDecodeError, ValueError, binascii.Error):
        raise SignatureInvalid("the body or the secret cannot be signed") from None
    if not any(hmac.compare_digest(expected, candidate.encode()) for candidate in signatures.split()):
        raise SignatureInvalid("no webhook-signature matches")
