"""OpenAI's official SDKs (Python 3.63, Node 6.49: pinned in requirements-sdk.txt and package.json)
against the default `make serve`, calling images.generate / images.edit as OpenAI's image
generation guide shows, at their default settings: only the base URL and key are changed
(issue #20). What they do with our answers is theirs: a 202 would be an empty success (data is
None), a 5xx is retried twice unless x-should-retry says false (openai-python _base_client.py
_should_retry; openai-node client.ts shouldRetry)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import PRINTED, ROOT
from tests.e2e.test_browser import CHROMIUM, finished_page

SDK = ROOT / "tests" / "e2e" / "sdk"
SDK_PYTHON = ROOT / ".venv-sdk" / "bin" / "python"
RUNNERS = {"python": [str(SDK_PYTHON), str(SDK / "images.py")], "node": ["node", str(SDK / "images.mjs")]}


def sdk(language: str, served: dict[str, str], *args: str) -> dict[str, Any]:
    env = {
        "PATH": os.environ["PATH"],
        "IMAGEJOBS_BASE_URL": served["IMAGEJOBS_BASE_URL"],
        "IMAGEJOBS_API_KEY": served["IMAGEJOBS_API_KEY"],
    }
    run = subprocess.run([*RUNNERS[language], *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def job_ids(served: dict[str, str]) -> set[str]:
    headers = {"Authorization": f"Bearer {served['IMAGEJOBS_API_KEY']}"}
    page = httpx.get(f"{served['IMAGEJOBS_BASE_URL']}/v1/jobs", params={"limit": 100}, headers=headers).json()
    return {job["id"] for job in page["data"]}


def submissions(served: dict[str, str], job_id: str) -> int:
    """What the simulated provider counted: jobs it made for this Idempotency-Key (our job id)."""
    stats = httpx.get(f"{served['IMAGEJOBS_SIMULATOR_URL']}/sim/stats").json()
    return int(stats["submissions"].get(job_id, 0))


@pytest.mark.parametrize("language", ["python", "node"])
def test_the_official_sdks_generate_and_edit_images(make_serve: dict[str, str], language: str, tmp_path: Path) -> None:
    made = sdk(language, make_serve, "generate", "A lighthouse on a cliff at dawn, watercolor")
    assert made["images"] == 1 and made["png"], made
    photo = tmp_path / "photo.png"
    Image.new("RGB", (256, 256), (200, 120, 40)).save(photo)
    edited = sdk(language, make_serve, "edit", "Add a red scarf", str(photo))
    assert edited["images"] == 1 and edited["png"], edited


def test_a_job_longer_than_one_wait_comes_back_through_the_sdks_own_retry(make_serve: dict[str, str]) -> None:
    """300 job seconds at make serve's time scale (0.1) are 30 s: past the 25 s a plain call waits.
    The 504 that ends the first wait is retried by the SDK, and its retry joins the same job."""
    before = job_ids(make_serve)
    made = sdk("python", make_serve, "generate", "[sim:latency=300] a slow lighthouse")
    assert made["images"] == 1 and made["png"] and made["seconds"] > 25, made
    (job_id,) = job_ids(make_serve) - before  # one job for the call and its retry
    assert submissions(make_serve, job_id) == 1


@pytest.mark.parametrize("language", ["python", "node"])
def test_a_failed_job_raises_once_and_leaves_one_job(make_serve: dict[str, str], language: str) -> None:
    before = job_ids(make_serve)
    failed = sdk(language, make_serve, "generate", f"[sim:fail] a doomed boat ({language})")
    assert (failed["error"], failed["status"]) == ("InternalServerError", 502), failed
    assert "generation_failed" in failed["message"] or "job img_" in failed["message"], failed
    (job_id,) = job_ids(make_serve) - before  # not retried: x-should-retry: false
    assert submissions(make_serve, job_id) == 1


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="no Chromium here (make test installs Debian's chromium under CI=true)",
)
def test_the_js_sdk_in_a_browser_makes_an_image(make_serve: dict[str, str], tmp_path: Path) -> None:
    """The openai npm package loaded by a page on another origin (served from node_modules): its
    preflight asks for x-stainless-* headers, which the API allows by echoing them."""
    assert CHROMIUM is not None and shutil.which(CHROMIUM)
    url = make_serve["IMAGEJOBS_PLAYGROUND_URL"].replace("/playground#", "/sdk#") + "&prompt=a%20paper%20crane"
    dom = finished_page(url, tmp_path)
    image = re.search(r'<img id="image"[^>]*data-width="(\d+)"', dom)
    assert image and int(image[1]) == 1024  # decoded by the browser itself


def test_make_serve_prints_lines_a_shell_can_take(make_serve: dict[str, str]) -> None:
    """The playground URL holds '&' and '#': each printed line, given to a shell as it is, sets
    the variable to the whole value (#20.8)."""
    line = next(line for line in make_serve[PRINTED].splitlines() if line.startswith("IMAGEJOBS_PLAYGROUND_URL="))
    echoed = subprocess.run(["sh", "-c", f'{line}; printf %s "$IMAGEJOBS_PLAYGROUND_URL"'], capture_output=True)
    assert echoed.stdout.decode() == make_serve["IMAGEJOBS_PLAYGROUND_URL"]
    assert "&key=" in echoed.stdout.decode()
