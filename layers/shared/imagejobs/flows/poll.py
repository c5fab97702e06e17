"""Poll: one status call of the poll loop, holding inside the window where jobs like it finish."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from imagejobs.domain import clock, polling
from imagejobs.domain.errors import (
    StaleTransition,
)
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import (
    PollInput,
    PollResult,
)
from imagejobs.flows import admission, provider_events
from imagejobs.flows.ports import Deps, need
from imagejobs.flows.steps import TIME_RESERVE_SECONDS, load


# -- status (one poll) --------------------------------------------------------------------------
def poll(deps: Deps, poll_input: PollInput, time_left: Callable[[], float] | None = None) -> PollResult:
    """One status call. `time_left` (seconds until the function's timeout) bounds the hold: a call
    never starts a provider request that could outlive its invocation."""
    record = load(deps, poll_input.job_id)
    if record.status.final:
        return PollResult(
            job_id=record.id,
            action="end",
            provider_status=record.status.value,
            final_status=record.status,
            reason="already_final",
        )
    if record.provider_job_id is None:
        raise StaleTransition(f"job {record.id} has no provider job id")
    provider = need(deps.provider, "provider")
    win = polling.poll_window(record)
    submitted_at = record.submitted_at or record.created_at
    started = clock.now()
    # Inside the window where this kind of job usually finishes, or while a caller waits on the
    # answer, the call holds: it follows the provider every few seconds (every half second for a
    # waiting caller), so a finish is noticed at once, for one invocation.
    waiting = polling.caller_waiting(record, started)
    step = polling.check_every(waiting)
    scheduled = polling.hold_seconds(started - submitted_at, win, record.deadline_at - started, waiting)
    hold = _hold(deps, scheduled, time_left)
    checks, looked_at = 0, started
    while True:
        provider_job = provider.get(record.provider_job_id)
        checks += 1
        now = clock.now()
        if provider_job.status.final or now + step > started + hold:
            break
        if now - looked_at >= polling.RECHECK_RECORD_SECONDS:
            # Cancelled (or ended by the sweeper) while this call holds: stop following it now,
            # not when the hold runs out (up to HOLD_SECONDS of a function and provider GETs).
            looked_at = now
            current = deps.store.get(record.id)
            if current is None or current.status.final:
                return _ended(record.id, provider_job.status.value)
        clock.sleep(step)
    try:
        record = deps.store.record_poll(record.id, provider_job.status, now, checks=checks, held=now - started)
    except StaleTransition:  # it ended meanwhile (cancelled while this call held): nothing to do
        return _ended(record.id, provider_job.status.value)
    if provider_job.status.final:
        _done_upstream(deps, record)
    decided = polling.decide(
        provider_job,
        job_id=record.id,
        win=win,
        submitted_at=submitted_at,
        deadline_at=record.deadline_at,
        now=now,
        polls=record.polls,
        deadline_seconds=record.deadline_at - record.created_at,
        waiting=polling.caller_waiting(record, now),
    )
    return _awaiting(deps, record, decided, now)


def _awaiting(deps: Deps, record: JobRecord, decided: PollResult, now: float) -> PollResult:
    """A job whose provider sends webhooks waits for one next, instead of a poll."""
    wait = polling.await_seconds(record, deps.settings, now)
    if decided.action == "wait" and wait:
        return decided.model_copy(update={"action": "await", "next_poll_seconds": wait})
    return decided


def await_provider(deps: Deps, job_id: str, task_token: str) -> str:
    """The loop waits for the provider's word on a job (AwaitProvider): its task token is kept for
    the webhook to end the wait with; if the word came already (or the job ended), the wait ends
    now. Returns what was done, for logs and tests."""
    record = deps.store.record_task_token(job_id, task_token, clock.now())
    if record is None:
        return "no_job"  # the wait times out into a poll, which says so
    if record.status.final:
        ended = PollResult(
            job_id=job_id,
            action="end",
            provider_status=record.status.value,
            final_status=record.status,
            reason="already_final",
        )
        need(deps.loops, "loops").complete(task_token, ended.model_dump(mode="json"))
        return "already_final"
    if record.provider_event and provider_events.wake(deps, record):
        return "woke"
    return "waiting"


def _ended(job_id: str, provider_status: str) -> PollResult:
    """The job ended while this call followed it (cancelled, or by the sweeper): nothing to do."""
    return PollResult(job_id=job_id, action="end", provider_status=provider_status, reason="already_final")


def _done_upstream(deps: Deps, record: JobRecord) -> None:
    """Its place at the provider goes to the next in line now, not once its images are stored
    (settle gives it back again: a no-op; should this write fail, settle's stands)."""
    with contextlib.suppress(Exception):
        admission.leave(deps, record)


def _hold(deps: Deps, scheduled: float, time_left: Callable[[], float] | None) -> float:
    """How long this call follows the provider: the schedule's hold, leaving room in the invocation
    for the last provider call (its timeout) and the record's update after it."""
    if time_left is None:
        return scheduled
    return max(0.0, min(scheduled, time_left() - deps.settings.provider_timeout_seconds - TIME_RESERVE_SECONDS))
