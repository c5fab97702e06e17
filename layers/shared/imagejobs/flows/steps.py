"""Steps every flow shares: a job loaded or JobNotFound, the fields a job closes with, and the
time a call keeps back from its function's timeout."""

from __future__ import annotations

from typing import Any

from imagejobs.domain import clock, pricing
from imagejobs.domain.errors import JobNotFound
from imagejobs.domain.jobs import JobRecord
from imagejobs.flows.ports import Deps

TIME_RESERVE_SECONDS = 5.0  # what a call keeps back from its timeout for the writes after its last request


def load(deps: Deps, job_id: str) -> JobRecord:
    """The job's record, or JobNotFound."""
    record = deps.store.get(job_id)
    if record is None:
        raise JobNotFound(f"job {job_id} does not exist")
    return record


def closing_fields(record: JobRecord) -> dict[str, Any]:
    """What every final state writes beside its own fields: when, and what the loop cost."""
    now = clock.now()
    return {
        "completed_at": now,
        "updated_at": now,
        "orchestration_cost_usd": str(pricing.orchestration_cost(record.polls + record.waits, record.held_seconds)),
    }
