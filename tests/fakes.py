"""In-memory fakes of the job logic's ports (imagejobs.flows.ports), for the unit tier: each keeps
what a test needs to look at, and keeps the one rule of its real adapter that the flows rely on
(a create or a settle is conditional: the second writer loses)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from imagejobs.domain import budget
from imagejobs.domain.admission import Gate
from imagejobs.domain.budget import Caps
from imagejobs.domain.errors import ProviderUnavailable, StaleTransition
from imagejobs.domain.failover import Breaker, Switch
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import (
    EditRequest,
    GenerationRequest,
    JobStatus,
    ObjectInfo,
    ObjectRef,
    Output,
    ProviderJob,
    UploadFile,
    WebhookState,
)
from imagejobs.domain.settings import Settings
from imagejobs.flows import ports
from imagejobs.flows.ports import Deps

SETTINGS = Settings.from_env(
    {
        "JOBS_TABLE": "t",
        "RESULTS_BUCKET": "b",
        "SUBMIT_QUEUE_URL": "q",
        "STATE_MACHINE_ARN": "arn:sm",
        "PROVIDER_BASE_URL": "https://p",
        "PROVIDER_SECRET_ID": "s",
    }
)


class FakeStore:
    """The job table: create and settle are conditional, like DynamoDB's; spend per tenant and
    period moves with reservations and charges in the same call."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobRecord] = {}
        self.spent: dict[tuple[str, str], Decimal] = {}
        self.settles_won = 0
        self.pointers: dict[str, str] = {}
        self.gates: dict[str, Gate] = {}
        self.breakers: dict[str, Breaker] = {}
        self.slowed: list[tuple[str, float]] = []  # (schedule, Retry-After) of each 429 under a rate cap

    def create(self, record: JobRecord, reservation: budget.Reservation | None = None) -> bool:
        if record.id in self.jobs:
            return False
        if reservation is not None:
            budget.check_fits(
                reservation, {p: self.spent.get((record.tenant, p), Decimal(0)) for _, p, _ in reservation.limits()}
            )
            for _, period, _ in reservation.limits():
                key = (record.tenant, period)
                self.spent[key] = self.spent.get(key, Decimal(0)) + reservation.amount
        self.jobs[record.id] = record
        return True

    def get(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)

    def settle(
        self, job_id: str, status: JobStatus, fields: dict[str, Any], charge: budget.Charge | None = None
    ) -> bool:
        record = self.jobs[job_id]
        if record.status.final:
            return False
        self.jobs[job_id] = JobRecord.model_validate({**record.model_dump(), **fields, "status": status})
        if charge is not None:
            for period in (charge.day, charge.month):
                key = (charge.tenant, period)
                self.spent[key] = self.spent.get(key, Decimal(0)) + charge.delta
        self.settles_won += 1
        return True

    def _update(self, job_id: str, **fields: Any) -> None:
        self.jobs[job_id] = self.jobs[job_id].model_copy(update=fields)

    def record_submission(
        self, job_id: str, provider_job_id: str, at: float, poll_window: dict[str, float] | None = None
    ) -> None:
        """DynamoDB's condition: only an open job, and only one provider id (JobStore.record_submission)."""
        record = self.jobs[job_id]
        if record.status.final or record.provider_job_id not in (None, provider_job_id):
            raise StaleTransition("final, or another provider id")
        self._update(job_id, provider_job_id=provider_job_id, submitted_at=at, poll_window=poll_window)

    def record_execution(self, job_id: str, execution_arn: str, at: float) -> None:
        self._update(job_id, execution_arn=execution_arn)

    def extend_caller_wait(self, job_id: str, until: float) -> None:
        record = self.jobs[job_id]
        if record.status.final or (record.caller_waits_until or 0.0) >= until:
            raise StaleTransition("final, or waited on longer already")
        self._update(job_id, caller_waits_until=until)

    def pointed_job(self, name: str) -> str | None:
        return self.pointers.get(name)

    def point(self, name: str, job_id: str, ttl: int) -> None:
        self.pointers[name] = job_id

    def record_task_token(self, job_id: str, token: str, at: float) -> JobRecord | None:
        record = self.jobs.get(job_id)
        if record is None:
            return None
        self.jobs[job_id] = record.model_copy(update={"task_token": token, "waits": record.waits + 1})
        return self.jobs[job_id]

    def record_provider_event(self, job_id: str, event: str, at: float) -> JobRecord | None:
        record = self.jobs.get(job_id)
        if record is None:
            return None
        update = {"provider_event": record.provider_event or event, "provider_events": record.provider_events + 1}
        self.jobs[job_id] = record.model_copy(update={**update, "provider_event_at": record.provider_event_at or at})
        return self.jobs[job_id]

    def mark_submitting(self, job_id: str, at: float, previous: float | None, provider: str) -> None:
        record = self.jobs[job_id]
        if record.provider_job_id is not None or record.submission_started_at != previous:
            raise StaleTransition("marked meanwhile")
        self._update(job_id, submission_started_at=at, submitting_to=provider)

    def clear_submitting(self, job_id: str, at: float) -> None:
        self._update(job_id, submission_started_at=None, submitting_to=None)

    def record_poll(
        self, job_id: str, provider_status: JobStatus, at: float, checks: int = 1, held: float = 0.0
    ) -> JobRecord:
        record = self.jobs[job_id]
        if record.status.final:
            raise StaleTransition("final")
        self._update(job_id, polls=record.polls + 1)
        return self.jobs[job_id]

    def latency_counts(self, kind: str) -> dict[int, float]:
        return {}

    def record_latency(self, kind: str, seconds: float) -> None:
        return None

    def list_jobs(
        self, tenant: str, *, limit: int, after: JobRecord | None = None, status: JobStatus | None = None
    ) -> tuple[list[JobRecord], bool]:
        mine = [job for job in self.jobs.values() if job.tenant == tenant and (status is None or job.status is status)]
        return mine[:limit], len(mine) > limit

    def open_jobs(self, limit: int = 500) -> list[JobRecord]:
        return [job for job in self.jobs.values() if not job.status.final][:limit]

    def record_resume(self, job_id: str, execution_arn: str, at: float) -> None:
        self._update(job_id, execution_arn=execution_arn, resumes=self.jobs[job_id].resumes + 1)

    def record_event_published(self, job_id: str, at: float) -> None:
        self._update(job_id, event_published_at=at)

    def record_webhook_attempt(self, job_id: str, attempt: dict[str, Any], state: WebhookState) -> None:
        record = self.jobs[job_id]
        self._update(job_id, webhook_attempts=[*record.webhook_attempts, attempt], webhook_state=state)

    def take_turn(self, name: str, interval_seconds: float, now: float) -> float:
        return 0.0

    def slow_down(self, name: str, now: float, hold_seconds: float) -> float:
        self.slowed.append((name, hold_seconds))
        return 2.0

    def gate(self, name: str) -> Gate:
        return self.gates.get(name, Gate())

    def write_gate(self, name: str, gate: Gate) -> bool:
        if self.gate(name).version != gate.version:
            return False  # another writer came first, as the table's condition says
        self.gates[name] = dataclasses.replace(gate, version=gate.version + 1)
        return True

    def breaker(self, name: str) -> Breaker:
        return self.breakers.get(name, Breaker())

    def write_breaker(self, name: str, breaker: Breaker) -> bool:
        if self.breaker(name).version != breaker.version:
            return False
        self.breakers[name] = dataclasses.replace(breaker, version=breaker.version + 1)
        return True

    def webhook_signing_secrets(self, tenant: str, new_secret: str, now: float) -> list[str]:
        return [new_secret]


