"""Exactly-once submission without leaning on an undocumented header: a submission is marked in
flight before the POST, and a delivery that finds one whose outcome is unknown follows the
ProviderIdempotency setting (fakes of our own ports, no network)."""

from __future__ import annotations

import pytest

from imagejobs.domain import clock
from imagejobs.domain.errors import ProviderUnavailable, RateLimited, SubmissionInFlight
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import GenerationRequest, JobStatus
from imagejobs.domain.settings import Settings
from imagejobs.flows.intake.api import Caller, accept_generation
from imagejobs.flows.ports import Deps
from imagejobs.flows.submit import submit
from tests.fakes import SETTINGS, FakeProvider, Fakes, FakeStore


def deps_with(
    provider: FakeProvider, idempotency: str = "none", model: str = "openai/gpt-image-1", routes: str = ""
) -> tuple[Deps, FakeStore]:
    store = FakeStore()
    overrides = {"PROVIDER_IDEMPOTENCY": idempotency, "PROVIDER_ROUTES": routes}
    settings = Settings.model_validate({**SETTINGS.model_dump(by_alias=True), **overrides})
    now = clock.now()
    store.jobs["img_1"] = JobRecord(
        id="img_1",
        tenant="t1",
        model=model,
        request=GenerationRequest(prompt="a cat", model=model),
        request_hash="h",
        created_at=now,
        updated_at=now,
        deadline_at=now + 900,
    )
    return Fakes(settings=settings, store=store, provider=provider).deps, store


def age_the_marker(store: FakeStore, seconds: float) -> None:
    record = store.jobs["img_1"]
    assert record.submission_started_at is not None
    store.jobs["img_1"] = record.model_copy(update={"submission_started_at": record.submission_started_at - seconds})


def test_an_unknown_outcome_is_never_sent_again_without_idempotency() -> None:
    provider = FakeProvider(ProviderUnavailable("read timeout", outcome_unknown=True), "p-2")
    deps, store = deps_with(provider, "none")
    with pytest.raises(ProviderUnavailable):
        submit(deps, "img_1")
    age_the_marker(store, 3600)  # the redelivery, long after the first attempt ended

    assert submit(deps, "img_1") == "submission_unknown"

    record = store.jobs["img_1"]
    assert record.status is JobStatus.FAILED and record.error is not None
    assert record.error.code == "submission_unknown"
    assert provider.posts == 1  # sent once, never twice


def test_an_unknown_outcome_is_sent_again_with_the_same_key_when_the_provider_dedupes() -> None:
    provider = FakeProvider(ProviderUnavailable("connection lost", outcome_unknown=True), "p-1")
    deps, store = deps_with(provider, "header")
    with pytest.raises(ProviderUnavailable):
        submit(deps, "img_1")
    age_the_marker(store, 3600)

    assert submit(deps, "img_1") == "submitted"
    assert store.jobs["img_1"].provider_job_id == "p-1" and provider.posts == 2


def test_a_job_routed_to_openai_is_never_sent_again_whatever_therouter_promises() -> None:
    """ProviderIdempotency speaks for TheRouter; OpenAI's API reference documents no Idempotency-Key
    for responses, so an unknown outcome there ends the job rather than risk a second bill."""
    routes = {"openai/gpt-image-2": "openai"}
    provider = FakeProvider(ProviderUnavailable("connection lost", outcome_unknown=True), "p-1", routes=routes)
    deps, store = deps_with(provider, "header", model="openai/gpt-image-2", routes="openai/gpt-image-2=openai")
    with pytest.raises(ProviderUnavailable):
        submit(deps, "img_1")
    age_the_marker(store, 3600)

    assert submit(deps, "img_1") == "submission_unknown" and provider.posts == 1


def test_a_definite_refusal_clears_the_marker_so_the_retry_is_a_first_attempt() -> None:
    provider = FakeProvider(RateLimited("429"), ProviderUnavailable("503 answered"), "p-3")
    deps, store = deps_with(provider, "none")
    for _ in range(2):
        with pytest.raises((RateLimited, ProviderUnavailable)):
            submit(deps, "img_1")
        assert store.jobs["img_1"].submission_started_at is None
    assert submit(deps, "img_1") == "submitted"
    assert store.jobs["img_1"].provider_job_id == "p-3"


def test_a_delivery_that_finds_another_still_sending_comes_back_later() -> None:
    """SQS may deliver one message twice at once: the second must neither send nor give up."""
    provider = FakeProvider(ProviderUnavailable("read timeout", outcome_unknown=True))
    deps, store = deps_with(provider, "none")
    with pytest.raises(ProviderUnavailable):
        submit(deps, "img_1")  # marked just now: as if still in flight

    with pytest.raises(SubmissionInFlight):
        submit(deps, "img_1")
    assert store.jobs["img_1"].status is JobStatus.QUEUED and provider.posts == 1


def test_a_transient_failure_comes_back_with_backoff_not_after_the_queues_visibility(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #22.6: the queue's visibility is 6x the function's timeout (15 min), as AWS advises;
    a provider 5xx at submit is tried again after 15 s, 30 s, 60 s, ... (jitter up to 25%)."""
    import json

    # real seconds, whatever stack a session ran before (a session-wide stack keeps its time scale)
    monkeypatch.setenv("IMAGEJOBS_TIME_SCALE", "1")

    from imagejobs.domain.models import GenerationRequest
    from imagejobs.flows import submit_queue

    fakes = Fakes(provider=FakeProvider(*(ProviderUnavailable("provider answered 503") for _ in range(3))))
    deps = fakes.deps
    queue = fakes.queue
    record, _ = accept_generation(
        deps, caller=Caller(tenant="t"), request=GenerationRequest(prompt="a cat", quality="low")
    )
    for receive in (1, 2, 3):
        with pytest.raises(ProviderUnavailable):
            submit_queue.process(
                deps,
                json.dumps({"job_id": record.id}),
                receipt_handle="r",
                receive_count=receive,
                log=lambda *a, **k: None,
            )
    first, second, third = queue.delays
    assert 15 <= first <= 19 and 30 <= second <= 38 and 60 <= third <= 75
