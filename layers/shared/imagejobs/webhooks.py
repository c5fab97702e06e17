"""Webhooks: signed per the Standard Webhooks spec, sent only where it is safe to send.

Signature: `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with the
tenant's secret (`whsec_<base64>`), beside `webhook-id` and `webhook-timestamp`. The id is stable for
a job's final state, so a receiver can drop the retries it already took.

Deployed, a webhook goes only to https URLs whose every address is public: never to loopback,
private, link-local (the instance metadata service) or other reserved addresses; checked after DNS
resolution and again for each redirect, which is followed by hand (3 at most). Offline, a flag
lets http and loopback through (make serve sets it), nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from imagejobs.errors import ImageJobsError

if TYPE_CHECKING:
    import httpx

MAX_URL_LENGTH = 2048
MAX_REDIRECTS = 3
TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS = 10.0, 5.0

Resolver = Callable[[str, int], list[str]]


class WebhookRefused(ImageJobsError):
    """A webhook URL we will not call."""

    reason = "webhook_url_refused"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, webhook_id: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    # The wire timestamp is wall-clock time: receivers compare it with their own clocks.
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, webhook_id, stamp, body),
        "content-type": "application/json",
    }


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def check_url(url: str, *, allow_loopback: bool, resolver: Resolver = system_resolver) -> None:
    """Raise WebhookRefused unless every address the URL leads to is one we may call."""
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"webhook_url is longer than {MAX_URL_LENGTH} characters")
    parts = urlsplit(url)
    allowed_schemes = ("https", "http") if allow_loopback else ("https",)
    if parts.scheme not in allowed_schemes or not parts.hostname:
        raise WebhookRefused(f"webhook_url must be an {' or '.join(allowed_schemes)} URL")
    if parts.username or parts.password:
        raise WebhookRefused("webhook_url must not carry credentials")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolver(parts.hostname, port)
    except OSError as exc:
        raise WebhookRefused(f"webhook_url host {parts.hostname!r} does not resolve") from exc
    if not addresses:
        raise WebhookRefused(f"webhook_url host {parts.hostname!r} does not resolve")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if allow_loopback and ip.is_loopback:
            continue
        if not ip.is_global or ip.is_multicast:
            raise WebhookRefused(f"webhook_url resolves to a non-public address ({ip})")
    if allow_loopback and parts.scheme == "http":
        loopback = all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
        if not loopback:
            raise WebhookRefused("plain http webhooks are only for loopback (offline)")


@dataclass(frozen=True)
class Delivery:
    ok: bool
    status_code: int | None
    error: str | None

    def as_attempt(self, at: float) -> dict[str, Any]:
        return {"at": at, "status_code": self.status_code, "error": self.error, "ok": self.ok}


def deliver(
    url: str,
    secret: str,
    webhook_id: str,
    payload: dict[str, Any],
    *,
    allow_loopback: bool,
    client: httpx.Client | None = None,
    resolver: Resolver = system_resolver,
) -> Delivery:
    """One delivery attempt: POST, following redirects by hand, each hop checked first."""
    import httpx  # here: only the notify function delivers (the others only check URLs)

    body = json.dumps(payload, separators=(",", ":"))
    headers = signed_headers(secret, webhook_id, body)
    timeout = httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    http = client or httpx.Client(timeout=timeout, follow_redirects=False)
    target = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(target, allow_loopback=allow_loopback, resolver=resolver)
            response = http.post(target, content=body, headers=headers)
            if response.is_redirect and "location" in response.headers:
                target = urljoin(target, response.headers["location"])
                continue
            ok = 200 <= response.status_code < 300
            return Delivery(ok=ok, status_code=response.status_code, error=None if ok else "non-2xx answer")
        return Delivery(ok=False, status_code=None, error="too many redirects")
    except WebhookRefused as exc:
        return Delivery(ok=False, status_code=None, error=exc.message)
    except httpx.HTTPError as exc:
        return Delivery(ok=False, status_code=None, error=f"{type(exc).__name__}")
    finally:
        if client is None:
            http.close()
