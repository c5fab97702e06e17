"""Event intake: an ImageJobRequested event on the bus becomes a job, one per event id. A request
that cannot run ends as a failed job saying why (the pipeline hears of it like any other end)."""

from __future__ import annotations

from pydantic import JsonValue, ValidationError

from imagejobs.domain import identity, requests_in
from imagejobs.domain.errors import ImageJobsError
from imagejobs.domain.images import CheckedImage, DecodeBudget, check_edit_budget, check_edit_inputs
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import EditRequest, GenerationRequest, Kind, ObjectRef
from imagejobs.flows.intake.common import Problem, checked_request, new_record, read_checked, record_or_fail
from imagejobs.flows.ports import Deps, need

REQUEST_FIELDS = set(EditRequest.model_fields)


def accept_event(deps: Deps, envelope: requests_in.Envelope) -> JobRecord:
    """One job per event id. A request that cannot run ends as a failed job saying why."""
    job_id = identity.event_job_id(envelope.id)
    existing = deps.store.get(job_id)
    if existing is not None:
        return existing
    try:
        params, image_uris, mask_uri, correlation_id = requests_in.split_detail(envelope.detail)
        request, inputs, mask, problem = _checked(deps, params, image_uris, mask_uri)
    except requests_in.InvalidDetail as exc:
        image_uris, mask_uri, inputs, mask = [], None, [], None
        request = requests_in.recordable(dict(envelope.detail), REQUEST_FIELDS)
        correlation_id = requests_in.correlation_of(envelope.detail)  # kept: the pipeline's handle on it
        problem = (exc.reason, str(exc))
    kind: Kind = "edit" if image_uris or mask_uri else "generation"
    record = new_record(
        deps, job_id, deps.settings.event_tenant, "event", kind, request, identity.fingerprint(request), inputs, mask
    )
    return record_or_fail(deps, record.model_copy(update={"correlation_id": correlation_id}), problem)


def _checked(
    deps: Deps, params: dict[str, JsonValue], image_uris: list[str], mask_uri: str | None
) -> tuple[GenerationRequest | dict[str, JsonValue], list[ObjectRef], ObjectRef | None, Problem | None]:
    """The event's request parsed and checked, and its input images (objects in the buckets the
    stack may read) checked too; or what of it a failed job can keep, and why it cannot run."""
    request: GenerationRequest | dict[str, JsonValue] = requests_in.recordable(params, REQUEST_FIELDS)
    try:
        model = EditRequest if image_uris or mask_uri else GenerationRequest
        request = checked_request(deps, model.model_validate(params))
        inputs, mask = _inputs(deps, image_uris, mask_uri) if image_uris or mask_uri else ([], None)
        return request, inputs, mask, None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "detail"
        return request, [], None, ("invalid_request", f"{where}: {first.get('msg', 'invalid')}")
    except (requests_in.InputNotAllowed, requests_in.InvalidDetail) as exc:
        return request, [], None, (exc.reason, str(exc))
    except ImageJobsError as exc:
        return request, [], None, (exc.reason, exc.message)


def _inputs(deps: Deps, image_uris: list[str], mask_uri: str | None) -> tuple[list[ObjectRef], ObjectRef | None]:
    """An edit's images and mask: counted and weighed before any is read; then read one at a time,
    keeping only what the rules need (sizes), so memory holds one image, not sixteen."""
    allowed = deps.settings.readable_input_buckets
    objects = need(deps.objects, "objects")
    image_refs = [requests_in.s3_input(uri, allowed) for uri in image_uris]
    mask_ref = requests_in.s3_input(mask_uri, allowed) if mask_uri else None
    check_edit_budget(
        [objects.head(ref).size for ref in image_refs], mask_size=objects.head(mask_ref).size if mask_ref else 0
    )
    decode = DecodeBudget()
    inputs: list[ObjectRef] = []
    checked: list[CheckedImage] = []
    for uri, ref in zip(image_uris, image_refs, strict=True):
        stored, image = read_checked(objects, ref, uri, "image", decode)
        inputs.append(stored)
        checked.append(image)
    mask, checked_mask = (None, None)
    if mask_uri and mask_ref is not None:
        mask, checked_mask = read_checked(objects, mask_ref, mask_uri, "mask", decode)
    check_edit_inputs(checked, checked_mask)
    return inputs, mask
