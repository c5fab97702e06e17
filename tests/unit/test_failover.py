"""Failover: a provider that keeps failing submissions of a model (5xx, timeouts) has that model's
new jobs sent to the other provider that makes it, for a cooldown, and every switch is recorded
and counted; nothing of it happens for a model not named in ProviderFailover (fakes of our own
ports, no network)."""

from __future__ import annotations

import dataclasses

import pytest

from imagejobs.adapters.provider import ProviderClient
from imagejobs.adapters.provider_router import ProviderRouter
from imagejobs.domain import clock, failover
from imagejobs.domain.errors import ProviderUnavailable, RateLimited
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import GenerationRequest
from imagejobs.domain.settings import Settings
from imagejobs.flows.ports import Deps
from imagejobs.flows.submit import submit
from tests.fakes import SETTINGS, FakeMetrics, FakeProvider, Fakes, FakeStore

MODEL = "openai/gpt-image-2"
HOME = "therouter#openai/gpt-image-2"  # the breaker of TheRouter for the model


def stack(failover_models: str = MODEL, threshold: int = 3) -> tuple[Deps, FakeStore, FakeProvider, FakeMetrics]:
    overrides = {"PROVIDER_FAILOVER": failover_models, "PROVIDER_FAILOVER_THRESHOLD": threshold}
    settings = Settings.model_validate({**SETTINGS.model_dump(by_alias=True), **overrides})
    fakes = Fakes(settings=settings, provider=FakeProvider(other="openai"))
    return fakes.deps, fakes.store, fakes.provider, fakes.metrics


def queue_job(store: FakeStore, job_id: str) -> str:
    now = clock.now()
    store.jobs[job_id] = JobRecord(
        id=job_id,
        tenant="t1",
        model=MODEL,
        request=GenerationRequest(prompt="a cat", model=MODEL),
        request_hash="h",
        created_at=now,
        updated_at=now,
        deadline_at=now + 900,
    )
    return job_id


def fail_at_home(deps: Deps, store: FakeStore, count: int) -> None:
    for index in range(count):
        with pytest.raises(ProviderUnavailable):
            submit(deps, queue_job(store, f"img_down_{index}"))


def test_the_threshold_of_failures_in_a_row_sends_new_jobs_to_the_other_provider() -> None:
    deps, store, provider, metrics = stack()
    provider.down.add("therouter")
    fail_at_home(deps, store, 3)
    assert provider.sent_to == ["therouter"] * 3

    assert submit(deps, queue_job(store, "img_new")) == "submitted"
    assert provider.sent_to[-1] == "openai" and store.jobs["img_new"].submitting_to == "openai"
    # the job that failed at home is retried by its queue: it too goes to the other provider now
    assert submit(deps, "img_down_0") == "submitted" and provider.sent_to[-1] == "openai"
    [switch] = metrics.switches
    assert (switch.provider, switch.model, switch.state, switch.failures) == ("therouter", MODEL, "open", 3)
    assert store.breakers[HOME].switches == (switch,)


def test_a_success_between_failures_starts_the_count_again() -> None:
    deps, store, provider, metrics = stack()
    provider.down.add("therouter")
    fail_at_home(deps, store, 2)
    provider.down.clear()
    submit(deps, queue_job(store, "img_ok"))
    provider.down.add("therouter")
    fail_at_home(deps, store, 2)
    assert provider.sent_to == ["therouter"] * 5 and metrics.switches == []


def test_after_the_cooldown_jobs_go_home_again_and_the_first_success_closes_the_breaker() -> None:
    deps, store, provider, metrics = stack()
    provider.down.add("therouter")
    fail_at_home(deps, store, 3)
    opened = store.breakers[HOME]
    cooldown = deps.settings.provider_failover_cooldown_seconds
    store.breakers[HOME] = dataclasses.replace(opened, opened_at=(opened.opened_at or 0) - cooldown - 1)

    # half-open: one more failure opens it again at once (no new count of `threshold`)
    fail_at_home(deps, store, 1)
    assert [s.state for s in metrics.switches] == ["open", "open"]
    assert submit(deps, queue_job(store, "img_away")) == "submitted" and provider.sent_to[-1] == "openai"

    store.breakers[HOME] = dataclasses.replace(store.breakers[HOME], opened_at=clock.now() - cooldown - 1)
    provider.down.clear()
    assert submit(deps, queue_job(store, "img_home")) == "submitted" and provider.sent_to[-1] == "therouter"
    assert [s.state for s in metrics.switches] == ["open", "open", "closed"]
    assert store.breakers[HOME].opened_at is None and store.breakers[HOME].failures == 0
    assert [s.state for s in store.breakers[HOME].switches] == ["open", "open", "closed"]


