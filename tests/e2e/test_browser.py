"""A real browser on another origin: headless Chromium loads `make serve`'s /playground, which
calls the API with fetch (a CORS preflight first: Authorization and JSON), polls the job, then
fetches the image from the results bucket (its CORS rule) and shows it (issue #16.5)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags this machine's closed network needs (no background connections, no first-run work).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="no Chromium here (make test installs Debian's chromium under CI=true)",
)
def test_the_playground_makes_an_image_from_another_origin(served: dict[str, str], tmp_path: Path) -> None:
    assert CHROMIUM is not None, "Chromium is required under CI (make browser installs it)"
    url = served["IMAGEJOBS_PLAYGROUND_URL"] + "&run=1&prompt=a%20paper%20boat&quality=low"
    assert not served["IMAGEJOBS_BASE_URL"].startswith(url.split("/playground")[0])  # another origin
    dom = finished_page(url, tmp_path)
    status = re.search(r'<div id="status">(.*?)</div>', dom, re.S)
    assert "succeeded" in status[1]  # type: ignore[index]
    image = re.search(r'<img id="image"[^>]*data-bytes="(\d+)"', dom)
    assert image and int(image[1]) > 1000  # the bytes of the image, read by the page itself
    assert re.search(r'<div id="cost">cost [0-9.]+ USD', dom)


def finished_page(url: str, profile: Path) -> str:
    """The page's DOM once its script is done (body data-state="done"), as headless Chromium left it."""
    assert CHROMIUM is not None
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=120000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=150,
    ).stdout
    state = re.search(r'<body data-state="([a-z]+)"', dom)
    status = re.search(r'<div id="status">(.*?)</div>', dom, re.S)
    assert state and state[1] == "done", (state and state[1], status and status[1])
    return dom
