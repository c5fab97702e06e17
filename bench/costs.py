"""`make bench` (and, small, `make test`): what one job costs in AWS, counted, not assumed.

Jobs go through the offline stack (the real template, state machine and handlers, the simulated
provider taking its per-quality time) while imagejobs_local.meter counts every billed thing:
Lambda requests and GB-seconds per function, Step Functions transitions from each execution's
history, every SQS, S3, EventBridge, CloudWatch and Secrets Manager request, DynamoDB request
units from the items' sizes, and API Gateway requests. Priced from prices.json's "aws" table
(its _sources carry the pages and the date), per job, against every catalog model x quality.

Two ways in: TheRouter's async contract (submit, then GET the job every second until it ends,
as its example client does) and a plain call (an OpenAI SDK's images.generate, held open).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx

from bench import ceilings
from imagejobs.domain import pricing

FINAL = ("succeeded", "failed", "cancelled", "expired")
# S3's request tiers (S3 pricing page): PUT, COPY, POST, LIST; GET, HEAD and the rest; DELETE free.
S3_TIER1 = {
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
    "ListObjectsV2",
    "ListObjects",
    "ListMultipartUploads",
    "PutObjectTagging",
}
S3_FREE = {"DeleteObject", "DeleteObjects", "AbortMultipartUpload"}


def _async_job(client: httpx.Client, index: int, quality: str, time_scale: float) -> None:
    job = client.post(
        "/v1/images/generations", params={"async": "true"}, json={"prompt": f"cost bench {index}", "quality": quality}
    ).json()
    if "status" not in job:
        raise RuntimeError(f"submit answered {job}")
    while job["status"] not in FINAL:
        time.sleep(time_scale)  # every job second, as the README's curl loop polls (sleep 1)
        job = client.get(f"/v1/jobs/{job['id']}").json()


def _plain_call(client: httpx.Client, index: int, quality: str, time_scale: float) -> None:
    answer = client.post("/v1/images/generations", json={"prompt": f"cost bench plain {index}", "quality": quality})
    if answer.status_code != 200:
        raise RuntimeError(f"a plain call answered {answer.status_code}: {answer.text[:200]}")


def priced(meter: Any, transitions: int, memory_by_function: dict[str, int]) -> dict[str, Decimal]:
    """USD by line item for everything the meter counted."""
    aws = pricing.price_table()["aws"]

    def usd(amount: float, price: str) -> Decimal:
        return Decimal(repr(float(amount))) * Decimal(price)

    requests = meter.requests
    lines: dict[str, Decimal] = {}
    lines["Step Functions transitions"] = usd(transitions, aws["step_functions_per_transition"])
    lines["Lambda requests"] = usd(sum(meter.invocations.values()), aws["lambda_per_request"])
    for function, gb_seconds in sorted(meter.gb_seconds.items()):
        lines[f"Lambda GB-s {function} ({memory_by_function.get(function, 0)} MB)"] = usd(
            gb_seconds, aws["lambda_per_gb_second"]
        )
    sqs = sum(n for (service, _), n in requests.items() if service == "sqs")
    lines["SQS requests"] = usd(sqs, aws["sqs_per_request"])
    lines["DynamoDB write units"] = usd(meter.dynamodb_units["write"], aws["dynamodb_per_write_unit"])
    lines["DynamoDB read units"] = usd(meter.dynamodb_units["read"], aws["dynamodb_per_read_unit"])
    s3 = [(op, n) for (service, op), n in requests.items() if service == "s3" and op not in S3_FREE]
    lines["S3 PUT/LIST"] = usd(sum(n for op, n in s3 if op in S3_TIER1), aws["s3_per_put_copy_post_list"])
    lines["S3 GET/HEAD"] = usd(sum(n for op, n in s3 if op not in S3_TIER1), aws["s3_per_get_head"])
    lines["EventBridge events"] = usd(meter.events_entries, aws["eventbridge_per_event"])
    lines["CloudWatch Logs ingestion (EMF included)"] = usd(
        sum(meter.log_bytes.values()) / 1e9, aws["logs_per_gb_ingested"]
    )
    metric_calls = sum(n for (service, _), n in requests.items() if service in ("cloudwatch", "monitoring"))
    lines["CloudWatch PutMetricData"] = usd(metric_calls, aws["cloudwatch_per_metric_request"])
    secrets = sum(n for (service, _), n in requests.items() if service == "secretsmanager")
    lines["Secrets Manager calls"] = usd(secrets, aws["secrets_per_call"])
    lines["API Gateway requests"] = usd(meter.api_requests, aws["api_gateway_rest_per_request"])
    return lines


def catalog_prices() -> dict[tuple[str, str], Decimal]:
    out = {}
    for model, entry in pricing.price_table()["models"].items():
        if entry.get("lifecycle", {}).get("status") == "shut_down" or "per_image" not in entry:
            continue
        for quality in ("low", "medium", "high"):
            out[(model, quality)] = pricing.image_price(model, quality)
    return out


def run(way: str, jobs: int, time_scale: float) -> dict[str, Any]:
    from imagejobs_local import meter
    from imagejobs_local.sim_behaviour import Latency
    from imagejobs_local.stack import LocalStack, StackOptions

    qualities = ["low", "medium", "high"]
    with LocalStack(StackOptions(time_scale=time_scale, latency=Latency(kind="quality"))) as stack:
        client = httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=120
        )
        one = _async_job if way == "async" else _plain_call
        one(client, -1, "low", time_scale)  # every function's cold start once, outside the count
        sfn = stack.client("stepfunctions")
        before = {e["executionArn"] for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]}
        with meter.metering(stack.admin) as counted:
            with ThreadPoolExecutor(max_workers=min(jobs, 8)) as pool:
                list(pool.map(lambda i: one(client, i, qualities[i % 3], time_scale), range(jobs)))
            time.sleep(0.5)  # the last events' notify calls
        with meter.unmetered():
            executions = [
                e["executionArn"]
                for e in sfn.get_paginator("list_executions")
                .paginate(stateMachineArn=stack.state_machine_arn)
                .build_full_result()["executions"]
                if e["executionArn"] not in before
            ]
            transitions = sum(meter.transitions(sfn, arn) for arn in executions)
            lam = stack.client("lambda")
            memory = {
                name: int(lam.get_function_configuration(FunctionName=name)["MemorySize"])
                for name in counted.invocations
            }
        logical = {name: logical_id for logical_id, name in stack.deployment.function_names.items()}  # type: ignore[union-attr]
    counted.invocations = Counter({logical.get(n, n): v for n, v in counted.invocations.items()})
    counted.gb_seconds = {logical.get(n, n): v for n, v in counted.gb_seconds.items()}
    memory = {logical.get(n, n): v for n, v in memory.items()}
    lines = priced(counted, transitions, memory)
    return {
        "lines": lines,
        "jobs": jobs,
        "transitions": transitions,
        "meter": counted,
        "executions": len(executions),
        "memory": memory,
    }


def report(way: str, result: dict[str, Any]) -> Decimal:
    jobs = result["jobs"]
    lines: dict[str, Decimal] = result["lines"]
    total = sum(lines.values(), Decimal(0)) / jobs
    counted = result["meter"]
    print(f"\n## one job's AWS cost, {way} ({jobs} jobs, low/medium/high in turn, simulator latency by quality)")
    print(
        f"transitions per job {result['transitions'] / jobs:.1f}; Lambda invocations per job "
        + ", ".join(f"{name} {n / jobs:.1f}" for name, n in sorted(counted.invocations.items()))
    )
    units = counted.dynamodb_units
    print(f"DynamoDB request units per job: write {units['write'] / jobs:.1f}, read {units['read'] / jobs:.1f}")
    calls = sorted(counted.requests.items(), key=lambda kv: (kv[0][0], -kv[1]))
    print("AWS requests per job: " + ", ".join(f"{service} {op} {n / jobs:.1f}" for (service, op), n in calls))
    print("| line | USD per job | share |")
    print("|---|---|---|")
    for line, amount in sorted(lines.items(), key=lambda kv: -kv[1]):
        if amount:
            print(f"| {line} | {amount / jobs:.8f} | {100 * amount / jobs / total:.1f}% |")
    print(f"| **total** | **{total:.8f}** | |")
    # The client's own status GETs (TheRouter's example client asks every second): API Gateway
    # and the API function for each, priced apart, since how often to ask is the client's choice.
    aws = pricing.price_table()["aws"]
    gets = max(0, counted.api_requests - jobs)
    api_calls = counted.invocations.get("ApiFunction", 0)
    api_gb = next((amount for line, amount in lines.items() if line.startswith("Lambda GB-s ApiFunction")), Decimal(0))
    per_get = Decimal(aws["api_gateway_rest_per_request"]) + Decimal(aws["lambda_per_request"])
    per_get += api_gb / api_calls if api_calls else Decimal(0)
    if gets:
        print(
            f"- of which the client's {gets / jobs:.1f} status GETs per job (one a second): "
            f"{gets * per_get / jobs:.8f} ({per_get:.8f} each)"
        )
        total -= gets * per_get / jobs
        print(f"- the stack's own, without them: {total:.8f} per job")
    shares = [(100 * total / price, model, quality) for (model, quality), price in catalog_prices().items()]
    print(
        "share of the image's price: "
        + ", ".join(f"{m.split('/')[-1]} {q} {s:.1f}%" for s, m, q in sorted(shares, reverse=True))
    )
    worst = max(shares)
    verdict = "met" if worst[0] <= 5 else "NOT MET"
    print(f"- target <= 5% of the cheapest catalog image ({worst[1]} {worst[2]}): {verdict} ({worst[0]:.1f}%)")
    gb_seconds = sum(amount for line, amount in lines.items() if line.startswith("Lambda GB-s"))
    arm64_discount = 1 - Decimal(aws["lambda_arm64_per_gb_second"]) / Decimal(aws["lambda_per_gb_second"])
    arm64 = total - gb_seconds / jobs * arm64_discount
    cheapest = min(catalog_prices().values())
    print(f"- on arm64 (Architecture=arm64, GB-s 20% cheaper): {arm64:.8f} per job, {100 * arm64 / cheapest:.1f}%")
    # What the job's own orchestration estimate (pricing.orchestration_cost) takes for the other services:
    # all but transitions and Lambda, and API Gateway for the submission alone (a client's GETs are its own).
    services = sum(
        (amount for line, amount in lines.items() if not line.startswith(("Step Functions", "Lambda", "API Gateway"))),
        Decimal(0),
    ) / jobs + Decimal(aws["api_gateway_rest_per_request"])
    table = aws["per_job_services"]
    print(f"- other services per job, counted: {services:.8f} (prices.json per_job_services: {table})")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=9)
    parser.add_argument("--time-scale", type=float, default=0.05)
    args = parser.parse_args(argv)
    for way in ("async", "plain"):
        result = run(way, args.jobs, args.time_scale)
        report(way, result)
        if way == "async":  # the same jobs' counts, against AWS's quotas at 10,000 jobs a minute
            ceilings.report(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
