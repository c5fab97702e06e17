"""What a prompt asks of the simulated provider: its markers ("[sim:fail]", "[sim:evil_usage]",
...) as a `Behaviour`, how long a job takes by quality (`Latency`, `QUALITY_LATENCY`), and the
sizes each model takes."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

# Output tokens per image at 1024x1024 (OpenAI's published figures for gpt-image-1).
OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160}
# gpt-image-2's, from OpenAI's per-image costs at 1024x1024 ($0.006, $0.053, $0.211: its image
# generation guide) over its $30 per 1M output tokens (its pricing page).
OUTPUT_TOKENS_GPT_IMAGE_2 = {"low": 200, "medium": 1767, "high": 7033}
SIZES = {"1024x1024": (1024, 1024), "1536x1024": (1536, 1024), "1024x1536": (1024, 1536)}


def size_refusal(model: str, size: str) -> str | None:
    """What OpenAI's reference says each model takes, written here independently of the stack's
    catalog (so the two can disagree, as a real provider and our catalog could): gpt-image-2 any
    WIDTHxHEIGHT with sides multiples of 16, at most 3840, ratio at most 3:1, 655,360-8,294,400
    pixels; the others the three fixed sizes. None when the size is taken."""
    if size == "auto" or size in SIZES:
        return None
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    if not model.endswith("gpt-image-2") or not match:
        return f"Invalid value: '{size}'. Supported values are: '1024x1024', '1536x1024', '1024x1536', and 'auto'."
    width, height = int(match[1]), int(match[2])
    fits = (
        width % 16 == 0
        and height % 16 == 0
        and max(width, height) <= 3840
        and max(width, height) <= 3 * min(width, height)
        and 655_360 <= width * height <= 8_294_400
    )
    return None if fits else f"Invalid size '{size}' for gpt-image-2."


def dimensions(size: str) -> tuple[int, int]:
    """Pixels of a requested size ("auto": 1024x1024)."""
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    return (int(match[1]), int(match[2])) if match else (1024, 1024)


# "[sim:evil_<kind>]": a provider that answers what no contract allows, each kind one finding of
# an outside round of hostile tests. Usage: counts below zero, past any job's reservation (but
# plausible as integers), above any believable count, as strings, as a huge float; results: 200
# URLs for one image, an SVG with a script as the image, an "image" of 60 MB; its error message
# echoing the bearer key it was sent; timestamps of inf and the year 33658; a status that goes
# back from succeeded to in_progress at the next look.
EVIL = {
    "usage_negative",
    "usage_dear",
    "usage_huge",
    "usage_strings",
    "usage_float",
    "extra_urls",
    "not_image",
    "huge_output",
    "echo_key",
    "bad_times",
    "regress",
    "partial",  # the first image, then an SVG: a job that fails with an output already stored
}
MARKER = re.compile(r"\[sim:([a-z0-9_]+)(?:=([0-9.]+))?\]")
# Counted faults: "[sim:<where>_<kind>=N]" serves the fault on the first N calls of that kind.
FAULT_MARKERS = {
    "submit_429",
    "submit_5xx",
    "submit_reset",
    "submit_timeout",
    "submit_malformed",
    "poll_429",
    "poll_5xx",
    "poll_reset",
    "poll_timeout",
    "poll_malformed",
    "download_403",
    "download_404",
    "download_cut",
}


# Generation time by quality (job seconds, uniform within each range): what `make serve` simulates
# unless told otherwise. Published figures: OpenAI's image generation guide says complex prompts
# may take up to 2 minutes; gpt-image-1's simple prompts take about 2-10 s and complex ones 8-25 s
# (cometapi.com, "How long does ChatGPT take to create an image"); gpt-image-2's high quality
# at 1536x1024 takes about 235 s, 30-50x its low quality (help.apiyi.com, "GPT-image-2 API
# invocation performance optimization"). "auto" lets the model choose: medium to high.
QUALITY_LATENCY: dict[str, tuple[float, float]] = {
    "low": (4.0, 15.0),
    "medium": (10.0, 40.0),
    "high": (30.0, 120.0),
    "auto": (10.0, 120.0),
}


@dataclass(frozen=True)
class Latency:
    """Generation time in job seconds: uniform(low, high), lognormal around `median`, or
    "quality": uniform within the request's quality's range (QUALITY_LATENCY)."""

    kind: str = "uniform"
    low: float = 30.0
    high: float = 180.0
    median: float = 60.0
    sigma: float = 0.5

    def draw(self, rng: random.Random, quality: str = "auto") -> float:
        if self.kind == "zero":
            return 0.0
        if self.kind == "lognormal":
            return min(self.high * 3, rng.lognormvariate(0, self.sigma) * self.median)
        if self.kind == "quality":
            return rng.uniform(*QUALITY_LATENCY.get(quality, QUALITY_LATENCY["auto"]))
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class Behaviour:
    """What this job will do, read from prompt markers. Unknown markers are ignored."""

    outcome: str = "succeeded"  # succeeded | failed | expired | cancelled | never
    reject_at_submit: str | None = None  # e.g. "moderation_blocked"
    latency: float | None = None  # job seconds, overrides the server's distribution
    noise: bool = False  # render incompressible noise (large files, for memory benchmarks)
    rate_limited_submits: int = 0  # answer this many submit attempts (per Idempotency-Key) with 429
    retry_after: float | None = 2.0  # the Retry-After of 429s (None: no header)
    faults: tuple[tuple[str, int], ...] = ()  # counted faults, see FAULT_MARKERS
    download_seconds: float = 0.0  # stretch each download over this many real seconds
    # Where outputs are served: None (here), "elsewhere" (URLs on another host), "redirect" (a
    # redirect to here), "redirect_elsewhere" (a redirect to another host): the download allow-list.
    download_via: str | None = None
    # TheRouter's pages show the job object without `usage` (cost then on the per-image basis).
    usage: bool = True
    # Where a succeeded job's images are: "unsigned_urls" (TheRouter's job page), "result_data"
    # (`result.data[].url`, its async-media page), "data_url" (`data[].url`, OpenAI's image
    # response) or "b64_json" (`data[].b64_json`, what GPT image models return inline).
    results: str = "unsigned_urls"
    auth_downloads: bool = False  # result URLs answer 401 without the provider's bearer key
    iso_times: bool = False  # created_at / expires_at as ISO 8601 strings (TheRouter's other page)
    unknown_status: bool = False  # report "processing" (no documented status) while running
    odd_id: bool = False  # a job id that is not img_...: a UUID with a slash-free suffix
    # TheRouter documents no Idempotency-Key: "[sim:no_idempotency]" ignores it (every POST is a new job).
    honours_key: bool = True
    # OpenAI direct's webhook for this job (sim_openai): "send", or a fault: "drop" (never sent),
    # "duplicate" (sent twice), "late" (sent webhook_delay job seconds after the end), "forged"
    # (signed with another secret), "stale" (a timestamp outside the 5-minute replay window).
    webhook: str = "send"
    webhook_delay: float = 0.0
    # A misbehaving provider, "[sim:evil_<kind>]": what a hostile or broken provider answers (EVIL).
    evil: frozenset[str] = frozenset()

    def fault_count(self, name: str) -> int:
        return dict(self.faults).get(name, 0)

    @classmethod
    def from_prompt(cls, prompt: str) -> Behaviour:
        values: dict[str, Any] = {}
        for name, number in MARKER.findall(prompt):
            if name in ("fail", "failed"):
                values["outcome"] = "failed"
            elif name in ("expire", "expired"):
                values["outcome"] = "expired"
            elif name in ("cancel", "cancelled"):
                values["outcome"] = "cancelled"
            elif name == "never":
                values["outcome"] = "never"
            elif name == "moderation":
                values["reject_at_submit"] = "moderation_blocked"
            elif name == "latency" and number:
                values["latency"] = float(number)
            elif name == "noise":
                values["noise"] = True
            elif name == "no_usage":
                values["usage"] = False
            elif name == "no_idempotency":
                values["honours_key"] = False
            elif name in ("result_data", "data_url", "b64_json"):
                values["results"] = name
            elif name in ("auth_downloads", "iso_times", "unknown_status", "odd_id"):
                values[name] = True
            elif name == "ratelimit":
                values["rate_limited_submits"] = int(float(number or 1))
            elif name == "retry_after":
                values["retry_after"] = float(number) if number else None
            elif name == "moderated":
                values["outcome"] = "moderated"
            elif name == "download_slow":
                values["download_seconds"] = float(number or 1)
            elif name in ("download_elsewhere", "download_redirect", "download_redirect_elsewhere"):
                values["download_via"] = name.removeprefix("download_")
            elif name in ("webhook_drop", "webhook_duplicate", "webhook_late", "webhook_forged", "webhook_stale"):
                values["webhook"] = name.removeprefix("webhook_")
                values["webhook_delay"] = float(number or 60) if name == "webhook_late" else 0.0
            elif name in FAULT_MARKERS:
                values.setdefault("faults", {})[name] = int(float(number or 1))
            elif name.startswith("evil_") and name.removeprefix("evil_") in EVIL:
                values["evil"] = values.get("evil", frozenset()) | {name.removeprefix("evil_")}
        if "faults" in values:
            values["faults"] = tuple(sorted(values["faults"].items()))
        return cls(**values)
