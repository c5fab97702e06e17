"""The poll decision: skip the dead time, hold where finishes are likely (learned from history),
notice the finish, never oversleep the deadline."""

from collections import Counter
from typing import Any

import pytest

from imagejobs.domain import polling
from imagejobs.domain.models import GenerationRequest, JobStatus, PollResult, ProviderJob

T0 = 1_800_000_000.0
MEDIUM = polling.window("medium")


def decide(
    status: JobStatus,
    now: float,
    polls: int = 1,
    deadline: float = 900,
    win: polling.Window = MEDIUM,
    **job: Any,
) -> PollResult:
    return polling.decide(
        ProviderJob(id="p1", status=status, **job),
        job_id="img_1",
        win=win,
        submitted_at=T0,
        deadline_at=T0 + deadline,
        now=now,
        polls=polls,
        deadline_seconds=deadline,
    )


def history(latencies: list[float]) -> Counter[int]:
    return Counter(polling.bucket_of(seconds) for seconds in latencies)


def test_first_wait_skips_the_dead_time_before_any_plausible_finish() -> None:
    high, low = polling.window("high"), polling.window("low")
    assert polling.first_wait_seconds(high) > polling.first_wait_seconds(low) >= 10


def test_the_window_is_learned_from_history_once_there_is_enough() -> None:
    latencies = [40 + i * 0.1 for i in range(1000)]  # 40-140 s, evenly
    learned = polling.window("medium", history(latencies))
    assert learned.samples == 1000
    assert learned.start == pytest.approx(42, abs=4) and learned.end == pytest.approx(138, abs=12)
    too_little = polling.window("medium", history(latencies[: polling.MIN_SAMPLES - 1]))
    assert too_little == MEDIUM and too_little.samples == 0  # the prior until history counts


def test_quantiles_of_the_histogram_interpolate_inside_buckets() -> None:
    counts = history([60.0] * 50 + [120.0] * 50)
    assert polling.quantile(counts, 0.25) == pytest.approx(60, rel=0.1)
    assert polling.quantile(counts, 0.75) == pytest.approx(120, rel=0.1)


def test_calls_hold_inside_the_window_only_and_never_past_it_or_the_deadline() -> None:
    win = polling.Window(start=30, end=120)
    assert polling.hold_seconds(10, win, remaining=800) == 0  # before the window: one look
    assert polling.hold_seconds(30, win, remaining=800) == 90  # the whole window, in one call
    wide = polling.Window(start=30, end=30 + 2 * polling.HOLD_SECONDS)
    assert polling.hold_seconds(30, wide, remaining=800) == polling.HOLD_SECONDS  # never longer
    assert polling.hold_seconds(110, win, remaining=800) == 10  # up to the window's end
    assert polling.hold_seconds(60, win, remaining=7) == 5  # up to the deadline, less one look
    assert polling.hold_seconds(130, win, remaining=800) == 0  # past the window: one look


def test_waits_skip_to_the_window_hold_inside_it_and_grow_after_it() -> None:
    win = polling.Window(start=30, end=120)
    assert polling.next_interval(5, win) == 25
    assert polling.next_interval(60, win) == 0  # the next call holds straight away
    after, later = polling.next_interval(125, win), polling.next_interval(400, win)
    assert 2 <= after < later <= polling.MAX_INTERVAL_SECONDS
    assert polling.next_interval(3600, win) == polling.LONG_RUNNING_INTERVAL_SECONDS


def test_running_job_waits() -> None:
    assert decide(JobStatus.IN_PROGRESS, T0 + 60).action == "wait"


def test_success_goes_to_finalize() -> None:
    assert decide(JobStatus.SUCCEEDED, T0 + 60).action == "finalize"


def test_provider_failure_ends_with_the_providers_reason() -> None:
    result = decide(JobStatus.FAILED, T0 + 60, error_code="moderation_blocked", error_message="refused")
    assert (result.action, result.final_status, result.reason) == ("end", JobStatus.FAILED, "moderation_blocked")


def test_provider_terminal_states_map_one_to_one() -> None:
    for status in (JobStatus.CANCELLED, JobStatus.EXPIRED):
        result = decide(status, T0 + 60)
        assert result.final_status is status
        assert result.reason == f"provider_{status.value}"


def test_deadline_expires_the_job() -> None:
    result = decide(JobStatus.IN_PROGRESS, T0 + 900)
    assert (result.action, result.final_status, result.reason) == ("end", JobStatus.EXPIRED, "deadline_exceeded")


def test_wait_is_cut_to_end_at_the_deadline() -> None:
    result = decide(JobStatus.IN_PROGRESS, T0 + 898)
    assert result.action == "wait"
    assert result.next_poll_seconds <= 2


def test_polls_are_bounded_even_if_the_clock_misbehaves() -> None:
    result = decide(JobStatus.IN_PROGRESS, T0 + 10, polls=polling.max_polls(900))
    assert result.final_status is JobStatus.EXPIRED
    # ~10 history events per poll: the bound keeps a job far below the 25,000-event limit
    assert polling.max_polls(86_400) * 10 < 25_000


def test_a_day_long_job_stays_inside_the_execution_history_limit() -> None:
    """A job that never finishes, followed on a virtual clock to its longest possible deadline."""
    deadline = 86_400.0  # JobDeadlineSeconds' maximum
    win = polling.window("auto")  # the widest window: the most calls
    now, polls = T0 + polling.first_wait_seconds(win), 0
    while True:
        polls += 1
        now += polling.hold_seconds(now - T0, win, T0 + deadline - now)
        result = decide(JobStatus.IN_PROGRESS, now, polls=polls, deadline=deadline, win=win)
        if result.action != "wait":
            break
        now += max(1, result.next_poll_seconds)
    assert result.final_status is JobStatus.EXPIRED and result.reason == "deadline_exceeded"
    assert now >= T0 + deadline  # it ran to the deadline: the poll bound did not cut it short
    assert polls * polling.HISTORY_EVENTS_PER_POLL + 10 < 25_000
    assert polls < polling.max_polls(deadline) <= 2_000


