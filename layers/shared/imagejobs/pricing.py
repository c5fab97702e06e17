"""Job cost: what the image cost (from prices.json, never hard-coded) and what orchestrating it cost."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from typing import Any

from imagejobs.models import Cost, Usage

MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.000001")  # costs are kept to a millionth of a dollar


class UnknownModel(LookupError):
    pass


@cache
def price_table() -> dict[str, Any]:
    text = resources.files("imagejobs").joinpath("prices.json").read_text(encoding="utf-8")
    return json.loads(text)


def catalog_name(model: str) -> str:
    """The catalog's name for a model: "gpt-image-1" and "openai/gpt-image-1" are one entry; a
    vendor prefix must be the entry's own ("othervendor/gpt-image-1" is not OpenAI's model)."""
    models: dict[str, Any] = price_table()["models"]
    if model in models:
        return model
    if "/" not in model:
        for name in models:
            if name.split("/", 1)[-1] == model:
                return name
    raise UnknownModel(model)


def model_prices(model: str) -> dict[str, Any]:
    return dict(price_table()["models"][catalog_name(model)])


def model_view(name: str) -> dict[str, Any]:
    """One catalog entry in OpenAI's model shape (`id`, `object`, `created`, `owned_by`), with its
    prices and lifecycle beside: GET /v1/models. `created` is its release date where the catalog
    knows it, else 0."""
    from datetime import UTC, datetime

    entry = price_table()["models"][name]
    lifecycle = dict(entry.get("lifecycle") or {})
    released = lifecycle.get("released")
    created = int(datetime.fromisoformat(released).replace(tzinfo=UTC).timestamp()) if released else 0
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": name.split("/", 1)[0] if "/" in name else "imagejobs",
        "pricing": {
            "currency": entry["currency"],
            "per_image": entry["per_image"],
            "per_image_size": entry["per_image_size"],
            "per_million_tokens": entry["per_million_tokens"],
        },
        "lifecycle": {key: value for key, value in lifecycle.items() if not key.startswith("_")},
        "source": entry.get("_source"),
    }


def model_views() -> list[dict[str, Any]]:
    return [model_view(name) for name in sorted(price_table()["models"])]


def image_price(model: str, quality: str) -> Decimal:
    prices = model_prices(model)
    if quality == "auto":
        quality = prices["auto_quality_priced_as"]
    return Decimal(prices["per_image"][quality])


def job_cost(model: str, quality: str, images: int, usage: Usage | None) -> Cost:
    """Usage tokens when the provider reported them, the per-image table otherwise."""
    prices = model_prices(model)
    if usage is not None and usage.total_tokens > 0:
        per_million = {k: Decimal(v) for k, v in prices["per_million_tokens"].items()}
        amount = (
            usage.text_input_tokens * per_million["text_input"]
            + usage.image_input_tokens * per_million["image_input"]
            + usage.output_tokens * per_million["output"]
        ) / MILLION
        return Cost(amount=_money(amount), currency=prices["currency"], basis="usage")
    amount = image_price(model, quality) * images
    return Cost(amount=_money(amount), currency=prices["currency"], basis="per_image")


def reserve_amount(model: str, request: dict[str, Any], input_images: int = 0) -> Decimal:
    """What a job may cost at most, reserved against its tenant's budget before it is sent.

    Quality 'auto' and sizes other than the priced one are taken at their dearest (prices.json
    `reserve`); edits add their input images as image tokens and the prompt as text tokens."""
    prices = model_prices(model)
    bounds = prices["reserve"]
    quality = str(request.get("quality") or "auto")
    if quality == "auto":
        quality = bounds["auto_quality_priced_as"]
    per_image = Decimal(prices["per_image"][quality])
    size = str(request.get("size") or "auto")
    factor = Decimal(bounds["size_factor"].get(size, max(bounds["size_factor"].values(), key=Decimal)))
    per_million = {k: Decimal(v) for k, v in prices["per_million_tokens"].items()}
    prompt_tokens = Decimal(len(str(request.get("prompt") or ""))) * Decimal(bounds["text_input_tokens_per_char"])
    image_tokens = Decimal(input_images * int(bounds["image_input_tokens_per_image"]))
    amount = (
        per_image * factor * int(request.get("n") or 1)
        + (prompt_tokens * per_million["text_input"] + image_tokens * per_million["image_input"]) / MILLION
    )
    return Decimal(_money(amount))


def orchestration_cost(polls: int, held_seconds: float = 0.0) -> Decimal:
    """Estimated Step Functions transitions plus Lambda requests and GB-seconds for one job.

    Calls: intake, submit and finalize at the functions' memory, plus one status call per poll
    at the status function's memory for its base time and the seconds it held (followed the
    provider inside the call)."""
    aws = price_table()["aws"]
    transitions = int(aws["transitions_fixed"]) + int(aws["transitions_per_poll"]) * polls
    per_call = Decimal(aws["lambda_seconds_per_invocation"])
    gb_seconds = Decimal(aws["lambda_memory_gb"]) * per_call * 3 + Decimal(aws["status_memory_gb"]) * (
        per_call * polls + Decimal(repr(round(held_seconds, 3)))
    )
    amount = (
        transitions * Decimal(aws["step_functions_per_transition"])
        + (3 + polls) * Decimal(aws["lambda_per_request"])
        + gb_seconds * Decimal(aws["lambda_per_gb_second"])
    )
    return amount.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)


def _money(amount: Decimal) -> str:
    return str(amount.quantize(CENT_FRACTION, rounding=ROUND_HALF_UP))
