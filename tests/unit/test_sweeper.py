"""The sweeper's decisions, with fakes of our own interfaces."""

from __future__ import annotations

from typing import Any

from imagejobs.domain import clock
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import GenerationRequest, JobStatus, ProviderJob
from imagejobs.flows import sweeper
from tests.fakes import FakeLoops, FakeProvider, FakeQueue, Fakes, FakeStore


def job(job_id: str, *, age: float, deadline_in: float, **fields: Any) -> JobRecord:
    now = clock.now()
    return JobRecord(
        id=job_id,
        tenant="t",
        model="openai/gpt-image-1",
        request=GenerationRequest(prompt="p"),
        request_hash="-",
        created_at=now - age,
        updated_at=now - age,
        deadline_at=now + deadline_in,
        **fields,
    )


def test_each_kind_of_orphan_gets_its_remedy() -> None:
    store = FakeStore()
    for record in (
        job("img_fresh", age=5, deadline_in=900),
        job("img_lost_message", age=900, deadline_in=900),
        job("img_no_loop", age=900, deadline_in=900, provider_job_id="p1"),
        job("img_dead_loop", age=900, deadline_in=900, provider_job_id="p2", execution_arn="arn:dead"),
        # moved lately: its loop is taken to be alive, and not described (DescribeExecution: 15/s)
        job("img_moving", age=30, deadline_in=900, provider_job_id="p6", execution_arn="arn:dead4"),
        job("img_dead_and_late", age=30, deadline_in=-5, provider_job_id="p3", execution_arn="arn:dead2"),
        job("img_healthy", age=30, deadline_in=900, provider_job_id="p4", execution_arn="arn:alive"),
        # past its deadline with a dead loop, but made (and billed) at the provider: kept, not expired
        job("img_late_but_made", age=30, deadline_in=-5, provider_job_id="p5", execution_arn="arn:dead3"),
    ):
        store.create(record)
    loops = FakeLoops(
        {
            "arn:dead": "ABORTED",
            "arn:dead2": "FAILED",
            "arn:alive": "RUNNING",
            "arn:dead3": "FAILED",
            "arn:dead4": "FAILED",
        }
    )
    queue = FakeQueue()
    provider = FakeProvider()  # p5 finished while its loop was dead
    for provider_id in ("p1", "p2", "p3", "p4", "p5"):
        status = JobStatus.SUCCEEDED if provider_id == "p5" else JobStatus.IN_PROGRESS
        provider.jobs[provider_id] = ProviderJob(id=provider_id, status=status)
    deps = Fakes(store=store, loops=loops, queue=queue, provider=provider).deps

    done = sweeper.sweep(deps, stale_after_seconds=600)

    assert done == {"requeued": 1, "started": 1, "resumed": 2, "expired": 1}
    assert queue.sent == ["img_lost_message"]
    assert loops.started == ["img_no_loop", "img_dead_loop-resume-1", "img_late_but_made-resume-1"]
    assert not store.jobs["img_late_but_made"].status.final
    assert store.jobs["img_dead_and_late"].status is JobStatus.EXPIRED
    assert provider.cancels == ["p3"]  # an expired job is stopped at the provider too (#21)
    assert store.jobs["img_dead_loop"].resumes == 1
    assert "arn:dead4" not in loops.described and store.jobs["img_moving"].resumes == 0
    assert store.jobs["img_fresh"].execution_arn is None and store.jobs["img_healthy"].resumes == 0
