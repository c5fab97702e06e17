"""The `imagejobs` command against `make serve`, run as a user runs it (a separate process)."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from PIL import Image

CLI = str(Path(sys.executable).with_name("imagejobs"))


def run(served: dict[str, str], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        **{k: v for k, v in served.items() if k.startswith(("IMAGEJOBS_", "AWS_"))},
        "AWS_DEFAULT_REGION": "us-east-1",
        **env,
    }
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300, env=environment)


def test_generate_watch_shows_progress_and_downloads_real_images(served: dict[str, str], tmp_path: Path) -> None:
    done = run(served, "generate", "a lighthouse from the cli", "--quality", "low", "--n", "2", "--watch",
               "--out", str(tmp_path), "--interval", "0.1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(" queued " in line or " in_progress " in line for line in lines)  # live progress...
    assert any(" succeeded " in line and "polls" in line for line in lines)  # ...to the end
    saved = sorted(tmp_path.glob("img_*"))
    assert len(saved) == 2
    for path in saved:
        with Image.open(path) as image:
            assert image.size == (1024, 1024)
    assert "cost $" in done.stdout


def test_edit_watch_downloads_the_edited_image(served: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "photo.png"
    Image.new("RGB", (512, 512), (30, 90, 160)).save(source)
    done = run(served, "edit", str(source), "make it autumn", "--watch", "--out", str(tmp_path / "out"),
               "--interval", "0.1")  # fmt: skip
    assert done.returncode == 0, done.stderr
    (edited,) = (tmp_path / "out").glob("img_*")
    with Image.open(edited) as image:
        assert image.size == (512, 512)


def test_jobs_list_get_and_cancel(served: dict[str, str]) -> None:
    submitted = run(served, "generate", "[sim:never] a slow one for the cli")
    assert submitted.returncode == 0, submitted.stderr
    job_id = next(line.split('"')[3] for line in submitted.stdout.splitlines() if '"id"' in line)
    listed = run(served, "jobs", "list", "--limit", "50")
    assert listed.returncode == 0 and job_id in listed.stdout
    assert listed.stdout.splitlines()[0].split()[:2] == ["ID", "STATUS"]
    assert '"status"' in run(served, "jobs", "get", job_id).stdout
    cancelled = run(served, "jobs", "cancel", job_id)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"{job_id} cancelled"
    again = run(served, "jobs", "cancel", job_id)
    assert again.returncode == 1 and again.stderr.startswith("imagejobs: 409 job_already_final")


def test_costs_totals_equal_the_job_records(served: dict[str, str], tmp_path: Path) -> None:
    chart = tmp_path / "costs.png"
    done = run(served, "costs", "--since", "1d", "--by", "model", "--plot", str(chart))
    assert done.returncode == 0, done.stderr
    total_row = next(line for line in done.stdout.splitlines() if line.startswith("TOTAL"))
    jobs, total_usd = int(total_row.split()[1]), Decimal(total_row.split()[-1].lstrip("$"))

    table = boto3.resource(
        "dynamodb",
        endpoint_url=served["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=served["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=served["AWS_SECRET_ACCESS_KEY"],
    ).Table(served["IMAGEJOBS_TABLE"])
    items = [item for item in table.scan()["Items"] if str(item["pk"]).startswith("job#")]
    expected = sum((Decimal(str((item.get("cost") or {}).get("amount", 0))) for item in items), Decimal(0)) + sum(
        (Decimal(str(item.get("orchestration_cost_usd", 0))) for item in items), Decimal(0)
    )
    assert jobs == len(items) > 0
    assert total_usd == expected.quantize(Decimal("0.000001"))
    with Image.open(chart) as image:  # a chart a person can look at
        assert image.format == "PNG" and image.size[0] >= 800


@pytest.mark.parametrize(
    "args",
    [
        ("jobs", "list", "--api-key", "sk-wrong"),
        ("generate", "x", "--api-key", "sk-wrong"),
        ("jobs", "get", "img_000000000000000000000000"),
        ("costs", "--since", "forever"),
    ],
)
def test_errors_are_one_clear_line_and_a_non_zero_exit(served: dict[str, str], args: tuple[str, ...]) -> None:
    done = run(served, *args)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("imagejobs: ") and "Traceback" not in done.stderr
