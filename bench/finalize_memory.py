"""Peak memory of finalize storing 10 outputs of ~4.7 MB each (1536x1024 noise PNGs).

moto (the S3 that receives the files) and the simulated provider (that serves them) run in child
processes, so what is measured here is finalize alone: the download, the upload and the record.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from unittest import mock

import boto3
import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVE_SIM = """
import sys, time
from imagejobs_local.provider_sim import SimulatedProvider
from imagejobs_local.sim_behaviour import Latency
sim = SimulatedProvider(api_key="bench", latency=Latency(kind="zero")).start()
print(sim.base_url, flush=True)
time.sleep(3600)
"""


WARM = """
import sys, httpx
for url in sys.argv[1:]:
    httpx.get(url, timeout=120).raise_for_status()
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers/shared'}:{ROOT / 'local'}"}
    port = _free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    sim = subprocess.Popen([sys.executable, "-c", SERVE_SIM], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert sim.stdout is not None
        provider_url = sim.stdout.readline().strip()
        endpoint = f"http://127.0.0.1:{port}"
        # Only while it measures: the benches after it (make bench) must not find boto3 pointed
        # at this moto server, which is gone by then.
        with mock.patch.dict(
            os.environ,
            AWS_ENDPOINT_URL=endpoint,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
        ):
            for _ in range(100):
                try:
                    httpx.get(endpoint, timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            measure(provider_url)
    finally:
        moto.terminate()
        sim.terminate()


def measure(provider_url: str) -> None:
    from imagejobs.adapters.aws import ResultStore
    from imagejobs.adapters.provider import ProviderClient
    from imagejobs.adapters.provider_router import ProviderRouter
    from imagejobs.adapters.store import JobStore
    from imagejobs.domain import clock
    from imagejobs.domain.jobs import JobRecord
    from imagejobs.domain.models import FinalizeInput, GenerationRequest
    from imagejobs.domain.settings import Settings
    from imagejobs.flows.ports import Deps
    from imagejobs.flows.settle import finalize

    boto3.client("s3").create_bucket(Bucket="bench-results")
    boto3.client("dynamodb").create_table(
        TableName="bench-jobs",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    settings = Settings.from_env(
        {
            "JOBS_TABLE": "bench-jobs",
            "RESULTS_BUCKET": "bench-results",
            "SUBMIT_QUEUE_URL": "unused",
            "STATE_MACHINE_ARN": "unused",
            "PROVIDER_BASE_URL": provider_url,
            "PROVIDER_SECRET_ID": "unused",
        }
    )
    provider = ProviderClient(provider_url, "bench")
    deps = Deps(
        settings=settings,
        store=JobStore("bench-jobs"),
        provider=ProviderRouter({"therouter": lambda: provider}, {}),
        results=ResultStore("bench-results"),
    )
    request = GenerationRequest(prompt="[sim:noise] bench", n=10, size="1536x1024", quality="low")
    provider_job = provider.submit(request, idempotency_key="bench-job")
    now = clock.now()
    deps.store.create(
        JobRecord(
            id="img_bench",
            tenant="bench",
            model="openai/gpt-image-1",
            request=request,
            request_hash="-",
            created_at=now,
            updated_at=now,
            deadline_at=now + 900,
            provider_job_id=provider_job.id,
        )
    )
    # Let the provider render the files before we start counting, from another process: fetched
    # here, the 47 MB would stay in this process's heap and in the baseline, and hide what
    # finalize itself grows (the bench read about 0 MB that way).
    urls = provider.get(provider_job.id).unsigned_urls
    subprocess.run([sys.executable, "-c", WARM, *urls], check=True, timeout=300)

    gc.collect()
    baseline = _rss_bytes()
    sampler = _PeakRss()
    sampler.start()
    tracemalloc.start()
    started = time.perf_counter()
    record = finalize(deps, FinalizeInput(job_id="img_bench"))
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sampler.stop()
    stored = sum(output.bytes for output in record.outputs)
    print(f"\n## finalize: {len(record.outputs)} outputs, {stored / 1e6:.1f} MB stored in {seconds:.2f} s")
    largest = max(output.bytes for output in record.outputs)
    print(
        f"peak Python memory during finalize: {peak / 1e6:.1f} MB "
        f"({peak / stored * 100:.0f}% of the bytes it moved; largest output {largest / 1e6:.1f} MB)"
    )
    if baseline:
        print(f"process RSS above its baseline during finalize: peak +{(sampler.peak - baseline) / 1e6:.1f} MB")


def _rss_bytes() -> int:
    """Resident set size now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _PeakRss:
    """Samples the process's RSS every 2 ms on a thread, keeping the highest."""

    def __init__(self) -> None:
        import threading

        self.peak = _rss_bytes()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


if __name__ == "__main__":
    main()