def test_a_job_a_caller_waits_on_is_looked_at_at_once_and_every_second() -> None:
    """Issue #20.3: a plain call's job gets its first look 1 s after submission (not at the
    window's start, 10 s for low quality), holds looking every half second while the caller waits,
    and goes back to the schedule once the caller has stopped waiting."""
    from imagejobs.domain.jobs import JobRecord
    from imagejobs.domain.models import JobStatus, ProviderJob

    record = JobRecord(
        id="img_p", tenant="t", model="m", request=GenerationRequest(prompt="p", quality="low"), request_hash="-",
        created_at=0, updated_at=0, deadline_at=900, caller_waits_until=25,
    )  # fmt: skip
    assert polling.first_poll_payload(record)["next_poll_seconds"] == polling.WAITING_FIRST_LOOK_SECONDS
    async_record = record.model_copy(update={"caller_waits_until": None})
    assert polling.first_poll_payload(async_record)["next_poll_seconds"] == polling.first_wait_seconds(
        polling.window("low")
    )
    win = polling.window("low")
    waiting = polling.caller_waiting(record, 1.0)
    assert waiting == 24 and polling.check_every(waiting) == polling.WAITING_CHECK_EVERY_SECONDS < 1
    assert polling.hold_seconds(1.0, win, 899, waiting) == waiting  # before the window: holds while the caller waits
    running = ProviderJob(id="p", status=JobStatus.IN_PROGRESS)

    def decided(now: float, waiting: float) -> int | None:
        return polling.decide(
            running, job_id="img_p", win=win, submitted_at=0.0, deadline_at=900.0, now=now, polls=1,
            deadline_seconds=900, waiting=waiting,
        ).next_poll_seconds  # fmt: skip

    assert decided(3.0, waiting=22) == 0  # hold again at once
    assert decided(30.0, waiting=0) == polling.next_interval(30.0, win)  # the schedule again


def test_a_job_cancelled_while_a_call_holds_is_let_go_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call may hold up to HOLD_SECONDS (240 s); cancelled meanwhile, the job stops costing
    the function and provider GETs within RECHECK_RECORD_SECONDS, not when the hold runs out."""
    from imagejobs.domain import clock
    from imagejobs.domain.jobs import JobRecord
    from imagejobs.domain.models import PollInput
    from imagejobs.flows.poll import poll
    from tests.fakes import FakeProvider, Fakes

    virtual = [T0]
    monkeypatch.setattr(clock, "now", lambda: virtual[0])
    monkeypatch.setattr(clock, "sleep", lambda seconds: virtual.__setitem__(0, virtual[0] + seconds))
    provider = FakeProvider()
    provider.jobs["p1"] = ProviderJob(id="p1", status=JobStatus.IN_PROGRESS)
    fakes = Fakes(provider=provider)
    deps = fakes.deps
    record = JobRecord(
        id="img_h", tenant="t", model="openai/gpt-image-1", request=GenerationRequest(prompt="a cat", quality="medium"),
        request_hash="-", created_at=T0 - 30, updated_at=T0 - 30, deadline_at=T0 + 900, submitted_at=T0 - 30,
        status=JobStatus.IN_PROGRESS, provider_job_id="p1",
    )  # fmt: skip
    fakes.store.jobs[record.id] = record  # the fake's table
    assert polling.hold_seconds(30, polling.poll_window(record), 870) > 100  # it would hold for minutes

    looks: list[float] = []
    real_get = provider.get

    def get(provider_job_id: str) -> ProviderJob:
        looks.append(virtual[0] - T0)
        if len(looks) == 3:  # the caller cancels 4 s into the hold
            fakes.store.jobs[record.id] = record.model_copy(update={"status": JobStatus.CANCELLED})
        return real_get(provider_job_id)

    monkeypatch.setattr(provider, "get", get)
    result = poll(deps, PollInput(job_id=record.id))
    assert result.action == "end" and result.reason == "already_final"
    # let go at the first look at the record after the cancel (4 s in), not 120 s in at the end of the hold
    assert looks[-1] <= 4 + polling.RECHECK_RECORD_SECONDS < 60


def test_each_provider_learns_its_own_latency_and_therouters_kinds_keep_their_names() -> None:
    """A job that waited for OpenAI's webhook measures the wait too (up to the fallback): its
    sample must not stretch the schedule TheRouter's jobs of the same model are polled by."""
    from imagejobs.domain.jobs import JobRecord

    record = JobRecord(
        id="img_1", tenant="t", model="openai/gpt-image-2", request=GenerationRequest(prompt="p", quality="low"),
        request_hash="h", created_at=1.0, updated_at=1.0, deadline_at=900.0,
    )  # fmt: skip
    at_therouter = record.model_copy(update={"provider_job_id": "img_abc"})
    at_openai = record.model_copy(update={"provider_job_id": "openai:resp_abc"})
    assert polling.latency_kind(record) == polling.latency_kind(at_therouter) == "openai/gpt-image-2#low#auto"
    assert polling.latency_kind(at_openai) == "openai/gpt-image-2#low#auto#openai"
    assert polling.latency_kind(record, "openai") == polling.latency_kind(at_openai)  # as submit names it
