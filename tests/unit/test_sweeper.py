"""The sweeper's decisions, with fakes of our own interfaces."""

from __future__ import annotations

from typing import Any

from imagejobs.domain import clock
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import GenerationRequest, JobStatus, ProviderJob
from imagejobs.flows import sweeper
from imagejobs.flows.ports import Deps
from tests.fakes import SETTINGS
from tests.fakes import FakeStore as OpenStore


class Loops:
    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses
        self.started: list[str] = []

    def start(self, name: str, payload: dict[str, Any]) -> str:
        self.started.append(name)
        return f"arn:exec:{name}"

    def stop(self, execution_arn: str, cause: str) -> bool:
        return True

    def status(self, execution_arn: str) -> str | None:
        return self.statuses.get(execution_arn)


class Provider:
    """The provider's word on each job: p5 finished while its loop was dead."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def get(self, provider_job_id: str) -> ProviderJob:
        status = JobStatus.SUCCEEDED if provider_job_id == "p5" else JobStatus.IN_PROGRESS
        return ProviderJob(id=provider_job_id, status=status)

    def cancel(self, provider_job_id: str) -> ProviderJob:
        self.cancelled.append(provider_job_id)
        return ProviderJob(id=provider_job_id, status=JobStatus.CANCELLED)


class Queue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, job_id: str) -> None:
        self.sent.append(job_id)


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
    store = OpenStore()
    for record in (
        job("img_fresh", age=5, deadline_in=900),
        job("img_lost_message", age=900, deadline_in=900),
        job("img_no_loop", age=900, deadline_in=900, provider_job_id="p1"),
        job("img_dead_loop", age=30, deadline_in=900, provider_job_id="p2", execution_arn="arn:dead"),
        job("img_dead_and_late", age=30, deadline_in=-5, provider_job_id="p3", execution_arn="arn:dead2"),
        job("img_healthy", age=30, deadline_in=900, provider_job_id="p4", execution_arn="arn:alive"),
        # past its deadline with a dead loop, but made (and billed) at the provider: kept, not expired
        job("img_late_but_made", age=30, deadline_in=-5, provider_job_id="p5", execution_arn="arn:dead3"),
    ):
        store.create(record)
    loops = Loops({"arn:dead": "ABORTED", "arn:dead2": "FAILED", "arn:alive": "RUNNING", "arn:dead3": "FAILED"})
    queue = Queue()
    provider = Provider()
    deps = Deps(
        settings=SETTINGS,
        store=store,
        loops=loops,
        queue=queue,  # type: ignore[arg-type]
        provider=provider,  # type: ignore[arg-type]
    )

    done = sweeper.sweep(deps, stale_after_seconds=600)

    assert done == {"requeued": 1, "started": 1, "resumed": 2, "expired": 1}
    assert queue.sent == ["img_lost_message"]
    assert loops.started == ["img_no_loop", "img_dead_loop-resume-1", "img_late_but_made-resume-1"]
    assert not store.jobs["img_late_but_made"].status.final
    assert store.jobs["img_dead_and_late"].status is JobStatus.EXPIRED
    assert provider.cancelled == ["p3"]  # an expired job is stopped at the provider too (#21)
    assert store.jobs["img_dead_loop"].resumes == 1
    assert store.jobs["img_fresh"].execution_arn is None and store.jobs["img_healthy"].resumes == 0
