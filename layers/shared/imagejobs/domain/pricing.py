"""Job cost: what the image cost (from prices.json, never hard-coded) and what orchestrating it cost."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from typing import Any, Literal

from imagejobs.domain.models import Cost, GenerationRequest, Usage

MILLION = Decimal(1_000_000)
CENT_FRACTION = Decimal("0.000001")  # costs are kept to a millionth of a dollar


class UnknownModel(LookupError):
    pass


class ModelShutDown(LookupError):
    """A catalog entry past its shutdown date: never sent upstream (`replacement` names its successor)."""

    def __init__(self, model: str, shutdown: str | None, replacement: str | None) -> None:
        super().__init__(model)
        self.model, self.shutdown, self.replacement = model, shutdown, replacement


Lifecycle = Literal["active", "deprecated", "shut_down"]
SQUARE_PIXELS = 1024 * 1024


@cache
def price_table() -> dict[str, Any]:
    text = resources.files("imagejobs.domain").joinpath("prices.json").read_text(encoding="utf-8")
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


def same_model(a: str, b: str) -> bool:
    """Two spellings of one model: one catalog entry (gpt-image-1 is openai/gpt-image-1), or, for
    names the catalog does not know, the same string."""
    try:
        return catalog_name(a) == catalog_name(b)
    except UnknownModel:
        return a == b


def aliased(model: str, aliases: dict[str, str]) -> str:
    """The operator's mapping (ModelAliases, e.g. gpt-image-1=gpt-image-2) applied once."""
    return next((target for source, target in aliases.items() if same_model(model, source)), model)


def routed(model: str, routes: dict[str, str]) -> str | None:
    """The provider ProviderRoutes names for a model (any spelling of it), or None."""
    return next((target for source, target in routes.items() if same_model(model, source)), None)


def served_by(model: str, provider: str) -> bool:
    """Whether a provider makes a model: TheRouter every model in the catalog, another provider
    those its entry prices for it (`providers.<name>`, from that provider's own price list)."""
    try:
        entry = price_table()["models"][catalog_name(model)]
    except UnknownModel:
        return False
    return provider == "therouter" or provider in (entry.get("providers") or {})


def lifecycle(model: str, today: date) -> Lifecycle:
    """active, deprecated (served, with Deprecation/Sunset headers) or shut_down (refused):
    a `shutdown` date that has come ends a model whatever its `status` says."""
    entry = price_table()["models"][catalog_name(model)].get("lifecycle") or {}
    shutdown = entry.get("shutdown")
    if entry.get("status") == "shut_down" or (shutdown and date.fromisoformat(shutdown) <= today):
        return "shut_down"
    return "deprecated" if entry.get("status") == "deprecated" or shutdown else "active"


def servable(model: str, today: date) -> str:
    """The catalog name of a model that may run today (UnknownModel, ModelShutDown otherwise)."""
    name = catalog_name(model)
    if lifecycle(name, today) == "shut_down":
        entry = price_table()["models"][name]["lifecycle"]
        raise ModelShutDown(model, entry.get("shutdown"), entry.get("replacement"))
    return name


def deprecation_headers(model: str, today: date) -> dict[str, str]:
    """RFC 9745 `Deprecation` (@unix seconds of the date it was deprecated) and RFC 8594 `Sunset`
    (the HTTP-date of its shutdown, when one is known) for a deprecated model; none otherwise."""
    try:
        if lifecycle(model, today) != "deprecated":
            return {}
    except UnknownModel:
        return {}
    entry = price_table()["models"][catalog_name(model)]["lifecycle"]
    headers: dict[str, str] = {}
    if entry.get("deprecated"):
        headers["Deprecation"] = f"@{_midnight(entry['deprecated'])}"
    if entry.get("shutdown"):
        headers["Sunset"] = datetime.fromtimestamp(_midnight(entry["shutdown"]), UTC).strftime(
            "%a, %d %b %Y %H:%M:%S GMT"
        )
    if entry.get("replacement"):
        headers["Link"] = f'</v1/models/{entry["replacement"]}>; rel="successor-version"'
    return headers


