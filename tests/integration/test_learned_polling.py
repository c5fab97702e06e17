"""The poll schedule learns from finished jobs: finalize records how long each kind of job took,
submit reads the histogram into the job's window, and status calls hold inside that window."""

from __future__ import annotations

import httpx

from imagejobs.domain import polling
from imagejobs_local.stack import LocalStack
from tests.helpers import wait_for_job

GENERATIONS = "/v1/images/generations?async=true"
MODEL = "openai/gpt-image-1"


def test_finished_jobs_teach_the_schedule_and_calls_hold_where_finishes_are_likely(
    stack: LocalStack, api: httpx.Client
) -> None:
    kind = f"{MODEL}#high#1536x1024"
    before = sum(stack.store.latency_counts(kind).values())
    body = {"quality": "high", "size": "1536x1024"}

    # Given: a finished job of this kind is counted in its kind's histogram...
    first = wait_for_job(api, api.post(GENERATIONS, json={**body, "prompt": "[sim:latency=200] one"}).json()["id"])
    assert first["status"] == "succeeded"
    assert sum(stack.store.latency_counts(kind).values()) == before + 1
    # What it took as measured (its 200 s, plus whatever the offline runtime's turn-taking added:
    # 1 real second is 200 job seconds here, so a busy machine makes it 400 s), one sample of 41.
    done = stack.store.get(first["id"])
    assert done is not None and done.completed_at is not None and done.submitted_at is not None
    first_took = done.completed_at - done.submitted_at
    # ...and with enough history (here: 40 more jobs that took 150-350 s),
    for index in range(40):
        stack.store.record_latency(kind, 150.0 + index * 5)

    # When: the next job of the kind is submitted
    job_id = api.post(GENERATIONS, json={**body, "prompt": "[sim:latency=250] two"}).json()["id"]
    job = wait_for_job(api, job_id)

    # Then: its window came from that history (150-350 s, not the prior for high quality)...
    record = stack.store.get(job_id)
    assert record is not None and record.poll_window is not None
    assert record.poll_window["samples"] >= 41
    # (the end is the high quantile: the first job's sample may be the top one; buckets are 10% wide)
    assert 140 <= record.poll_window["start"] <= 160
    assert 330 <= record.poll_window["end"] <= max(370, first_took * 1.1)
    assert polling.window("high").start < record.poll_window["start"]
    # ...and it was followed by calls that held: a few status calls (a fixed 5 s poller makes
    # 50 for a 250 s job) that looked at the provider more than once each. (How many looks fit
    # in a hold depends on the machine's speed offline: 1 real ms is 0.2 job seconds here.)
    assert job["status"] == "succeeded"
    assert record.polls <= 10
    assert record.provider_checks > record.polls
    assert record.held_seconds > 0


def test_kinds_are_learned_apart(stack: LocalStack) -> None:
    stack.store.record_latency(f"{MODEL}#low#1024x1024-apart", 12.0)
    assert stack.store.latency_counts(f"{MODEL}#medium#1024x1024-apart") == {}
    assert sum(stack.store.latency_counts(f"{MODEL}#low#1024x1024-apart").values()) == 1
