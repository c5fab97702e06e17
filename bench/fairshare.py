"""`make loadtest` (second part): fair share under one provider's limits, through the offline stack.

Three tenants share a provider that takes at most `--provider-limit` jobs at once (more are
answered 429), behind a stack whose ProviderMaxConcurrency is `--limit`, set above it on purpose,
so the gate must learn the real limit from the 429s. First the two light tenants send their jobs
alone; then one tenant floods `--flood` jobs and, once they are all queued, the light tenants send
theirs again. Prints each light tenant's p95 wait (accepted to sent, job seconds) alone and during
the flood, the most jobs the provider ever had at once against its limit, the 429s it answered, and
lost, stuck and duplicated jobs; exits 1 if any job was lost, stuck or sent twice."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from imagejobs.domain import clock
from imagejobs_local import meter
from imagejobs_local.sim_behaviour import Latency
from imagejobs_local.stack import LocalStack, StackOptions

TIME_SCALE = 0.02
LIGHT = ("light-a", "light-b")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)] if ordered else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flood", type=int, default=300, help="jobs the flooding tenant sends")
    parser.add_argument("--light", type=int, default=20, help="jobs each light tenant sends")
    parser.add_argument("--limit", type=int, default=12, help="ProviderMaxConcurrency")
    parser.add_argument("--provider-limit", type=int, default=8, help="what the provider takes at once (429 past it)")
    parser.add_argument("--timeout", type=float, default=900, help="real seconds to wait for the last job")
    parser.add_argument(
        "--time-scale", type=float, default=TIME_SCALE, help="real seconds per job second (1 = real time)"
    )
    parser.add_argument("--count", action="store_true", help="count what the stack does per job (slows it)")
    parser.add_argument(
        "--after-the-line", action="store_true", help="send the light tenants' jobs once the flood is all in line"
    )
    args = parser.parse_args(argv)
    options = StackOptions(
        time_scale=args.time_scale,
        latency=Latency(low=30, high=60),
        seed=11,
        provider_max_concurrent=args.provider_limit,
        parameters={"ProviderMaxConcurrency": str(args.limit), "JobDeadlineSeconds": "86400"},
    )
    print(
        f"fair share: {args.flood} jobs of one tenant against {args.light} each of {len(LIGHT)} others; "
        f"ProviderMaxConcurrency {args.limit}, the provider takes {args.provider_limit}; "
        f"time scale {args.time_scale} (a job minute is {60 * args.time_scale:.1f} s)"
    )
    counting = meter.metering if args.count else (lambda _: contextlib.nullcontext())
    with LocalStack(options) as stack, counting(stack.admin) as counted:
        keys = {tenant: stack.tenants.create_key(tenant, clock.now())[0] for tenant in ("flood", *LIGHT)}
        clients = {
            tenant: httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            for tenant, key in keys.items()
        }

        def send(tenant: str, index: int) -> str:
            body = {"prompt": f"{tenant} job {index}", "quality": "low"}
            answer = clients[tenant].post("/v1/images/generations", params={"async": "true"}, json=body)
            answer.raise_for_status()
            return str(answer.json()["id"])

        def send_all(tenants: list[tuple[str, int]]) -> dict[str, str]:
            with ThreadPoolExecutor(max_workers=16) as pool:
                ids = list(pool.map(lambda pair: send(*pair), tenants))
            return dict(zip(ids, (tenant for tenant, _ in tenants), strict=True))

        def finish(jobs: dict[str, str], deadline: float) -> None:
            # Every 2 s: only when to stop depends on it (the waits are the records' own times),
            # and reading hundreds of records four times a second loaded the offline DynamoDB that
            # the stack under test shares, slowing the very jobs being measured.
            waiting = set(jobs)
            while waiting and time.monotonic() < deadline:
                waiting = {job for job in waiting if not ((r := stack.store.get(job)) and r.status.final)}
                time.sleep(2.0)

        deadline = time.monotonic() + args.timeout
        light_jobs = [(tenant, index) for index in range(args.light) for tenant in LIGHT]
        alone = send_all(light_jobs)
        finish(alone, deadline)
        flood = send_all([("flood", index) for index in range(args.flood)])
        if args.after_the_line:
            # the light tenants come once every flood job is in the gate (or done): what is left of
            # their wait is the gate's own, not the submit queue's backlog ahead of them
            while time.monotonic() < deadline:
                unsent = set(flood) - set(stack.provider.stats.submissions)  # the simulator's own count
                if unsent <= set(stack.store.gate("provider").waiters):
                    break
                time.sleep(0.5)
        during = send_all(light_jobs)
        finish({**flood, **during}, deadline)
        records = {job: stack.store.get(job) for job in (*alone, *flood, *during)}
        stats = stack.provider.stats

    def waits(jobs: dict[str, str], tenant: str) -> list[float]:
        found = [records[job] for job, owner in jobs.items() if owner == tenant]
        return [r.submitted_at - r.created_at for r in found if r is not None and r.submitted_at is not None]

    for tenant in LIGHT:
        solo, shared = p95(waits(alone, tenant)), p95(waits(during, tenant))
        ratio = shared / solo if solo else float("inf")
        medians = statistics.median(waits(alone, tenant) or [0]), statistics.median(waits(during, tenant) or [0])
        print(
            f"{tenant}: p95 wait alone {solo:.0f} s, during the flood {shared:.0f} s ({ratio:.1f}x; job seconds; "
            f"p50 {medians[0]:.0f} -> {medians[1]:.0f} s)"
        )
    light = [r for job in during if (r := records[job]) is not None and r.submitted_at is not None]
    if light:
        first, last = min(r.created_at for r in light), max(r.submitted_at or 0.0 for r in light)
        ahead = sum(1 for job in flood if (r := records[job]) and r.submitted_at and first < r.submitted_at < last)
        print(f"while the light tenants' {len(light)} jobs waited, {ahead} of the flood's were sent")
    flood_waits = waits(flood, "flood")
    if flood_waits:
        print(f"flood: p50 wait {statistics.median(flood_waits):.0f} s, p95 {p95(flood_waits):.0f} s")
    if counted is not None:
        _print_counts(counted, max(1, len(records)))
    lost = sum(1 for r in records.values() if r is None)
    stuck = sum(1 for r in records.values() if r is not None and not r.status.final)
    failed = sum(1 for r in records.values() if r is not None and r.status.final and r.status.value != "succeeded")
    duplicates = sum(max(0, count - 1) for count in stats.submissions.values())
    print(
        f"provider peak concurrent jobs {stats.concurrent_jobs_peak} (it takes {args.provider_limit}, the gate "
        f"allows {args.limit}); 429s answered for concurrency: {stats.concurrency_refusals}"
    )
    print(
        f"jobs {len(records)}: failed {failed}; lost {lost} (must be 0), stuck {stuck} (must be 0), "
        f"duplicate provider submissions {duplicates} (must be 0)"
    )
    return 1 if lost or stuck or duplicates else 0


def _print_counts(counted: meter.Meter, jobs: int) -> None:
    """What the stack did per job (the meter's counts; the meter slows every DynamoDB call, so
    waits measured with it on are not the stack's)."""
    invoked = sorted(counted.invocations.items())
    calls = ", ".join(f"{name.split('-')[-1]} {count / jobs:.2f}" for name, count in invoked)
    print(f"per job: function invocations {calls}")
    updates = counted.requests.get(("dynamodb", "UpdateItem"), 0) / jobs
    print(
        f"per job: DynamoDB write units {counted.dynamodb_units['write'] / jobs:.1f}, read units "
        f"{counted.dynamodb_units['read'] / jobs:.1f}, UpdateItem calls {updates:.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
