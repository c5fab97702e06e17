"""The provider's answers, read as the untrusted data they are: a job object normalised and bounded
(its status, at most what was asked of its URLs, its usage counts checked, its timestamps within
reason), and an error answer turned into a domain error with the provider's own words, redacted."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import httpx

from imagejobs.domain.errors import (
    JobRejected,
    ProviderAuthError,
    ProviderOutOfCredits,
    ProviderUnavailable,
    RateLimited,
)
from imagejobs.domain.models import JobStatus, ProviderJob, Usage

# A provider's timestamps are its word: one outside these bounds (inf, NaN, the year 33658) is no
# timestamp at all. Nothing of ours is timed by them (a job's instants are our own clock's).
EARLIEST_TIMESTAMP, LATEST_TIMESTAMP = 1_000_000_000.0, 10_000_000_000.0  # 2001 .. 2286


def parse_timestamp(value: Any) -> float | None:
    """Unix seconds (int, float or numeric string) or an ISO-8601 string; None for anything else,
    or for an instant that is not finite or not between 2001 and 2286."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    seconds: float | None = None
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except (ValueError, OverflowError):
                return None
    if seconds is None or not math.isfinite(seconds) or not EARLIEST_TIMESTAMP <= seconds <= LATEST_TIMESTAMP:
        return None
    return seconds


# Token counts a provider reports are believed only as non-negative integers below this (a
# thousand times the most any job here can use: 10 images of gpt-image-2's largest size).
MAX_TOKENS = 100_000_000
DETAIL_COUNTS = ("text_tokens", "image_tokens", "cached_tokens")


def checked_usage(raw: Any) -> Usage | None:
    """The provider's usage block if every count in it is a plain non-negative integer within
    MAX_TOKENS (not a string, a float, a bool, 1e40 or -2000000); None otherwise, and the job is
    then priced per image (basis `per_image`): money never moves on a number that failed its check."""
    if not isinstance(raw, dict):
        return None

    def count(value: Any) -> bool:
        return type(value) is int and 0 <= value <= MAX_TOKENS

    counts = {name: raw.get(name, 0) for name in ("input_tokens", "output_tokens", "total_tokens")}
    details = raw.get("input_tokens_details", {})
    if not all(count(value) for value in counts.values()) or not isinstance(details, dict):
        return None
    details = {name: value for name, value in details.items() if name in DETAIL_COUNTS}
    if not all(count(value) for value in details.values()):
        return None
    if sum(details.get(name, 0) for name in ("text_tokens", "image_tokens")) > counts["input_tokens"]:
        return None  # its parts are more than its whole
    return Usage(**counts, input_tokens_details=details)


RETRY_AFTER_MAX_SECONDS = 3600.0  # a provider's Retry-After is held to this (it spaces every submission)


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (RFC 9110 also allows an HTTP date: read as absent), bounded: it
    delays the job and, under a rate cap, every submission's next turn, so "inf" or a year is
    taken as an hour and "nan" as absent."""
    header = response.headers.get("retry-after")
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        return None
    return None if math.isnan(seconds) else min(RETRY_AFTER_MAX_SECONDS, max(0.0, seconds))


# Whatever a provider's message holds is shown to tenants (the job's error, its event and webhook):
# a credential in it never is. Some providers echo the key they were sent on "invalid key".
BEARER = re.compile(r"(?i)\bbearer\s+[^\s\"',;]+")
SECRET_LIKE = re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_\-]{8,}")


def redacted(text: str, *secrets: str) -> str:
    """A provider's text without the operator's key, any bearer token or anything key-shaped."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return SECRET_LIKE.sub(r"\1-[redacted]", BEARER.sub("Bearer [redacted]", text))


def error_fields(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return error.get("code"), str(error.get("message") or "")
    except ValueError:
        pass
    return None, response.text[:200]


def raise_for_provider_error(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    code, message = error_fields(response)
    if status == 429:
        raise RateLimited(message or "provider rate limit", retry_after=_retry_after(response))
    if status in (401, 403):
        raise ProviderAuthError(f"provider refused the API key ({status})")
    if status == 402:
        raise ProviderOutOfCredits(message or "provider account is out of credits")
    if status >= 500 or status == 408:
        raise ProviderUnavailable(f"provider answered {status}")
    raise JobRejected(message or f"provider answered {status}", code=code or "invalid_request")


def result_urls(body: dict[str, Any]) -> list[str]:
    """A succeeded job's images, wherever this provider puts them. TheRouter's pages show
    `unsigned_urls[]` (the job page) and `result.data[].url` (the async-media page); OpenAI's image
    response has `data[].url` or, for GPT image models, `data[].b64_json` (inline: a data: URL)."""
    if isinstance(body.get("unsigned_urls"), list) and body["unsigned_urls"]:
        return [str(url) for url in body["unsigned_urls"]]
    result = body.get("result")
    nested = result.get("data") if isinstance(result, dict) else None
    items: list[Any] = nested if isinstance(nested, list) else body.get("data") or []
    if not isinstance(items, list):
        items = []
    urls = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            urls.append(item["url"])
        elif isinstance(item, dict) and isinstance(item.get("b64_json"), str):
            urls.append("data:application/octet-stream;base64," + item["b64_json"])
    return urls


def parse_job(body: Any) -> ProviderJob:
    if not isinstance(body, dict) or "id" not in body or "status" not in body:
        raise ProviderUnavailable("provider answered with something that is not a job object")
    reported = None
    try:
        status = JobStatus(body["status"])
    except ValueError:
        # Not in the contract: not final either. Followed (and logged) until our deadline.
        status, reported = JobStatus.IN_PROGRESS, str(body["status"])[:64]
    error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    usage = body.get("usage")
    if not isinstance(body["id"], str | int) or isinstance(body["id"], bool) or not 0 < len(str(body["id"])) <= 256:
        raise ProviderUnavailable("provider answered with a job id that is not one")
    return ProviderJob(
        id=str(body["id"]),
        status=status,
        reported_status=reported,
        created_at=parse_timestamp(body.get("created_at")),
        completed_at=parse_timestamp(body.get("completed_at")),
        unsigned_urls=result_urls(body),
        usage=checked_usage(usage),
        error_code=str(error["code"])[:64] if isinstance(error.get("code"), str) else None,
        error_message=str(error["message"])[:500] if error.get("message") is not None else None,
    )
