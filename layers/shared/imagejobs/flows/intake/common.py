"""What every intake does: the parsed request checked (its model decided and served, its values
the model's, its webhook URL one we may call), the job recorded with its reservation, and a
request that cannot run recorded as a failed job saying why."""

from __future__ import annotations

import dataclasses
import hashlib

from pydantic import JsonValue

from imagejobs.domain import budget, clock, pricing
from imagejobs.domain.errors import ImageJobsError, InvalidValue
from imagejobs.domain.images import CheckedImage, DecodeBudget, check_image
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import GenerationRequest, JobStatus, Kind, ObjectRef, Source
from imagejobs.flows.ports import Deps, Objects, need
from imagejobs.flows.settle import end_job

Problem = tuple[str, str]  # why a request cannot run: (reason, message)


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
    check_model(resolved)
    if resolved.webhook_url:
        need(deps.webhooks, "webhooks").check_url(resolved.webhook_url, allow_loopback=settings.webhook_allow_loopback)
    return resolved


def check_model(request: GenerationRequest) -> None:
    """Only models with a price table run: every job is reserved and billed by it; a model past
    its shutdown date runs no more; and a request takes only the values its model accepts (the
    catalog's rules, data an operator can edit)."""
    model = str(request.model)
    try:
        pricing.servable(model, clock.today())
    except pricing.UnknownModel:
        known = ", ".join(view["id"] for view in pricing.model_views(clock.today()))
        raise UnsupportedModel(f"The model '{model}' is not supported here; use one of: {known}.") from None
    except pricing.ModelShutDown as exc:
        instead = f"; use {exc.replacement} instead" if exc.replacement else ""
        raise ModelShutdown(f"The model '{model}' was shut down on {exc.shutdown}{instead}.") from None
    rules = pricing.model_prices(model).get("rules") or {}
    if "background" in rules and request.background not in rules["background"]:
        allowed = ", ".join(rules["background"])
        raise UnsupportedParameter(f"{model} takes background {allowed}, not {request.background}.", param="background")
    if getattr(request, "input_fidelity", None) is not None and rules.get("input_fidelity") is False:
        raise UnsupportedParameter(f"{model} does not take input_fidelity.", param="input_fidelity")
    problem = pricing.size_problem(model, request.size)
    if problem:
        raise UnsupportedParameter(problem, param="size")


def read_checked(
    objects: Objects, ref: ObjectRef, name: str, param: str, decode: DecodeBudget
) -> tuple[ObjectRef, CheckedImage]:
    """One stored input, read and checked within the edit's decode budget; what is kept is its type
    and the facts the rules need (sizes), with a digest in place of the data: an edit's images are
    held one at a time."""
    image = check_image(objects.read(ref), name=name, param=param, budget=decode)
    digest = hashlib.sha256(image.data).hexdigest().encode()  # what a request fingerprint sees
    return ref.model_copy(update={"content_type": image.content_type}), dataclasses.replace(image, data=digest)


def new_record(
    deps: Deps,
    job_id: str,
    tenant: str,
    source: Source,
    kind: Kind,
    request: GenerationRequest | dict[str, JsonValue],
    fingerprint: str,
    inputs: list[ObjectRef],
    mask: ObjectRef | None = None,
    origin: ObjectRef | None = None,
) -> JobRecord:
    """A queued job's record; `request` a dict is what was kept of a refused one."""
    settings = deps.settings
    now = clock.now()
    if isinstance(request, GenerationRequest):
        typed, refused, model = request, None, request.model
    else:
        typed, refused, model = None, request, str(request.get("model") or "")
    return JobRecord(
        id=job_id,
        tenant=tenant,
        source=source,
        kind=kind,
        model=str(model or settings.default_model),
        request=typed,
        refused_request=refused,
        request_hash=fingerprint,
        created_at=now,
        updated_at=now,
        deadline_at=now + settings.job_deadline_seconds,
        inputs=inputs,
        mask=mask,
        origin=origin,
        ttl=int(now) + settings.job_record_ttl_days * 86_400,
    )


def create(deps: Deps, record: JobRecord, *, reserve: bool = True) -> tuple[JobRecord, bool]:
    """Record a new job, reserving its most it can cost against its tenant's budget in the same
    write (BudgetExceeded when a cap would be passed; nothing is recorded then).
    Returns (the record as written, created)."""
    reservation = None
    if reserve and deps.budgets is not None:
        day, month = budget.periods(clock.to_wall(record.created_at))
        input_images = len(record.inputs) + (1 if record.mask else 0)
        amount = pricing.reserve_amount(record.model, need(record.request, "request"), input_images)
        reservation = budget.Reservation(record.tenant, amount, day, month, deps.budgets.caps(record.tenant))
        record = record.model_copy(update={"reserved_usd": str(amount), "budget_day": day})
    return record, deps.store.create(record, reservation)


def record_or_fail(deps: Deps, record: JobRecord, problem: Problem | None) -> JobRecord:
    """Record a job that came from an upload or an event (one per source object or event id).
    One that cannot run, or would pass its tenant's budget, is recorded as failed saying why."""
    try:
        record, created = create(deps, record, reserve=problem is None)
    except budget.BudgetExceeded as exc:
        record, created = create(deps, record, reserve=False)
        problem = (exc.reason, exc.message)
    if not created:
        return need(deps.store.get(record.id), "job")
    if problem is not None:
        return end_job(deps, record.id, JobStatus.FAILED, problem[0], problem[1])
    return record
