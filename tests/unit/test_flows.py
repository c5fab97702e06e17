"""Each flow of the job logic with the fakes of all its ports (tests/fakes.py): idempotency,
the settle race, the cancel races, and what a tenant is charged."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from imagejobs.domain import budget, clock
from imagejobs.domain.errors import ImageJobsError, ProviderUnavailable
from imagejobs.domain.models import FinalizeInput, GenerationRequest, JobStatus, ProviderJob, Usage
from imagejobs.flows.cancel import CancelUnknown, JobAlreadyFinal, JobFinishedUpstream, cancel
from imagejobs.flows.intake.api import Caller, IdempotencyConflict, accept_generation
from imagejobs.flows.ports import Deps
from imagejobs.flows.settle import end_job, finalize
from imagejobs.flows.submit import submit
from imagejobs.flows.views import list_jobs
from tests.fakes import FakeProvider, Fakes

CALLER = Caller(tenant="t1", base_url="https://api.example")


def accepted(deps: Deps, prompt: str = "a cat", key: str | None = None) -> str:
    record, _ = accept_generation(
        deps, caller=CALLER, request=GenerationRequest(prompt=prompt, quality="low"), idempotency_key=key
    )
    return record.id


def submitted(deps: Deps, prompt: str = "a cat") -> str:
    job_id = accepted(deps, prompt)
    assert submit(deps, job_id) == "submitted"
    return job_id


def test_a_reservation_counts_against_the_calendar_day_on_a_fast_job_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline the job clock runs fast (here a week ahead): a budget's day is still the wall
    clock's, the one the admin command reads; on the job clock's, a burst across its midnight
    passed the cap (test_tenancy's parallel submits, once in a long session)."""
    monkeypatch.setenv("IMAGEJOBS_TIME_SCALE", "0.001")
    monkeypatch.setenv("IMAGEJOBS_CLOCK_ANCHOR", str(time.time() - 600))  # 600 real s = 600,000 job s
    fakes = Fakes()
    job_id = accepted(fakes.deps)
    wall_day, _ = budget.periods(time.time())
    assert budget.periods(clock.now())[0] != wall_day  # the job clock is days ahead
    assert fakes.store.jobs[job_id].budget_day == wall_day
    assert fakes.store.spent[("t1", wall_day)] == Decimal(fakes.store.jobs[job_id].reserved_usd or 0)


def test_an_idempotency_key_is_one_job_and_one_reservation() -> None:
    fakes = Fakes()
    deps = fakes.deps
    store = fakes.store
    first = accepted(deps, key="k1")
    again, created = accept_generation(
        deps, caller=CALLER, request=GenerationRequest(prompt="a cat", quality="low"), idempotency_key="k1"
    )
    assert (again.id, created) == (first, False) and len(store.jobs) == 1
    day, _ = budget.periods(store.jobs[first].created_at)
    assert store.spent[("t1", day)] == Decimal(store.jobs[first].reserved_usd or 0)  # reserved once
    with pytest.raises(IdempotencyConflict):
        accept_generation(deps, caller=CALLER, request=GenerationRequest(prompt="a dog"), idempotency_key="k1")


def test_a_job_is_sent_once_however_often_its_message_comes() -> None:
    fakes = Fakes()
    deps = fakes.deps
    job_id = submitted(deps)
    provider = fakes.provider
    submit(deps, job_id)  # a redelivery: the loop is (re)started, the job is not sent again
    assert provider.posts == 1


def test_the_settle_race_has_one_winner_one_charge_one_metric() -> None:
    """finalize (the provider made the images) and end_job (the sweeper, a deadline) race: the
    first writer decides, the second gets the winner's job; one charge, one metric."""
    fakes = Fakes()
    deps = fakes.deps
    store = fakes.store
    provider = fakes.provider
    job_id = submitted(deps)
    record = store.jobs[job_id]
    usage = Usage(input_tokens=10, output_tokens=272, total_tokens=282)
    provider.jobs[record.provider_job_id or ""] = ProviderJob(
        id=record.provider_job_id or "", status=JobStatus.SUCCEEDED, unsigned_urls=["https://p/0.png"], usage=usage
    )
    won = finalize(deps, FinalizeInput(job_id=job_id))
    lost = end_job(deps, job_id, JobStatus.EXPIRED, "deadline_exceeded", "late")
    assert won.status is lost.status is JobStatus.SUCCEEDED and len(won.outputs) == 1
    metrics = fakes.metrics
    assert store.settles_won == 1 and metrics.settled == [job_id]
    day, _ = budget.periods(record.created_at)
    assert store.spent[("t1", day)] == Decimal(won.cost.amount if won.cost else 0)  # reservation settled to cost


