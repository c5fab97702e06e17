"""Webhook signing (checked by the independent `standardwebhooks` package) and the SSRF guard."""

from __future__ import annotations

import json

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from imagejobs.adapters import webhooks
from imagejobs.domain import webhooks as signing

PUBLIC = {
    "hooks.example.com": ["93.184.216.34"],
    "evil.example.com": ["10.1.2.3"],
    "sneaky.example.com": ["93.184.216.34", "127.0.0.1"],
    "v6.example.com": ["::1"],
}


def resolver(host: str, port: int) -> list[str]:
    if host in PUBLIC:
        return PUBLIC[host]
    return [host]  # an IP literal resolves to itself


def test_signature_verifies_with_the_reference_implementation() -> None:
    secret = signing.new_secret()
    body = json.dumps({"id": "img_1", "status": "succeeded"})
    headers = signing.signed_headers(secret, "img_1.succeeded", body)
    assert Webhook(secret).verify(body, headers) == {"id": "img_1", "status": "succeeded"}
    with pytest.raises(Exception):  # noqa: B017 - any verification failure will do
        Webhook(signing.new_secret()).verify(body, headers)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://evil.example.com/hook",  # a name that resolves to a private address
        "https://sneaky.example.com/hook",  # one of its addresses is loopback
        "http://hooks.example.com/hook",  # deployed: https only
        "ftp://hooks.example.com/x",
        "https://user:pw@hooks.example.com/hook",
        "https://100.64.0.1/hook",
        # issue #15.15: IPv4 inside IPv6 (RFC 6052 NAT64, RFC 3056 6to4), 192.0.0.0/24, empty credentials
        "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 form of 169.254.169.254
        "https://[64:ff9b::7f00:1]/",
        "https://[2002:a9fe:a9fe::1]/",  # 6to4 form of 169.254.169.254
        "https://[2002:0a00:0001::1]/",  # 6to4 form of 10.0.0.1
        "https://192.0.0.9/",
        "https://:@hooks.example.com/hook",
        # issue #15.4/.5/.7: what httpx cannot send, or the URL parser chokes on
        "https://hooks.example.com/a\r\nX-Injected: 1",
        "https://0177.0.0.1/",
        "https://" + "a" * 64 + ".example.com/",
        "https://hooks.example.com:99999/",
        "https://hooks.example.com:0/",
        "https://[::1/",
        "https://exa mple.com/",
    ],
)
def test_deployed_mode_refuses_unsafe_targets(url: str) -> None:
    with pytest.raises(signing.WebhookRefused):
        webhooks.check_url(url, allow_loopback=False, resolver=resolver)


def test_deployed_mode_allows_public_https() -> None:
    webhooks.check_url("https://hooks.example.com/hook", allow_loopback=False, resolver=resolver)


def test_offline_flag_lets_loopback_through_and_nothing_else() -> None:
    webhooks.check_url("http://127.0.0.1:8080/hook", allow_loopback=True, resolver=resolver)
    for url in ("http://10.0.0.1/hook", "https://169.254.169.254/", "http://hooks.example.com/hook"):
        with pytest.raises(signing.WebhookRefused):
            webhooks.check_url(url, allow_loopback=True, resolver=resolver)


def test_a_redirect_to_a_private_address_is_not_followed() -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(302, headers={"Location": "https://169.254.169.254/latest/meta-data/"})

    client = httpx.Client(transport=httpx.MockTransport(answer), follow_redirects=False)
    delivery = webhooks.deliver(
        "https://hooks.example.com/hook",
        signing.new_secret(),
        "img_1.succeeded",
        {"id": "img_1"},
        allow_loopback=False,
        client=client,
        resolver=resolver,
    )
    assert not delivery.ok and "non-public" in (delivery.error or "")
    assert [str(r.url) for r in requests] == ["https://hooks.example.com/hook"]


def test_a_redirect_to_a_public_address_is_followed_and_signed() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/old":
            return httpx.Response(307, headers={"Location": "/new"})
        return httpx.Response(204)

    secret = signing.new_secret()
    client = httpx.Client(transport=httpx.MockTransport(answer), follow_redirects=False)
    delivery = webhooks.deliver(
        "https://hooks.example.com/old",
        secret,
        "img_2.failed",
        {"id": "img_2"},
        allow_loopback=False,
        client=client,
        resolver=resolver,
    )
    assert delivery.ok and delivery.status_code == 204
    assert Webhook(secret).verify(seen[-1].content, dict(seen[-1].headers)) == {"id": "img_2"}


def test_verify_accepts_what_the_reference_implementation_signs() -> None:
    """Receiving (OpenAI direct's webhooks): a delivery signed by the reference Standard Webhooks
    implementation verifies with ours, whatever the header names' case (API Gateway keeps the
    sender's), and with a second, rotated-out signature beside it."""
    import time
    from datetime import UTC, datetime

    secret, body = signing.new_secret(), '{"type": "response.completed", "data": {"id": "resp_1"}}'
    stamp = int(time.time())
    signature = Webhook(secret).sign("evt_1", datetime.fromtimestamp(stamp, UTC), body)
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(stamp), "webhook-signature": f"v1,b2xk {signature}"}
    signing.verify(secret, headers, body.encode(), now=stamp + 299)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"webhook-timestamp": "OFFSET-301"}, "more than 300 s"),
        ({"webhook-timestamp": "OFFSET+301"}, "more than 300 s"),
        ({"webhook-timestamp": "soon"}, "not a number"),
        ({"webhook-id": ""}, "missing"),
        ({"webhook-signature": "v1,AAAA"}, "no webhook-signature matches"),
        ({"body": b'{"type": "response.completed", "data": {"id": "resp_2"}}'}, "no webhook-signature matches"),
        ({"secret": "whsec_" + "A" * 44}, "no webhook-signature matches"),
        ({"body": b"\xff\xfe"}, "cannot be signed"),
    ],
)
def test_verify_refuses_a_replay_a_forgery_or_a_tampered_body(change: dict[str, object], why: str) -> None:
    """Each check, and the reference implementation refuses the same delivery."""
    import time

    secret, body = signing.new_secret(), b'{"type": "response.completed", "data": {"id": "resp_1"}}'
    now = int(time.time())
    headers = signing.signed_headers(secret, "evt_1", body.decode(), timestamp=now)
    for name, value in change.items():
        if isinstance(value, str) and value.startswith("OFFSET"):
            headers[name] = str(now + int(value.removeprefix("OFFSET")))
        elif name.startswith("webhook-"):
            headers[name] = str(value)
    body = change.get("body", body)  # type: ignore[assignment]
    key = str(change.get("secret", secret))
    with pytest.raises(signing.SignatureInvalid, match=why):
        signing.verify(key, headers, body, now=now)
    with pytest.raises(Exception):  # noqa: B017 - the reference refuses it too, in its own words
        Webhook(key).verify(body, headers)
