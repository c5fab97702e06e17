"""`make demo`, the README's first command, in the gate: what the gate does not run, rots. The
demo's own module in a process of its own (as `make demo` runs it), into a temporary folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
LISTED = re.compile(r"^\s+(img_\w+-\d+\.(?:png|jpg|webp)) (\d+)x(\d+)", re.MULTILINE)


def test_the_demo_writes_every_job_s_images_and_hears_the_pipeline_s_event(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers/shared'}:{ROOT / 'local'}"}
    result = subprocess.run(
        [sys.executable, "-m", "imagejobs_local.demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    listed = LISTED.findall(result.stdout)
    # three jobs over HTTP (the last makes two images), an inbox upload's edit and an event's job
    assert len(listed) == 6, result.stdout[-3000:]
    for name, width, height in listed:
        with Image.open(tmp_path / name) as image:
            assert image.size == (int(width), int(height))
    assert "ImageJobSucceeded: status succeeded, source event" in result.stdout
