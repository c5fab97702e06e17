"""HTTP intake: a generation or edit (its images sent in the request or staged by POST /v1/uploads)
recorded as a queued job, reserved against its tenant's budget and queued. One job per
Idempotency-Key; a plain call's retry joins the job it made."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import secrets
from dataclasses import dataclass

from imagejobs.domain import clock, failpoints, identity, staged
from imagejobs.domain.errors import ImageJobsError, ObjectMissing, StaleTransition
from imagejobs.domain.images import (
    MAX_IMAGE_BYTES,
    CheckedImage,
    DecodeBudget,
    InvalidImage,
    check_edit_budget,
    check_edit_inputs,
    check_header_pixels,
    check_image,
)
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import EditRequest, GenerationRequest, JobStatus, Kind, ObjectRef
from imagejobs.flows.intake.common import checked_request, create, new_record, read_checked
from imagejobs.flows.ports import Deps, need
from imagejobs.flows.settle import end_job


class IdempotencyConflict(ImageJobsError):
    reason = "idempotency_key_reused"
    status, error_type, param = 409, "invalid_request_error", "Idempotency-Key"


class EnqueueFailed(ImageJobsError):
    reason = "enqueue_failed"
    transient = True
    status, retry_after = 503, 1.0


@dataclass(frozen=True)
class Caller:
    """Who asked, over HTTP: the tenant, the API base URL they used, their correlation id; for a
    plain call (no async=true), until when it waits for its answer (job clock) and how many times
    the client says it sent this call before (OpenAI's SDKs send x-stainless-retry-count; None:
    the client did not say)."""

    tenant: str
    base_url: str | None = None
    correlation_id: str | None = None
    waits_until: float | None = None
    retry_count: int | None = None


# A retry of a plain call joins a job that ended this long ago at most (wall seconds): the longest
# Retry-After OpenAI's Python SDK honours (MAX_RETRY_AFTER_DELAY, 120 s, in its _constants.py).
JOIN_AFTER_END_SECONDS = 120


def join_key(tenant: str, fingerprint: str) -> str:
    return "join#" + hashlib.sha256(f"plain\x00{tenant}\x00{fingerprint}".encode()).hexdigest()


def _joined(deps: Deps, caller: Caller, fingerprint: str, idempotency_key: str | None) -> JobRecord | None:
    """The job a plain call joins instead of making another: the SDKs retry a call whose wait ran
    out (imagejobs.edge.api.common) with the same body and no idempotency header, and that retry must
    not submit again. Joined: the tenant's last job with the same fingerprint while it is open,
    unless the client says this is a first attempt (retry count 0: two identical calls on purpose
    are two jobs); once it has ended, only by a retry (count >= 1), for JOIN_AFTER_END_SECONDS."""
    if caller.waits_until is None or idempotency_key or caller.retry_count == 0:
        return None
    job_id = deps.store.pointed_job(join_key(caller.tenant, fingerprint))
    record = deps.store.get(job_id) if job_id else None
    if record is None or record.tenant != caller.tenant or record.request_hash != fingerprint:
        return None
    if record.status.final:
        ended = record.completed_at or record.updated_at
        if not caller.retry_count or clock.now() - ended > clock.job_seconds(JOIN_AFTER_END_SECONDS):
            return None
        return record
    with contextlib.suppress(StaleTransition):  # it ended meanwhile (read below), or another waits longer
        deps.store.extend_caller_wait(record.id, caller.waits_until)
    return deps.store.get(record.id) or record


def _remember_join(deps: Deps, caller: Caller, fingerprint: str, job_id: str) -> None:
    """Let this plain call's retries find the job it made (see _joined)."""
    ttl = int(clock.wall_now()) + deps.settings.job_deadline_seconds + 2 * JOIN_AFTER_END_SECONDS
    deps.store.point(join_key(caller.tenant, fingerprint), job_id, ttl)


def accept_generation(
    deps: Deps, *, caller: Caller, request: GenerationRequest, idempotency_key: str | None = None
) -> tuple[JobRecord, bool]:
    """Record a queued job and put it on the submit queue. Returns (job, created)."""
    return _accept(deps, caller=caller, request=request, idempotency_key=idempotency_key)


