"""The job logic: accept, submit, poll, finalize. Talks to the world only through the adapters in
`Deps` (no boto3, no httpx here), so the same code runs on AWS, offline on moto and with fakes."""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import ValidationError

from imagejobs import budget, clock, failpoints, polling, pricing, requests_in, staged, uploads, webhooks
from imagejobs.budget import Caps
from imagejobs.errors import (
    ImageJobsError,
    JobNotFound,
    JobRejected,
    ObjectMissing,
    ProviderUnavailable,
    RateLimited,
    StaleTransition,
    SubmissionInFlight,
)
from imagejobs.images import (
    MAX_IMAGE_BYTES,
    CheckedImage,
    DecodeBudget,
    InvalidImage,
    check_edit_budget,
    check_edit_inputs,
    check_header_pixels,
    check_image,
)
from imagejobs.jobs import JobRecord
from imagejobs.models import (
    CONTENT_TYPES,
    EditRequest,
    FinalizeInput,
    GenerationRequest,
    ImageData,
    ImagesResult,
    JobStatus,
    JobView,
    ObjectInfo,
    ObjectRef,
    OrchestrationCost,
    Output,
    PollInput,
    PollResult,
    ProviderJob,
    UploadFile,
    WebhookView,
)
from imagejobs.settings import Settings


class Provider(Protocol):
    def submit(self, request: GenerationRequest, *, idempotency_key: str) -> ProviderJob: ...
    def submit_edit(
        self, request: EditRequest, images: list[UploadFile], mask: UploadFile | None, *, idempotency_key: str
    ) -> ProviderJob: ...
    def get(self, provider_job_id: str) -> ProviderJob: ...
    def download(self, url: str) -> AbstractContextManager[Iterator[bytes]]: ...
    def cancel(self, provider_job_id: str) -> ProviderJob | None: ...


class Store(Protocol):
    def create(self, record: JobRecord, reservation: budget.Reservation | None = None) -> bool: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def record_submission(
        self, job_id: str, provider_job_id: str, at: float, poll_window: dict[str, float] | None = None
    ) -> None: ...
    def record_execution(self, job_id: str, execution_arn: str, at: float) -> None: ...
    def mark_submitting(self, job_id: str, at: float, previous: float | None) -> None: ...
    def clear_submitting(self, job_id: str, at: float) -> None: ...
    def record_poll(
        self, job_id: str, provider_status: JobStatus, at: float, checks: int = 1, held: float = 0.0
    ) -> JobRecord: ...
    def latency_counts(self, kind: str) -> dict[int, float]: ...
    def record_latency(self, kind: str, seconds: float) -> None: ...
    def settle(
        self, job_id: str, status: JobStatus, fields: dict[str, Any], charge: budget.Charge | None = None
    ) -> bool: ...
    def list_jobs(
        self, tenant: str, *, limit: int, after: JobRecord | None = None, status: JobStatus | None = None
    ) -> tuple[list[JobRecord], bool]: ...


class Queue(Protocol):
    def send(self, job_id: str, delay_seconds: int = 0) -> None: ...
    def retry_after(self, receipt_handle: str, seconds: int) -> None: ...
    def dead_letter(self, body: str, reason: str) -> None: ...


class Loops(Protocol):
    def start(self, name: str, payload: dict[str, Any]) -> str: ...
    def stop(self, execution_arn: str, cause: str) -> bool: ...
    def status(self, execution_arn: str) -> str | None: ...


class Objects(Protocol):
    def head(self, ref: ObjectRef) -> ObjectInfo: ...
    def read(self, ref: ObjectRef) -> bytes: ...
    def read_json(self, bucket: str, key: str) -> Any | None: ...


class Results(Protocol):
    bucket: str

    def put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectRef: ...
    def delete_prefix(self, prefix: str) -> int: ...

    def put_stream(self, key: str, chunks: Iterator[bytes], content_type: str, metadata: dict[str, str]) -> Output: ...

    def presigned_url(self, key: str, ttl_seconds: int) -> str: ...

    def presigned_post(
        self, key: str, content_type: str, max_bytes: int, ttl_seconds: int
    ) -> tuple[str, dict[str, str]]: ...


class Budgets(Protocol):
    def caps(self, tenant: str) -> Caps: ...