class FakeQueue:
    """A queue that keeps what was sent (and each message's delay); `broken`: every send fails,
    as SQS unreachable would."""

    def __init__(self, *, broken: bool = False) -> None:
        self.broken = broken
        self.sent: list[str] = []
        self.sent_delays: list[int] = []  # each send's delay_seconds
        self.parked: list[tuple[str, str]] = []
        self.delays: list[int] = []  # each retry_after's seconds

    def send(self, job_id: str, delay_seconds: int = 0, tenant: str | None = None) -> None:
        if self.broken:
            raise ConnectionError("queue unreachable")
        self.sent.append(job_id)
        self.sent_delays.append(delay_seconds)

    def retry_after(self, receipt_handle: str, seconds: int) -> None:
        self.delays.append(seconds)

    def dead_letter(self, body: str, reason: str) -> None:
        self.parked.append((body, reason))


class FakeLoops:
    """Poll loops: started and stopped ones kept; an execution's status is `statuses[arn]` when the
    test says, else RUNNING until it is stopped."""

    def __init__(self, statuses: dict[str, str] | None = None) -> None:
        self.statuses = statuses or {}
        self.described: list[str] = []  # each status (DescribeExecution) asked
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.completed: list[tuple[str, dict[str, Any]]] = []  # (task token, output) of each wait ended
        self.ended_tokens: set[str] = set()  # waits that timed out or were ended

    def start(self, name: str, payload: dict[str, Any]) -> str:
        self.started.append(name)
        return f"arn:execution:{name}"

    def stop(self, execution_arn: str, cause: str) -> bool:
        self.stopped.append(execution_arn)
        return True

    def complete(self, task_token: str, output: dict[str, Any]) -> bool:
        if task_token in self.ended_tokens:
            return False  # SendTaskSuccess: TaskTimedOut
        self.ended_tokens.add(task_token)
        self.completed.append((task_token, output))
        return True

    def status(self, execution_arn: str) -> str | None:
        self.described.append(execution_arn)
        if execution_arn in self.statuses:
            return self.statuses[execution_arn]
        return None if execution_arn in self.stopped else "RUNNING"


