"""`imagejobs costs`: what the stack spent, from the job records (admin: AWS credentials)."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from boto3.dynamodb.conditions import Attr

from imagejobs.domain import pricing

GROUPS = ("tenant", "model", "quality", "source")
SINCE = re.compile(r"^(\d+)([mhdw])$")
UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class CostsProblem(ValueError):
    pass


def since_seconds(text: str) -> int:
    found = SINCE.match(text.strip())
    if not found:
        raise CostsProblem(f"--since {text!r}: give a number and a unit, e.g. 90m, 12h, 7d, 2w")
    return int(found.group(1)) * UNIT_SECONDS[found.group(2)]


@dataclass
class Row:
    jobs: int = 0
    images: int = 0
    image_usd: Decimal = field(default_factory=Decimal)
    orchestration_usd: Decimal = field(default_factory=Decimal)
    statuses: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def total_usd(self) -> Decimal:
        return self.image_usd + self.orchestration_usd


def job_items(table: Any, since_epoch: float) -> list[dict[str, Any]]:
    """Every job record created since then (a filtered scan: an admin's occasional question)."""
    kwargs: dict[str, Any] = {
        "FilterExpression": Attr("pk").begins_with("job#") & Attr("created_at").gte(Decimal(str(since_epoch)))
    }
    items: list[dict[str, Any]] = []
    while True:
        page = table.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def group_of(item: dict[str, Any], by: str) -> str:
    if by == "quality":
        return str((item.get("request") or {}).get("quality", "auto"))
    if by == "model":
        return canonical_model(str(item.get("model") or "-"))
    return str(item.get(by) or "-")


def canonical_model(model: str) -> str:
    """One row per model however the client spelled it (gpt-image-1 is openai/gpt-image-1): the
    catalog's name, or the name as recorded for a model the catalog no longer has."""
    try:
        return pricing.catalog_name(model)
    except pricing.UnknownModel:
        return model


def tally(items: list[dict[str, Any]], by: str) -> dict[str, Row]:
    rows: dict[str, Row] = defaultdict(Row)
    for item in items:
        row = rows[group_of(item, by)]
        row.jobs += 1
        row.images += len(item.get("outputs") or [])
        row.statuses[str(item.get("status"))] += 1
        cost = item.get("cost") or {}
        if cost.get("amount") is not None:
            row.image_usd += Decimal(str(cost["amount"]))
        if item.get("orchestration_cost_usd") is not None:
            row.orchestration_usd += Decimal(str(item["orchestration_cost_usd"]))
    return dict(sorted(rows.items(), key=lambda kv: -kv[1].total_usd))


def print_table(rows: dict[str, Row], by: str, since: str, out: TextIO) -> None:
    from imagejobs_cli.api import table

    lines = [
        [
            name,
            str(row.jobs),
            str(row.statuses.get("succeeded", 0)),
            str(row.images),
            f"${row.image_usd:.6f}",
            f"${row.orchestration_usd:.6f}",
            f"${row.total_usd:.6f}",
        ]
        for name, row in rows.items()
    ]
    total = Row()
    for row in rows.values():
        total.jobs += row.jobs
        total.images += row.images
        total.image_usd += row.image_usd
        total.orchestration_usd += row.orchestration_usd
        total.statuses["succeeded"] += row.statuses.get("succeeded", 0)
    lines.append(
        [
            "TOTAL",
            str(total.jobs),
            str(total.statuses["succeeded"]),
            str(total.images),
            f"${total.image_usd:.6f}",
            f"${total.orchestration_usd:.6f}",
            f"${total.total_usd:.6f}",
        ]
    )
    print(f"costs of jobs created in the last {since}, by {by}", file=out)
    table(lines, [by.upper(), "JOBS", "SUCCEEDED", "IMAGES", "IMAGES $", "ORCHESTRATION $", "TOTAL $"], out)


def plot(rows: dict[str, Row], by: str, since: str, target: Path) -> None:
    """A bar chart (PNG) of total cost per group, image and orchestration cost stacked."""
    from PIL import Image, ImageDraw, ImageFont

    names = list(rows)[:20] or ["(no jobs)"]
    width, bar_height, left, top = 1000, 34, 220, 70
    height = top + bar_height * len(names) + 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=16)
    title = ImageFont.load_default(size=20)
    draw.text((20, 20), f"imagejobs cost by {by}, jobs created in the last {since} (USD)", fill="black", font=title)
    largest = max((row.total_usd for row in rows.values()), default=Decimal(0)) or Decimal(1)
    scale = (width - left - 160) / float(largest)
    for index, name in enumerate(names):
        row = rows.get(name, Row())
        y = top + index * bar_height
        draw.text((20, y + 7), name[:24], fill="black", font=font)
        image_px = float(row.image_usd) * scale
        orchestration_px = float(row.orchestration_usd) * scale
        draw.rectangle((left, y + 4, left + image_px, y + bar_height - 6), fill=(52, 110, 235))
        draw.rectangle(
            (left + image_px, y + 4, left + image_px + max(orchestration_px, 0), y + bar_height - 6),
            fill=(245, 160, 40),
        )
        draw.text(
            (left + image_px + orchestration_px + 8, y + 7),
            f"${row.total_usd:.4f}  ({row.jobs} jobs)",
            fill="black",
            font=font,
        )
    legend_y = height - 40
    draw.rectangle((left, legend_y, left + 16, legend_y + 16), fill=(52, 110, 235))
    draw.text((left + 22, legend_y), "images", fill="black", font=font)
    draw.rectangle((left + 110, legend_y, left + 126, legend_y + 16), fill=(245, 160, 40))
    draw.text((left + 132, legend_y), "orchestration (Step Functions + Lambda)", fill="black", font=font)
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, "PNG")


def run(table_resource: Any, *, by: str, since: str, plot_to: str | None, out: TextIO) -> int:
    if by not in GROUPS:
        raise CostsProblem(f"--by {by!r}: choose one of {', '.join(GROUPS)}")
    items = job_items(table_resource, time.time() - since_seconds(since))
    rows = tally(items, by)
    print_table(rows, by, since, out)
    if plot_to:
        plot(rows, by, since, Path(plot_to))
        print(f"chart: {plot_to}", file=out)
    return 0