class Metrics(Protocol):
    def job_settled(self, record: JobRecord, orchestration_cost_usd: Decimal) -> None: ...


@dataclass
class Deps:
    settings: Settings
    store: Store
    queue: Queue | None = None
    loops: Loops | None = None
    provider: Provider | None = None
    results: Results | None = None
    metrics: Metrics | None = None
    objects: Objects | None = None
    notices: Queue | None = None  # the notify queue: events and webhooks once a job is final
    budgets: Budgets | None = None  # per-tenant caps; None: jobs are not reserved against budgets


def _need(dependency: Any, name: str) -> Any:
    if dependency is None:
        raise RuntimeError(f"{name} is not configured for this function")
    return dependency


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


class UnsupportedParameter(ImageJobsError):
    """A value the request's model does not take (the catalog's `rules` for that model)."""

    reason = "invalid_value"
    status, error_type = 400, "invalid_request_error"

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


class ModelShutdown(ImageJobsError):
    """A model past its shutdown date (the catalog's lifecycle): refused, naming its replacement."""

    reason = "model_shutdown"
    status, error_type, param = 400, "invalid_request_error", "model"


def checked_request[PARSED: GenerationRequest](settings: Settings, request: PARSED) -> PARSED:
    """What every intake (HTTP, event, upload) does with a parsed request before it becomes a job:
    its model decided (the DefaultModel when it names none, the operator's ModelAliases applied)
    and checked against the catalog (check_model), and its webhook_url checked as it will be sent."""
    model = pricing.aliased(request.model or settings.default_model, settings.aliases)
    resolved = request.model_copy(update={"model": model})
    check_model(model, resolved.model_dump(exclude_none=True))
    if resolved.webhook_url:
        webhooks.check_url(resolved.webhook_url, allow_loopback=settings.webhook_allow_loopback)
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
    """Who asked, over HTTP: the tenant, the API base URL they used, their correlation id."""

    tenant: str
    base_url: str | None = None
    correlation_id: str | None = None


def accept_generation(
    deps: Deps, *, caller: Caller, request: GenerationRequest, idempotency_key: str | None = None
) -> tuple[JobRecord, bool]:
    """Record a queued job and put it on the submit queue. Returns (job, created)."""
    return _accept(deps, caller=caller, request=request, idempotency_key=idempotency_key)