def test_a_cancel_that_finds_the_provider_done_keeps_the_job() -> None:
    fakes = Fakes()
    deps = fakes.deps
    store = fakes.store
    provider = fakes.provider
    job_id = submitted(deps)
    provider_id = store.jobs[job_id].provider_job_id or ""
    provider.jobs[provider_id] = ProviderJob(id=provider_id, status=JobStatus.SUCCEEDED, unsigned_urls=["u"])
    with pytest.raises(JobFinishedUpstream):
        cancel(deps, job_id)
    assert not store.jobs[job_id].status.final and store.jobs[job_id].cost is None  # nothing billed and lost
    assert fakes.loops.stopped == []  # its loop goes on and stores the images


def test_a_cancel_stops_a_running_job_once_and_charges_what_the_provider_billed() -> None:
    fakes = Fakes()
    deps = fakes.deps
    store = fakes.store
    job_id = submitted(deps)
    store.record_execution(job_id, "arn:execution:x", clock.now())
    cancelled = cancel(deps, job_id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.cost is None
    day, _ = budget.periods(cancelled.created_at)
    assert store.spent[("t1", day)] == 0  # the reservation went back
    with pytest.raises(JobAlreadyFinal):
        cancel(deps, job_id)
    assert fakes.loops.stopped == ["arn:execution:x"]


def test_a_listing_is_judged_by_the_application() -> None:
    fakes = Fakes()
    deps = fakes.deps
    mine = [accepted(deps, f"cat {n}") for n in range(3)]
    page = list_jobs(deps, "t1", "https://api.example", limit=2, status="queued", after=None)
    assert len(page["data"]) == 2 and page["has_more"] and page["first_id"] in mine
    for limit, status, after, param in (
        (0, None, None, "limit"),
        (None, None, None, "limit"),
        (5, "done", None, "status"),
    ):
        with pytest.raises(ImageJobsError) as refused:
            list_jobs(deps, "t1", "", limit=limit, status=status, after=after)
        assert (refused.value.status, refused.value.param) == (400, param)
    with pytest.raises(ImageJobsError) as unknown:
        list_jobs(deps, "someone-else", "", limit=5, status=None, after=mine[0])  # not their job
    assert (unknown.value.status, unknown.value.param) == (404, "after")


def test_a_jobs_durations_come_from_our_own_clock_whatever_the_provider_says() -> None:
    """Issue #20.7: the provider's completed_at is another clock's (offline it fell 114 s before
    our record of the submission, and generation_seconds came out negative): a job's completion
    instant is ours, so its durations are never negative."""
    from imagejobs.domain.events import job_event_detail

    fakes = Fakes()
    deps = fakes.deps
    store = fakes.store
    provider = fakes.provider
    job_id = submitted(deps)
    record = store.jobs[job_id]
    early = (record.submitted_at or 0) - 114
    provider.jobs[record.provider_job_id or ""] = ProviderJob(
        id=record.provider_job_id or "",
        status=JobStatus.SUCCEEDED,
        unsigned_urls=["https://p/0.png"],
        completed_at=early,
    )
    done = finalize(deps, FinalizeInput(job_id=job_id))
    timings = job_event_detail(done)["timings"]
    assert done.completed_at is not None and done.completed_at >= (record.submitted_at or 0)
    assert timings["generation_seconds"] >= 0 and timings["total_seconds"] >= timings["generation_seconds"]


def plain(deps: Deps, retry_count: int | None, prompt: str = "a plain cat") -> tuple[str, bool]:
    """A plain call (it waits 25 s) as an SDK sends it: its retry count, no idempotency key."""
    caller = Caller(tenant="t1", waits_until=clock.now() + 25, retry_count=retry_count)
    record, created = accept_generation(deps, caller=caller, request=GenerationRequest(prompt=prompt))
    return record.id, created


def test_a_plain_calls_retry_joins_its_job_and_a_first_attempt_does_not() -> None:
    """Issue #20.4: the SDK's retry (same tenant and body, retry count >= 1, no idempotency header)
    joins the job its first attempt made, open or just ended; a first attempt (count 0) is a new
    job; a client that sends no count joins an open job only."""
    fakes = Fakes()
    deps = fakes.deps
    store = fakes.store
    first, created = plain(deps, 0)
    assert created and store.jobs[first].caller_waits_until is not None
    assert plain(deps, 1) == (first, False) and plain(deps, None) == (first, False)
    assert plain(deps, 1, "another prompt")[0] != first  # another body: another job
    assert plain(deps, 0)[0] != first  # the same call again on purpose
    second = plain(deps, 0, "ends")[0]
    store.settle(second, JobStatus.SUCCEEDED, {"completed_at": clock.now()})
    assert plain(deps, 1, "ends") == (second, False)  # just ended: its retry gets its answer
    assert plain(deps, None, "ends")[0] != second  # no count: an ended job is not joined
    async_job, _ = accept_generation(deps, caller=CALLER, request=GenerationRequest(prompt="a plain cat"))
    assert store.jobs[async_job.id].caller_waits_until is None  # nobody waits on an async job


def test_a_retry_that_joins_extends_the_wait_the_poll_loop_keeps_up_with() -> None:
    fakes = Fakes()
    deps = fakes.deps
    store = fakes.store
    job_id, _ = plain(deps, 0)
    before = store.jobs[job_id].caller_waits_until or 0
    caller = Caller(tenant="t1", waits_until=before + 26, retry_count=1)
    accept_generation(deps, caller=caller, request=GenerationRequest(prompt="a plain cat"))
    assert store.jobs[job_id].caller_waits_until == before + 26


def test_an_expired_job_is_stopped_upstream_and_one_finished_there_is_kept() -> None:
    """Issue #21: our deadline tells the provider to stop (or it bills a job nobody follows); a job
    it finished meanwhile is stored and billed as succeeded instead of expired and lost."""
    fakes = Fakes()
    deps = fakes.deps
    store = fakes.store
    provider = fakes.provider
    running = submitted(deps, "still running")
    end_job(deps, running, JobStatus.EXPIRED, "deadline_exceeded", "late")
    assert store.jobs[running].status is JobStatus.EXPIRED and provider.cancels == [store.jobs[running].provider_job_id]
    made = submitted(deps, "made just in time")
    pid = store.jobs[made].provider_job_id or ""
    provider.jobs[pid] = ProviderJob(id=pid, status=JobStatus.SUCCEEDED, unsigned_urls=["https://p/0.png"])
    kept = end_job(deps, made, JobStatus.EXPIRED, "deadline_exceeded", "late")
    assert kept.status is JobStatus.SUCCEEDED and kept.outputs and Decimal(kept.cost.amount if kept.cost else 0) > 0


class UnreachableProvider(FakeProvider):
    def cancel(self, provider_job_id: str) -> ProviderJob | None:
        raise ProviderUnavailable("provider timed out")

    def get(self, provider_job_id: str) -> ProviderJob:
        raise ProviderUnavailable("provider answered 500")


def test_a_cancel_the_provider_cannot_answer_changes_nothing() -> None:
    """Issue #21.5: a cancel that times out and a look that fails leave the job as it was (it may
    be finished and billed there): 503, try again; never cancelled here with its images lost."""
    fakes = Fakes(provider=UnreachableProvider())
    deps = fakes.deps
    store = fakes.store
    job_id = submitted(deps)
    with pytest.raises(CancelUnknown) as refused:
        cancel(deps, job_id)
    assert refused.value.status == 503 and not store.jobs[job_id].status.final


class CancelledMidPost(FakeProvider):
    """The caller cancels while the provider POST is in flight (the record says it is being sent)."""

    def __init__(self, deps: Deps) -> None:
        super().__init__()
        self.deps = deps

    def submit(self, request: GenerationRequest, *, idempotency_key: str, provider: str | None = None) -> ProviderJob:
        cancel(self.deps, idempotency_key)  # no provider id yet: cancelled here at once
        return super().submit(request, idempotency_key=idempotency_key, provider=provider)


def test_a_job_cancelled_during_its_provider_post_is_cancelled_upstream_after_it() -> None:
    """Issue #21.6: the provider's new job would run and be billed with nobody following it."""
    fakes = Fakes()
    provider = fakes.provider = CancelledMidPost(fakes.deps)
    deps, store = fakes.deps, fakes.store
    job_id = accepted(deps)
    assert submit(deps, job_id) == "ended_in_flight"
    assert store.jobs[job_id].status is JobStatus.CANCELLED and provider.cancels == ["p_1"]
