"""The job store: the one DynamoDB table behind the flows' `Store` port (imagejobs.flows.ports),
one adapter per aggregate kept in it, each in its own module:

    job_records  jobs: created with their reservation, moved by conditional writes, settled once
    job_waits    a job's wait for its provider's webhook: the wait's task token, the provider's event
    pointers     names that lead to a job (a plain call's retries, a redelivered upload event)
    schedules    the provider's rate-cap turns and the latency histograms polling learns from
    gates        the admission gate: the jobs running upstream and the line waiting for a place
    breakers     failover: a provider's failed submissions of a model in a row, and its switches
    tenants      a tenant's webhook-signing secrets (its budgets and API keys: Tenants, there too)
"""

from __future__ import annotations

from imagejobs.adapters.breakers import Breakers
from imagejobs.adapters.gates import Gates
from imagejobs.adapters.job_records import JobRecords
from imagejobs.adapters.job_waits import JobWaits
from imagejobs.adapters.pointers import Pointers
from imagejobs.adapters.schedules import Schedules
from imagejobs.adapters.tenants import WebhookSecrets


class JobStore(JobRecords, JobWaits, Pointers, Schedules, Gates, Breakers, WebhookSecrets):
    """Every aggregate of the table over one table resource (made on first use)."""
