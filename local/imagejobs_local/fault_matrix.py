"""The fault matrix: each provider fault the simulated provider can serve, what the stack must make
of it, and a runner that checks it end to end through the offline stack.

Used by tests/integration/test_fault_matrix.py (asserts every row) and by `make faults`, which
prints the reliability table in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
import time
from dataclasses import dataclass
from decimal import Decimal

import httpx

from imagejobs.domain import clock
from imagejobs.domain.models import JobStatus
from imagejobs.flows.settle import outputs_prefix
from imagejobs_local.sim_behaviour import Latency
from imagejobs_local.stack import LocalStack, StackOptions


@dataclass(frozen=True)
class Fault:
    name: str
    markers: str  # prompt markers that make the simulated provider serve it
    status: str  # the job's expected final status
    reason: str | None  # the expected error code (None: no error)
    served: int | None = None  # how many faults the provider must have served (None: don't count)
    billed: bool = False  # whether the provider billed (then exactly one cost metric, else none)
    idempotency: str = "header"  # the ProviderIdempotency setting the row runs under
    basis: str | None = None  # the cost basis the job must end with (None: either)
    at_reservation: bool = False  # charged exactly its reservation, the excess recorded
    images: int | None = None  # how many images a succeeded job must have stored (None: any)


FAULTS: list[Fault] = [
    Fault("429 on submit, Retry-After", "[sim:submit_429=2] [sim:retry_after=1]", "succeeded", None, 2, True),
    Fault("429 on submit, no Retry-After", "[sim:submit_429=1] [sim:retry_after]", "succeeded", None, 1, True),
    Fault("429 on poll, Retry-After", "[sim:poll_429=2] [sim:retry_after=1]", "succeeded", None, 2, True),
    Fault("429 on poll, no Retry-After", "[sim:poll_429=1] [sim:retry_after]", "succeeded", None, 1, True),
    Fault("500/502/503 on submit", "[sim:submit_5xx=2]", "succeeded", None, 2, True),
    Fault("500/502/503 on poll", "[sim:poll_5xx=3]", "succeeded", None, 3, True),
    Fault("connection reset on submit", "[sim:submit_reset=1]", "succeeded", None, 1, True),
    Fault("connection reset on poll", "[sim:poll_reset=1]", "succeeded", None, 1, True),
    Fault("read timeout on submit", "[sim:submit_timeout=1]", "succeeded", None, 1, True),
    Fault("read timeout on poll", "[sim:poll_timeout=1]", "succeeded", None, 1, True),
    Fault("malformed JSON on submit", "[sim:submit_malformed=1]", "succeeded", None, 1, True),
    Fault("malformed JSON on poll", "[sim:poll_malformed=2]", "succeeded", None, 2, True),
    Fault("job ends failed", "[sim:fail]", "failed", "generation_failed"),
    Fault("job ends expired", "[sim:expire]", "expired", "job_expired"),
    Fault("job cancelled by the provider", "[sim:cancel]", "cancelled", "job_cancelled"),
    Fault("moderation_blocked at submit", "[sim:moderation]", "failed", "moderation_blocked"),
    Fault("moderation_blocked as a failed job", "[sim:moderated]", "failed", "moderation_blocked"),
    Fault("unsigned_urls answer 403", "[sim:download_403=99]", "failed", "download_failed", billed=True),
    Fault("unsigned_urls answer 404", "[sim:download_404=99]", "failed", "download_failed", billed=True),
    Fault("download cut short", "[sim:download_cut=1]", "succeeded", None, 1, True),
    Fault("slow download", "[sim:download_slow=1]", "succeeded", None, None, True),
    Fault("redirect within the provider", "[sim:download_redirect]", "succeeded", None, None, True),
    Fault("output URLs on another host", "[sim:download_elsewhere]", "failed", "download_refused", billed=True),
    Fault("redirect to another host", "[sim:download_redirect_elsewhere]", "failed", "download_refused", billed=True),
    Fault("job never finishes", "[sim:never]", "expired", "deadline_exceeded"),
    # A misbehaving provider (issue #21): its word moves no money past what was checked.
    Fault("usage with negative counts", "[sim:evil_usage_negative]", "succeeded", None, billed=True, basis="per_image"),
    Fault("usage past the reservation", "[sim:evil_usage_dear]", "succeeded", None, billed=True, at_reservation=True),
    Fault("usage of a trillion tokens", "[sim:evil_usage_huge]", "succeeded", None, billed=True, basis="per_image"),
    Fault("usage counts as strings", "[sim:evil_usage_strings]", "succeeded", None, billed=True, basis="per_image"),
    Fault("usage counts of 1e40", "[sim:evil_usage_float]", "succeeded", None, billed=True, basis="per_image"),
    Fault("200 URLs for 2 images", "[sim:evil_extra_urls]", "succeeded", None, billed=True, images=2),
    Fault("an SVG with a script as the image", "[sim:evil_not_image]", "failed", "output_refused", billed=True),
    Fault("a 60 MB image", "[sim:evil_huge_output]", "failed", "output_refused", billed=True),
    # one output stored, the next refused: the failure removes the first (finalize's s3:DeleteObject)
    Fault("the second image is not one", "[sim:evil_partial]", "failed", "output_refused", billed=True),
    Fault("its error echoes the key", "[sim:fail] [sim:evil_echo_key]", "failed", "generation_failed"),
    Fault("timestamps of inf and NaN", "[sim:evil_bad_times]", "succeeded", None, billed=True),
    Fault("succeeded, then in_progress", "[sim:evil_regress]", "succeeded", None, billed=True),
    # With ProviderIdempotency=none (the template's default) an unknown outcome is never re-sent:
    # the job ends failed and nothing is charged; the provider may have billed a read timeout.
    # An error answer is a definite "not taken": that one is sent again under either setting.
    *[
        Fault(f"{name} on submit, no idempotency", markers, status, reason, served, billed, idempotency="none")
        for name, markers, status, reason, served, billed in (
            ("read timeout", "[sim:submit_timeout=1]", "failed", "submission_unknown", 1, False),
            ("connection reset", "[sim:submit_reset=1]", "failed", "submission_unknown", 1, False),
            ("malformed JSON", "[sim:submit_malformed=1]", "failed", "submission_unknown", 1, False),
            ("500/502/503", "[sim:submit_5xx=2]", "succeeded", None, 2, True),
        )
    ],
]


@dataclass
class Outcome:
    fault: Fault
    job_id: str
    status: str
    reason: str | None
    served: int
    provider_calls: int
    submissions: int
    cost_metrics: int
    consistent: bool  # the record's outputs are exactly what the bucket holds for the job
    running_executions: int
    lost: bool
    charged: Decimal = Decimal(0)  # the job's cost
    spent: Decimal = Decimal(0)  # what its tenant's budget day holds (the row's own tenant: this job only)
    has_images: bool = False  # outputs recorded and stored
    reserved: Decimal = Decimal(0)  # what the job reserved: the most it may be charged
    basis: str | None = None
    excess: Decimal = Decimal(0)  # what the provider's report priced beyond the reservation
    images: int = 0
    leaks: bool = False  # the provider's key shows in what a tenant sees of the job
    open_uploads: int = 0  # multipart uploads left unfinished under the job's prefix (each is billed storage)

    @property
    def as_expected(self) -> bool:
        fault = self.fault
        return (
            not self.lost
            and self.status == fault.status
            and self.reason == fault.reason
            and (fault.served is None or self.served == fault.served)
            and self.submissions <= 1
            and self.cost_metrics == (1 if fault.billed else 0)
            and self.consistent
            and self.running_executions == 0
            and Decimal(0) <= self.charged <= self.reserved
            and (fault.basis is None or self.basis == fault.basis)
            and (not fault.at_reservation or (self.charged == self.reserved and self.excess > 0))
            and (fault.images is None or self.images == fault.images)
            and not self.leaks
            and self.open_uploads == 0
        )


def run(stack: LocalStack, fault: Fault, timeout: float = 60) -> Outcome:
    """One row, as a tenant of its own: what its budget holds afterwards is this job's doing alone."""
    tenant = "fault-" + hashlib.sha256(fault.name.encode()).hexdigest()[:12]
    api_key = "sk-" + secrets.token_hex(16)
    stack.tenants.add_key(api_key, tenant, clock.now(), name="fault matrix")
    if fault.idempotency != "header":  # the simulator's own guarantee is the stack's default
        with stack.function_settings("SubmitFunction", PROVIDER_IDEMPOTENCY=fault.idempotency):
            return _run(stack, fault, timeout, api_key)
    return _run(stack, fault, timeout, api_key)


