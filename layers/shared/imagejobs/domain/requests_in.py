"""ImageJobRequested events: a pipeline asks for a job by putting an event on the bus.

`detail` is a generation request, or an edit request whose `images` (and `mask`) are
s3://bucket/key URIs in buckets the stack may read (the inbox and EventInputBuckets), plus the
optional `webhook_url` and `correlation_id`. The event's id makes the job id, so EventBridge
retrying a delivery is still one job.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, ValidationError

from imagejobs.domain.models import Model, ObjectRef

DETAIL_TYPE = "ImageJobRequested"


class Envelope(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    source: str
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any]


class InputNotAllowed(ValueError):
    reason = "input_not_allowed"


def parse_envelope(body: Any) -> Envelope | None:
    """An EventBridge event envelope, or None when the message is something else."""
    required = {"id", "source", "detail-type", "detail"}
    if isinstance(body, dict) and required <= body.keys() and isinstance(body["detail"], dict):
        try:
            return Envelope.model_validate(body)
        except ValidationError:  # an id or detail-type that is not a string: not an event of ours
            return None
    return None


class InvalidDetail(ValueError):
    reason = "invalid_request"


MAX_CORRELATION_ID = 256


def correlation_of(detail: Any) -> str | None:
    """The caller's correlation id if it is one (a string, at most 256 characters): kept on the
    job even when the rest of the request is refused, so a pipeline can tell which one failed."""
    value = detail.get("correlation_id") if isinstance(detail, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= MAX_CORRELATION_ID else None


def split_detail(detail: dict[str, Any]) -> tuple[dict[str, Any], list[str], str | None, str | None]:
    """(request parameters, image URIs, mask URI, correlation id). InvalidDetail when `images`
    is not a URI or a list of them, or `mask` / `correlation_id` is not a string."""
    params = dict(detail)
    images = params.pop("images", None) or []
    if isinstance(images, str):
        images = [images]
    mask = params.pop("mask", None)
    correlation = params.pop("correlation_id", None)
    if not isinstance(images, list) or not all(isinstance(uri, str) for uri in images):
        raise InvalidDetail("images must be an s3:// URI or a list of them")
    if mask is not None and not isinstance(mask, str):
        raise InvalidDetail("mask must be an s3:// URI")
    if correlation is not None and (not isinstance(correlation, str) or len(correlation) > MAX_CORRELATION_ID):
        raise InvalidDetail(f"correlation_id must be a string of at most {MAX_CORRELATION_ID} characters")
    return params, images, mask or None, correlation or None


def recordable(params: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    """What of a refused request a failed job keeps: its known parameters with plain values (what
    a DynamoDB item can hold: no nesting past its 32 levels, no NaN, nothing huge)."""
    kept: dict[str, Any] = {}
    for name, value in params.items():
        if name not in fields:
            continue
        if isinstance(value, str):
            kept[name] = value[:32_000]
        elif isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
            kept[name] = value
    return kept


def s3_input(uri: str, allowed_buckets: set[str]) -> ObjectRef:
    parts = urlsplit(uri)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key:
        raise InputNotAllowed(f"{uri!r} is not an s3://bucket/key URI")
    if parts.netloc not in allowed_buckets:
        raise InputNotAllowed(f"bucket {parts.netloc!r} is not one this stack may read (EventInputBuckets)")
    return ObjectRef(bucket=parts.netloc, key=key)
