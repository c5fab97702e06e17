"""Images a tenant uploads to S3 first, for edits larger than an HTTP request can carry.

An edit's multipart body reaches the API function base64-encoded inside a Lambda invocation,
whose payload is capped at 6 MB (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
about 4.5 MB of images in all. Larger images go straight to S3 with a presigned POST
(POST /v1/uploads answers one; S3 itself enforces its size and type,
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html), and the edit
names them by id (`image_upload`, `mask_upload` form fields). The object is the tenant's alone:
its key carries a digest of the tenant, so another tenant's id names nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from imagejobs.domain.images import MAX_IMAGE_BYTES, InvalidImage

PREFIX = "inputs/uploads/"
UPLOAD_ID = re.compile(r"^upload_[0-9a-f]{24}$")
UPLOAD_TTL_SECONDS = 3600  # the presigned POST's life (a role session's, at most: docs/api.md, "Large images")
CONTENT_TYPES = {"image/png", "image/jpeg", "image/webp"}


@dataclass(frozen=True)
class UploadTicket:
    id: str
    key: str
    url: str
    fields: dict[str, str]
    expires_at: int


def new_upload_id() -> str:
    return "upload_" + secrets.token_hex(12)


def key_for(tenant: str, upload_id: str) -> str:
    if not UPLOAD_ID.fullmatch(upload_id):
        raise InvalidImage(
            f"'{upload_id}' is not an upload id (upload_ followed by 24 hex digits).",
            reason="invalid_upload_id",
            param="image_upload",
        )
    return f"{PREFIX}{hashlib.sha256(tenant.encode()).hexdigest()[:32]}/{upload_id}"


def check_declared(mime_type: str, size: int) -> None:
    """What the caller says it will upload; S3 then holds it to that (the POST policy)."""
    if mime_type not in CONTENT_TYPES:
        raise InvalidImage(
            f"mime_type must be one of {', '.join(sorted(CONTENT_TYPES))}.",
            reason="unsupported_image_format",
            param="mime_type",
        )
    if not 1 <= size < MAX_IMAGE_BYTES:
        raise InvalidImage(
            f"bytes must be from 1 to {MAX_IMAGE_BYTES - 1} (each image must be under 50 MB).",
            reason="image_too_large",
            param="bytes",
        )
