"""The poll decision: skip the dead time, notice the finish, never oversleep the deadline."""

from imagejobs import polling
from imagejobs.models import JobStatus, ProviderJob

T0 = 1_800_000_000.0


def decide(
    status: JobStatus, now: float, polls: int = 1, deadline: float = 900, quality: str = "medium", **job: object
):
    return polling.decide(
        ProviderJob(id="p1", status=status, **job),
        job_id="img_1",
        quality=quality,
        submitted_at=T0,
        deadline_at=T0 + deadline,
        now=now,
        polls=polls,
        deadline_seconds=deadline,
    )


def test_first_wait_skips_the_dead_time_before_any_plausible_finish() -> None:
    assert polling.first_wait_seconds("high") > polling.first_wait_seconds("low") >= 10


def test_running_job_waits_and_interval_grows_with_elapsed_time() -> None:
    early = decide(JobStatus.IN_PROGRESS, T0 + 30)
    late = decide(JobStatus.IN_PROGRESS, T0 + 150)
    assert early.action == late.action == "wait"
    assert 2 <= early.next_poll_seconds < late.next_poll_seconds <= polling.MAX_INTERVAL_SECONDS


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
    now, polls = T0 + polling.first_wait_seconds("low"), 0
    while True:
        polls += 1
        result = decide(JobStatus.IN_PROGRESS, now, polls=polls, deadline=deadline, quality="low")
        if result.action != "wait":
            break
        now += result.next_poll_seconds
    assert result.final_status is JobStatus.EXPIRED and result.reason == "deadline_exceeded"
    assert now >= T0 + deadline  # it ran to the deadline: the poll bound did not cut it short
    assert polls * polling.HISTORY_EVENTS_PER_POLL + 10 < 25_000
    assert polls < polling.max_polls(deadline) <= 2_000
