"""What names a job, and what makes two requests the same.

A job's id is derived from what it came from, so a retried delivery lands on the same job: the
caller's Idempotency-Key (per tenant), the EventBridge event id, or the uploaded object version and
its own instructions. Each source hashes in its own namespace ("api", "event", "upload"), so a
tenant named "event" whose key is an event id does not land on that event's job. Without any of
them a job gets a fresh random id. Ids are `img_` and 24 hex digits either way.

The fingerprint is the one answer to "is this the same request": an Idempotency-Key reused with a
different body is refused by it, and a plain call's retry joins the job whose fingerprint it has.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

from imagejobs.domain.models import GenerationRequest, ObjectRef
from imagejobs.domain.uploads import METADATA_PARAMS

JOB_ID = re.compile(r"img_[0-9a-f]{24}")


def _derived(namespace: str, *parts: str) -> str:
    return "img_" + hashlib.sha256("\x00".join((namespace, *parts)).encode()).hexdigest()[:24]


def fresh_job_id() -> str:
    return "img_" + secrets.token_hex(12)


def api_job_id(tenant: str, idempotency_key: str | None) -> str:
    """A caller's Idempotency-Key maps to one job id, so a retried POST finds the first job."""
    return _derived("api", tenant, idempotency_key) if idempotency_key else fresh_job_id()


def event_job_id(event_id: str) -> str:
    """One job per EventBridge event id: a redelivered event is the same job."""
    return _derived("event", event_id)


def upload_job_id(ref: ObjectRef, metadata: Mapping[str, str]) -> str:
    """One job per uploaded object version and its own instructions (the request parameters among
    its x-amz-meta-*): the same bucket/key/version (or ETag) with the same instructions is one job,
    however often S3 delivers the event; the same bytes uploaded again with another prompt are
    another job."""
    own = sorted((name.lower(), value) for name, value in metadata.items() if name.lower() in METADATA_PARAMS)
    return _derived("upload", ref.bucket, ref.key, ref.version_id or ref.etag or "", json.dumps(own))


def fingerprint(request: GenerationRequest | Mapping[str, Any], *attachments: bytes) -> str:
    """What makes two requests the same: every parameter (the parsed request as a whole, or what
    was kept of a refused one) and the bytes of any attached images, in order."""
    fields = request.model_dump() if isinstance(request, GenerationRequest) else dict(request)
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode())
    for data in attachments:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()
