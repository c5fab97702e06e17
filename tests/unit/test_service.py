"""Job logic with fakes of our own interfaces: nothing is lost when a step fails."""

from __future__ import annotations

import pytest

from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import GenerationRequest, JobStatus
from imagejobs.flows.intake.api import Caller, EnqueueFailed, accept_generation
from imagejobs.flows.ports import Deps
from imagejobs.flows.views import SYNC_CHECK_SECONDS, wait_until_final
from tests.fakes import SETTINGS, FakeProvider, FakeQueue, Fakes, FakeStore


def test_a_job_that_cannot_be_queued_ends_failed_instead_of_waiting_forever() -> None:
    store = FakeStore()
    deps = Fakes(store=store, queue=FakeQueue(broken=True)).deps
    with pytest.raises(EnqueueFailed):
        accept_generation(deps, caller=Caller("t1"), request=GenerationRequest(prompt="a cat"))
    (record,) = store.jobs.values()
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "enqueue_failed"


def test_over_the_provider_cap_a_job_is_deferred_without_using_a_delivery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEJOBS_TIME_SCALE", "1")  # real seconds, whatever stack ran before
    from imagejobs.domain.jobs import JobRecord as Record
    from imagejobs.flows import submit_queue

    class CappedStore(FakeStore):
        def take_turn(self, name: str, interval: float, now: float) -> float:
            return 7.0

    store, queue = CappedStore(), FakeQueue()
    store.create(
        Record(
            id="img_capped",
            tenant="t",
            model="m",
            request=GenerationRequest(prompt="p"),
            request_hash="-",
            created_at=0,
            updated_at=0,
            deadline_at=9e9,
        )
    )
    settings = SETTINGS.model_copy(update={"provider_submits_per_minute": 10})
    deps = Fakes(settings=settings, store=store, queue=queue, provider=FakeProvider(refuse_submits=True)).deps

    outcome = submit_queue.process(
        deps, '{"job_id": "img_capped"}', receipt_handle="r", receive_count=1, log=lambda *a, **k: None
    )

    assert outcome == "deferred"
    assert queue.sent == ["img_capped"] and queue.sent_delays[0] >= 7
    assert store.jobs["img_capped"].status is JobStatus.QUEUED


def test_a_429_under_the_rate_cap_spreads_its_turns_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cap adapts: the provider's 429 stretches the shared turns (none before its Retry-After),
    the rate in force is a metric, and the job comes back after the Retry-After, not lost."""
    monkeypatch.setenv("IMAGEJOBS_TIME_SCALE", "1")  # real seconds, whatever stack ran before
    from imagejobs.domain.errors import RateLimited
    from imagejobs.flows import submit_queue

    settings = SETTINGS.model_copy(update={"provider_submits_per_minute": 10})
    fakes = Fakes(settings=settings, provider=FakeProvider(RateLimited("429", retry_after=20)))
    record, _ = accept_generation(fakes.deps, caller=Caller("t"), request=GenerationRequest(prompt="p"))
    fakes.queue.sent.clear()

    with pytest.raises(RateLimited):
        submit_queue.process(
            fakes.deps, f'{{"job_id": "{record.id}"}}', receipt_handle="r", receive_count=1, log=lambda *a, **k: None
        )

    ((schedule, hold),) = fakes.store.slowed
    assert schedule == submit_queue.SUBMIT_TURNS and 20 <= hold <= 25  # Retry-After, with jitter
    assert fakes.metrics.rates == [5.0]  # 10 a minute, spaced twice as far: 5 in force
    assert 20 <= fakes.queue.delays[0] <= 25 and fakes.store.jobs[record.id].status is JobStatus.QUEUED


class FinishingStore(FakeStore):
    """A job that ends while a caller waits: final on the third read."""

    def __init__(self, record: JobRecord) -> None:
        super().__init__()
        self.jobs[record.id] = record
        self.reads = 0

    def get(self, job_id: str) -> JobRecord | None:
        self.reads += 1
        if self.reads == 3:
            self.jobs[job_id] = self.jobs[job_id].model_copy(update={"status": JobStatus.SUCCEEDED})
        return super().get(job_id)


def test_a_waiting_call_returns_as_soon_as_its_job_is_final_or_when_its_time_is_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imagejobs.domain import clock

    # The caller's wait is on the wall clock (offline too, where the job clock runs fast): a
    # job-clock sleep would make a 25 s wait last 2.5 s at TIME_SCALE=0.1.
    wall = [1000.0]
    slept: list[float] = []
    monkeypatch.setattr(clock, "wall_now", lambda: wall[0])

    def wall_sleep(seconds: float) -> None:
        slept.append(seconds)
        wall[0] += seconds

    monkeypatch.setattr(clock, "wall_sleep", wall_sleep)
    monkeypatch.setattr(clock, "sleep", lambda seconds: pytest.fail("a caller's wait slept on the job clock"))
    record = JobRecord(
        id="img_w",
        tenant="t",
        model="m",
        request=GenerationRequest(prompt="p"),
        request_hash="-",
        created_at=0,
        updated_at=0,
        deadline_at=9,
    )
    store = FinishingStore(record)
    deps = Deps(settings=SETTINGS, store=store)
    assert wait_until_final(deps, "img_w", wall[0] + 25).status is JobStatus.SUCCEEDED
    assert store.reads == 3 and slept == [SYNC_CHECK_SECONDS] * 2
    never = FinishingStore(record.model_copy(update={"id": "img_n"}))
    never.reads = 10  # never becomes final
    deps = Deps(settings=SETTINGS, store=never)
    assert wait_until_final(deps, "img_n", wall[0]).status is JobStatus.QUEUED  # no time: one look
    slept.clear()
    assert wait_until_final(deps, "img_n", wall[0] + 1.1).status is JobStatus.QUEUED
    assert sum(slept) == pytest.approx(1.1)  # waited exactly until the instant it was given
