"""`make bench` (small in `make test`): where 10,000 jobs a minute would stop first, and what moves it.

A model of the deployed stack, fed by what the offline stack did per job (bench/costs.py's meter:
every request counted, state transitions from each execution's history, each function's time),
run second by second against AWS's default quotas: Step Functions' token buckets, Lambda's
concurrent executions (each function's time per job times the job rate: Little's law), one DynamoDB
partition's 1,000 write units/s for the parts with one key (each open-jobs shard, the gate item),
API Gateway's account throttle and EventBridge's PutEvents. Prints each part's ceiling in jobs a
minute, the order in which they throttle at the target rate, and the setting that moves each.

Sources (defaults, per account and region): AWS Step Functions Developer Guide, "Quotas"
(StartExecution bucket 1,300, refill 300/s; StateTransition bucket 5,000, refill 1,500/s, in
us-east-1, us-west-2 and eu-west-1); AWS Lambda Developer Guide, "Lambda quotas" (1,000 concurrent
executions); Amazon DynamoDB Developer Guide, "Understanding DynamoDB warm throughput in different
scenarios" (1,000 write units/s per partition, global secondary indexes' too); Amazon API Gateway
Developer Guide, "Amazon API Gateway quotas" (10,000 requests/s, burst 5,000); Amazon EventBridge
User Guide, "Amazon EventBridge quotas" (PutEvents 10,000/s in us-east-1).

Assumptions, said where they are made: a function's time is what the offline meter bills (its
sleeps, such as the status function's hold while the provider works, in job seconds; its work in
real seconds on this machine). Every write to an open job
also writes the open-jobs index (it projects every attribute), so the index's units per job are
taken as the table's: an upper bound.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from imagejobs.adapters.job_records import OPEN_SHARDS

TARGET_PER_MINUTE = 10_000
GATE_ENTRY_BYTES = 60  # a holder or waiter in the gate item (imagejobs.adapters.gates)
PARTITION_WRITE_UNITS = 1_000


@dataclass(frozen=True)
class Part:
    name: str
    per_job: float  # what one job uses of it (requests, transitions, units, or concurrent seconds)
    refill: float  # per second (for concurrency: how many at once)
    bucket: float  # what can be spent above the refill before throttling starts
    lever: str

    def ceiling_per_minute(self) -> float:
        return math.inf if self.per_job <= 0 else 60 * self.refill / self.per_job

    def throttled_after(self, per_second: float, seconds: int) -> float | None:
        """Second by second at `per_second` jobs: when this part first throttles (None: never)."""
        if self.bucket <= 0:  # concurrency and partitions: no burst to spend
            return 0.0 if per_second * self.per_job > self.refill else None
        tokens = self.bucket
        for second in range(seconds):
            tokens += self.refill - per_second * self.per_job  # this second's refill, spent in it
            if tokens < 0:
                return float(second)
            tokens = min(self.bucket, tokens)
        return None


def function_seconds(result: dict[str, Any]) -> dict[str, float]:
    """Each function's seconds per job (GB-seconds / memory). The meter bills an invocation's time
    as Lambda would see it: its sleeps (the status function's hold) in job seconds, its work in
    real seconds, so these are what the deployed functions would hold."""
    memory: dict[str, int] = result["memory"]
    return {
        name: gb * 1024 / memory[name] / result["jobs"]
        for name, gb in result["meter"].gb_seconds.items()
        if memory.get(name)
    }


def parts(result: dict[str, Any], gate_entries: int) -> list[Part]:
    jobs, counted = result["jobs"], result["meter"]
    seconds = function_seconds(result)
    starts = counted.requests.get(("stepfunctions", "StartExecution"), 0) / jobs
    gate_units = math.ceil((100 + GATE_ENTRY_BYTES * gate_entries) / 1024)
    return [
        Part("StartExecution", starts, 300, 1_300, "Service Quotas raises the bucket's refill"),
        Part("state transitions", result["transitions"] / jobs, 1_500, 5_000, "Service Quotas; fewer polls per job"),
        Part(
            "Lambda concurrency (seconds held per job)",
            sum(seconds.values()),
            1_000,
            0,
            "Service Quotas raises it; a shorter status hold (polling.HOLD_SECONDS) trades it for transitions",
        ),
        Part(
            f"one open-jobs shard (of {OPEN_SHARDS})",
            counted.dynamodb_units["write"] / jobs / OPEN_SHARDS,
            PARTITION_WRITE_UNITS,
            0,
            "more shards (job_records.OPEN_SHARDS)",
        ),
        Part(
            f"the gate item (with ProviderMaxConcurrency set; {gate_entries} holders and waiters)",
            2 * gate_units,
            PARTITION_WRITE_UNITS,
            0,
            "ProviderMaxConcurrency 0 (no gate), or a gate item per tenant",
        ),
        Part("API Gateway", counted.api_requests / jobs, 10_000, 5_000, "Service Quotas; clients that poll less"),
        Part("EventBridge PutEvents", counted.events_entries / jobs, 10_000, 0, "Service Quotas"),
    ]


def report(result: dict[str, Any], target: int = TARGET_PER_MINUTE, gate_entries: int = 100) -> None:
    found = parts(result, gate_entries)
    print(
        "(each function's seconds per job: "
        + ", ".join(f"{name} {value:.1f}" for name, value in sorted(function_seconds(result).items()))
        + ")"
    )
    per_second, minutes = target / 60, 10
    print(f"\n## where {target:,} jobs a minute would stop first (a model fed by {result['jobs']} offline jobs)")
    print("| part | per job | default quota | ceiling, jobs/min | at the target |")
    print("|---|---|---|---|---|")
    order: list[tuple[float, str]] = []
    for part in found:
        after = part.throttled_after(per_second, minutes * 60)
        ceiling = part.ceiling_per_minute()
        where = "holds" if after is None else f"throttles after {after:.0f} s"
        if after is not None:
            order.append((after, part.name))
        quota = f"{part.refill:,.0f}" + (" at once" if part.name.startswith("Lambda") else "/s")
        if part.bucket:
            quota += f", bucket {part.bucket:,.0f}"
        shown = "unbounded" if math.isinf(ceiling) else f"{ceiling:,.0f}"
        print(f"| {part.name} | {part.per_job:.2f} | {quota} | {shown} | {where} |")
    if not order:
        print(f"- nothing throttles at {target:,} jobs a minute over {minutes} minutes")
        return
    print("- in the order they throttle: " + ", then ".join(name for _, name in sorted(order)))
    levers = {part.name: part.lever for part in found}
    for _, name in sorted(order):
        print(f"  - {name}: {levers[name]}")


def main(argv: list[str] | None = None) -> int:
    from bench import costs

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=9, help="offline jobs to measure per-job use from")
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--target", type=int, default=TARGET_PER_MINUTE, help="jobs a minute")
    parser.add_argument("--gate-entries", type=int, default=100, help="holders and waiters in the gate item")
    args = parser.parse_args(argv)
    report(costs.run("async", args.jobs, args.time_scale), args.target, args.gate_entries)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
