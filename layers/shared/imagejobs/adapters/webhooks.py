"""Webhooks, the sending: only where it is safe to send (signing and the envelope are the
domain's, imagejobs.domain.webhooks).

Deployed, a webhook goes only to https URLs whose every address is public: never to loopback,
private, link-local (the instance metadata service) or other reserved addresses; checked after DNS
resolution and again for each redirect, which is followed by hand (3 at most). Offline, a flag
lets http and loopback through (make serve sets it), nothing else.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from imagejobs.domain.webhooks import MAX_URL_LENGTH, USER_AGENT, WebhookRefused, signed_headers

if TYPE_CHECKING:
    import httpx

MAX_REDIRECTS = 3
TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS = 10.0, 5.0

Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


# Special-purpose IPv4 space Python's is_global lets through in part (192.0.0.9 and .10 are
# anycast services per IANA; nothing a webhook needs), refused whole.
REFUSED_NETWORKS = (ipaddress.ip_network("192.0.0.0/24"),)
# IPv6 forms that carry an IPv4 address (RFC 6052 NAT64, RFC 3056 6to4): judged by that address too.
NAT64_NETWORKS = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def check_url(url: str, *, allow_loopback: bool, resolver: Resolver = system_resolver) -> None:
    """Raise WebhookRefused unless every address the URL leads to is one we may call.

    The URL is read by httpx, the parser that will send it, so what passes here can be sent: a URL
    it cannot parse (control characters, an octal IPv4 literal, a broken IPv6 literal), a port
    outside 1-65535 or a host name that is not a DNS name is refused here, at intake."""
    import httpx  # what deliver() sends with (imported here: intake paths rarely need it)

    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"webhook_url is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise WebhookRefused(f"webhook_url cannot be parsed: {exc}") from None
    allowed_schemes = ("https", "http") if allow_loopback else ("https",)
    if parsed.scheme not in allowed_schemes or not parsed.host:
        raise WebhookRefused(f"webhook_url must be an {' or '.join(allowed_schemes)} URL")
    if parsed.userinfo or "@" in urlsplit(url).netloc:  # "http://:@host/" carries (empty) credentials
        raise WebhookRefused("webhook_url must not carry credentials")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise WebhookRefused(f"webhook_url port {port} is not a TCP port")
    host = parsed.host
    if not _is_ip_literal(host) and not _is_dns_name(host):
        raise WebhookRefused(f"webhook_url host {host!r} is not a DNS name")
    try:
        addresses = resolver(host, port)
    except (OSError, ValueError) as exc:  # UnicodeError (an IDNA label too long) is a ValueError
        raise WebhookRefused(f"webhook_url host {host!r} does not resolve") from exc
    if not addresses:
        raise WebhookRefused(f"webhook_url host {host!r} does not resolve")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if allow_loopback and ip.is_loopback:
            continue
        if not _public(ip):
            raise WebhookRefused(f"webhook_url resolves to a non-public address ({ip})")
    if allow_loopback and parsed.scheme == "http":
        loopback = all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)
        if not loopback:
            raise WebhookRefused("plain http webhooks are only for loopback (offline)")


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally reachable, not multicast, and, for IPv6 forms that embed an IPv4 address
    (mapped, 6to4, NAT64), that address is too."""
    if not ip.is_global or ip.is_multicast or any(ip in network for network in REFUSED_NETWORKS):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and any(ip in network for network in NAT64_NETWORKS):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _public(embedded)
    return True


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


def _is_dns_name(host: str) -> bool:
    """RFC 1035 limits after IDNA encoding: labels of 1-63 letters, digits or hyphens, 253 in all."""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.rstrip(".").split(".")
    return len(ascii_host) <= 253 and all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii() for label in labels
    )


@dataclass(frozen=True)
class Delivery:
    ok: bool
    status_code: int | None
    error: str | None

    def as_attempt(self, at: float) -> dict[str, Any]:
        return {"at": at, "status_code": self.status_code, "error": self.error, "ok": self.ok}


def deliver(
    url: str,
    secret: str | list[str],
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
    # A User-Agent that names the sender, so a receiver can tell it in its logs (httpx's own says httpx).
    headers = signed_headers(secret, webhook_id, body) | {"User-Agent": USER_AGENT}
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
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # InvalidURL is no HTTPError
        return Delivery(ok=False, status_code=None, error=f"{type(exc).__name__}")
    finally:
        if client is None:
            http.close()


class WebhookUrls:
    """The flows' port for a webhook URL (flows.ports.WebhookUrls): checked as it will be sent,
    its name resolved (I/O, so here and not in the application)."""

    def check_url(self, url: str, *, allow_loopback: bool) -> None:
        check_url(url, allow_loopback=allow_loopback)
