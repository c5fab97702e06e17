"""The sweeper: finds jobs that nothing is moving any more and moves them.

Run on a schedule. For every job that is not final:
- never submitted (no provider id) and quiet for `stale_after` seconds: its submit message was lost;
  put it on the submit queue again (submit is idempotent);
- submitted but no poll loop recorded, quiet as long: start the loop (the execution name is the job
  id, so a loop that does exist is not doubled);
- quiet for longer than a live loop leaves it (polling.loop_silence_seconds), or past its deadline,
  its poll loop is no longer running (killed, failed, timed out) and the job did not settle: past
  its deadline it ends `expired`, unless the provider has finished it (then its images were made
  and billed: polling resumes, and the loop's one status call finalizes it); before its deadline
  polling resumes in a new execution.
And the provider's admission gate gets back the places of jobs that ended without giving theirs.
"""

from __future__ import annotations

from collections import Counter

from imagejobs.domain import clock, polling
from imagejobs.domain.errors import ImageJobsError
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import JobStatus, PollInput
from imagejobs.flows import admission
from imagejobs.flows.ports import Deps, need
from imagejobs.flows.settle import end_job
from imagejobs.flows.submit import first_payload


def sweep(deps: Deps, *, stale_after_seconds: float) -> Counter[str]:
    done: Counter[str] = Counter()
    loops = need(deps.loops, "loops")
    now, provider_timeout = clock.now(), deps.settings.provider_timeout_seconds
    for record in deps.store.open_jobs():
        quiet = now - record.updated_at
        if record.provider_job_id is None:
            if quiet > stale_after_seconds:
                need(deps.queue, "queue").send(record.id, tenant=record.tenant)
                done["requeued"] += 1
            continue
        if record.execution_arn is None:
            if quiet > stale_after_seconds:
                arn = loops.start(record.id, first_payload(deps, record))
                deps.store.record_execution(record.id, arn, now)
                done["started"] += 1
            continue
        if now < record.deadline_at and quiet <= polling.loop_silence_seconds(record, provider_timeout):
            continue  # its loop moved it lately: alive, no DescribeExecution (15/s, account-wide)
        if loops.status(record.execution_arn) == "RUNNING":
            continue
        if now >= record.deadline_at and not _succeeded_upstream(deps, record):
            end_job(
                deps,
                record.id,
                JobStatus.EXPIRED,
                "deadline_exceeded",
                "the job's poll loop ended without it, past its deadline (found by the sweeper)",
            )
            done["expired"] += 1
            continue
        name = f"{record.id}-resume-{record.resumes + 1}"
        arn = loops.start(name, PollInput(job_id=record.id, next_poll_seconds=1).model_dump())
        deps.store.record_resume(record.id, arn, now)
        done["resumed"] += 1
    if freed := admission.tidy(deps):
        done["places_freed"] = freed
    return done


def _succeeded_upstream(deps: Deps, record: JobRecord) -> bool:
    """Whether the provider says the job succeeded (unreachable: no)."""
    if record.provider_job_id is None:
        return False
    try:
        return need(deps.provider, "provider").get(record.provider_job_id).status is JobStatus.SUCCEEDED
    except ImageJobsError:
        return False