def test_off_by_default_nothing_is_counted_and_every_job_stays_home() -> None:
    deps, store, provider, metrics = stack(failover_models="")
    provider.down.add("therouter")
    fail_at_home(deps, store, 6)
    assert provider.sent_to == ["therouter"] * 6 and store.breakers == {} and metrics.switches == []


def test_rate_limits_are_not_failures() -> None:
    """A 429 is the provider working as documented (the gate and the rate cap follow it)."""
    deps, store, _, metrics = stack(threshold=1)
    deps.provider = FakeProvider(RateLimited("429"), RateLimited("429"), other="openai")
    for index in range(2):
        with pytest.raises(RateLimited):
            submit(deps, queue_job(store, f"img_{index}"))
    assert store.breakers == {} and metrics.switches == []


def test_when_both_providers_fail_jobs_stay_home() -> None:
    deps, store, provider, _ = stack(threshold=1)
    provider.down.update({"therouter", "openai"})
    fail_at_home(deps, store, 1)  # TheRouter's breaker opens
    with pytest.raises(ProviderUnavailable):
        submit(deps, queue_job(store, "img_1"))  # goes to OpenAI, which fails: its breaker opens
    with pytest.raises(ProviderUnavailable):
        submit(deps, queue_job(store, "img_2"))
    assert provider.sent_to == ["therouter", "openai", "therouter"]


def test_a_resend_after_an_unknown_outcome_goes_where_the_first_went() -> None:
    """The same Idempotency-Key means something only to the provider that saw it first."""
    settings = Settings.model_validate(
        {**SETTINGS.model_dump(by_alias=True), "PROVIDER_FAILOVER": MODEL, "PROVIDER_IDEMPOTENCY": "header"}
    )
    provider = FakeProvider(ProviderUnavailable("read timeout", outcome_unknown=True), other="openai")
    fakes = Fakes(settings=settings, provider=provider)
    store = fakes.store
    with pytest.raises(ProviderUnavailable):
        submit(fakes.deps, queue_job(store, "img_1"))
    opened = failover.Breaker(failures=5, opened_at=clock.now(), version=store.breaker(HOME).version)
    assert store.write_breaker(HOME, opened)  # TheRouter is failing now
    record = store.jobs["img_1"]
    store.jobs["img_1"] = record.model_copy(update={"submission_started_at": clock.now() - 3600})

    assert submit(fakes.deps, "img_1") == "submitted" and provider.sent_to == ["therouter", "therouter"]


class Named(ProviderClient):
    def __init__(self) -> None:  # never called: only the router's choice is under test
        pass


def test_the_other_provider_is_one_that_makes_the_model_and_the_job() -> None:
    """OpenAI direct makes what its catalog entry prices (gpt-image-2), one image per call;
    TheRouter makes every model; an unconfigured provider is no alternative."""
    router = ProviderRouter({"therouter": Named, "openai": Named}, {})
    assert router.alternate(GenerationRequest(prompt="a", model=MODEL), "therouter") == "openai"
    assert router.alternate(GenerationRequest(prompt="a", model=MODEL, n=2), "therouter") is None
    assert router.alternate(GenerationRequest(prompt="a", model="openai/gpt-image-1"), "therouter") is None
    assert router.alternate(GenerationRequest(prompt="a", model=MODEL), "openai") == "therouter"
    assert (
        ProviderRouter({"therouter": Named}, {}).alternate(GenerationRequest(prompt="a", model=MODEL), "therouter")
        is None
    )


def test_a_breaker_that_cannot_be_written_loses_no_job_and_sends_none_twice() -> None:
    """The breaker is counted only once the provider's job id is recorded: a store error there
    fails this delivery, and the next one starts the loop without a second POST."""
    deps, store, provider, _ = stack()
    queue_job(store, "img_1")
    store.breakers[HOME] = failover.Breaker(failures=1)  # so the success has a change to write
    broken = store.write_breaker
    store.write_breaker = lambda name, breaker: (_ for _ in ()).throw(RuntimeError("throttled"))  # type: ignore[method-assign]
    provider.down.add("therouter")
    with pytest.raises(RuntimeError):
        submit(deps, "img_1")
    provider.down.clear()
    assert store.jobs["img_1"].submission_started_at is None  # the 503 was cleared before the count
    with pytest.raises(RuntimeError):
        submit(deps, "img_1")
    assert store.jobs["img_1"].provider_job_id == "p_1"
    store.write_breaker = broken  # type: ignore[method-assign]
    assert submit(deps, "img_1") == "submitted" and provider.posts == 1
