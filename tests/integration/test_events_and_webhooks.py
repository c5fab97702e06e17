"""Job events on EventBridge (captured through an SQS target, as a pipeline would) and webhooks
received by a local HTTP receiver, verified with the independent `standardwebhooks` package."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
from standardwebhooks.webhooks import Webhook

from imagejobs.domain.jobs import JobRecord
from imagejobs_local.stack import LocalStack
from tests.helpers import EventCapture, wait_for_job, wait_for_record

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas/job-event.schema.json").read_text())
GENERATIONS = "/v1/images/generations?async=true"


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers from a script of status codes."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.answers[min(len(receiver.requests), len(receiver.answers)) - 1]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/images"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    made = Receiver(getattr(request, "param", [200]))
    yield made
    made.close()


def test_succeeded_job_event_matches_the_schema(stack: LocalStack, api: httpx.Client, captured: EventCapture) -> None:
    answer = api.post(
        GENERATIONS, json={"prompt": "a heron", "quality": "low", "n": 2}, headers={"X-Correlation-Id": "order-77"}
    )
    job_id = answer.json()["id"]
    record = wait_for_record(stack, job_id)

    (event,) = captured.for_job(job_id)

    assert (event["source"], event["detail-type"]) == ("imagejobs", "ImageJobSucceeded")
    jsonschema.validate(event["detail"], SCHEMA)
    detail = event["detail"]
    assert (detail["tenant"], detail["source"], detail["correlation_id"]) == ("local", "api", "order-77")
    assert [o["key"] for o in detail["outputs"]] == [o.key for o in record.outputs]
    assert detail["cost"]["amount"] == record.cost.amount  # type: ignore[union-attr]
    assert detail["timings"]["generation_seconds"] > 0


@pytest.mark.parametrize(
    ("prompt", "detail_type"),
    [
        ("[sim:fail] x", "ImageJobFailed"),
        ("[sim:expire] x", "ImageJobExpired"),
        ("[sim:moderation] x", "ImageJobFailed"),
    ],
)
def test_every_final_state_has_its_event(
    stack: LocalStack, api: httpx.Client, captured: EventCapture, prompt: str, detail_type: str
) -> None:
    job_id = api.post(GENERATIONS, json={"prompt": prompt, "quality": "low"}).json()["id"]
    wait_for_record(stack, job_id)
    (event,) = captured.for_job(job_id)
    assert event["detail-type"] == detail_type
    jsonschema.validate(event["detail"], SCHEMA)
    assert event["detail"]["error"]["code"]


def test_cancelled_job_has_its_event(stack: LocalStack, api: httpx.Client, captured: EventCapture) -> None:
    job_id = api.post(GENERATIONS, json={"prompt": "[sim:never] x", "quality": "low"}).json()["id"]
    deadline = time.monotonic() + 20
    while not (stack.store.get(job_id) or None) or not stack.store.get(job_id).provider_job_id:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    (event,) = captured.for_job(job_id)
    assert event["detail-type"] == "ImageJobCancelled"
    jsonschema.validate(event["detail"], SCHEMA)


def test_webhook_is_signed_and_verifiable(stack: LocalStack, api: httpx.Client, receiver: Receiver) -> None:
    job_id = api.post(
        GENERATIONS, json={"prompt": "a kingfisher", "quality": "low", "webhook_url": receiver.url}
    ).json()["id"]
    wait_for_job(api, job_id)
    deadline = time.monotonic() + 15
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.05)

    ((headers, body),) = receiver.requests
    payload = Webhook(stack.webhook_secret).verify(body, headers)  # type: ignore[arg-type]
    # Standard Webhooks' recommended envelope around the job object; an id without "."
    assert set(payload) == {"type", "timestamp", "data"} and payload["type"] == "image_job.succeeded"
    assert abs(datetime.fromisoformat(payload["timestamp"]).timestamp() - time.time()) < 120  # the wall clock
    job = payload["data"]
    assert job["id"] == job_id and job["status"] == "succeeded" and job["unsigned_urls"]
    # The receiver can fetch them: the notify function signs them with its role (its s3:GetObject
    # grant; a URL signed without it answers 403), fetched as a receiver would, without credentials.
    import requests

    for url in job["unsigned_urls"]:
        fetched = requests.get(url, timeout=30)
        assert fetched.status_code == 200 and fetched.content[:4] == b"\x89PNG", (fetched.status_code, url)
    assert headers["webhook-id"] == f"{job_id}_succeeded" and "." not in headers["webhook-id"]
    agent = next(value for name, value in headers.items() if name.lower() == "user-agent")
    assert agent.startswith("imagejobs-webhooks/")  # the sender, by name, in the receiver's logs
    record = stack.store.get(job_id)
    assert record is not None and record.webhook_state == "delivered" and len(record.webhook_attempts) == 1


def wait_for_webhook(stack: LocalStack, job_id: str, state: str, timeout: float) -> JobRecord:
    """The job once its webhook is `state` (delivered, or failed: given up)."""
    deadline = time.monotonic() + timeout
    while (record := stack.store.get(job_id)) is None or record.webhook_state != state:
        assert time.monotonic() < deadline, f"webhook not {state}: {record}"
        time.sleep(0.1)
    return record


@pytest.mark.parametrize("receiver", [[500, 503, 200]], indirect=True)
def test_webhook_retries_until_it_is_taken(stack: LocalStack, api: httpx.Client, receiver: Receiver) -> None:
    job_id = api.post(GENERATIONS, json={"prompt": "a wren", "quality": "low", "webhook_url": receiver.url}).json()[
        "id"
    ]
    record = wait_for_webhook(stack, job_id, "delivered", timeout=30)
    assert [a["status_code"] for a in record.webhook_attempts] == [500, 503, 200]
    assert len(receiver.requests) == 3
    assert len({headers["webhook-id"] for headers, _ in receiver.requests}) == 1  # the same message, retried


@pytest.mark.parametrize("receiver", [[500]], indirect=True)
def test_webhook_is_given_up_after_the_maximum_attempts(
    stack: LocalStack, api: httpx.Client, receiver: Receiver
) -> None:
    job_id = api.post(GENERATIONS, json={"prompt": "a crow", "quality": "low", "webhook_url": receiver.url}).json()[
        "id"
    ]
    record = wait_for_webhook(stack, job_id, "failed", timeout=60)
    assert len(record.webhook_attempts) == 6 == len(receiver.requests)  # WebhookMaxAttempts
    assert record.status.value == "succeeded"  # the job itself is not touched


@pytest.mark.parametrize("url", ["http://10.0.0.1/hook", "https://169.254.169.254/latest", "ftp://127.0.0.1/x"])
def test_unsafe_webhook_url_is_refused_at_the_door(stack: LocalStack, api: httpx.Client, url: str) -> None:
    answer = api.post(GENERATIONS, json={"prompt": "x", "webhook_url": url})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "webhook_url"


def test_a_tenant_in_the_readmes_order_gets_signed_webhooks(
    stack: LocalStack, capsys: pytest.CaptureFixture[str], receiver: Receiver
) -> None:
    """Issue #15.2: budget first (the tenant then has a record), key, a job with a webhook_url, and
    only then `imagejobs webhook-secret`: the webhook was signed with the secret that command
    prints, the same on every call; the job shows its webhook delivered."""
    from tests.integration.test_tenancy import admin, new_key

    assert admin(stack, capsys, "budget", "set", "--tenant", "ordered", "--daily", "5")[0] == 0
    key = new_key(stack, capsys, "ordered")
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        answer = client.post(GENERATIONS, json={"prompt": "a wren", "quality": "low", "webhook_url": receiver.url})
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        assert answer.json()["webhook"]["state"] == "pending"
        wait_for_webhook(stack, job_id, "delivered", timeout=30)
        view = client.get(f"/v1/jobs/{job_id}").json()
    assert view["webhook"]["state"] == "delivered" and view["webhook"]["attempts"] == 1
    assert view["webhook"]["last_status_code"] == 200

    printed = [admin(stack, capsys, "webhook-secret", "--tenant", "ordered")[1].split()[-1] for _ in range(2)]
    assert printed[0] == printed[1] and printed[0].startswith("whsec_")
    ((headers, body),) = receiver.requests
    assert Webhook(printed[0]).verify(body, headers)["data"]["id"] == job_id


def test_a_rotated_secret_overlaps_with_the_one_it_replaced(
    stack: LocalStack, capsys: pytest.CaptureFixture[str], receiver: Receiver
) -> None:
    """Issue #16.6: after `webhook-secret --rotate` both secrets sign (two signatures, space-
    separated) for the overlap, so receivers still holding the old one keep verifying."""
    from tests.integration.test_tenancy import admin, new_key

    old = admin(stack, capsys, "webhook-secret", "--tenant", "rotating")[1].split()[-1]
    new = admin(stack, capsys, "webhook-secret", "--tenant", "rotating", "--rotate")[1].split()[-1]
    assert old != new
    key = new_key(stack, capsys, "rotating")
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        job_id = client.post(
            GENERATIONS, json={"prompt": "a stork", "quality": "low", "webhook_url": receiver.url}
        ).json()["id"]
        wait_for_webhook(stack, job_id, "delivered", timeout=30)
    ((headers, body),) = receiver.requests
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers)["data"]["id"] == job_id
