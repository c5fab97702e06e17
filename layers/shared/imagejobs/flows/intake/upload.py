"""Inbox intake: an image uploaded to the S3 inbox becomes an edit job, one per object version and
its own instructions. An upload without usable instructions, or whose image breaks the rules, ends
as a failed job that says why: never silently dropped."""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue

from imagejobs.domain import clock, identity, uploads
from imagejobs.domain.errors import ImageJobsError
from imagejobs.domain.images import check_image
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import GenerationRequest, ObjectInfo, ObjectRef
from imagejobs.flows.intake.common import Problem, checked_request, new_record, record_or_fail
from imagejobs.flows.ports import Deps, need


def accept_upload(deps: Deps, upload: ObjectRef, rules_document: Any) -> JobRecord:
    """One job per uploaded object version and its own instructions (the same bytes sent again to
    the same key with another prompt are another job)."""
    objects = need(deps.objects, "objects")
    settings = deps.settings
    problem: Problem | None = None
    try:
        info: ObjectInfo | None = objects.head(upload)
    except ImageJobsError as exc:  # gone or unreadable: still a job that says so
        info, problem = None, (exc.reason, exc.message)
        # ...unless an earlier delivery of the same event made its job: its id hashed instructions
        # this delivery can no longer read, so the object points at it.
        first = deps.store.pointed_job(uploads.object_name(upload))
        if first is not None and (earlier := deps.store.get(first)) is not None:
            return earlier
    job_id = identity.upload_job_id(upload, info.metadata if info else {})
    existing = deps.store.get(job_id)
    if existing is not None:
        return existing
    request: GenerationRequest | dict[str, JsonValue] = {}
    if info is not None:
        ttl = int(clock.wall_now()) + settings.job_record_ttl_days * 86_400
        deps.store.point(uploads.object_name(upload), job_id, ttl)
        upload, request, problem = _checked(deps, upload, info, rules_document)
    record = new_record(
        deps,
        job_id,
        settings.inbox_tenant,
        "upload",
        "edit",
        request,
        identity.fingerprint(request),
        [upload],
        origin=upload,
    )
    return record_or_fail(deps, record, problem)


def _checked(
    deps: Deps, upload: ObjectRef, info: ObjectInfo, rules_document: Any
) -> tuple[ObjectRef, GenerationRequest | dict[str, JsonValue], Problem | None]:
    """The upload pinned (its version or ETag: what is checked here is what is sent at submit),
    its instructions parsed and checked, and its image checked."""
    upload = upload.model_copy(
        update={
            "version_id": upload.version_id or info.version_id,
            "etag": upload.etag or info.etag,
            "content_type": info.content_type,
        }
    )
    request: GenerationRequest | dict[str, JsonValue] = {}
    try:
        request = checked_request(deps, uploads.instructions(upload.key, info.metadata, rules_document))
        checked = check_image(need(deps.objects, "objects").read(upload), name=f"s3://{upload.bucket}/{upload.key}")
        return upload.model_copy(update={"content_type": checked.content_type}), request, None
    except (uploads.NoInstructions, uploads.InvalidInstructions) as exc:
        return upload, request, (exc.reason, str(exc))
    except ImageJobsError as exc:
        return upload, request, (exc.reason, exc.message)