def _run(stack: LocalStack, fault: Fault, timeout: float, api_key: str) -> Outcome:
    client = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    answer = client.post(
        "/v1/images/generations",
        params={"async": "true"},
        json={"prompt": f"{fault.markers} fault matrix: {fault.name}", "quality": "low", "n": 2},
    )
    answer.raise_for_status()
    job_id = answer.json()["id"]
    deadline = time.monotonic() + timeout
    record = stack.store.get(job_id)
    while (record is None or not record.status.final) and time.monotonic() < deadline:
        time.sleep(0.05)
        record = stack.store.get(job_id)
    lost = record is None or not record.status.final
    running = _running_executions(stack, job_id, wait=5.0)
    stored: set[str] = set()
    if record is not None:
        listed = stack.client("s3").list_objects_v2(
            Bucket=stack.outputs["ResultsBucketName"], Prefix=outputs_prefix(record)
        )
        stored = {item["Key"] for item in listed.get("Contents", [])}
    recorded = {output.key for output in record.outputs} if record else set()
    open_uploads = 0
    if record is not None:
        multipart = stack.client("s3").list_multipart_uploads(
            Bucket=stack.outputs["ResultsBucketName"], Prefix=outputs_prefix(record)
        )
        open_uploads = len(multipart.get("Uploads", []))
    metrics = stack.job_metrics(job_id)
    provider = stack.provider
    return Outcome(
        fault=fault,
        job_id=job_id,
        status=record.status.value if record else "missing",
        reason=record.error.code if record and record.error else None,
        served=provider.faults_served(job_id),
        provider_calls=sum(n for (key, _), n in provider.stats.calls.items() if key == job_id),
        submissions=provider.stats.submissions[job_id],
        cost_metrics=sum(1 for document in metrics if "JobCostUSD" in document),
        consistent=stored == recorded and (record is None or record.status is JobStatus.SUCCEEDED or not stored),
        running_executions=running,
        lost=lost,
        charged=Decimal(record.cost.amount) if record and record.cost else Decimal(0),
        spent=stack.tenants.spent(record.tenant, record.budget_day) if record and record.budget_day else Decimal(0),
        has_images=bool(record and record.outputs) and stored == recorded,
        reserved=Decimal(record.reserved_usd or 0) if record else Decimal(0),
        basis=record.cost.basis if record and record.cost else None,
        excess=Decimal(record.cost_excess_usd or 0) if record else Decimal(0),
        images=len(record.outputs) if record else 0,
        leaks=provider.api_key in client.get(f"/v1/jobs/{job_id}").text,
        open_uploads=open_uploads,
    )


