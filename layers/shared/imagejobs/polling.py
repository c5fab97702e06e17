"""The poll decision: when to look at a provider job again, and when to stop looking.

Generation takes 30-180 s, so polling right after submit only burns Lambda calls and state
transitions. The first wait skips the dead time before the earliest plausible finish; after that
the interval grows with the time already spent (a fixed fraction of the elapsed time), so a job
that finishes early is noticed within seconds and a slow one is not polled every few seconds for
minutes. Every wait is cut so that the deadline is never overslept.
"""

from __future__ import annotations

import math

from imagejobs.models import JobStatus, PollResult, ProviderJob

# Earliest plausible finish, seconds after submission, by requested quality.
DEAD_TIME_SECONDS = {"low": 10, "medium": 25, "high": 40, "auto": 25}
GROWTH = 0.15  # next interval as a fraction of the time already waited
MIN_INTERVAL_SECONDS = 2
MAX_INTERVAL_SECONDS = 20
# Past half an hour a job is an outlier: poll every two minutes at most, so a day-long deadline
# stays far inside a Standard execution's 25,000 history events.
LONG_RUNNING_AFTER_SECONDS = 1800
LONG_RUNNING_INTERVAL_SECONDS = 120
HISTORY_EVENTS_PER_POLL = 9  # Wait 2, Task 5 (entered, scheduled, started, succeeded, exited), Choice 2


def first_wait_seconds(quality: str) -> int:
    return DEAD_TIME_SECONDS.get(quality, DEAD_TIME_SECONDS["auto"])


def next_interval(elapsed: float, quality: str) -> int:
    dead_time = first_wait_seconds(quality)
    if elapsed < dead_time:
        return max(MIN_INTERVAL_SECONDS, math.ceil(dead_time - elapsed))
    if elapsed >= LONG_RUNNING_AFTER_SECONDS:
        return LONG_RUNNING_INTERVAL_SECONDS
    interval = math.ceil(elapsed * GROWTH)
    return max(MIN_INTERVAL_SECONDS, min(MAX_INTERVAL_SECONDS, interval))


def max_polls(deadline_seconds: float) -> int:
    """An upper bound on status calls for a job with this deadline: what the schedule above
    needs, with room to spare. A Standard execution holds at most 25,000 history events and a
    poll costs HISTORY_EVENTS_PER_POLL, so the bound (at most 2,000 polls, 18,000 events) keeps
    a loop inside the limit even if the clock misbehaves."""
    return min(2_000, 2 * schedule_polls(deadline_seconds) + 10)


def schedule_polls(deadline_seconds: float, quality: str = "low") -> int:
    """How many polls the schedule makes before the deadline when the job never finishes."""
    elapsed, polls = float(first_wait_seconds(quality)), 0
    while elapsed < deadline_seconds:
        polls += 1
        elapsed += next_interval(elapsed, quality)
    return polls + 1


def decide(
    provider_job: ProviderJob,
    *,
    job_id: str,
    quality: str,
    submitted_at: float,
    deadline_at: float,
    now: float,
    polls: int,
    deadline_seconds: float,
) -> PollResult:
    status = provider_job.status
    if status is JobStatus.SUCCEEDED:
        return PollResult(job_id=job_id, action="finalize", provider_status=status.value)
    if status.final:
        return PollResult(
            job_id=job_id,
            action="end",
            provider_status=status.value,
            final_status=status,
            reason=provider_job.error_code or f"provider_{status.value}",
            message=provider_job.error_message or f"the provider reported the job {status.value}",
        )
    if now >= deadline_at or polls >= max_polls(deadline_seconds):
        return PollResult(
            job_id=job_id,
            action="end",
            provider_status=status.value,
            final_status=JobStatus.EXPIRED,
            reason="deadline_exceeded",
            message=f"the job did not finish within {int(deadline_seconds)} s",
        )
    interval = next_interval(now - submitted_at, quality)
    interval = min(interval, max(1, math.ceil(deadline_at - now)))
    return PollResult(job_id=job_id, action="wait", next_poll_seconds=interval, provider_status=status.value)
