"""Intake: a request (HTTP, an ImageJobRequested event, an inbox upload) checked and recorded as a
queued job, reserved against its tenant's budget, and queued; or recorded as a failed job that says
why. One job per Idempotency-Key, event id or uploaded object."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from imagejobs.domain import budget, clock, failpoints, pricing, requests_in, staged, uploads
from imagejobs.domain.errors import (
    ImageJobsError,
    InvalidValue,
    ObjectMissing,
    StaleTransition,
)
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
from imagejobs.domain.models import (
    EditRequest,
    GenerationRequest,
    JobStatus,
    Kind,
    ObjectInfo,
    ObjectRef,
    Source,
)
from imagejobs.flows.ports import Deps, Objects, need
from imagejobs.flows.settle import end_job


# -- accept (HTTP intake) -----------------------------------------------------------------------
def new_job_id(tenant: str, idempotency_key: str | None) -> str:
    """A caller's Idempotency-Key maps to one job id, so a retried POST finds the first job. Its own
    namespace ("api"), apart from events' and uploads' ids: a tenant named "event" whose key is an
    event id does not land on that event's job."""
    if idempotency_key:
        digest = hashlib.sha256(f"api\x00{tenant}\x00{idempotency_key}".encode()).hexdigest()
        return "img_" + digest[:24]
    return "img_" + secrets.token_hex(12)


def request_hash(request: GenerationRequest, *attachments: bytes) -> str:
    """What makes two requests the same: the parameters and the bytes of any attached images."""
    digest = hashlib.sha256(json.dumps(request.model_dump(), sort_keys=True).encode())
    for data in attachments:
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()


class IdempotencyConflict(ImageJobsError):
    reason = "idempotency_key_reused"
    status, error_type, param = 409, "invalid_request_error", "Idempotency-Key"


class UnsupportedModel(ImageJobsError):
    reason = "model_not_found"
    status, error_type, param = 400, "invalid_request_error", "model"


class UnsupportedParameter(InvalidValue):
    """A value the request's model does not take (the catalog's `rules` for that model)."""


class ModelShutdown(ImageJobsError):
    """A model past its shutdown date (the catalog's lifecycle): refused, naming its replacement."""

    reason = "model_shutdown"
    status, error_type, param = 400, "invalid_request_error", "model"


def checked_request[PARSED: GenerationRequest](deps: Deps, request: PARSED) -> PARSED:
    """What every intake (HTTP, event, upload) does with a parsed request before it becomes a job:
    its model decided (the DefaultModel when it names none, the operator's ModelAliases applied)
    and checked against the catalog (check_model), and its webhook_url checked as it will be sent."""
    settings = deps.settings
    model = pricing.aliased(request.model or settings.default_model, settings.aliases)
    resolved = request.model_copy(update={"model": model})
    check_model(model, resolved.model_dump(exclude_none=True))
    if resolved.webhook_url:
        need(deps.webhooks, "webhooks").check_url(resolved.webhook_url, allow_loopback=settings.webhook_allow_loopback)
    return resolved


def check_model(model: str, request: dict[str, Any] | None = None) -> None:
    """Only models with a price table run: every job is reserved and billed by it; a model past
    its shutdown date runs no more; and a request takes only the values its model accepts (the
    catalog's rules, data an operator can edit)."""
    try:
        pricing.servable(model, clock.today())
    except pricing.UnknownModel:
        known = ", ".join(view["id"] for view in pricing.model_views(clock.today()))
        raise UnsupportedModel(f"The model '{model}' is not supported here; use one of: {known}.") from None
    except pricing.ModelShutDown as exc:
        instead = f"; use {exc.replacement} instead" if exc.replacement else ""
        raise ModelShutdown(f"The model '{model}' was shut down on {exc.shutdown}{instead}.") from None
    rules = pricing.model_prices(model).get("rules") or {}
    background = (request or {}).get("background")
    if background is not None and "background" in rules and background not in rules["background"]:
        allowed = ", ".join(rules["background"])
        raise UnsupportedParameter(f"{model} takes background {allowed}, not {background}.", param="background")
    if (request or {}).get("input_fidelity") is not None and rules.get("input_fidelity") is False:
        raise UnsupportedParameter(f"{model} does not take input_fidelity.", param="input_fidelity")
    problem = pricing.size_problem(model, str((request or {}).get("size") or "auto"))
    if problem:
        raise UnsupportedParameter(problem, param="size")