def create_upload(deps: Deps, *, caller: Caller, filename: str, size: int, mime_type: str) -> staged.UploadTicket:
    """A presigned POST for one image of an edit too large to send over HTTP (imagejobs.staged)."""
    staged.check_declared(mime_type, size)
    del filename  # kept by the caller; the object's key is ours
    upload_id = staged.new_upload_id()
    key = staged.key_for(caller.tenant, upload_id)
    url, fields = _need(deps.results, "results").presigned_post(
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
    results, objects = _need(deps.results, "results"), _need(deps.objects, "objects")

    def ref_of(upload_id: str, param: str) -> tuple[ObjectRef, int]:
        ref = ObjectRef(bucket=results.bucket, key=staged.key_for(tenant, upload_id))
        try:
            return ref, objects.head(ref).size
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
    request = checked_request(deps.settings, request)  # its own refusals first: before any image is read
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
    accept = functools.partial(
        _accept, deps, caller=caller, request=request, idempotency_key=idempotency_key, job_id=job_id, checked=True
    )
    if deps.store.get(job_id) is not None:  # a retry with the same Idempotency-Key: no second upload
        return accept(attachments=attachments)
    results = _need(deps.results, "results")
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
            _need(deps.results, "results").delete_prefix(prefix)
    except Exception:
        return


def _accept(
    deps: Deps,
    *,
    caller: Caller,
    request: GenerationRequest,
    idempotency_key: str | None,
    kind: str = "generation",
    inputs: list[ObjectRef] | None = None,
    mask: ObjectRef | None = None,
    attachments: list[bytes] | None = None,
    job_id: str | None = None,
    checked: bool = False,
) -> tuple[JobRecord, bool]:
    settings = deps.settings
    tenant = caller.tenant
    request = request if checked else checked_request(settings, request)
    job_id = job_id or new_job_id(tenant, idempotency_key)
    fingerprint = request_hash(request, *(attachments or []))
    record = _new_record(deps, job_id, tenant, "api", kind, request, fingerprint, inputs or [], mask)
    record = record.model_copy(update={"base_url": caller.base_url, "correlation_id": caller.correlation_id})
    # A retry finds its first job before any reservation: a cap lowered since does not refuse it.
    if idempotency_key and (existing := deps.store.get(job_id)) is not None:
        return _same_job(deps, existing, tenant, fingerprint), False
    record, created = _create(deps, record)
    if not created:
        return _same_job(deps, deps.store.get(job_id), tenant, fingerprint), False
    failpoints.hit("intake.after_record")
    try:
        _need(deps.queue, "queue").send(job_id)
    except Exception as exc:
        # Never leave a queued job that nothing will pick up: it ends, saying why.
        end_job(deps, job_id, JobStatus.FAILED, "enqueue_failed", f"the job could not be queued: {type(exc).__name__}")
        raise EnqueueFailed("the job could not be queued; try again") from exc
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
        _need(deps.queue, "queue").send(existing.id)
    return existing


def _new_record(
    deps: Deps,
    job_id: str,
    tenant: str,
    source: str,
    kind: str,
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
        params, image_uris, mask_uri, correlation_id = dict(envelope.detail), [], None, None
        problem = (exc.reason, str(exc))
    # Until it is parsed, the request as a failed job can keep it.
    request: dict[str, Any] = requests_in.recordable(params, set(EditRequest.model_fields))
    inputs: list[ObjectRef] = []
    mask: ObjectRef | None = None
    try:
        if problem is not None:
            raise requests_in.InvalidDetail(problem[1])
        model = EditRequest if image_uris or mask_uri else GenerationRequest
        parsed = checked_request(settings, model.model_validate(params))
        request = parsed.model_dump(exclude_none=True)
        allowed = settings.readable_input_buckets
        objects = _need(deps.objects, "objects") if image_uris or mask_uri else None
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
    kind = "edit" if image_uris or mask_uri else "generation"
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
        return _need(deps.store.get(record.id), "job")
    if problem is not None:
        return end_job(deps, record.id, JobStatus.FAILED, problem[0], problem[1])
    return record


# -- accept (S3 inbox upload) -------------------------------------------------------------------
def accept_upload(deps: Deps, upload: ObjectRef, rules_document: Any) -> JobRecord:
    """One job per uploaded object version and its own instructions (the same bytes sent again to
    the same key with another prompt are another job). An upload without usable instructions, or
    whose image breaks the rules, ends as a failed job that says why: never silently dropped."""
    objects = _need(deps.objects, "objects")
    settings = deps.settings
    problem: tuple[str, str] | None = None
    request: dict[str, Any] = {}
    try:
        info: ObjectInfo | None = objects.head(upload)
    except ImageJobsError as exc:  # gone or unreadable: still a job that says so
        info, problem = None, (exc.reason, exc.message)
    job_id = uploads.upload_job_id(upload, info.metadata if info else {})
    existing = deps.store.get(job_id)
    if existing is not None:
        return existing
    try:
        if info is not None:
            upload = upload.model_copy(
                update={
                    "version_id": upload.version_id or info.version_id,
                    "etag": upload.etag or info.etag,
                    "content_type": info.content_type,
                }
            )
            parsed = checked_request(settings, uploads.instructions(upload.key, info.metadata, rules_document))
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


# -- submit (queue-fed) -------------------------------------------------------------------------
def latency_kind(record: JobRecord) -> str:
    """Jobs that take alike: same model, quality and size (the poll schedule learns per kind)."""
    return f"{record.model}#{record.quality}#{record.request.get('size', 'auto')}"


def poll_window(record: JobRecord) -> polling.Window:
    """The window chosen for the job at submit (the prior for its quality if none was)."""
    if record.poll_window:
        return polling.Window(
            start=float(record.poll_window["start"]),
            end=float(record.poll_window["end"]),
            samples=int(record.poll_window.get("samples", 0)),
        )
    return polling.window(record.quality)


def first_poll_payload(record: JobRecord) -> dict[str, Any]:
    """Execution input. Deterministic for a job (its window is recorded with its submission),
    so a repeated StartExecution is idempotent."""
    return PollInput(job_id=record.id, next_poll_seconds=polling.first_wait_seconds(poll_window(record))).model_dump()


def submit(deps: Deps, job_id: str) -> str:
    """Send a job to the provider once and start its poll loop. Safe to repeat at any point:

    - a final job is left alone;
    - a job with a provider id is not sent again (the loop is (re)started);
    - before the POST the record says a submission is in flight; a delivery that finds one in
      flight without a provider id knows the outcome of that one is unknown (a timeout, a crash):
      while the other delivery may still be sending it, it comes back later (SubmissionInFlight);
      after that, with ProviderIdempotency=header it re-sends with the same Idempotency-Key (the
      provider answers with the job it already has), and with "none" (the default: nothing in
      TheRouter's documents promises it) it never re-sends: the job ends failed,
      `submission_unknown`, counted by a metric and an alarm. Never twice, at worst once lost.
    Returns what was done, for logs and tests.
    """
    record = deps.store.get(job_id)
    if record is None:
        raise JobNotFound(f"job {job_id} does not exist")
    if record.status.final:
        return "already_final"
    provider = _need(deps.provider, "provider")
    if record.provider_job_id is None:
        started = record.submission_started_at
        now = clock.now()
        if started is not None:
            if now - started < submission_in_flight_seconds(deps.settings):
                raise SubmissionInFlight(f"job {job_id} is being sent to the provider by another delivery")
            if deps.settings.provider_idempotency == "none":
                end_job(
                    deps,
                    job_id,
                    JobStatus.FAILED,
                    "submission_unknown",
                    "the provider may or may not have taken this job (its answer never came), and it does not "
                    "promise to recognise a resubmission, so it was not sent again",
                )
                return "submission_unknown"
        try:
            deps.store.mark_submitting(job_id, now, previous=started)
        except StaleTransition:
            raise SubmissionInFlight(f"job {job_id} was just marked by another delivery") from None
        try:
            provider_job = _send_to_provider(deps, provider, record)
        except JobRejected as rejected:
            end_job(deps, job_id, JobStatus.FAILED, rejected.code, rejected.message)
            return "rejected"
        except (RateLimited, ProviderUnavailable) as exc:
            if not getattr(exc, "outcome_unknown", False):
                deps.store.clear_submitting(job_id, clock.now())  # definitely not taken: a retry starts clean
            raise
        failpoints.hit("submit.after_provider")
        win = polling.window(record.quality, deps.store.latency_counts(latency_kind(record)))
        chosen = {"start": win.start, "end": win.end, "samples": win.samples}
        deps.store.record_submission(job_id, provider_job.id, clock.now(), chosen)
        record = record.model_copy(update={"provider_job_id": provider_job.id, "poll_window": chosen})
    arn = _need(deps.loops, "loops").start(record.id, first_poll_payload(record))
    failpoints.hit("submit.after_start_execution")
    deps.store.record_execution(job_id, arn, clock.now())
    return "submitted"


def submission_in_flight_seconds(settings: Settings) -> float:
    """How long another delivery may still be sending a job: one message's worst case in submit
    (its inputs and the POST, each up to the provider timeout), with the writes around them."""
    return 2 * settings.provider_timeout_seconds + TIME_RESERVE_SECONDS


def _send_to_provider(deps: Deps, provider: Provider, record: JobRecord) -> ProviderJob:
    if record.kind != "edit":
        return provider.submit(GenerationRequest.model_validate(record.request), idempotency_key=record.id)
    objects = _need(deps.objects, "objects")

    def upload_file(ref: ObjectRef, name: str) -> UploadFile:
        content_type = ref.content_type or "image/png"
        extension = content_type.rsplit("/", 1)[-1].replace("jpeg", "jpg")
        return (f"{name}.{extension}", objects.read(ref), content_type)

    images = [upload_file(ref, f"image-{index}") for index, ref in enumerate(record.inputs)]
    mask = upload_file(record.mask, "mask") if record.mask else None
    return provider.submit_edit(EditRequest.model_validate(record.request), images, mask, idempotency_key=record.id)


TIME_RESERVE_SECONDS = 5.0  # what a call keeps back from its timeout for the writes after its last request


# -- status (one poll) --------------------------------------------------------------------------
def poll(deps: Deps, poll_input: PollInput, time_left: Callable[[], float] | None = None) -> PollResult:
    """One status call. `time_left` (seconds until the function's timeout) bounds the hold: a call
    never starts a provider request that could outlive its invocation."""
    record = deps.store.get(poll_input.job_id)
    if record is None:
        raise JobNotFound(f"job {poll_input.job_id} does not exist")
    if record.status.final:
        return PollResult(
            job_id=record.id,
            action="end",
            provider_status=record.status.value,
            final_status=record.status,
            reason="already_final",
        )
    if record.provider_job_id is None:
        raise StaleTransition(f"job {record.id} has no provider job id")
    provider = _need(deps.provider, "provider")
    win = poll_window(record)
    submitted_at = record.submitted_at or record.created_at
    started = clock.now()
    # Inside the window where this kind of job usually finishes, the call holds: it follows the
    # provider every few seconds, so a finish is noticed at once, for one invocation.
    hold = polling.hold_seconds(started - submitted_at, win, record.deadline_at - started)
    if time_left is not None:
        # Room for the last provider call (its timeout) and the record's update after the hold.
        hold = max(0.0, min(hold, time_left() - deps.settings.provider_timeout_seconds - TIME_RESERVE_SECONDS))
    checks = 0
    while True:
        provider_job = provider.get(record.provider_job_id)
        checks += 1
        now = clock.now()
        if provider_job.status.final or now + polling.CHECK_EVERY_SECONDS > started + hold:
            break
        clock.sleep(polling.CHECK_EVERY_SECONDS)
    try:
        record = deps.store.record_poll(record.id, provider_job.status, now, checks=checks, held=now - started)
    except StaleTransition:  # it ended meanwhile (cancelled while this call held): nothing to do
        return PollResult(
            job_id=record.id, action="end", provider_status=provider_job.status.value, reason="already_final"
        )
    return polling.decide(
        provider_job,
        job_id=record.id,
        win=win,
        submitted_at=submitted_at,
        deadline_at=record.deadline_at,
        now=now,
        polls=record.polls,
        deadline_seconds=record.deadline_at - record.created_at,
    )


# -- finalize -----------------------------------------------------------------------------------
def outputs_prefix(record: JobRecord) -> str:
    """What every output key of the job starts with (and nothing else's does)."""
    if record.origin is not None:
        return f"{uploads.output_prefix(record.origin.key)}{record.id}-"
    return f"results/{record.id}/"


def output_key(record: JobRecord, index: int, output_format: str) -> str:
    """results/<job id>/<index>.<ext>; auto-edits of uploads: edits/<source key sans ext>/<job id>-<index>.<ext>."""
    extension = "jpg" if output_format == "jpeg" else output_format
    return f"{outputs_prefix(record)}{index}.{extension}"


def output_metadata(record: JobRecord, provider_job_id: str) -> dict[str, str]:
    """Object metadata (ASCII only: the source key is URL-quoted)."""
    metadata = {"job-id": record.id, "provider-job-id": provider_job_id}
    if record.origin is not None:
        metadata["source-bucket"] = record.origin.bucket
        metadata["source-key"] = quote(record.origin.key)
        if record.origin.version_id:
            metadata["source-version-id"] = record.origin.version_id
        if record.origin.etag:
            metadata["source-etag"] = record.origin.etag
    return metadata


def finalize(deps: Deps, event: FinalizeInput) -> JobRecord:
    if event.action == "finalize" and event.error is None:
        return _store_outputs(deps, event.job_id)
    if event.error is not None:
        code, message = _caught_error(event.error)
        billed = code in ("download_failed", "download_refused")  # the provider made the images
        return end_job(deps, event.job_id, JobStatus.FAILED, code, message, billed=billed)
    status = event.final_status or JobStatus.FAILED
    return end_job(deps, event.job_id, status, event.reason or status.value, event.message or "")


def _caught_error(error: dict[str, Any]) -> tuple[str, str]:
    """A Step Functions Catch hands over {"Error": <errorType>, "Cause": <json>}."""
    name = str(error.get("Error") or "internal_error")
    cause = error.get("Cause")
    message = ""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
            message = str(parsed.get("errorMessage") or "") if isinstance(parsed, dict) else cause
        except ValueError:
            message = cause
    known = {cls.__name__: cls.reason for cls in _error_classes()}
    return known.get(name, "internal_error"), f"{name}: {message}" if message else name


def _error_classes() -> list[type[ImageJobsError]]:
    seen: list[type[ImageJobsError]] = []
    pending: list[type[ImageJobsError]] = [ImageJobsError]
    while pending:
        cls = pending.pop()
        seen.append(cls)
        pending.extend(cls.__subclasses__())
    return seen


def _unsettled(deps: Deps, job_id: str) -> tuple[JobRecord, bool]:
    """(the job, whether it still needs settling). A retried step that finds the job final
    re-announces it if that was never done, and has nothing else to do."""
    record = deps.store.get(job_id)
    if record is None:
        raise JobNotFound(f"job {job_id} does not exist")
    if record.status.final:
        _announce(deps, record)
        return record, False
    return record, True


def _store_outputs(deps: Deps, job_id: str) -> JobRecord:
    record, open_ = _unsettled(deps, job_id)
    if not open_:
        return record
    provider = _need(deps.provider, "provider")
    results = _need(deps.results, "results")
    provider_job = provider.get(_need(record.provider_job_id, "provider job id"))
    if provider_job.status is not JobStatus.SUCCEEDED or not provider_job.unsigned_urls:
        return end_job(
            deps,
            job_id,
            JobStatus.FAILED,
            "provider_inconsistent",
            f"provider reported {provider_job.status.value} with {len(provider_job.unsigned_urls)} outputs",
        )
    output_format = str(record.request.get("output_format", "png"))
    content_type = CONTENT_TYPES[output_format]
    outputs: list[Output] = []
    for index, url in enumerate(provider_job.unsigned_urls):
        with provider.download(url) as chunks:
            outputs.append(
                results.put_stream(
                    output_key(record, index, output_format),
                    chunks,
                    content_type,
                    output_metadata(record, provider_job.id),
                )
            )
    failpoints.hit("finalize.after_store")
    cost = pricing.job_cost(record.model, record.quality, len(outputs), provider_job.usage, size=record.size)
    completed_at = provider_job.completed_at or clock.now()
    fields: dict[str, Any] = {
        "outputs": [output.model_dump() for output in outputs],
        "usage": provider_job.usage.model_dump() if provider_job.usage else None,
        "cost": cost.model_dump(),
        "completed_at": completed_at,
        "updated_at": clock.now(),
        "orchestration_cost_usd": str(pricing.orchestration_cost(record.polls, record.held_seconds)),
    }
    return _settle(deps, record, JobStatus.SUCCEEDED, fields)


def end_job(deps: Deps, job_id: str, status: JobStatus, code: str, message: str, *, billed: bool = False) -> JobRecord:
    """Record why a job ended without images. Nothing was billed unless the provider says so:
    with `billed` (it finished but we could not fetch its images) its reported usage is the cost.
    Outputs stored before the failure are removed: a record and its bucket always agree."""
    record, open_ = _unsettled(deps, job_id)
    if not open_:
        return record
    fields: dict[str, Any] = {
        "error": {"code": code, "message": message[:1000]},
        "completed_at": clock.now(),
        "updated_at": clock.now(),
        "orchestration_cost_usd": str(pricing.orchestration_cost(record.polls, record.held_seconds)),
    }
    if billed and record.provider_job_id and deps.provider is not None:
        try:
            provider_job = deps.provider.get(record.provider_job_id)
        except ImageJobsError:
            provider_job = None
        if provider_job is not None and provider_job.status is JobStatus.SUCCEEDED:
            images = len(provider_job.unsigned_urls)
            fields["cost"] = pricing.job_cost(
                record.model, record.quality, images, provider_job.usage, size=record.size
            ).model_dump()
            if provider_job.usage:
                fields["usage"] = provider_job.usage.model_dump()
    if deps.results is not None and record.provider_job_id:
        deps.results.delete_prefix(outputs_prefix(record))
    return _settle(deps, record, status, fields)


def _settle(deps: Deps, record: JobRecord, status: JobStatus, fields: dict[str, Any]) -> JobRecord:
    won = deps.store.settle(record.id, status, fields, _charge(record, fields))
    if won:  # what we just wrote (no read needed); otherwise whoever won decided the outcome
        settled: JobRecord | None = JobRecord.model_validate({**record.model_dump(), **fields, "status": status})
    else:
        settled = deps.store.get(record.id)
    if settled is None:
        raise JobNotFound(f"job {record.id} vanished")
    if won and deps.metrics is not None:
        # Only the writer that moved the job to its final state emits: once per job, whatever
        # the retries and redeliveries around it.
        deps.metrics.job_settled(settled, Decimal(settled.orchestration_cost_usd or "0"))
    if won:
        _announce(deps, settled)
        if settled.status is JobStatus.SUCCEEDED and settled.submitted_at and settled.completed_at:
            # What the poll schedule learns from: how long this kind of job took at the provider.
            deps.store.record_latency(latency_kind(settled), settled.completed_at - settled.submitted_at)
    return settled


def _charge(record: JobRecord, fields: dict[str, Any]) -> budget.Charge | None:
    """A reserved job settles its tenant's spend to what it cost: the difference to what it
    reserved (all of it back when the provider billed nothing)."""
    if record.reserved_usd is None or record.budget_day is None:
        return None
    cost = fields.get("cost")
    actual = Decimal(str(cost["amount"])) if cost else Decimal(0)
    day = record.budget_day
    return budget.Charge(record.tenant, day, day[:7], actual - Decimal(record.reserved_usd))


def _announce(deps: Deps, record: JobRecord) -> None:
    """Queue the job's event and webhook. Also called when a retried step finds the job already
    final and not yet announced, so a lost notice is sent again (the notify step is idempotent)."""
    if deps.notices is not None and record.event_published_at is None:
        deps.notices.send(record.id)


# -- cancel ---------------------------------------------------------------------------------------
class JobAlreadyFinal(ImageJobsError):
    reason = "job_already_final"
    status, error_type, param = 409, "invalid_request_error", "id"

    def __init__(self, record: JobRecord) -> None:
        super().__init__(f"Job '{record.id}' is already {record.status.value}; only a running job can be cancelled.")
        self.record = record


class JobFinishedUpstream(ImageJobsError):
    """The provider finished the job (its images made and billed) before the cancel reached it:
    the job is not cancelled, its poll loop goes on and stores the images."""

    reason = "job_finished_at_provider"
    status, error_type, param = 409, "invalid_request_error", "id"

    def __init__(self, record: JobRecord) -> None:
        super().__init__(
            f"Job '{record.id}' finished at the provider before it could be cancelled: it is not cancelled, "
            "its images are being stored and it will show succeeded."
        )
        self.record = record


def cancel(deps: Deps, job_id: str) -> JobRecord:
    """Ask the provider to stop, then stop the poll loop and end the job `cancelled`; the cost is
    what the provider says it billed (its usage for the cancelled job), nothing when it says nothing.

    The provider is asked first: a job it has already finished (succeeded) is never cancelled here,
    since that would bill its images and store none. It stays with its loop, which stores them
    (JobFinishedUpstream). A provider without a cancel route is asked for the job's state instead."""
    record = deps.store.get(job_id)
    if record is None:
        raise JobNotFound(f"job {job_id} does not exist")
    if record.status.final:
        raise JobAlreadyFinal(record)
    provider_job: ProviderJob | None = None
    if record.provider_job_id:
        provider = _need(deps.provider, "provider")
        try:
            provider_job = provider.cancel(record.provider_job_id) or provider.get(record.provider_job_id)
        except ImageJobsError:
            provider_job = None  # unreachable: we stop following it either way; the reason stays ours
        if provider_job is not None and provider_job.status is JobStatus.SUCCEEDED:
            raise JobFinishedUpstream(record)
    if record.execution_arn:
        _need(deps.loops, "loops").stop(record.execution_arn, "cancelled by the caller")
    usage = provider_job.usage if provider_job else None
    fields: dict[str, Any] = {
        "error": {"code": "cancelled_by_user", "message": "the job was cancelled by its caller"},
        "completed_at": clock.now(),
        "updated_at": clock.now(),
        "orchestration_cost_usd": str(pricing.orchestration_cost(record.polls, record.held_seconds)),
    }
    if usage is not None and usage.total_tokens > 0:
        fields["usage"] = usage.model_dump()
        fields["cost"] = pricing.job_cost(record.model, record.quality, 0, usage, size=record.size).model_dump()
    settled = _settle(deps, record, JobStatus.CANCELLED, fields)
    if settled.status is not JobStatus.CANCELLED:
        raise JobAlreadyFinal(settled)  # it finished while we were cancelling
    return settled


# -- the job object served over HTTP --------------------------------------------------------------
def output_urls(deps: Deps, record: JobRecord) -> list[str]:
    """Fresh presigned GET URLs of a job's stored outputs (re-issued on every call)."""
    results = _need(deps.results, "results")
    return [results.presigned_url(output.key, deps.settings.result_url_ttl_seconds) for output in record.outputs]


def job_view(deps: Deps, record: JobRecord, base_url: str) -> dict[str, Any]:
    succeeded = record.status is JobStatus.SUCCEEDED
    urls = output_urls(deps, record) if succeeded else None
    # Instants as the wall clock reads them (clock.to_wall: the same offline, where the job clock
    # runs fast); how long results are kept is the bucket's lifecycle, in real days.
    wall = clock.to_wall
    kept_until = wall(record.completed_at or record.updated_at) + deps.settings.result_retention_days * 86_400
    view = JobView(
        id=record.id,
        status=record.status,
        model=record.model,
        created_at=int(wall(record.created_at)),
        polling_url=f"{base_url}/v1/jobs/{record.id}",
        expires_at=int(kept_until if succeeded else wall(record.deadline_at)),
        completed_at=int(wall(record.completed_at)) if record.completed_at else None,
        polls=record.polls,
        source=record.source,  # type: ignore[arg-type]
        usage=record.usage.model_dump(exclude_none=True) if record.usage else None,
        cost=record.cost,
        orchestration_cost=(
            OrchestrationCost(amount=record.orchestration_cost_usd) if record.orchestration_cost_usd else None
        ),
        error=record.error,
        unsigned_urls=urls,
        webhook=webhook_view(record),
        result=_result(record, urls) if urls is not None else None,
    )
    return view.answer()


SYNC_CHECK_SECONDS = 0.5  # how often a waiting caller's job is read (job seconds)


def wait_until_final(deps: Deps, job_id: str, seconds: float) -> JobRecord:
    """The job once it is final, or as it stands after `seconds` (job clock): a caller that asked
    to wait (the API without async=true) reads its record until then."""
    until = clock.now() + max(0.0, seconds)
    while True:
        record = deps.store.get(job_id)
        if record is None:
            raise JobNotFound(f"job {job_id} does not exist")
        if record.status.final or clock.now() >= until:
            return record
        clock.sleep(min(SYNC_CHECK_SECONDS, until - clock.now()))


def images_response(deps: Deps, record: JobRecord, *, inline_bytes: int) -> dict[str, Any]:
    """A succeeded job as OpenAI's image API answers a call: `data[].b64_json` (what GPT image
    models return) while the images' base64 fits in `inline_bytes`, else `data[].url` (presigned)."""
    inline = sum(output.bytes for output in record.outputs) * 4 // 3 + 4 <= inline_bytes
    if inline:
        objects = _need(deps.objects, "objects")
        data: list[dict[str, str]] = [
            {"b64_json": base64.b64encode(objects.read(ObjectRef(bucket=output.bucket, key=output.key))).decode()}
            for output in record.outputs
        ]
    else:
        data = [{"url": url} for url in output_urls(deps, record)]
    result = _result(record, []).model_dump(mode="json", exclude_none=True)
    return {**result, "data": data}


def _result(record: JobRecord, urls: list[str]) -> ImagesResult:
    return ImagesResult(
        created=int(clock.to_wall(record.completed_at or record.updated_at)),
        data=[ImageData(url=url) for url in urls],
        background=str(record.request.get("background", "auto")),
        output_format=str(record.request.get("output_format", "png")),
        quality=record.quality,
        size=record.size,
        usage=record.usage.model_dump(exclude_none=True) if record.usage else None,
    )


def webhook_view(record: JobRecord) -> WebhookView | None:
    if not record.webhook_url:
        return None
    last = record.webhook_attempts[-1] if record.webhook_attempts else {}
    state = record.webhook_state if record.webhook_state in ("delivered", "failed") else "pending"
    return WebhookView(
        state=state,  # type: ignore[arg-type]
        attempts=len(record.webhook_attempts),
        last_attempt_at=int(clock.to_wall(last["at"])) if last.get("at") is not None else None,
        last_status_code=last.get("status_code"),
        last_error=last.get("error"),
    )
