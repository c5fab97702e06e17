"""Job state rules: forward only, and a final state never changes."""

import pytest

from imagejobs.domain.jobs import can_transition, predecessors
from imagejobs.domain.models import FINAL_STATUSES, JobStatus


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
def test_a_final_job_never_changes_state(final: JobStatus) -> None:
    assert not any(can_transition(final, other) for other in JobStatus)


def test_jobs_move_forward_only() -> None:
    assert can_transition(JobStatus.QUEUED, JobStatus.IN_PROGRESS)
    assert not can_transition(JobStatus.IN_PROGRESS, JobStatus.QUEUED)
    assert can_transition(JobStatus.QUEUED, JobStatus.FAILED)  # e.g. refused at submit


def test_settle_conditions_come_from_the_same_rules() -> None:
    assert set(predecessors(JobStatus.SUCCEEDED)) == {JobStatus.QUEUED, JobStatus.IN_PROGRESS}


def test_the_unit_tier_has_no_network() -> None:
    """The guard itself: a connection attempt fails at once, naming the address."""
    import socket

    from tests.unit.conftest import NetworkUsed

    with pytest.raises(NetworkUsed, match=r"127\.0\.0\.1"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