def _running_executions(stack: LocalStack, job_id: str, wait: float) -> int:
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + wait
    while True:
        listed = sfn.list_executions(stateMachineArn=stack.state_machine_arn, statusFilter="RUNNING")["executions"]
        running = sum(1 for execution in listed if execution["name"].startswith(job_id))
        if running == 0 or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| fault | final state | reason | faults served / provider calls | duplicate submissions "
        "| cost metrics | lost |",
        "|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes:
        mark = "" if outcome.as_expected else " **(unexpected)**"
        lines.append(
            f"| {outcome.fault.name} | {outcome.status}{mark} | {outcome.reason or '-'} | "
            f"{outcome.served} / {outcome.provider_calls} | {max(0, outcome.submissions - 1)} | "
            f"{outcome.cost_metrics} | {'yes' if outcome.lost else '0'} |"
        )
    return "\n".join(lines)


TEST_OPTIONS = {
    "time_scale": 0.005,
    "latency": Latency(low=30, high=60),
    "parameters": {"JobDeadlineSeconds": "1200", "ProviderTimeoutSeconds": "4"},
}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    with LocalStack(StackOptions(**TEST_OPTIONS)) as stack:  # type: ignore[arg-type]
        outcomes = [run(stack, fault) for fault in FAULTS]
    print(table(outcomes))
    return 0 if all(outcome.as_expected for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