def _create(deps: Deps, record: JobRecord, *, reserve: bool = True) -> tuple[JobRecord, bool]:
    """Record a new job, reserving its most it can cost against its tenant's budget in the same
    write (BudgetExceeded when a cap would be passed; nothing is recorded then).
    Returns (the record as written, created)."""
    reservation = None
    if reserve and deps.budgets is not None:
        day, month = budget.periods(record.created_at)
        input_images = len(record.inputs) + (1 if record.mask else 0)
        amount = pricing.reserve_amount(record.model, record.request, input_images)
        reservation = budget.Reservation(record.tenant, amount, day, month, deps.budgets.caps(record.tenant))
        record = record.model_copy(update={"reserved_usd": str(amount), "budget_day": day})
    return record, deps.store.create(record, reservation)


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
        _read_checked(objects, ref, f"upload {ref.key.rsplit('/', 1)[-1]!r}", "image_upload", decode)
        for ref, _ in image_refs
    ]
    mask = _read_checked(objects, mask_ref[0], "mask upload", "mask_upload", decode) if mask_ref else None
    return images, mask


def _read_checked(
    objects: Objects, ref: ObjectRef, name: str, param: str, decode: DecodeBudget
) -> tuple[ObjectRef, CheckedImage]:
    """One stored input, read and checked within the edit's decode budget; what is kept is its type
    and the facts the rules need (sizes), with a digest in place of the data: an edit's images are
    held one at a time."""
    image = check_image(objects.read(ref), name=name, param=param, budget=decode)
    digest = hashlib.sha256(image.data).hexdigest().encode()  # what a request fingerprint sees
    return ref.model_copy(update={"content_type": image.content_type}), dataclasses.replace(image, data=digest)


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
    job_id = new_job_id(caller.tenant, idempotency_key)
    if (joined := _joined(deps, caller, request_hash(request, *attachments), idempotency_key)) is not None:
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
    job_id = job_id or new_job_id(tenant, idempotency_key)
    fingerprint = request_hash(request, *(attachments or []))
    record = _new_record(deps, job_id, tenant, "api", kind, request, fingerprint, inputs or [], mask)
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
    record, created = _create(deps, record)
    if not created:
        return _same_job(deps, deps.store.get(job_id), tenant, fingerprint), False
    failpoints.hit("intake.after_record")
    try:
        need(deps.queue, "queue").send(job_id)
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
        need(deps.queue, "queue").send(existing.id)
    return existing


def _new_record(
    deps: Deps,
    job_id: str,
    tenant: str,
    source: Source,
    kind: Kind,
    request: GenerationRequest | dict[str, Any],
    fingerprint: str,
    inputs: list[ObjectRef],
    mask: ObjectRef | None = None,
    origin: ObjectRef | None = None,
) -> JobRecord:
    settings = deps.settings
    now = clock.now()
    body = request.model_dump(exclude_none=True) if isinstance(request, GenerationRequest) else request
    return JobRecord(
        id=job_id,
        tenant=tenant,
        source=source,
        kind=kind,
        model=str(body.get("model") or settings.default_model),
        request=body,
        request_hash=fingerprint,
        created_at=now,
        updated_at=now,
        deadline_at=now + settings.job_deadline_seconds,
        inputs=inputs,
        mask=mask,
        origin=origin,
        ttl=int(now) + settings.job_record_ttl_days * 86_400,
    )


