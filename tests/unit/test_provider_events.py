"""OpenAI direct's webhooks, once verified: they end the loop's wait, or are noted for the next
one, and never move anything on their own (fakes of our own ports)."""

from __future__ import annotations

import json
import time

import pytest

from imagejobs.domain import clock, webhooks
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import GenerationRequest, JobStatus
from imagejobs.domain.settings import Settings
from imagejobs.flows import provider_events
from imagejobs.flows.poll import await_provider
from imagejobs.flows.ports import Deps
from tests.fakes import SETTINGS, FakeLoops, Fakes, FakeStore

SECRET = webhooks.new_secret()


def deps_with(provider_job_id: str = "openai:resp_1") -> tuple[Deps, FakeStore, FakeLoops]:
    store, loops = FakeStore(), FakeLoops()
    now = clock.now()
    store.jobs["img_1"] = JobRecord(
        id="img_1",
        tenant="t1",
        model="openai/gpt-image-2",
        request=GenerationRequest(prompt="a cat", model="openai/gpt-image-2"),
        request_hash="h",
        created_at=now,
        updated_at=now,
        deadline_at=now + 900,
        provider_job_id=provider_job_id,
        status=JobStatus.IN_PROGRESS,
    )
    store.pointers[provider_events.pointer(provider_job_id)] = "img_1"
    settings = Settings.model_validate({**SETTINGS.model_dump(by_alias=True), "OPENAI_WEBHOOKS": "true"})
    return Fakes(settings=settings, store=store, loops=loops).deps, store, loops


def delivery(kind: str = "response.completed", response_id: str = "resp_1", **extra: object) -> tuple[dict, bytes]:
    body = json.dumps({"id": "evt_1", "object": "event", "type": kind, "data": {"id": response_id}, **extra})
    return webhooks.signed_headers(SECRET, "evt_1", body), body.encode()


def taken(deps: Deps, kind: str = "response.completed", response_id: str = "resp_1") -> str:
    headers, body = delivery(kind, response_id)
    return provider_events.take_event(deps, "openai", provider_events.read_event(SECRET, headers, body))


def test_a_completed_webhook_ends_the_wait_on_to_finalize() -> None:
    deps, store, loops = deps_with()
    assert await_provider(deps, "img_1", "token-1") == "waiting"
    assert taken(deps) == "woke"
    assert loops.completed == [("token-1", loops.completed[0][1])]
    assert loops.completed[0][1]["action"] == "finalize" and loops.completed[0][1]["job_id"] == "img_1"
    assert store.jobs["img_1"].status is JobStatus.IN_PROGRESS  # finalize decides, from the provider


def test_a_failed_webhook_sends_the_loop_to_one_poll_which_reads_why() -> None:
    deps, _, loops = deps_with()
    await_provider(deps, "img_1", "token-1")
    assert taken(deps, "response.failed") == "woke"
    assert loops.completed[0][1]["action"] == "wait" and loops.completed[0][1]["next_poll_seconds"] == 0


def test_a_webhook_before_the_wait_began_ends_the_wait_as_soon_as_it_begins() -> None:
    """The race of a fast job: the webhook comes between submission and the wait's start. It is
    noted, and the wait that starts next ends at once (each side's write returns the other's)."""
    deps, _, loops = deps_with()
    assert taken(deps) == "noted" and loops.completed == []
    assert await_provider(deps, "img_1", "token-1") == "woke"
    assert loops.completed[0][0] == "token-1"


def test_a_duplicate_changes_nothing_and_a_stale_token_is_no_error() -> None:
    deps, store, loops = deps_with()
    await_provider(deps, "img_1", "token-1")
    taken(deps)
    assert taken(deps) == "noted"  # the wait ended already (SendTaskSuccess: TaskTimedOut)
    assert len(loops.completed) == 1 and store.jobs["img_1"].provider_events == 2


def test_events_not_about_our_jobs_are_taken_and_ignored() -> None:
    deps, store, loops = deps_with()
    assert taken(deps, "response.completed", "resp_someone_elses") == "unknown_response"
    assert taken(deps, "batch.completed") == "ignored"
    store.jobs["img_1"] = store.jobs["img_1"].model_copy(update={"status": JobStatus.CANCELLED})
    assert taken(deps) == "already_final" and loops.completed == []


def test_a_wait_on_a_job_that_ended_meanwhile_ends_at_once() -> None:
    deps, store, loops = deps_with()
    store.jobs["img_1"] = store.jobs["img_1"].model_copy(update={"status": JobStatus.CANCELLED})
    assert await_provider(deps, "img_1", "token-1") == "already_final"
    assert loops.completed[0][1]["action"] == "end" and loops.completed[0][1]["final_status"] == "cancelled"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"type": "response.completed"}',
        b'{"type": "response.completed", "data": {"id": 7}}',
        b'{"type": "response.completed", "data": {"id": ""}}',
        b"[]",
    ],
)
def test_a_signed_body_that_is_not_an_event_is_refused(body: bytes) -> None:
    headers = webhooks.signed_headers(SECRET, "evt_1", body.decode())
    with pytest.raises(provider_events.WebhookNotAccepted):
        provider_events.read_event(SECRET, headers, body)


def test_a_body_larger_than_any_event_is_refused_before_it_is_signed_over() -> None:
    body = b'{"data": {"id": "resp_1"}, "pad": "' + b"x" * provider_events.MAX_EVENT_BYTES + b'"}'
    headers = webhooks.signed_headers(SECRET, "evt_1", body.decode(), timestamp=int(time.time()))
    with pytest.raises(provider_events.WebhookNotAccepted, match="larger"):
        provider_events.read_event(SECRET, headers, body)


def test_a_poll_after_a_wait_timed_out_waits_again_and_a_therouter_job_never_waits() -> None:
    """The fallback poll of a job still running goes back to waiting for the webhook (at most the
    fallback, never past the deadline); the same poll of a TheRouter job waits as it always has."""
    from imagejobs.domain.models import PollInput, ProviderJob
    from imagejobs.flows.poll import poll
    from imagejobs.flows.submit import first_payload
    from tests.fakes import FakeProvider

    for provider_job_id, expected in (("openai:resp_1", "await"), ("img_p1", "wait")):
        deps, store, _ = deps_with(provider_job_id)
        provider = FakeProvider()
        provider.jobs[provider_job_id] = ProviderJob(id=provider_job_id, status=JobStatus.IN_PROGRESS)
        deps.provider = provider
        result = poll(deps, PollInput(job_id="img_1"))
        assert result.action == expected
        first = first_payload(deps, store.jobs["img_1"])
        assert first["action"] == ("await" if expected == "await" else "poll")
        if expected == "await":
            assert result.next_poll_seconds == first["next_poll_seconds"] == 300
