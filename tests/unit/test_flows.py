"""Each flow of the job logic with the fakes of all its ports (tests/fakes.py): idempotency,
the settle race, the cancel races, and what a tenant is charged."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imagejobs import budget, clock, flows
from imagejobs.errors import ImageJobsError
from imagejobs.models import FinalizeInput, GenerationRequest, JobStatus, ProviderJob, Usage
from tests.fakes import FakeMetrics, FakeProvider, FakeStore, fake_deps

CALLER = flows.Caller(tenant="t1", base_url="https://api.example")


def accepted(deps: flows.Deps, prompt: str = "a cat", key: str | None = None) -> str:
    record, _ = flows.accept_generation(
        deps, caller=CALLER, request=GenerationRequest(prompt=prompt, quality="low"), idempotency_key=key
    )
    return record.id


def submitted(deps: flows.Deps, prompt: str = "a cat") -> str:
    job_id = accepted(deps, prompt)
    assert flows.submit(deps, job_id) == "submitted"
    return job_id


def test_an_idempotency_key_is_one_job_and_one_reservation() -> None:
    deps = fake_deps()
    store: FakeStore = deps.store  # type: ignore[assignment]
    first = accepted(deps, key="k1")
    again, created = flows.accept_generation(
        deps, caller=CALLER, request=GenerationRequest(prompt="a cat", quality="low"), idempotency_key="k1"
    )
    assert (again.id, created) == (first, False) and len(store.jobs) == 1
    day, _ = budget.periods(store.jobs[first].created_at)
    assert store.spent[("t1", day)] == Decimal(store.jobs[first].reserved_usd or 0)  # reserved once
    with pytest.raises(flows.IdempotencyConflict):
        flows.accept_generation(deps, caller=CALLER, request=GenerationRequest(prompt="a dog"), idempotency_key="k1")


def test_a_job_is_sent_once_however_often_its_message_comes() -> None:
    deps = fake_deps()
    job_id = submitted(deps)
    provider: FakeProvider = deps.provider  # type: ignore[assignment]
    flows.submit(deps, job_id)  # a redelivery: the loop is (re)started, the job is not sent again
    assert provider.posts == 1


def test_the_settle_race_has_one_winner_one_charge_one_metric() -> None:
    """finalize (the provider made the images) and end_job (the sweeper, a deadline) race: the
    first writer decides, the second gets the winner's job; one charge, one metric."""
    deps = fake_deps()
    store: FakeStore = deps.store  # type: ignore[assignment]
    provider: FakeProvider = deps.provider  # type: ignore[assignment]
    job_id = submitted(deps)
    record = store.jobs[job_id]
    usage = Usage(input_tokens=10, output_tokens=272, total_tokens=282)
    provider.jobs[record.provider_job_id or ""] = ProviderJob(
        id=record.provider_job_id or "", status=JobStatus.SUCCEEDED, unsigned_urls=["https://p/0.png"], usage=usage
    )
    won = flows.finalize(deps, FinalizeInput(job_id=job_id))
    lost = flows.end_job(deps, job_id, JobStatus.EXPIRED, "deadline_exceeded", "late")
    assert won.status is lost.status is JobStatus.SUCCEEDED and len(won.outputs) == 1
    metrics: FakeMetrics = deps.metrics  # type: ignore[assignment]
    assert store.settles_won == 1 and metrics.settled == [job_id]
    day, _ = budget.periods(record.created_at)
    assert store.spent[("t1", day)] == Decimal(won.cost.amount if won.cost else 0)  # reservation settled to cost


def test_a_cancel_that_finds_the_provider_done_keeps_the_job() -> None:
    deps = fake_deps()
    store: FakeStore = deps.store  # type: ignore[assignment]
    provider: FakeProvider = deps.provider  # type: ignore[assignment]
    job_id = submitted(deps)
    provider_id = store.jobs[job_id].provider_job_id or ""
    provider.jobs[provider_id] = ProviderJob(id=provider_id, status=JobStatus.SUCCEEDED, unsigned_urls=["u"])
    with pytest.raises(flows.JobFinishedUpstream):
        flows.cancel(deps, job_id)
    assert not store.jobs[job_id].status.final and store.jobs[job_id].cost is None  # nothing billed and lost
    assert deps.loops.stopped == []  # type: ignore[union-attr]  # its loop goes on and stores the images


def test_a_cancel_stops_a_running_job_once_and_charges_what_the_provider_billed() -> None:
    deps = fake_deps()
    store: FakeStore = deps.store  # type: ignore[assignment]
    job_id = submitted(deps)
    store.record_execution(job_id, "arn:execution:x", clock.now())
    cancelled = flows.cancel(deps, job_id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.cost is None
    day, _ = budget.periods(cancelled.created_at)
    assert store.spent[("t1", day)] == 0  # the reservation went back
    with pytest.raises(flows.JobAlreadyFinal):
        flows.cancel(deps, job_id)
    assert deps.loops.stopped == ["arn:execution:x"]  # type: ignore[union-attr]


def test_a_listing_is_judged_by_the_application() -> None:
    deps = fake_deps()
    mine = [accepted(deps, f"cat {n}") for n in range(3)]
    page = flows.list_jobs(deps, "t1", "https://api.example", limit=2, status="queued", after=None)
    assert len(page["data"]) == 2 and page["has_more"] and page["first_id"] in mine
    for limit, status, after, param in (
        (0, None, None, "limit"),
        (None, None, None, "limit"),
        (5, "done", None, "status"),
    ):
        with pytest.raises(ImageJobsError) as refused:
            flows.list_jobs(deps, "t1", "", limit=limit, status=status, after=after)
        assert (refused.value.status, refused.value.param) == (400, param)
    with pytest.raises(ImageJobsError) as unknown:
        flows.list_jobs(deps, "someone-else", "", limit=5, status=None, after=mine[0])  # not their job
    assert (unknown.value.status, unknown.value.param) == (404, "after")
