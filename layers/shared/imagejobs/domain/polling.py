"""The poll decision: when to look at a provider job again, for how long, and when to stop.

Every status call costs a Lambda invocation and three state transitions; every second between
the provider finishing and us noticing is a second the user waits. So the schedule is built from
latencies observed for the same model, quality and size (a rolling histogram kept in DynamoDB,
updated when a job succeeds; priors by quality until there is history):

- before the window where finishes are likely (the 5th percentile), little can be gained:
  the first wait skips the dead time in one go;
- inside the window (5th to 98th percentile), a status call *holds*: it follows the provider
  every CHECK_EVERY_SECONDS for up to HOLD_SECONDS before handing back to the state machine, so
  a finish is noticed within seconds at the price of one invocation per HOLD_SECONDS. Holding is
  the cheaper way to look often: a Wait, Task and Choice cost 3 transitions ($0.000075), which
  buys 29 s of the status function at 160 MB ($0.0000026 per s), and every look of a holding
  call is free of transitions (make bench-poll prices both ways);
- past the window the job is slow for its kind: the interval grows with the time already spent
  (15 %, 2-20 s; 120 s after half an hour), without holding.
- while a caller waits on the answer (a plain call, `caller_waits_until`), none of that: the first
  look comes a second after submission and every call holds, looking every half second, until
  the caller stops waiting; then the job goes back to the schedule above.

Every wait and hold is cut so that the deadline is never overslept.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from imagejobs.domain.jobs import DEFAULT_PROVIDER, JobRecord
from imagejobs.domain.models import JobStatus, PollInput, PollResult, ProviderJob
from imagejobs.domain.settings import Settings

# Where finishes are likely before there is history, seconds after submission, by quality.
PRIOR_WINDOWS: dict[str, tuple[float, float]] = {
    "low": (10.0, 90.0),
    "medium": (20.0, 150.0),
    "high": (30.0, 240.0),
    "auto": (10.0, 240.0),
}
MIN_SAMPLES = 30  # history below this many jobs is not trusted yet
# From the 5th percentile, not the 2nd: holding from the 2nd costs the other 95% of jobs that many
# more held seconds (make bench-poll: 4.84% -> 4.70% of the cheapest image on its widest trace,
# for a p95 detection delay of 1.9-3.0 s instead of 1.9-2.0 s).
WINDOW_QUANTILES = (0.05, 0.98)
# One status call follows the provider at most this long: long enough that one call covers most
# windows (make bench-poll: 1.0-1.2 calls per job), short of the status function's timeout.
HOLD_SECONDS = 240
# A holding call reads the job record this often (a read unit, $0.000000125): a job cancelled
# meanwhile is let go within this many seconds, not at the end of the hold.
RECHECK_RECORD_SECONDS = 10
CHECK_EVERY_SECONDS = 2  # ...looking every this many seconds
GROWTH = 0.15  # past the window: next interval as a fraction of the time already waited
MIN_INTERVAL_SECONDS = 2
MAX_INTERVAL_SECONDS = 20
# Past half an hour a job is an outlier: poll every two minutes at most, so a day-long deadline
# stays far inside a Standard execution's 25,000 history events.
LONG_RUNNING_AFTER_SECONDS = 1800
LONG_RUNNING_INTERVAL_SECONDS = 120
# While a caller waits: the first look this long after submission (a Wait state counts whole
# seconds), then one every half second inside the holding call (a provider GET each, no
# transition): a finish is noticed 0.25 s later on average.
WAITING_FIRST_LOOK_SECONDS = 1
WAITING_CHECK_EVERY_SECONDS = 0.5
HISTORY_EVENTS_PER_POLL = 9  # Wait 2, Task 5 (entered, scheduled, started, succeeded, exited), Choice 2

# Latency histogram buckets: upper bounds growing by 10 % from 1 s to about 2.5 hours.
BUCKET_BOUNDS: tuple[float, ...] = tuple(round(1.1**i, 3) for i in range(0, 93))
DECAY_AT = 2000  # when the histogram holds this many jobs, every count is halved (rolling)


@dataclass(frozen=True)
class Window:
    """Where this kind of job usually finishes, in seconds after submission."""

    start: float
    end: float
    samples: int = 0  # jobs the window was learned from (0: the prior)


def bucket_of(seconds: float) -> int:
    return min(len(BUCKET_BOUNDS) - 1, bisect_right(BUCKET_BOUNDS, max(0.0, seconds)))


def quantile(counts: Mapping[int, float], q: float) -> float:
    """The q-quantile of a bucketed histogram, interpolated inside its bucket."""
    total = sum(counts.values())
    if total <= 0:
        raise ValueError("empty histogram")
    target, seen = q * total, 0.0
    for index in sorted(counts):
        count = counts[index]
        if count <= 0:
            continue
        if seen + count >= target:
            low = BUCKET_BOUNDS[index - 1] if index > 0 else 0.0
            high = BUCKET_BOUNDS[index]
            return low + (high - low) * ((target - seen) / count)
        seen += count
    return BUCKET_BOUNDS[max(counts)]


def window(quality: str, counts: Mapping[int, float] | None = None) -> Window:
    """The learned window when there is enough history, else the prior for the quality."""
    total = sum(counts.values()) if counts else 0
    if counts and total >= MIN_SAMPLES:
        start, end = (quantile(counts, q) for q in WINDOW_QUANTILES)
        return Window(start=round(start, 1), end=round(max(end, start + CHECK_EVERY_SECONDS), 1), samples=int(total))
    start, end = PRIOR_WINDOWS.get(quality, PRIOR_WINDOWS["auto"])
    return Window(start=start, end=end)


def first_wait_seconds(win: Window) -> int:
    return max(0, math.floor(win.start))


def in_window(elapsed: float, win: Window) -> bool:
    """Whether a call made `elapsed` s after submission has room to hold inside the window."""
    return win.start - CHECK_EVERY_SECONDS <= elapsed < win.end - CHECK_EVERY_SECONDS


def hold_seconds(elapsed: float, win: Window, remaining: float, waiting: float = 0.0) -> float:
    """How long a status call made `elapsed` s after submission follows the provider (0: one
    look). Never less than one step when it holds, never past the window or the deadline.
    `waiting`: how much longer a caller waits on the answer; the call holds for that (at most
    HOLD_SECONDS) whatever the window says."""
    step = check_every(waiting)
    if waiting > 0:
        hold = min(HOLD_SECONDS, waiting, remaining - step)
    elif in_window(elapsed, win):
        hold = min(HOLD_SECONDS, win.end - elapsed, remaining - step)
    else:
        return 0.0
    return hold if hold >= step else 0.0


def check_every(waiting: float) -> float:
    """The step of a holding call: every half second while a caller waits, else CHECK_EVERY_SECONDS."""
    return WAITING_CHECK_EVERY_SECONDS if waiting > 0 else CHECK_EVERY_SECONDS


def caller_waiting(record: JobRecord, now: float) -> float:
    """How much longer (job seconds) a caller waits on this job's answer (0: nobody does)."""
    return max(0.0, (record.caller_waits_until or 0.0) - now)


