"""`make bench`: numbers, no assertions.

1. Cold import time of each handler module in a fresh process, next to `import boto3` alone, with
   only what Lambda has: the layer's requirements (pip --target .venv/layer-site) plus boto3 as the
   python3.11 runtime provides it, and no site-packages of the dev venv (python -S).
2. Wall time for 20 concurrent generation jobs through the offline stack (HTTP in, images in S3)
   with zero provider latency.
3. Peak memory of finalize for 10 outputs of ~4.7 MB each (bench/finalize_memory.py).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench import finalize_memory

ROOT = Path(__file__).resolve().parents[1]
RUNS = 7
HANDLER_ENV = {
    "JOBS_TABLE": "bench-jobs",
    "RESULTS_BUCKET": "bench-results",
    "SUBMIT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:bench",
    "PROVIDER_BASE_URL": "https://provider.invalid",
    "PROVIDER_SECRET_ID": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
}
IMPORT_HANDLER = """
import importlib.util, sys, time
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler", sys.argv[1])
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
print(time.perf_counter() - start)
"""
IMPORT_BOTO3 = "import time; start = time.perf_counter(); import boto3; print(time.perf_counter() - start)"


LAYER_SITE = ROOT / ".venv" / "layer-site"


def _layer_site() -> Path:
    """The layer's dependencies alone, as `sam build` would package them (made once)."""
    if not (LAYER_SITE / "pydantic").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(LAYER_SITE),
             "-r", str(ROOT / "requirements.txt"), "boto3==1.44.8", "botocore==1.44.8"],
            check=True,
        )  # fmt: skip
    return LAYER_SITE


def _median_seconds(code: str, *args: str) -> float:
    env = {**os.environ, **HANDLER_ENV, "PYTHONPATH": f"{ROOT / 'layers/shared'}:{_layer_site()}"}
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-S", "-c", code, *args], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(RUNS)
    ]
    return statistics.median(samples)


def import_times() -> None:
    print(f"## cold import, median of {RUNS} fresh processes (layer dependencies only)")
    boto3_alone = _median_seconds(IMPORT_BOTO3)
    print(f"{'import boto3 alone':<28} {boto3_alone * 1000:8.1f} ms   1.00x")
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        seconds = _median_seconds(IMPORT_HANDLER, str(app))
        name = f"functions/{app.parent.name}/app.py"
        print(f"{name:<28} {seconds * 1000:8.1f} ms   {seconds / boto3_alone:.2f}x")


def concurrent_jobs(count: int = 20) -> None:
    from imagejobs_local.provider_sim import Latency
    from imagejobs_local.stack import LocalStack, StackOptions

    print(f"\n## {count} concurrent jobs through the offline stack, zero provider latency")
    started = time.monotonic()
    with LocalStack(StackOptions(time_scale=0.01, latency=Latency(kind="zero"))) as stack:
        print(f"stack start (translate + deploy into moto): {time.monotonic() - started:.2f} s")
        client = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=60)

        def one_job(index: int) -> float:
            begun = time.monotonic()
            answer = client.post(
                "/v1/images/generations",
                params={"async": "true"},
                json={"prompt": f"bench {index}", "quality": "low", "size": "1024x1024"},
            )
            if answer.status_code != 202:
                raise RuntimeError(f"submit answered {answer.status_code}: {answer.text}")
            job = answer.json()
            while job["status"] not in ("succeeded", "failed", "cancelled", "expired"):
                time.sleep(0.1)  # a client polling every 20 ms would be most of the load it measures
                job = client.get(f"/v1/jobs/{job['id']}").json()
            if job["status"] != "succeeded":
                raise RuntimeError(f"bench job ended {job['status']}: {job.get('error')}")
            return time.monotonic() - begun

        begun = time.monotonic()
        with ThreadPoolExecutor(max_workers=count) as pool:
            durations = sorted(pool.map(one_job, range(count)))
        wall = time.monotonic() - begun
    p95 = durations[max(0, round(0.95 * len(durations)) - 1)]
    print(f"wall time: {wall:.2f} s   ({count / wall * 60:.0f} jobs/min)")
    print(f"per job end to end: p50 {statistics.median(durations):.2f} s, p95 {p95:.2f} s, max {durations[-1]:.2f} s")
    print("(includes the first wait the poll loop takes, 10 job s for low quality at time scale 0.01 = 0.1 s)")


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    import_times()
    concurrent_jobs()
    finalize_memory.main()


if __name__ == "__main__":
    main()
