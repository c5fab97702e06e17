"""Every provider fault, through the real template on moto: the right final state and reason,
retries within bounds, record and bucket in agreement, one cost metric only when billed, no
duplicate submission, no execution left running, nothing lost (local/imagejobs_local/fault_matrix.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imagejobs_local.fault_matrix import FAULTS, Fault, run
from imagejobs_local.stack import LocalStack


@pytest.mark.parametrize("fault", FAULTS, ids=[fault.name for fault in FAULTS])
def test_fault(stack: LocalStack, fault: Fault) -> None:
    outcome = run(stack, fault)

    assert not outcome.lost, f"job {outcome.job_id} never reached a final state"
    assert (outcome.status, outcome.reason) == (fault.status, fault.reason)
    if fault.served is not None:
        assert outcome.served == fault.served
    assert outcome.submissions <= 1
    assert outcome.cost_metrics == (1 if fault.billed else 0)
    assert outcome.consistent, "the job record and the bucket disagree about its outputs"
    assert outcome.running_executions == 0
    # Money (issue #15): charged only for images stored, or for a failure the provider billed; the
    # tenant's spend is exactly its one job's cost (nothing left reserved, nothing charged twice).
    if outcome.charged > 0:
        assert outcome.has_images or (fault.billed and outcome.status != "succeeded")
    assert outcome.spent == outcome.charged
    # A provider's word is checked before it moves money (issue #21): never below zero, never past
    # the job's reservation (the excess recorded), the basis the check chose, at most n images,
    # and its messages never show the operator's key.
    assert Decimal(0) <= outcome.charged <= outcome.reserved
    if fault.basis is not None:
        assert outcome.basis == fault.basis
    if fault.at_reservation:
        assert outcome.charged == outcome.reserved and outcome.excess > 0
    if fault.images is not None:
        assert outcome.images == fault.images
    assert not outcome.leaks
    # An output refused mid-way through a multipart upload (the 60 MB one) is aborted, not left
    # half-stored (finalize's s3:AbortMultipartUpload).
    assert outcome.open_uploads == 0