# -- accept (EventBridge ImageJobRequested) ---------------------------------------------------------
def accept_event(deps: Deps, envelope: requests_in.Envelope) -> JobRecord:
    """One job per event id. A request that cannot run ends as a failed job saying why."""
    job_id = requests_in.event_job_id(envelope.id)
    existing = deps.store.get(job_id)
    if existing is not None:
        return existing
    settings = deps.settings
    problem: tuple[str, str] | None = None
    try:
        params, image_uris, mask_uri, correlation_id = requests_in.split_detail(envelope.detail)
    except requests_in.InvalidDetail as exc:
        params, image_uris, mask_uri = dict(envelope.detail), [], None
        correlation_id = requests_in.correlation_of(envelope.detail)  # kept: the pipeline's handle on it
        problem = (exc.reason, str(exc))
    # Until it is parsed, the request as a failed job can keep it.
    request: dict[str, Any] = requests_in.recordable(params, set(EditRequest.model_fields))
    inputs: list[ObjectRef] = []
    mask: ObjectRef | None = None
    try:
        if problem is not None:
            raise requests_in.InvalidDetail(problem[1])
        model = EditRequest if image_uris or mask_uri else GenerationRequest
        parsed = checked_request(deps, model.model_validate(params))
        request = parsed.model_dump(exclude_none=True)
        allowed = settings.readable_input_buckets
        objects = need(deps.objects, "objects") if image_uris or mask_uri else None
        image_refs = [requests_in.s3_input(uri, allowed) for uri in image_uris]
        mask_ref = requests_in.s3_input(mask_uri, allowed) if mask_uri else None
        checked: list[CheckedImage] = []
        checked_mask = None
        if objects is not None:
            # Count and weigh them before reading any; then read one at a time, keeping only what
            # the rules need (sizes), so memory holds one image, not sixteen.
            check_edit_budget(
                [objects.head(ref).size for ref in image_refs], mask_size=objects.head(mask_ref).size if mask_ref else 0
            )
            decode = DecodeBudget()
            for uri, ref in zip(image_uris, image_refs, strict=True):
                stored, image = _read_checked(objects, ref, uri, "image", decode)
                checked.append(image)
                inputs.append(stored)
            if mask_uri and mask_ref is not None:
                mask, checked_mask = _read_checked(objects, mask_ref, mask_uri, "mask", decode)
        if image_uris or mask_uri:
            check_edit_inputs(checked, checked_mask)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "detail"
        problem = ("invalid_request", f"{where}: {first.get('msg', 'invalid')}")
    except (requests_in.InputNotAllowed, requests_in.InvalidDetail) as exc:
        problem = (exc.reason, str(exc))
    except ImageJobsError as exc:
        problem = (exc.reason, exc.message)
    kind: Kind = "edit" if image_uris or mask_uri else "generation"
    fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
    record = _new_record(deps, job_id, settings.event_tenant, "event", kind, request, fingerprint, inputs, mask)
    record = record.model_copy(update={"correlation_id": correlation_id})
    return _record_or_fail(deps, record, problem)


def _record_or_fail(deps: Deps, record: JobRecord, problem: tuple[str, str] | None) -> JobRecord:
    """Record a job that came from an upload or an event (one per source object or event id).
    One that cannot run, or would pass its tenant's budget, is recorded as failed saying why."""
    try:
        record, created = _create(deps, record, reserve=problem is None)
    except budget.BudgetExceeded as exc:
        record, created = _create(deps, record, reserve=False)
        problem = (exc.reason, exc.message)
    if not created:
        return need(deps.store.get(record.id), "job")
    if problem is not None:
        return end_job(deps, record.id, JobStatus.FAILED, problem[0], problem[1])
    return record


# -- accept (S3 inbox upload) -------------------------------------------------------------------
def accept_upload(deps: Deps, upload: ObjectRef, rules_document: Any) -> JobRecord:
    """One job per uploaded object version and its own instructions (the same bytes sent again to
    the same key with another prompt are another job). An upload without usable instructions, or
    whose image breaks the rules, ends as a failed job that says why: never silently dropped."""
    objects = need(deps.objects, "objects")
    settings = deps.settings
    problem: tuple[str, str] | None = None
    request: dict[str, Any] = {}
    try:
        info: ObjectInfo | None = objects.head(upload)
    except ImageJobsError as exc:  # gone or unreadable: still a job that says so
        info, problem = None, (exc.reason, exc.message)
        # ...unless an earlier delivery of the same event made its job: its id hashed instructions
        # this delivery can no longer read, so the object points at it.
        first = deps.store.pointed_job(uploads.object_name(upload))
        if first is not None and (earlier := deps.store.get(first)) is not None:
            return earlier
    job_id = uploads.upload_job_id(upload, info.metadata if info else {})
    existing = deps.store.get(job_id)
    if existing is not None:
        return existing
    if info is not None:
        ttl = int(clock.wall_now()) + settings.job_record_ttl_days * 86_400
        deps.store.point(uploads.object_name(upload), job_id, ttl)
    try:
        if info is not None:
            upload = upload.model_copy(
                update={
                    "version_id": upload.version_id or info.version_id,
                    "etag": upload.etag or info.etag,
                    "content_type": info.content_type,
                }
            )
            parsed = checked_request(deps, uploads.instructions(upload.key, info.metadata, rules_document))
            request = parsed.model_dump(exclude_none=True)
            checked = check_image(objects.read(upload), name=f"s3://{upload.bucket}/{upload.key}")
            upload = upload.model_copy(update={"content_type": checked.content_type})
    except (uploads.NoInstructions, uploads.InvalidInstructions) as exc:
        problem = (exc.reason, str(exc))
    except (InvalidImage, ImageJobsError) as exc:
        problem = (exc.reason, exc.message)
    fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    record = _new_record(
        deps, job_id, settings.inbox_tenant, "upload", "edit", request, fingerprint, [upload], origin=upload
    )
    return _record_or_fail(deps, record, problem)
