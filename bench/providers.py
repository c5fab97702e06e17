"""`make bench` (and, small, `make test`): what each provider path costs in calls, and how long a
job takes to be noticed once the provider has finished it.

One offline stack deployed as an operator would set it for OpenAI direct (ProviderRoutes
openai/gpt-image-2=openai, OpenAIWebhooks=true), and the same 60 s generation three ways:
TheRouter (polled: no webhooks to have), OpenAI direct with its webhook, and OpenAI direct with
the webhook dropped ([sim:webhook_drop]: the wait's fallback, then a poll), and a fourth lane with
OpenAI down (every submission answered 503) and ProviderFailover on for gpt-image-2: its jobs
fail there until the breaker opens (ProviderFailoverThreshold=2), then run at TheRouter. Per job: status
calls (polls), waits (AwaitProvider's token-keeping calls), provider GETs (the simulator's count,
finalize's included), the delay from the provider's finish to the job's end (job clock), and the
orchestration estimate the job records.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx

LANES = {  # lane: (model, prompt marker, the dialect that is down)
    "TheRouter, polled": ("openai/gpt-image-1", "", None),
    "OpenAI direct, webhook": ("openai/gpt-image-2", "", None),
    "OpenAI direct, webhook dropped": ("openai/gpt-image-2", " [sim:webhook_drop]", None),
    "OpenAI down, failed over": ("openai/gpt-image-2", "", "openai"),
}
LATENCY = 60  # job seconds of generation at the provider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10, help="jobs per lane")
    parser.add_argument("--time-scale", type=float, default=0.02)
    args = parser.parse_args(argv)
    from imagejobs_local.sim_behaviour import Latency
    from imagejobs_local.stack import LocalStack, StackOptions

    parameters = {
        "ProviderRoutes": "openai/gpt-image-2=openai",
        "OpenAIWebhooks": "true",
        "ProviderFailover": "openai/gpt-image-2",
        "ProviderFailoverThreshold": "2",
    }
    options = StackOptions(time_scale=args.time_scale, latency=Latency(kind="zero"), parameters=parameters)
    print(f"\n## calls per job and delay after the provider finished ({args.jobs} jobs a lane, {LATENCY} s each)")
    with LocalStack(options) as stack:
        client = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=60)
        functions = stack.client("lambda")
        env = functions.get_function_configuration(FunctionName=stack.function_name("StatusFunction"))["Environment"]
        fallback = int(env["Variables"]["OPENAI_WEBHOOK_FALLBACK_SECONDS"])
        print(f"{'lane':<32} {'polls':>6} {'waits':>6} {'GETs':>6} {'delay p50':>10} {'max':>7} {'orch. $/job':>12}")
        moved = ""
        for lane, (model, marker, down) in LANES.items():
            refused = stack.provider.stats.outage_refusals
            stack.provider.outage = {down} if down else set()
            rows = _lane(stack, client, model, marker, args.jobs)
            stack.provider.outage = set()
            polls, waits, gets, delays, cost, at_home = (list(column) for column in zip(*rows, strict=True))
            if down:
                refused = stack.provider.stats.outage_refusals - refused
                ran_there = len(rows) - sum(at_home)
                moved = f"{lane}: {ran_there:.0f} of {len(rows)} jobs ran at TheRouter, {refused} refused first"
            print(
                f"{lane:<32} {statistics.mean(polls):>6.1f} {statistics.mean(waits):>6.1f} "
                f"{statistics.mean(gets):>6.1f} {statistics.median(delays):>9.1f}s {max(delays):>6.1f}s "
                f"{statistics.mean(cost):>12.7f}"
            )
    print(moved)
    print(
        f"(GETs include finalize's own read of the job; a dropped webhook costs up to the fallback, {fallback} s,"
        " then one poll; delays are job seconds and include finalize storing the image, measured offline"
        f" where 1 real ms is {args.time_scale * 1000:g} job ms, so the runtime's own turn-taking shows in them)"
    )
    return 0


def _lane(stack: object, client: httpx.Client, model: str, marker: str, jobs: int) -> list[tuple[float, ...]]:
    from imagejobs.domain.jobs import split_provider_id
    from imagejobs_local.stack import LocalStack

    assert isinstance(stack, LocalStack)

    def one(index: int) -> tuple[float, ...]:
        body = {"prompt": f"bench {index} [sim:latency={LATENCY}]{marker}", "model": model, "quality": "low"}
        answer = client.post("/v1/images/generations", params={"async": "true"}, json=body)
        if answer.status_code != 202:
            raise RuntimeError(f"submit answered {answer.status_code}: {answer.text}")
        job_id = answer.json()["id"]
        deadline = time.monotonic() + 120
        record = stack.store.get(job_id)
        while record is None or not record.status.final:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench job {job_id} did not end")
            time.sleep(0.05)
            record = stack.store.get(job_id)
        if record.status.value != "succeeded" or record.provider_job_id is None or record.completed_at is None:
            raise RuntimeError(f"bench job ended {record.status.value}: {record.error}")
        upstream = stack.provider._jobs[split_provider_id(record.provider_job_id)[1]]
        gets = stack.provider.stats.calls[(job_id, "poll")]
        cost = Decimal(record.orchestration_cost_usd or "0")
        home = float(record.provider == "openai")
        return record.polls, record.waits, gets, record.completed_at - upstream.finishes_at, float(cost), home

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, range(jobs)))


if __name__ == "__main__":
    raise SystemExit(main())
