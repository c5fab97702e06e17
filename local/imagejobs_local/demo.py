"""`make demo`: the offline stack, three generation jobs over HTTP the way TheRouter's async clients
run them (POST ...?async=true -> 202 -> GET /v1/jobs/{id} until final -> download unsigned_urls),
images written to ./out/, and a table of what each job did and cost."""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from imagejobs.domain import clock, identity
from imagejobs.domain.identity import event_job_id
from imagejobs.domain.models import ObjectRef
from imagejobs_local.sim_behaviour import Latency
from imagejobs_local.stack import LocalStack, StackOptions, provider_from_env

FINAL = {"succeeded", "failed", "cancelled", "expired"}
JOBS: list[dict[str, Any]] = [
    {"prompt": "A lighthouse on a cliff at dawn, watercolor", "size": "1024x1024", "quality": "low"},
    {
        "prompt": "A red fox in fresh snow, telephoto photograph",
        "size": "1536x1024",
        "quality": "medium",
        "output_format": "jpeg",
        "output_compression": 85,
    },
    {
        "prompt": "A paper-cut hummingbird sticker",
        "size": "1024x1536",
        "quality": "high",
        "background": "transparent",
        "output_format": "webp",
        "n": 2,
    },
]


def run(out_dir: Path, time_scale: float) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    provider, time_scale = provider_from_env(time_scale)
    which = provider.get("provider_url") or "simulated provider"
    print(f"starting the offline stack (template.yaml on moto, {which}, time scale {time_scale}) ...")
    started = time.monotonic()
    options = StackOptions(server=True, time_scale=time_scale, latency=Latency(low=30, high=120), **provider)
    with LocalStack(options) as stack:
        print(f"stack up in {time.monotonic() - started:.1f} s; API at {stack.base_url}\n")
        client = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=30)
        jobs: dict[str, dict[str, Any]] = {}
        for body in JOBS:
            answer = client.post("/v1/images/generations", params={"async": "true"}, json=body)
            answer.raise_for_status()
            job = answer.json()
            jobs[job["id"]] = job
            print(f"submitted {job['id']}  {answer.status_code} {job['status']:<11} {body['prompt'][:48]}")
        print()
        upload_id = upload_sample_photo(stack, out_dir)
        jobs[upload_id] = {"id": upload_id, "status": "queued", "polls": 0}
        listener = CompletionListener(stack)
        event_job_id = request_by_event(stack)
        jobs[event_job_id] = {"id": event_job_id, "status": "queued", "polls": 0}
        jobs = follow(client, jobs, stack=stack)
        rows = [download(client, job, out_dir) for job in jobs.values()]
        rows[-2]["images"] = fetch_outputs(stack, upload_id, out_dir)
        rows[-1]["images"] = fetch_outputs(stack, event_job_id, out_dir)
        completion = listener.wait_for(event_job_id)
    print_table(rows)
    if completion:
        detail = completion["detail"]
        print(f"\ncompletion event received on the bus for {event_job_id}:")
        print(
            f"  {completion['source']} / {completion['detail-type']}: status {detail['status']}, "
            f"source {detail['source']}, correlation id {detail['correlation_id']}, "
            f"cost {(detail['cost'] or {}).get('amount')} USD, outputs {[o['key'] for o in detail['outputs']]}"
        )
    print(f"\nimages written to {out_dir.resolve()}/")
    return 0 if all(row["status"] == "succeeded" for row in rows) else 1


def sample_photo() -> bytes:
    """A small synthetic landscape (sky, sun, hills) standing in for a user's photo."""
    width, height = 768, 512
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        draw.line([(0, y), (width, y)], fill=(70 + y // 8, 140 + y // 10, 230 - y // 6))
    draw.ellipse((540, 60, 660, 180), fill=(255, 214, 90))
    draw.polygon([(0, 380), (200, 260), (420, 390), (620, 280), (768, 360), (768, 512), (0, 512)], fill=(60, 130, 70))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def upload_sample_photo(stack: LocalStack, out_dir: Path) -> str:
    """Drop a photo in the inbox, as `aws s3 cp photo.jpg s3://<inbox>/uploads/ --metadata prompt=...` would."""
    bucket, key = stack.outputs["InboxBucketName"], "uploads/sample photo.jpg"
    data = sample_photo()
    (out_dir / "sample photo.jpg").write_bytes(data)
    metadata = {"prompt": "Turn this landscape into an autumn poster"}
    answer = stack.client("s3").put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata)
    job_id = identity.upload_job_id(ObjectRef(bucket=bucket, key=key, etag=answer["ETag"].strip('"')), metadata)
    print(f"uploaded  s3://{bucket}/{key} -> job {job_id}")
    return job_id


def fetch_outputs(stack: LocalStack, job_id: str, out_dir: Path) -> list[str]:
    record = stack.store.get(job_id)
    images = []
    for output in record.outputs if record else []:
        data = stack.client("s3").get_object(Bucket=output.bucket, Key=output.key)["Body"].read()
        picture = Image.open(io.BytesIO(data))
        path = out_dir / f"{job_id}-{Path(output.key).name.rsplit('-', 1)[-1]}"
        path.write_bytes(data)
        images.append(f"{path.name} {picture.width}x{picture.height} (from s3://.../{output.key})")
    return images


class CompletionListener:
    """What a pipeline does: a rule on the bus for our job events, delivering to its own queue."""

    def __init__(self, stack: LocalStack) -> None:
        self._sqs = stack.client("sqs")
        self._url = stack.job_events_queue("demo-pipeline-completions")

    def wait_for(self, job_id: str, timeout: float = 30) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10).get("Messages", []):
                event = json.loads(message["Body"])
                if event["detail"]["job_id"] == job_id:
                    return event
            time.sleep(0.1)
        return None