class FakeProvider:
    """A provider whose jobs are what the test says: `jobs[provider id]` is what get/cancel answer.
    Each submit takes the next of `outcomes` (a provider job id, or an exception it raises), or
    makes `p_<n>` once they run out; with `refuse_submits`, a submit fails the test.

    Two providers for failover: a job's route is its model's in `routes` (else "therouter"), `other`
    (if set) makes any job too, a provider in `down` answers every submit with a 503, and `sent_to` lists where each
    submit went."""

    def __init__(
        self,
        *outcomes: str | Exception,
        refuse_submits: bool = False,
        other: str | None = None,
        routes: dict[str, str] | None = None,
    ) -> None:
        self.outcomes = list(outcomes)
        self.refuse_submits = refuse_submits
        self.jobs: dict[str, ProviderJob] = {}
        self.posts = 0
        self.cancels: list[str] = []
        self.other = other
        self.down: set[str] = set()
        self.sent_to: list[str] = []
        self.routes = routes or {}

    def provider_for(self, request: GenerationRequest) -> str:
        return self.routes.get(request.model or "", "therouter")

    def alternate(self, request: GenerationRequest, name: str) -> str | None:
        return next((p for p in ("therouter", self.other) if p and p != name), None)

    def submit(self, request: GenerationRequest, *, idempotency_key: str, provider: str | None = None) -> ProviderJob:
        if self.refuse_submits:
            raise AssertionError("the provider must not be called here")
        self.sent_to.append(provider or "therouter")
        if (provider or "therouter") in self.down:
            raise ProviderUnavailable("503 from the provider")
        self.posts += 1
        outcome = self.outcomes.pop(0) if self.outcomes else f"p_{self.posts}"
        if isinstance(outcome, Exception):
            raise outcome
        job = ProviderJob(id=outcome, status=JobStatus.QUEUED)
        self.jobs[job.id] = job
        return job

    def submit_edit(
        self,
        request: EditRequest,
        images: list[UploadFile],
        mask: UploadFile | None,
        *,
        idempotency_key: str,
        provider: str | None = None,
    ) -> ProviderJob:
        return self.submit(request, idempotency_key=idempotency_key, provider=provider)

    def get(self, provider_job_id: str) -> ProviderJob:
        return self.jobs[provider_job_id]

    def cancel(self, provider_job_id: str) -> ProviderJob | None:
        self.cancels.append(provider_job_id)
        job = self.jobs[provider_job_id]
        if job.status.final:
            return job
        self.jobs[provider_job_id] = job.model_copy(update={"status": JobStatus.CANCELLED})
        return self.jobs[provider_job_id]

    @contextmanager
    def download(self, url: str) -> Iterator[Iterator[bytes]]:
        yield iter([self.image])

    image = b""  # set below: a real 1024x1024 PNG, as finalize sniffs every output


class FakeResults:
    bucket = "results"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectRef:
        self.objects[key] = data
        return ObjectRef(bucket=self.bucket, key=key)

    def delete_prefix(self, prefix: str) -> int:
        gone = [key for key in self.objects if key.startswith(prefix)]
        for key in gone:
            del self.objects[key]
        return len(gone)

    def put_stream(self, key: str, chunks: Iterator[bytes], content_type: str, metadata: dict[str, str]) -> Output:
        self.objects[key] = b"".join(chunks)
        return Output(bucket=self.bucket, key=key, content_type=content_type, bytes=len(self.objects[key]))

    def presigned_url(self, key: str, ttl_seconds: int) -> str:
        return f"https://{self.bucket}.example/{key}?ttl={ttl_seconds}"

    def presigned_post(
        self, key: str, content_type: str, max_bytes: int, ttl_seconds: int
    ) -> tuple[str, dict[str, str]]:
        return f"https://{self.bucket}.example/", {"key": key}


