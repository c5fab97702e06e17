"""`make loadtest`: N jobs at once through the offline stack (HTTP, inbox uploads and events), with
a share of transient provider faults and a provider submission cap. Prints numbers; exits 1 if a
job was lost, stuck or submitted twice (make test runs it with 30 jobs, so it cannot rot again)."""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from PIL import Image

from imagejobs.domain import identity
from imagejobs.domain.identity import event_job_id
from imagejobs.domain.models import ObjectRef
from imagejobs_local.sim_behaviour import Latency
from imagejobs_local.stack import LocalStack, StackOptions

TIME_SCALE = 0.02


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("N", "300")))
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--by-design-failures", type=float, default=0.02, help="share of jobs the provider fails")
    parser.add_argument("--cap", type=int, default=30, help="ProviderSubmitsPerMinute (job time)")
    parser.add_argument("--timeout", type=float, default=600, help="real seconds to wait for the last job")
    args = parser.parse_args(argv)
    rng = random.Random(42)
    options = StackOptions(
        time_scale=TIME_SCALE,
        latency=Latency(low=30, high=120),
        seed=7,
        fault_rate=args.fault_rate,
        parameters={"ProviderSubmitsPerMinute": str(args.cap), "JobDeadlineSeconds": "86400"},
    )
    print(
        f"load: {args.jobs} jobs, {args.fault_rate:.0%} transient faults, cap {args.cap}/min, "
        f"time scale {TIME_SCALE} (a job minute is {60 * TIME_SCALE:.1f} s)"
    )
    with LocalStack(options) as stack:
        photo = io.BytesIO()
        Image.new("RGB", (256, 256), (40, 90, 160)).save(photo, format="PNG")
        api = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=60)
        inbox = stack.outputs["InboxBucketName"]

        def one(index: int) -> tuple[str, str, float]:
            fail = rng.random() < args.by_design_failures
            prompt = f"{'[sim:fail] ' if fail else ''}load job {index}"
            started = time.monotonic()
            kind = ("http", "http", "http", "upload", "event")[index % 5]
            if kind == "http":
                answer = api.post(
                    "/v1/images/generations", params={"async": "true"}, json={"prompt": prompt, "quality": "low"}
                )
                answer.raise_for_status()
                return answer.json()["id"], kind, started
            if kind == "upload":
                key = f"uploads/load/{index}.png"
                put = stack.client("s3").put_object(
                    Bucket=inbox, Key=key, Body=photo.getvalue(), Metadata={"prompt": prompt}
                )
                ref = ObjectRef(bucket=inbox, key=key, etag=put["ETag"].strip('"'))
                return identity.upload_job_id(ref, {"prompt": prompt}), kind, started
            put = stack.client("events").put_events(
                Entries=[
                    {
                        "Source": stack.request_source,
                        "DetailType": "ImageJobRequested",
                        "Detail": json.dumps({"prompt": prompt, "quality": "low"}),
                    }
                ]
            )
            return event_job_id(put["Entries"][0]["EventId"]), kind, started

        begun = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            submitted = list(pool.map(one, range(args.jobs)))
        print(f"submitted {len(submitted)} in {time.monotonic() - begun:.1f} s")

        done: dict[str, float] = {}
        deadline = time.monotonic() + args.timeout
        while len(done) < len(submitted) and time.monotonic() < deadline:
            for job_id, _, started in submitted:
                if job_id in done:
                    continue
                record = stack.store.get(job_id)
                if record is not None and record.status.final:
                    done[job_id] = time.monotonic() - started
            time.sleep(0.2)
        wall = time.monotonic() - begun
        records = {job_id: stack.store.get(job_id) for job_id, _, _ in submitted}
        provider = stack.provider
        faults = sum(provider.stats.faults.values())
        submit_times = sorted(provider.stats.submit_times)

    succeeded = sum(1 for r in records.values() if r and r.status.value == "succeeded")
    by_design = sum(1 for r in records.values() if r and r.error and r.error.code == "generation_failed")
    other_failures = sorted(
        {
            f"{r.status.value}:{r.error.code if r.error else '-'}"
            for r in records.values()
            if r
            and r.status.final
            and r.status.value != "succeeded"
            and not (r.error and r.error.code == "generation_failed")
        }
    )
    lost = sum(1 for r in records.values() if r is None)
    stuck = sum(1 for r in records.values() if r is not None and not r.status.final)
    duplicates = sum(max(0, count - 1) for count in provider.stats.submissions.values())
    times = sorted(done.values())
    window_peak = max(
        (sum(1 for t in submit_times[i:] if t < start + 60) for i, start in enumerate(submit_times)), default=0
    )
    print(f"wall time {wall:.1f} s; provider faults served: {faults}")
    others = len(records) - succeeded - by_design - lost - stuck
    print(f"succeeded {succeeded}, failed by design {by_design}, other endings {others} {other_failures}")
    print(
        f"lost {lost} (must be 0), stuck {stuck} (must be 0), duplicate provider submissions {duplicates} (must be 0)"
    )
    if times:
        p95 = times[max(0, round(0.95 * len(times)) - 1)]
        print(
            f"end to end (real s): p50 {statistics.median(times):.2f}, p95 {p95:.2f}; "
            f"in job time p50 {statistics.median(times) / TIME_SCALE:.0f} s, p95 {p95 / TIME_SCALE:.0f} s"
        )
    print(
        f"provider peak concurrent jobs {provider.stats.concurrent_jobs_peak}; "
        f"peak submissions in any job-time minute {window_peak} (cap {args.cap}: "
        f"{'never exceeded' if window_peak <= args.cap else 'EXCEEDED'})"
    )
    return 1 if lost or stuck or duplicates else 0


if __name__ == "__main__":
    sys.exit(main())