def create_upload(deps: Deps, *, caller: Caller, filename: str, size: int, mime_type: str) -> staged.UploadTicket:
    """A presigned POST for one image of an edit too large to send over HTTP (imagejobs.domain.staged)."""
    staged.check_declared(mime_type, size)
    del filename  # kept by the caller; the object's key is ours
    upload_id = staged.new_upload_id()
    key = staged.key_for(caller.tenant, upload_id)
    url, fields = need(deps.results, "results").presigned_post(
        key, mime_type, MAX_IMAGE_BYTES - 1, staged.UPLOAD_TTL_SECONDS
    )
    return staged.UploadTicket(
        id=upload_id, key=key, url=url, fields=fields, expires_at=int(clock.now() + staged.UPLOAD_TTL_SECONDS)
    )


def _uploaded(
    deps: Deps,
    tenant: str,
    upload_ids: list[str],
    mask_upload: str | None,
    sent_sizes: list[int],
    decode: DecodeBudget,
) -> tuple[list[tuple[ObjectRef, CheckedImage]], tuple[ObjectRef, CheckedImage] | None]:
    """The tenant's uploaded images: weighed (HEAD) before any is read, then read and checked one
    at a time, keeping only what the rules need (no image data stays in memory)."""
    if not upload_ids and not mask_upload:
        return [], None
    results, objects = need(deps.results, "results"), need(deps.objects, "objects")

    def ref_of(upload_id: str, param: str) -> tuple[ObjectRef, int]:
        ref = ObjectRef(bucket=results.bucket, key=staged.key_for(tenant, upload_id))
        try:
            info = objects.head(ref)
            # Pinned from here on (its ETag): the ticket's presigned POST can write the key again
            # until it expires, and what is checked below, and sent at submit, is this object.
            return ref.model_copy(update={"etag": info.etag}), info.size
        except ObjectMissing:
            raise InvalidImage(
                f"No upload '{upload_id}' (or it was never completed, or it has expired).",
                reason="upload_not_found",
                param=param,
            ) from None

    image_refs = [ref_of(upload_id, "image_upload") for upload_id in upload_ids]
    mask_ref = ref_of(mask_upload, "mask_upload") if mask_upload else None
    check_edit_budget(sent_sizes + [size for _, size in image_refs], mask_size=mask_ref[1] if mask_ref else 0)

    images = [
        read_checked(objects, ref, f"upload {ref.key.rsplit('/', 1)[-1]!r}", "image_upload", decode)
        for ref, _ in image_refs
    ]
    mask = read_checked(objects, mask_ref[0], "mask upload", "mask_upload", decode) if mask_ref else None
    return images, mask


def accept_edit(
    deps: Deps,
    *,
    caller: Caller,
    request: EditRequest,
    images: list[tuple[str, bytes]],
    mask: tuple[str, bytes] | None = None,
    idempotency_key: str | None = None,
    upload_ids: list[str] | None = None,
    mask_upload: str | None = None,
) -> tuple[JobRecord, bool]:
    """Check the images, store them in S3 (so a retried submit never needs the caller again),
    then record and queue the job like a generation. Images sent in the request come first, then
    those uploaded beforehand (`upload_ids`, already in S3: referenced, not copied)."""
    if mask and mask_upload:
        raise InvalidImage("Send the mask as a file or as an upload, not both.", reason="invalid_mask", param="mask")
    request = checked_request(deps, request)  # its own refusals first: before any image is read
    check_edit_budget([len(data) for _, data in images] + [0] * len(upload_ids or []))
    decode = DecodeBudget()
    check_header_pixels([data for _, data in images] + ([mask[1]] if mask else []), decode)
    checked = [check_image(data, name=f"image {name!r}", budget=decode) for name, data in images]
    checked_mask = check_image(mask[1], name="mask", param="mask", budget=decode) if mask else None
    uploaded, uploaded_mask = _uploaded(
        deps, caller.tenant, upload_ids or [], mask_upload, [len(data) for _, data in images], decode
    )
    rules_mask = checked_mask or (uploaded_mask[1] if uploaded_mask else None)
    check_edit_inputs(checked + [image for _, image in uploaded], rules_mask)
    attachments = [image.data for image in checked] + [image.data for _, image in uploaded]
    attachments += [rules_mask.data] if rules_mask else []
    job_id = identity.api_job_id(caller.tenant, idempotency_key)
    if (joined := _joined(deps, caller, identity.fingerprint(request, *attachments), idempotency_key)) is not None:
        return joined, False  # a plain call's retry: its job exists, nothing is stored again
    accept = functools.partial(
        _accept, deps, caller=caller, request=request, idempotency_key=idempotency_key, job_id=job_id, checked=True
    )
    if deps.store.get(job_id) is not None:  # a retry with the same Idempotency-Key: no second upload
        return accept(attachments=attachments)
    results = need(deps.results, "results")
    # Under the job's own id, one prefix per attempt: a refused attempt removes exactly what it stored.
    prefix = f"inputs/{job_id}/{secrets.token_hex(4)}/"

    def store(name: str, image: CheckedImage) -> ObjectRef:
        return results.put_bytes(f"{prefix}{name}.{image.extension}", image.data, image.content_type)

    try:
        inputs = [store(f"image-{index}", image) for index, image in enumerate(checked)]
        inputs += [ref for ref, _ in uploaded]
        stored_mask = store("mask", checked_mask) if checked_mask else (uploaded_mask[0] if uploaded_mask else None)
        return accept(kind="edit", inputs=inputs, mask=stored_mask, attachments=attachments)
    except EnqueueFailed:
        raise  # recorded (and ended, saying why): its inputs belong to it
    except Exception:
        _forget_inputs(deps, job_id, prefix)  # refused or failed before it was recorded
        raise