class FakeObjects:
    def __init__(self, results: FakeResults) -> None:
        self.results = results

    def head(self, ref: ObjectRef) -> ObjectInfo:
        size = len(self.results.objects[ref.key])
        return ObjectInfo(size=size, etag=None, version_id=None, content_type="image/png", metadata={})

    def read(self, ref: ObjectRef) -> bytes:
        return self.results.objects[ref.key]

    def read_json(self, bucket: str, key: str) -> Any | None:
        return None


class FakeBudgets:
    def __init__(self, caps: Caps | None = None, weights: dict[str, int] | None = None) -> None:
        self._caps = caps or Caps()
        self.weights = weights or {}

    def caps(self, tenant: str) -> Caps:
        return self._caps

    def share_weight(self, tenant: str) -> int:
        return self.weights.get(tenant, 1)


class FakeMetrics:
    def __init__(self) -> None:
        self.settled: list[str] = []
        self.gates: list[tuple[int, int, int]] = []  # (limit in force, running, waiting) after each decision
        self.rates: list[float] = []  # the rate cap in force after each 429
        self.gate_models: list[str | None] = []  # the model of each gate_state (None: the provider's gate)
        self.switches: list[Switch] = []  # failover breakers opened and closed

    def job_settled(self, record: JobRecord, orchestration_cost_usd: Decimal) -> None:
        self.settled.append(record.id)

    def gate_state(self, limit: int, running: int, waiting: int, *, model: str | None = None) -> None:
        self.gates.append((limit, running, waiting))
        self.gate_models.append(model)

    def rate_state(self, submits_per_minute: float, *, model: str | None = None) -> None:
        self.rates.append(submits_per_minute)

    def provider_switch(self, switch: Switch) -> None:
        self.switches.append(switch)


class FakeWebhookUrls:
    """The real URL check (imagejobs.adapters.webhooks.check_url) with names resolved from a table
    instead of DNS: any name is public unless listed; an IP literal is itself."""

    def __init__(self, addresses: dict[str, list[str]] | None = None) -> None:
        self.addresses = addresses or {}
        self.checked: list[str] = []

    def _resolve(self, host: str, port: int) -> list[str]:
        return self.addresses.get(host, [host] if host[:1].isdigit() or ":" in host else ["93.184.216.34"])

    def check_url(self, url: str, *, allow_loopback: bool) -> None:
        from imagejobs.adapters import webhooks

        self.checked.append(url)
        webhooks.check_url(url, allow_loopback=allow_loopback, resolver=self._resolve)


@dataclass
class Fakes:
    """Every port faked, each under its own type (a test reads `fakes.store.jobs`, not a Protocol's
    duck); any one replaceable by keyword. `deps` is what the flows are called with."""

    settings: Settings = SETTINGS
    store: FakeStore = field(default_factory=lambda: FakeStore())
    queue: FakeQueue = field(default_factory=lambda: FakeQueue())
    loops: FakeLoops = field(default_factory=lambda: FakeLoops())
    provider: FakeProvider = field(default_factory=lambda: FakeProvider())
    results: FakeResults = field(default_factory=lambda: FakeResults())
    notices: FakeQueue = field(default_factory=lambda: FakeQueue())
    metrics: FakeMetrics = field(default_factory=lambda: FakeMetrics())
    budgets: FakeBudgets | None = field(default_factory=lambda: FakeBudgets())
    webhooks: FakeWebhookUrls = field(default_factory=lambda: FakeWebhookUrls())

    @property
    def objects(self) -> FakeObjects:
        return FakeObjects(self.results)

    @property
    def deps(self) -> Deps:
        return Deps(
            settings=self.settings,
            store=self.store,
            queue=self.queue,
            loops=self.loops,
            provider=self.provider,
            results=self.results,
            objects=self.objects,
            notices=self.notices,
            metrics=self.metrics,
            budgets=self.budgets,
            webhooks=self.webhooks,
        )


if TYPE_CHECKING:  # each fake is checked against the Protocol it stands for (make lint: mypy)
    _results = FakeResults()
    _conforms: tuple[
        ports.Store, ports.Queue, ports.Loops, ports.Provider, ports.Results, ports.Objects, ports.Budgets
    ] = (FakeStore(), FakeQueue(), FakeLoops(), FakeProvider(), _results, FakeObjects(_results), FakeBudgets())
    _conforms_too: tuple[ports.Metrics, ports.WebhookUrls] = (FakeMetrics(), FakeWebhookUrls())


def _png(width: int = 1024, height: int = 1024) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(out, "PNG")
    return out.getvalue()


FakeProvider.image = _png()
