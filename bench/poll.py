"""`make bench-poll`: poll strategies side by side on provider latency traces (virtual clock).

Each trace is a list of generation latencies (seconds from submission to the provider finishing).
The fixed strategies call the status step every N seconds. "ours" replays the real schedule
(imagejobs.domain.polling: first wait, holding calls, intervals) with the window learned the way the
stack learns it: a histogram per kind of job (polling.bucket_of, as finalize records it) filled
by earlier jobs of the same trace, then polling.window() as submit reads it. "ours, no history"
is the same with the priors only. Nothing sleeps: time is arithmetic.

Printed per strategy: status calls per job (mean, p95), detection delay (seconds from the
provider finishing to our noticing; mean, p95), provider GETs per job, orchestration USD per job
(pricing.orchestration_cost: transitions, Lambda requests and GB-seconds, holding included, and
the other services' share as bench/costs.py counts it) and that as a share of the cheapest
catalog image's price. Then the levers, priced both ways: how long a call holds against the
status function's memory, on every trace.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from imagejobs.domain import polling, pricing

JOBS = 2000
HISTORY = 500  # earlier jobs of the same kind the window is learned from
DEADLINE = 900.0
CALL_SECONDS = 0.3  # time a status call and its transitions take, provider round trip included
# The levers the sweep prices: HOLD_SECONDS (20: the schedule before; 0 would be a Wait state per
# look), and the status function's memory in GB (256, 160 and 128 MB).
HOLDS = (20, 60, 240)
MEMORIES = ("0.25", "0.15625", "0.125")


@dataclass(frozen=True)
class Job:
    latency: float
    quality: str


@dataclass(frozen=True)
class Outcome:
    calls: int
    delay: float
    checks: int
    held: float


def fixed(every: float) -> Callable[[Job], Outcome]:
    def run(job: Job) -> Outcome:
        calls = max(1, math.ceil(job.latency / every))
        return Outcome(calls=calls, delay=calls * every - job.latency, checks=calls, held=0.0)

    return run


def ours(windows: dict[str, polling.Window]) -> Callable[[Job], Outcome]:
    """The stack's schedule: polling.first_wait_seconds, hold_seconds, next_interval, as
    flows.poll runs them (a call checks, then every CHECK_EVERY_SECONDS while it holds)."""
    step = polling.CHECK_EVERY_SECONDS

    def run(job: Job) -> Outcome:
        win = windows[job.quality]
        elapsed = float(polling.first_wait_seconds(win))
        calls = checks = 0
        held = 0.0
        while True:
            calls += 1
            if elapsed >= DEADLINE:  # expired: counted at the deadline
                return Outcome(calls=calls, delay=DEADLINE - job.latency, checks=checks + 1, held=held)
            started = elapsed
            hold = polling.hold_seconds(elapsed, win, DEADLINE - elapsed)
            while True:
                checks += 1
                if elapsed >= job.latency:
                    delay, spent = elapsed - job.latency, held + elapsed - started
                    return Outcome(calls=calls, delay=delay, checks=checks, held=spent)
                if elapsed + step > started + hold:
                    break
                elapsed += step
            held += elapsed - started
            # a call takes time too (invoke, provider round trip): never zero between looks
            elapsed += max(CALL_SECONDS, polling.next_interval(elapsed, win))

    return run


def learned_windows(trace: Callable[[random.Random], Job], rng: random.Random) -> dict[str, polling.Window]:
    histograms: dict[str, Counter[int]] = {}
    for _ in range(HISTORY * 3):
        job = trace(rng)
        histograms.setdefault(job.quality, Counter())[polling.bucket_of(job.latency)] += 1
    return {quality: polling.window(quality, counts) for quality, counts in histograms.items()}


def prior_windows() -> dict[str, polling.Window]:
    return {quality: polling.window(quality) for quality in polling.PRIOR_WINDOWS}


TRACES: dict[str, Callable[[random.Random], Job]] = {
    "uniform 30-180 s": lambda rng: Job(rng.uniform(30, 180), "medium"),
    "lognormal, median 60 s": lambda rng: Job(min(DEADLINE - 1, rng.lognormvariate(math.log(60), 0.5)), "medium"),
    "quality mix (low 40% ~25 s, medium 40% ~60 s, high 20% ~110 s)": lambda rng: (
        lambda quality: Job(
            rng.lognormvariate(math.log({"low": 25, "medium": 60, "high": 110}[quality]), 0.35), quality
        )
    )(rng.choices(["low", "medium", "high"], weights=[4, 4, 2])[0]),
}


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def measure(strategy: Callable[[Job], Outcome], jobs: list[Job]) -> dict[str, float]:
    outcomes = [strategy(job) for job in jobs]
    calls = [float(o.calls) for o in outcomes]
    delays = [o.delay for o in outcomes]
    usd = [pricing.orchestration_cost(o.calls, held_seconds=o.held) for o in outcomes]
    return {
        "calls": statistics.fmean(calls),
        "calls_p95": p95(calls),
        "delay": statistics.fmean(delays),
        "delay_p95": p95(delays),
        "checks": statistics.fmean(o.checks for o in outcomes),
        "usd": float(sum(usd, Decimal(0)) / len(usd)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    from bench.costs import catalog_prices

    (cheap_model, cheap_quality), cheapest = min(catalog_prices().items(), key=lambda kv: kv[1])
    print(f"# poll strategies, {args.jobs} jobs per trace, seed {args.seed}, virtual clock")
    print(f"# share: of the cheapest catalog image, {cheap_model} {cheap_quality} (${cheapest})")
    print(
        f"# ours: hold {polling.HOLD_SECONDS} s per call checking every {polling.CHECK_EVERY_SECONDS} s inside "
        f"the {polling.WINDOW_QUANTILES[0]:.0%}-{polling.WINDOW_QUANTILES[1]:.0%} latency window; "
        f"status function {pricing.price_table()['aws']['status_memory_gb']} GB"
    )
    failures = 0
    for name, trace in TRACES.items():
        rng = random.Random(args.seed)
        windows = learned_windows(trace, rng)
        jobs = [trace(rng) for _ in range(args.jobs)]
        results = {
            "fixed 5 s": measure(fixed(5), jobs),
            "fixed 10 s": measure(fixed(10), jobs),
            "fixed 60 s": measure(fixed(60), jobs),
            "ours, no history": measure(ours(prior_windows()), jobs),
            "ours": measure(ours({**prior_windows(), **windows}), jobs),
        }
        print(f"\n## {name}")
        learned = ", ".join(f"{q} {w.start:.0f}-{w.end:.0f} s" for q, w in sorted(windows.items()))
        print(f"learned windows: {learned}\n")
        print(
            "| strategy | status calls mean / p95 | detection delay mean / p95 (s) | provider GETs | "
            "orchestration $/job | share |"
        )
        print("|---|---|---|---|---|---|")
        for strategy, r in results.items():
            shares = f"{100 * r['usd'] / float(cheapest):.2f}%"
            print(
                f"| {strategy} | {r['calls']:.1f} / {r['calls_p95']:.0f} | {r['delay']:.1f} / {r['delay_p95']:.1f} | "
                f"{r['checks']:.1f} | ${r['usd']:.6f} | {shares} |"
            )
        mine, f5, f10 = results["ours"], results["fixed 5 s"], results["fixed 10 s"]
        targets = {
            "fewer calls than fixed 10 s, lower mean delay": (
                mine["calls"] < f10["calls"] and mine["delay"] < f10["delay"]
            ),
            "<= 1/3 of fixed 5 s's calls, p95 delay < 10 s": (
                mine["calls"] <= f5["calls"] / 3 and mine["delay_p95"] < 10
            ),
            "<= 5% of the cheapest image": mine["usd"] <= 0.05 * float(cheapest),
        }
        for target, met in targets.items():
            failures += not met
            print(f"- target: {target}: {'met' if met else 'NOT MET'}")
    levers(args.jobs, args.seed, float(cheapest))
    return 0 if failures == 0 else 1


def levers(count: int, seed: int, cheapest: float) -> None:
    """ "ours" again with other holds and status memory sizes: the hold against the Wait state
    (a shorter hold means more Wait, Task and Choice cycles), priced both ways."""
    table = pricing.price_table()["aws"]
    hold, memory = polling.HOLD_SECONDS, table["status_memory_gb"]
    heading = "levers: share of the cheapest image (calls per job), by hold and status memory"
    print(f"\n## {heading}, {count} jobs per trace")
    print("| hold s | status MB | " + " | ".join(TRACES) + " |")
    print("|---|---|" + "---|" * len(TRACES))
    try:
        for polling.HOLD_SECONDS in HOLDS:
            for table["status_memory_gb"] in MEMORIES:
                cells = []
                for trace in TRACES.values():
                    rng = random.Random(seed)
                    windows = learned_windows(trace, rng)
                    r = measure(ours({**prior_windows(), **windows}), [trace(rng) for _ in range(count)])
                    cells.append(f"{100 * r['usd'] / cheapest:.2f}% ({r['calls']:.1f})")
                mb = round(float(table["status_memory_gb"]) * 1024)
                print(f"| {polling.HOLD_SECONDS} | {mb} | " + " | ".join(cells) + " |")
    finally:
        polling.HOLD_SECONDS, table["status_memory_gb"] = hold, memory


if __name__ == "__main__":
    raise SystemExit(main())