def next_interval(elapsed: float, win: Window) -> int:
    """The wait after a status call that ended `elapsed` s after submission, job still running."""
    if elapsed < win.start - CHECK_EVERY_SECONDS:
        return max(MIN_INTERVAL_SECONDS, math.ceil(win.start - elapsed))
    if in_window(elapsed, win):
        return 0  # the next call holds again straight away
    if elapsed >= LONG_RUNNING_AFTER_SECONDS:
        return LONG_RUNNING_INTERVAL_SECONDS
    return max(MIN_INTERVAL_SECONDS, min(MAX_INTERVAL_SECONDS, math.ceil(elapsed * GROWTH)))


@cache  # every status call asks; the answer depends on the deadline alone
def max_polls(deadline_seconds: float) -> int:
    """An upper bound on status calls for a job with this deadline: what the schedule needs with
    room to spare. A Standard execution holds at most 25,000 history events and a call costs
    HISTORY_EVENTS_PER_POLL, so the bound (at most 2,000 calls, 18,000 events) keeps a loop
    inside the limit even if the clock misbehaves."""
    return min(2_000, 2 * schedule_polls(deadline_seconds) + 10)


def schedule_polls(deadline_seconds: float, win: Window | None = None) -> int:
    """Status calls the schedule makes before the deadline when the job never finishes
    (the widest prior window unless one is given)."""
    win = win or window("auto")
    elapsed, polls = float(first_wait_seconds(win)), 0
    while elapsed < deadline_seconds:
        polls += 1
        elapsed += hold_seconds(elapsed, win, deadline_seconds - elapsed)
        elapsed += max(1, next_interval(elapsed, win))
    return polls + 1