def _midnight(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


def size_problem(model: str, size: str) -> str | None:
    """Why a model does not take a size (its catalog `rules.size`), or None. A size is one of the
    listed `sizes`, or, where the model takes custom sizes, WIDTHxHEIGHT within `custom`'s bounds."""
    rules = (model_prices(model).get("rules") or {}).get("size")
    if not rules or size in rules.get("sizes", []):
        return None
    listed = ", ".join(rules.get("sizes", []))
    custom = rules.get("custom")
    if not custom:
        return f"{model} takes size {listed}, not {size}."
    width, height = (int(side) for side in size.split("x"))
    step, edge, ratio = int(custom["multiple_of"]), int(custom["max_edge"]), Decimal(custom["max_ratio"])
    pixels = width * height
    if width % step or height % step:
        return f"{model} takes sizes whose sides are multiples of {step}; {size} is not."
    if max(width, height) > edge:
        return f"{model} takes sizes with sides up to {edge} pixels; {size} is larger."
    if Decimal(max(width, height)) / Decimal(min(width, height)) > ratio:
        return f"{model} takes sizes no longer than {ratio}:1 on either side; {size} is."
    if not int(custom["min_pixels"]) <= pixels <= int(custom["max_pixels"]):
        return (
            f"{model} takes sizes of {custom['min_pixels']} to {custom['max_pixels']} pixels in all; "
            f"{size} has {pixels}."
        )
    return None


def size_factor(model: str, size: str, *, auto_at_most: bool) -> Decimal:
    """How many priced-size images one image of `size` counts as: the catalog's factor for the
    sizes it lists, the pixel count over 1024x1024 for custom sizes; `auto` is taken at its dearest
    (reserving) or as the priced size (billing: the provider chose it, and reported no usage)."""
    bounds = model_prices(model)["reserve"]["size_factor"]
    if size in bounds and (size != "auto" or auto_at_most):
        return Decimal(bounds[size])
    if size == "auto":
        return Decimal(1)
    width, height = (int(side) for side in size.split("x"))
    return max(Decimal(1), Decimal(width * height) / SQUARE_PIXELS)


def model_prices(model: str, provider: str | None = None) -> dict[str, Any]:
    """A model's catalog entry; with `provider`, as that provider prices it (the entry's
    `providers.<name>` overrides its rates: OpenAI's own prices for OpenAI direct)."""
    entry = dict(price_table()["models"][catalog_name(model)])
    override = (entry.get("providers") or {}).get(provider or "")
    return {**entry, **{k: v for k, v in override.items() if not k.startswith("_")}} if override else entry


def model_view(name: str) -> dict[str, Any]:
    """One catalog entry in OpenAI's model shape (`id`, `object`, `created`, `owned_by`), with its
    prices and lifecycle beside: GET /v1/models. `created` is its release date where the catalog
    knows it, else 0."""
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


def model_views(today: date) -> list[dict[str, Any]]:
    """The models that may run today (shut-down entries stay in the catalog to name their successor)."""
    return [model_view(name) for name in sorted(price_table()["models"]) if lifecycle(name, today) != "shut_down"]


def image_price(model: str, quality: str, provider: str | None = None) -> Decimal:
    prices = model_prices(model, provider)
    if quality == "auto":
        quality = prices["auto_quality_priced_as"]
    return Decimal(prices["per_image"][quality])


def job_cost(
    model: str, quality: str, images: int, usage: Usage | None, *, size: str, provider: str | None = None
) -> Cost:
    """Usage tokens when the provider reported them, the per-image table otherwise (scaled by
    size_factor: the table prices 1024x1024); at the rates of the provider that made the images,
    with its mainline model's tokens where it bills them (OpenAI direct's background responses)."""
    prices = model_prices(model, provider)
    if usage is not None and usage.total_tokens > 0:
        per_million = {k: Decimal(v) for k, v in prices["per_million_tokens"].items()}
        amount = (
            usage.text_input_tokens * per_million["text_input"]
            + usage.image_input_tokens * per_million["image_input"]
            + usage.output_tokens * per_million["output"]
        ) / MILLION
        mainline = (prices.get("mainline") or {}).get("per_million_tokens")
        if mainline:
            tokens_in, tokens_out = usage.mainline_tokens
            amount += (tokens_in * Decimal(mainline["input"]) + tokens_out * Decimal(mainline["output"])) / MILLION
        return Cost(amount=_money(amount), currency=prices["currency"], basis="usage")
    amount = image_price(model, quality, provider) * size_factor(model, size, auto_at_most=False) * images
    return Cost(amount=_money(amount), currency=prices["currency"], basis="per_image")


def within_reservation(cost: Cost, reserved: Decimal) -> tuple[Cost, Decimal]:
    """A job is never charged more than it reserved (the most it could cost, reserve_amount): a
    provider's usage that prices it higher is its word against our bound. Returns the cost to
    charge and the excess left out (0 when it fits), which the job records and a metric counts."""
    amount = Decimal(cost.amount)
    if amount <= reserved:
        return cost, Decimal(0)
    return cost.model_copy(update={"amount": _money(reserved)}), Decimal(_money(amount - reserved))


def reserve_amount(model: str, request: GenerationRequest, input_images: int = 0) -> Decimal:
    """What a job may cost at most, reserved against its tenant's budget before it is sent.

    Quality 'auto' and sizes other than the priced one are taken at their dearest (prices.json
    `reserve`); edits add their input images as image tokens and the prompt as text tokens."""
    prices = model_prices(model)
    bounds = prices["reserve"]
    quality: str = request.quality
    if quality == "auto":
        quality = bounds["auto_quality_priced_as"]
    per_image = Decimal(prices["per_image"][quality])
    factor = size_factor(model, request.size, auto_at_most=True)
    per_million = {k: Decimal(v) for k, v in prices["per_million_tokens"].items()}
    # An upper bound for any text: a BPE token (OpenAI's tokenizers) is at least one byte of UTF-8,
    # so a prompt has at most as many tokens as bytes (an emoji is 4, a CJK character 3).
    prompt_bytes = len(request.prompt.encode("utf-8"))
    prompt_tokens = Decimal(prompt_bytes) * Decimal(bounds["text_input_tokens_per_byte"])
    image_tokens = Decimal(input_images * int(bounds["image_input_tokens_per_image"]))
    amount = (
        per_image * factor * request.n
        + (prompt_tokens * per_million["text_input"] + image_tokens * per_million["image_input"]) / MILLION
    )
    return Decimal(_money(amount))


FIXED_CALLS = 4  # intake, submit, finalize, notify: one each per job


def orchestration_cost(polls: int, held_seconds: float = 0.0) -> Decimal:
    """Estimated Step Functions transitions, Lambda requests and GB-seconds, and the other services'
    share (per_job_services, as bench/costs.py counts it) for one job.

    Calls: intake, submit, finalize and notify at the functions' memory, plus one status call per poll
    at the status function's memory for its base time and the seconds it held (followed the
    provider inside the call)."""
    aws = price_table()["aws"]
    transitions = int(aws["transitions_fixed"]) + int(aws["transitions_per_poll"]) * polls
    per_call = Decimal(aws["lambda_seconds_per_invocation"])
    gb_seconds = Decimal(aws["lambda_memory_gb"]) * per_call * FIXED_CALLS + Decimal(aws["status_memory_gb"]) * (
        per_call * polls + Decimal(repr(round(held_seconds, 3)))
    )
    amount = (
        transitions * Decimal(aws["step_functions_per_transition"])
        + (FIXED_CALLS + polls) * Decimal(aws["lambda_per_request"])
        + gb_seconds * Decimal(aws["lambda_per_gb_second"])
        + Decimal(aws["per_job_services"])
    )
    return amount.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)


def _money(amount: Decimal) -> str:
    return str(amount.quantize(CENT_FRACTION, rounding=ROUND_HALF_UP))
