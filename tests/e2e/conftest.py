"""The offline stack as `make serve` runs it (a separate process), shared by the e2e tests."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = (
    "IMAGEJOBS_BASE_URL",
    "IMAGEJOBS_API_KEY",
    "AWS_ENDPOINT_URL",
    "IMAGEJOBS_RESULTS_BUCKET",
    "IMAGEJOBS_INBOX_BUCKET",
    "IMAGEJOBS_TABLE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "IMAGEJOBS_PLAYGROUND_URL",
)


@pytest.fixture(scope="session")
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
            settings[name] = shlex.split(value)[0]  # printed shell-quoted
    try:
        assert all(name in settings for name in REQUIRED), f"serve printed {settings}; stderr: {process.stderr}"
        yield settings
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
