"""`make serve` as a user runs it: a process on a free port, any HTTP client, plain-GET result URLs."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = (
    "IMAGEJOBS_BASE_URL",
    "IMAGEJOBS_API_KEY",
    "AWS_ENDPOINT_URL",
    "IMAGEJOBS_RESULTS_BUCKET",
    "IMAGEJOBS_TABLE",
)


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers/shared'}:{ROOT / 'local'}"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "imagejobs_local.serve",
            "--port",
            "0",
            "--time-scale",
            "0.005",
            "--latency-low",
            "30",
            "--latency-high",
            "60",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    settings: dict[str, str] = {}
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while time.monotonic() < deadline and not all(name in settings for name in REQUIRED):
        line = process.stdout.readline()
        if not line:
            break
        name, sep, value = line.strip().partition("=")
        if sep and name.isupper():
            settings[name] = value
    try:
        assert all(name in settings for name in REQUIRED), f"serve printed {settings}; stderr: {process.stderr}"
        yield settings
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


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
    s3 = boto3.client(
        "s3",
        endpoint_url=served["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    listed = s3.list_objects_v2(Bucket=served["IMAGEJOBS_RESULTS_BUCKET"], Prefix=f"results/{job['id']}/")
    assert [item["Key"] for item in listed["Contents"]] == [
        f"results/{job['id']}/0.webp",
        f"results/{job['id']}/1.webp",
    ]