def decide(
    provider_job: ProviderJob,
    *,
    job_id: str,
    win: Window,
    submitted_at: float,
    deadline_at: float,
    now: float,
    polls: int,
    deadline_seconds: float,
    waiting: float = 0.0,
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
            provider_status=provider_job.reported_status or status.value,
            final_status=JobStatus.EXPIRED,
            reason="deadline_exceeded",
            message=f"the job did not finish within {int(deadline_seconds)} s",
        )
    # A caller still waiting: the next call holds again at once (it looks every half second).
    interval = 0 if waiting > 0 else next_interval(now - submitted_at, win)
    interval = min(interval, max(1, math.ceil(deadline_at - now)))
    # A status the contract does not name is shown as reported (the status function logs it).
    reported = provider_job.reported_status or status.value
    return PollResult(job_id=job_id, action="wait", next_poll_seconds=interval, provider_status=reported)


# -- a job's place in the schedule -----------------------------------------------------------------
def latency_kind(record: JobRecord, provider: str | None = None) -> str:
    """Jobs that take alike: same model, quality and size at the same provider (the poll schedule
    learns per kind). TheRouter's kinds keep the name they had before there were two providers;
    another provider's are apart, as its speed is its own and a job that waited for its webhook
    measures the wait too."""
    kind = f"{record.model}#{record.quality}#{record.size}"
    at = provider or record.provider
    return kind if at in (None, DEFAULT_PROVIDER) else f"{kind}#{at}"


def loop_silence_seconds(record: JobRecord, provider_timeout_seconds: float) -> float:
    """The longest a live poll loop leaves its job's record unchanged: its first wait (or the
    longest wait between calls), one holding call, and that call's last provider request."""
    longest_wait = max(first_wait_seconds(poll_window(record)), MAX_INTERVAL_SECONDS, LONG_RUNNING_INTERVAL_SECONDS)
    return longest_wait + HOLD_SECONDS + provider_timeout_seconds + RECHECK_RECORD_SECONDS


def poll_window(record: JobRecord) -> Window:
    """The window chosen for the job at submit (the prior for its quality if none was)."""
    if record.poll_window:
        return Window(
            start=float(record.poll_window["start"]),
            end=float(record.poll_window["end"]),
            samples=int(record.poll_window.get("samples", 0)),
        )
    return window(record.quality)


def first_poll_payload(record: JobRecord, await_seconds: int | None = None) -> dict[str, Any]:
    """Execution input. Deterministic for a job (its window is recorded with its submission, and
    whether a caller waits with its creation), so a repeated StartExecution is idempotent. A job a
    caller waits on is looked at a second after submission, whatever its window; one whose
    provider sends webhooks (await_seconds) waits for it first, at most that long."""
    if await_seconds:
        return PollInput(job_id=record.id, next_poll_seconds=await_seconds, action="await").model_dump()
    first = WAITING_FIRST_LOOK_SECONDS if record.caller_waits_until else first_wait_seconds(poll_window(record))
    return PollInput(job_id=record.id, next_poll_seconds=first).model_dump()


def await_seconds(record: JobRecord, settings: Settings, now: float) -> int | None:
    """How long the loop waits for the provider's webhook instead of polling (None: it polls): for
    OpenAI direct's jobs when its webhooks come here, never for a job a caller waits on (it is
    polled every half second), and never past the job's deadline."""
    if not settings.openai_webhooks or record.provider != "openai" or record.caller_waits_until:
        return None
    return max(1, min(settings.openai_webhook_fallback_seconds, math.ceil(record.deadline_at - now)))