def request_by_event(stack: LocalStack) -> str:
    """An ImageJobRequested event on the bus, as a pipeline would put it."""
    answer = stack.client("events").put_events(
        Entries=[
            {
                "EventBusName": stack.event_bus_name,
                "Source": stack.request_source,
                "DetailType": "ImageJobRequested",
                "Detail": json.dumps(
                    {
                        "prompt": "A koi pond seen from above, ink wash",
                        "quality": "low",
                        "correlation_id": "demo-pipeline-1",
                    }
                ),
            }
        ]
    )
    job_id = event_job_id(answer["Entries"][0]["EventId"])
    print(f"event     ImageJobRequested from {stack.request_source} -> job {job_id}")
    return job_id


def follow(
    client: httpx.Client, jobs: dict[str, dict[str, Any]], timeout: float = 300, stack: LocalStack | None = None
) -> dict[str, dict[str, Any]]:
    """Poll each job's polling_url until it is final, showing one progress line as they move.
    (The upload's job belongs to the inbox tenant, so the demo reads it from the job table.)"""
    deadline = time.monotonic() + timeout
    interactive = sys.stdout.isatty()
    last_line = ""
    while time.monotonic() < deadline and any(job["status"] not in FINAL for job in jobs.values()):
        for job_id, job in jobs.items():
            if job["status"] in FINAL:
                continue
            answer = client.get(f"/v1/jobs/{job_id}")
            if answer.status_code == 200:
                jobs[job_id] = answer.json()
            elif stack is not None and (record := stack.store.get(job_id)) is not None:
                jobs[job_id] = {
                    **job,
                    "status": record.status.value,
                    "source": record.source,
                    "polls": record.polls,
                    # on the wall clock, as the API shows a job (clock.to_wall): one unit in the table
                    "created_at": clock.to_wall(record.created_at),
                    "completed_at": clock.to_wall(record.completed_at) if record.completed_at else None,
                    "cost": record.cost.model_dump() if record.cost else None,
                    "orchestration_cost": {"amount": record.orchestration_cost_usd},
                    "error": record.error.model_dump() if record.error else None,
                }
        line = "  ".join(f"{job_id[-6:]}: {job['status']} ({job['polls']} polls)" for job_id, job in jobs.items())
        if line != last_line:
            print(("\r" + line.ljust(110)) if interactive else line, end="" if interactive else "\n", flush=True)
            last_line = line
        time.sleep(0.1)
    if interactive:
        print()
    return jobs


def download(client: httpx.Client, job: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    images = []
    for index, url in enumerate(job.get("unsigned_urls") or []):
        response = httpx.get(url, timeout=30)  # a plain GET: the URL carries its own authorisation
        response.raise_for_status()
        picture = Image.open(io.BytesIO(response.content))
        extension = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}[str(picture.format)]
        path = out_dir / f"{job['id']}-{index}.{extension}"
        path.write_bytes(response.content)
        images.append(f"{path.name} {picture.width}x{picture.height}")
    seconds = (job["completed_at"] - job["created_at"]) if job.get("completed_at") else None
    cost = job.get("cost") or {}
    return {
        "id": job["id"],
        "status": job["status"],
        "source": job.get("source", "api"),
        "polls": job.get("polls", 0),
        "seconds": seconds,
        "images": images,
        "cost": cost.get("amount", "-"),
        "basis": cost.get("basis", "-"),
        "loop": (job.get("orchestration_cost") or {}).get("amount", "-"),
        "error": (job.get("error") or {}).get("code"),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'job id':<28} {'source':<7} {'status':<10} {'polls':>5} {'seconds':>7} {'images':>6} "
        f"{'cost USD':>9} {'basis':<9} {'loop USD':>10}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        seconds = f"{row['seconds']:.0f}" if row["seconds"] is not None else "-"
        print(
            f"{row['id']:<28} {row['source']:<7} {row['status']:<10} {row['polls']:>5} {seconds:>7} "
            f"{len(row['images']):>6} "
            f"{row['cost']:>9} {row['basis']:<9} {row['loop']:>10}"
            + (f"  error: {row['error']}" if row["error"] else "")
        )
    print(
        "\nseconds: from accepted to finished, on the wall clock (the simulated generation runs on a job clock "
        "TIME_SCALE times as long); loop USD: Step Functions + Lambda"
    )
    for row in rows:
        for image in row["images"]:
            print(f"  {image}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--time-scale", type=float, default=0.02, help="0.02 runs a 60 s generation in 1.2 s")
    args = parser.parse_args(argv)
    return run(args.out, args.time_scale)


if __name__ == "__main__":
    sys.exit(main())
