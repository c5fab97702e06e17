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
    "IMAGEJOBS_SIMULATOR_URL",
)
PRINTED = "printed lines"  # the settings' key for the lines exactly as serve printed them


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
    settings = _settings_from(process, deadline=time.monotonic() + 120)
    try:
        assert all(name in settings for name in REQUIRED), f"serve printed {settings}; stderr: {process.stderr}"
        yield settings
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def make_serve() -> Iterator[dict[str, str]]:
    """`make serve` exactly as the README says to start it: its default time scale, latencies and
    SyncWaitSeconds. The tests that call it with the official SDKs change only base URL and key."""
    process = subprocess.Popen(
        ["make", "--no-print-directory", "serve"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: make and the stack under it stop together
    )
    settings = _settings_from(process, deadline=time.monotonic() + 180)
    try:
        assert all(name in settings for name in REQUIRED), f"make serve printed {settings}"
        yield settings
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _settings_from(process: subprocess.Popen[str], deadline: float) -> dict[str, str]:
    """The NAME=value lines serve prints (shell-quoted), until every required one is there."""
    settings: dict[str, str] = {PRINTED: ""}
    assert process.stdout is not None
    while time.monotonic() < deadline and not all(name in settings for name in REQUIRED):
        line = process.stdout.readline()
        if not line:
            break
        settings[PRINTED] += line
        name, sep, value = line.strip().partition("=")
        if sep and name.isupper():
            settings[name] = shlex.split(value)[0] if value else ""
    return settings
