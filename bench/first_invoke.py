"""`make bench` (and, small, `make test`): a cold start is init and the first invocation.

Time moved out of import (a lazy import, a validator built on first use) is not time saved if
the first call pays it. So each handler runs as Lambda starts it, in a fresh isolated
interpreter (build_check.isolated: only the function's `sam build` folder, its layer and the
runtime's boto3), importing the module (init) and then handling one event (the first invoke),
against the offline stack in server mode: moto on 127.0.0.1 (AWS_ENDPOINT_URL) and the simulated
provider, with the function's deployed environment.

The events are the first ones each function got in one real job (an async submission polled to
its end through the stack's gateway), recorded as they arrived, and a scheduled event for the
sweeper. They are replayed once the job is over: the API's (the submission) makes a new job, but
the paths that find their work done (submit, status, finalize, notify) stop early, so the
first-invoke column is a lower bound for those; it does pay what every first call pays (the
event and the job record validated, the AWS clients' first requests, the provider's secret).
Both phases in CPU and wall seconds of the child.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / ".aws-sam" / "build"
FINAL = ("succeeded", "failed", "cancelled", "expired")
FULL_VCPU_MB = 1769  # "At 1,769 MB, a function has the equivalent of one vCPU" (configuration-memory.html)
SCHEDULED_EVENT = {"version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}

COLD_START = """
import importlib, json, sys, time
paths, module_name, attribute = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
event, function = json.loads(sys.argv[4]), json.loads(sys.argv[5])
sys.path[:0] = paths


class Context:  # what Lambda hands a handler
    function_name = function["name"]
    function_version = "$LATEST"
    invoked_function_arn = function["arn"]
    memory_limit_in_mb = function["memory"]
    aws_request_id = "first-invoke"
    log_group_name = "/aws/lambda/" + function["name"]
    log_stream_name = "bench"
    started = time.monotonic()

    def get_remaining_time_in_millis(self):
        return int((function["timeout"] - (time.monotonic() - self.started)) * 1000)


cpu, wall = time.process_time(), time.perf_counter()
handler = getattr(importlib.import_module(module_name), attribute)
init_cpu, init_wall = time.process_time() - cpu, time.perf_counter() - wall
cpu, wall = time.process_time(), time.perf_counter()
try:
    handler(event, Context())
    outcome = "ok"
except Exception as exc:  # a replay may meet a state it refuses: timed all the same, and named
    outcome = type(exc).__name__
print(json.dumps({"init": [init_cpu, init_wall], "invoke": [time.process_time() - cpu, time.perf_counter() - wall],
                  "outcome": outcome}))
"""


def record_first_events(stack: Any, time_scale: float) -> dict[str, Any]:
    """One async job through the gateway, polled to its end; the first event of each function."""
    from imagejobs_local import lambdas

    first: dict[str, Any] = {}
    original = lambdas._run

    def recording(function: Any, code: Any, event: Any) -> Any:
        # S3 tests a new notification with a message of its own (s3:TestEvent): not the job's
        if "s3:TestEvent" not in json.dumps(event):
            first.setdefault(function.function_name, copy.deepcopy(event))
        return original(function, code, event)

    lambdas._run = recording
    try:
        client = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=60)
        job = client.post(
            "/v1/images/generations", params={"async": "true"}, json={"prompt": "first invoke", "quality": "low"}
        ).json()
        deadline = time.monotonic() + 120
        while job.get("status") not in FINAL and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.get(f"/v1/jobs/{job['id']}").json()
        time.sleep(20 * time_scale + 0.5)  # the job's event and webhook (notify)
    finally:
        lambdas._run = original
    if job.get("status") != "succeeded":
        raise RuntimeError(f"the recorded job ended {job.get('status')}: {job.get('error')}")
    return first


def measure(runs: int) -> list[tuple[str, dict[str, Any]]]:
    from imagejobs_local import build_check
    from imagejobs_local.sim_behaviour import Latency
    from imagejobs_local.stack import LocalStack, StackOptions

    time_scale = 0.05
    _, built = build_check.built_functions(BUILD_DIR, {})
    sdk = build_check.runtime_sdk()
    rows: list[tuple[str, dict[str, Any]]] = []
    with LocalStack(StackOptions(server=True, time_scale=time_scale, latency=Latency(kind="zero"))) as stack:
        events = record_first_events(stack, time_scale)
        lam = stack.client("lambda")
        assert stack.deployment is not None
        names = stack.deployment.function_names
        base_env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            **{name: os.environ[name] for name in os.environ if name.startswith(("AWS_", "IMAGEJOBS_"))},
        }
        for function in built:
            name = names[function.logical_id]
            event = events.get(name, SCHEDULED_EVENT if function.logical_id == "SweeperFunction" else None)
            if event is None:
                rows.append((function.logical_id, {"outcome": "no event in the recorded job"}))
                continue
            config = lam.get_function_configuration(FunctionName=name)
            variables = config.get("Environment", {}).get("Variables", {})
            env = {**base_env, **{key: str(value) for key, value in variables.items()}}
            described = {
                "name": name,
                "arn": config["FunctionArn"],
                "memory": config["MemorySize"],
                "timeout": config["Timeout"],
            }
            module, _, attribute = function.handler.rpartition(".")
            samples = []
            for _ in range(runs):
                answer = build_check.isolated(
                    COLD_START,
                    function.path(sdk),
                    env,
                    module,
                    attribute,
                    json.dumps(event if not isinstance(event, str) else json.loads(event)),
                    json.dumps(described),
                )
                answer.check_returncode()
                samples.append(json.loads(answer.stdout.strip().splitlines()[-1]))
            rows.append(
                (
                    function.logical_id,
                    {
                        key: [statistics.median(sample[key][i] for sample in samples) for i in (0, 1)]
                        for key in ("init", "invoke")
                    }
                    | {"outcome": samples[-1]["outcome"], "memory": config["MemorySize"]},
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if not (BUILD_DIR / "template.yaml").exists():
        print("## init + first invoke: no .aws-sam/build (run make build first)")
        return 1
    rows = measure(args.runs)
    print(f"\n## init + first invoke, fresh processes from {BUILD_DIR.relative_to(ROOT)}, median of {args.runs}")
    print(
        "| handler | init CPU / wall ms | first invoke CPU / wall ms | cold start wall ms | "
        "on Lambda, est. ms | replayed event |"
    )
    print("|---|---|---|---|---|---|")
    failed = 0
    for logical_id, row in rows:
        if "init" not in row:
            failed += 1
            print(f"| {logical_id} | | | | {row['outcome']} |")
            continue
        (init_cpu, init_wall), (call_cpu, call_wall) = row["init"], row["invoke"]
        # Init on unthrottled vCPUs; the invocation's CPU part at memory / 1,769 MB of one, its waiting alike.
        on_lambda = init_wall + call_cpu * FULL_VCPU_MB / max(row["memory"], 1) + max(0.0, call_wall - call_cpu)
        print(
            f"| {logical_id} | {init_cpu * 1000:.0f} / {init_wall * 1000:.0f} | {call_cpu * 1000:.0f} / "
            f"{call_wall * 1000:.0f} | {(init_wall + call_wall) * 1000:.0f} | {on_lambda * 1000:.0f} "
            f"({row['memory']} MB) | {row['outcome']} |"
        )
    print(
        f"(measured at full CPU; 'on Lambda' runs init so and the first invoke's CPU at memory / {FULL_VCPU_MB} MB "
        "of a vCPU: docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
