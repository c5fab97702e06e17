"""`make serve` as a user runs it: a process on a free port, any HTTP client, plain-GET result URLs."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
from PIL import Image

from tests.e2e.conftest import ROOT


def local_s3(served: dict[str, str]) -> Any:
    """An S3 client for the served stack's AWS endpoint, as aws cli or boto3 users set it up."""
    return boto3.client(
        "s3",
        endpoint_url=served["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=served["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=served["AWS_SECRET_ACCESS_KEY"],
    )


def test_serve_prints_settings_for_clients(served: dict[str, str]) -> None:
    assert served["IMAGEJOBS_BASE_URL"].startswith("http://127.0.0.1:")
    assert served["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert served["IMAGEJOBS_API_KEY"]


def test_submit_poll_download_over_http(served: dict[str, str]) -> None:
    base, key = served["IMAGEJOBS_BASE_URL"], served["IMAGEJOBS_API_KEY"]
    headers = {"Authorization": f"Bearer {key}"}
    submitted = httpx.post(
        f"{base}/v1/images/generations?async=true",
        json={"prompt": "a paper boat", "size": "1024x1536", "quality": "low", "output_format": "webp", "n": 2},
        headers=headers,
    )
    assert submitted.status_code == 202
    job = submitted.json()
    deadline = time.monotonic() + 60
    while job["status"] not in ("succeeded", "failed", "cancelled", "expired") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = httpx.get(job["polling_url"], headers=headers).json()
    assert job["status"] == "succeeded"
    for url in job["unsigned_urls"]:
        image = httpx.get(url)  # no key: the presigned URL is the authorisation
        assert image.status_code == 200
        picture = Image.open(io.BytesIO(image.content))
        assert (picture.format, picture.size) == ("WEBP", (1024, 1536))

    # the same images, through the local AWS endpoint, as aws cli or boto3 users see them
    s3 = local_s3(served)
    listed = s3.list_objects_v2(Bucket=served["IMAGEJOBS_RESULTS_BUCKET"], Prefix=f"results/{job['id']}/")
    assert [item["Key"] for item in listed["Contents"]] == [
        f"results/{job['id']}/0.webp",
        f"results/{job['id']}/1.webp",
    ]


def _wait_final(job: dict, headers: dict[str, str]) -> dict:
    deadline = time.monotonic() + 60
    while job["status"] not in ("succeeded", "failed", "cancelled", "expired") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = httpx.get(job["polling_url"], headers=headers).json()
    return job


def test_multipart_edit_as_curl_sends_it(served: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "input.png"
    Image.new("RGB", (400, 300), (20, 160, 90)).save(source)
    base, key = served["IMAGEJOBS_BASE_URL"], served["IMAGEJOBS_API_KEY"]
    command = [
        "-s",
        "-X",
        "POST",
        f"{base}/v1/images/edits?async=true",
        "-H",
        f"Authorization: Bearer {key}",
        "-F",
        "model=openai/gpt-image-1",
        "-F",
        f"image=@{source}",
        "-F",
        "prompt=Add a red scarf",
    ]
    curl = shutil.which("curl")
    if curl:
        job = json.loads(subprocess.run([curl, *command], capture_output=True, text=True, check=True).stdout)
    else:  # the same multipart body curl builds
        job = httpx.post(
            command[3],
            headers={"Authorization": f"Bearer {key}"},
            data={"model": "openai/gpt-image-1", "prompt": "Add a red scarf"},
            files={"image": ("input.png", source.read_bytes(), "image/png")},
        ).json()
    job = _wait_final(job, {"Authorization": f"Bearer {key}"})
    assert job["status"] == "succeeded"
    edited = Image.open(io.BytesIO(httpx.get(job["unsigned_urls"][0]).content))
    assert edited.size == (400, 300)  # size auto keeps the input's size


def test_inbox_upload_through_the_local_aws_endpoint(served: dict[str, str]) -> None:
    s3 = local_s3(served)
    body = io.BytesIO()
    Image.new("RGB", (300, 300), (90, 20, 160)).save(body, format="JPEG")
    s3.put_object(
        Bucket=served["IMAGEJOBS_INBOX_BUCKET"],
        Key="uploads/e2e photo.jpg",
        Body=body.getvalue(),
        Metadata={"prompt": "make it a poster", "output-format": "webp"},
    )
    deadline = time.monotonic() + 60
    keys: list[str] = []
    while not keys and time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=served["IMAGEJOBS_RESULTS_BUCKET"], Prefix="edits/uploads/e2e photo/")
        keys = [item["Key"] for item in listed.get("Contents", [])]
        time.sleep(0.1)
    assert len(keys) == 1 and keys[0].endswith("-0.webp")


def test_the_openapi_document_is_public_and_matches_the_repository(served: dict[str, str]) -> None:
    answer = httpx.get(served["IMAGEJOBS_BASE_URL"] + "/openapi.json")  # no key needed
    assert answer.status_code == 200
    assert answer.json() == json.loads((ROOT / "schemas" / "openapi.json").read_text(encoding="utf-8"))


def test_serve_runs_against_any_provider_given_by_url_and_key() -> None:
    """`PROVIDER_URL=... PROVIDER_KEY=... make serve`: the stack talks to that provider (here a
    second, separate simulator with a key of its own) in real time, and downloads from its host."""
    import os
    import signal
    import sys

    from imagejobs_local.provider_sim import SimulatedProvider
    from imagejobs_local.sim_behaviour import Latency

    foreign = SimulatedProvider(latency=Latency(kind="zero"), api_key="sk-elsewhere-provider").start()
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'layers/shared'}:{ROOT / 'local'}",
        "PROVIDER_URL": foreign.base_url,
        "PROVIDER_KEY": "sk-elsewhere-provider",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "imagejobs_local.serve", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        settings: dict[str, str] = {}
        assert process.stdout is not None
        while "IMAGEJOBS_API_KEY" not in settings:
            line = process.stdout.readline()
            assert line, "serve ended before printing its settings"
            name, _, value = line.strip().partition("=")
            settings[name] = value
        headers = {"Authorization": f"Bearer {settings['IMAGEJOBS_API_KEY']}"}
        base = settings["IMAGEJOBS_BASE_URL"]
        job = httpx.post(
            f"{base}/v1/images/generations?async=true", json={"prompt": "a kite", "quality": "low"}, headers=headers
        ).json()
        deadline = time.monotonic() + 90
        while job["status"] not in ("succeeded", "failed", "cancelled", "expired") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = httpx.get(f"{base}/v1/jobs/{job['id']}", headers=headers).json()
        assert job["status"] == "succeeded", job
        assert foreign.stats.submit_calls == 1  # the job went to that provider, with its key
        image = httpx.get(job["unsigned_urls"][0])
        assert Image.open(io.BytesIO(image.content)).format == "PNG"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        foreign.stop()