def _forget_inputs(deps: Deps, job_id: str, prefix: str) -> None:
    """Delete what an edit attempt stored, unless a job record refers to it (a write whose answer
    was lost). If even that cannot be read, the inputs stay for the bucket's lifecycle rule."""
    try:
        record = deps.store.get(job_id)
        if record is None or not any(ref.key.startswith(prefix) for ref in record.inputs):
            need(deps.results, "results").delete_prefix(prefix)
    except Exception:
        return


def _accept(
    deps: Deps,
    *,
    caller: Caller,
    request: GenerationRequest,
    idempotency_key: str | None,
    kind: Kind = "generation",
    inputs: list[ObjectRef] | None = None,
    mask: ObjectRef | None = None,
    attachments: list[bytes] | None = None,
    job_id: str | None = None,
    checked: bool = False,
) -> tuple[JobRecord, bool]:
    tenant = caller.tenant
    request = request if checked else checked_request(deps, request)
    job_id = job_id or identity.api_job_id(tenant, idempotency_key)
    fingerprint = identity.fingerprint(request, *(attachments or []))
    record = new_record(deps, job_id, tenant, "api", kind, request, fingerprint, inputs or [], mask)
    record = record.model_copy(
        update={
            "base_url": caller.base_url,
            "correlation_id": caller.correlation_id,
            "caller_waits_until": caller.waits_until,
        }
    )
    if not checked and (joined := _joined(deps, caller, fingerprint, idempotency_key)) is not None:
        return joined, False
    # A retry finds its first job before any reservation: a cap lowered since does not refuse it.
    if idempotency_key and (existing := deps.store.get(job_id)) is not None:
        return _same_job(deps, existing, tenant, fingerprint), False
    record, created = create(deps, record)
    if not created:
        return _same_job(deps, deps.store.get(job_id), tenant, fingerprint), False
    failpoints.hit("intake.after_record")
    try:
        need(deps.queue, "queue").send(job_id, tenant=tenant)
    except Exception as exc:
        # Never leave a queued job that nothing will pick up: it ends, saying why.
        end_job(deps, job_id, JobStatus.FAILED, "enqueue_failed", f"the job could not be queued: {type(exc).__name__}")
        raise EnqueueFailed("the job could not be queued; try again") from exc
    if caller.waits_until is not None and not idempotency_key:
        _remember_join(deps, caller, fingerprint, job_id)
    return record, True


def _same_job(deps: Deps, existing: JobRecord | None, tenant: str, fingerprint: str) -> JobRecord:
    """The first job of an Idempotency-Key, for a retry of the same request by the same tenant."""
    if existing is None or existing.tenant != tenant:
        raise IdempotencyConflict("Idempotency-Key could not be used; try another key")
    if existing.request_hash != fingerprint:
        raise IdempotencyConflict("this Idempotency-Key was already used with a different request body")
    if existing.status is JobStatus.QUEUED and existing.provider_job_id is None:
        # The first attempt may have died between the record and the message: queue it
        # again (submit is idempotent, a duplicate message costs nothing).
        need(deps.queue, "queue").send(existing.id, tenant=existing.tenant)
    return existing
