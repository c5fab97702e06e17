"""Routes that make jobs: generations and edits (TheRouter's async contract and OpenAI's plain
calls), and uploads for edits too large for a request."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import ValidationError

from imagejobs.domain.models import (
    EditRequest,
    GenerationRequest,
    UploadRequest,
    UploadView,
)
from imagejobs.edge.api.common import (
    INTAKE_ANSWERS,
    _accepted,
    _answers,
    _caller,
    _idempotency_key,
    _parsed,
    _tenant,
    _wants_async,
    event,
    wired,
)
from imagejobs.edge.httpapi import (
    ApiError,
    form_parameters,
    from_validation_error,
    json_object_body,
    multipart_form,
)
from imagejobs.flows.intake import api as intake
from imagejobs.flows.intake.api import accept_edit, accept_generation

router = Router()


@router.post(
    "/v1/images/generations",
    summary="Submit an image generation job",
    responses=INTAKE_ANSWERS,
)
def create_generation() -> Response[dict[str, Any]]:
    tenant = _tenant()
    wait = not _wants_async()
    request = _parsed(GenerationRequest, json_object_body(event()))
    return _accepted(
        lambda caller: accept_generation(wired(), caller=caller, request=request, idempotency_key=_idempotency_key()),
        tenant,
        wait=wait,
    )


@router.post(
    "/v1/images/edits",
    summary="Submit an image edit job (multipart: image files, optional mask)",
    responses=INTAKE_ANSWERS,
)
def create_edit() -> Response[dict[str, Any]]:
    tenant = _tenant()
    wait = not _wants_async()
    form = multipart_form(event())
    images = form.files.get("image", []) + form.files.get("image[]", [])
    # Images too large for a request (Lambda's 6 MB payload) come as ids from POST /v1/uploads.
    upload_ids = form.repeated.pop("image_upload", []) + form.repeated.pop("image_upload[]", [])
    mask_uploads = form.repeated.pop("mask_upload", [])
    fields = {name: value for name, value in form.fields.items() if name not in UPLOAD_FIELDS}
    if not images and not upload_ids:
        raise ApiError(
            400,
            "Missing required parameter: 'image' (send it as a file, or name an upload: image_upload=upload_...).",
            param="image",
            code="missing_required_parameter",
        )
    masks = form.files.get("mask", [])
    if len(masks) + len(mask_uploads) > 1:
        raise ApiError(400, "Send at most one mask.", param="mask", code="invalid_value")
    request = _parsed(EditRequest, form_parameters(fields))
    return _accepted(
        lambda caller: accept_edit(
            wired(),
            caller=caller,
            request=request,
            images=images,
            mask=masks[0] if masks else None,
            idempotency_key=_idempotency_key(),
            upload_ids=upload_ids,
            mask_upload=mask_uploads[0] if mask_uploads else None,
        ),
        tenant,
        wait=wait,
    )


UPLOAD_FIELDS = ("image_upload", "image_upload[]", "mask_upload")


@router.post(
    "/v1/uploads",
    summary="Upload an image for an edit, straight to S3 (for images an edit request cannot carry)",
    responses=_answers(201, "a presigned POST for the file, and the id to edit with", 400, 415, model=UploadView),
)
def create_upload() -> Response[dict[str, Any]]:
    tenant = _tenant()
    body = _parsed_upload(json_object_body(event()))
    ticket = intake.create_upload(
        wired(), caller=_caller(tenant), filename=body.filename, size=body.bytes, mime_type=body.mime_type
    )
    view = UploadView(
        id=ticket.id,
        filename=body.filename,
        bytes=body.bytes,
        mime_type=body.mime_type,
        expires_at=ticket.expires_at,
        upload_url=ticket.url,
        upload_fields=ticket.fields,
    )
    return Response(status_code=201, content_type="application/json", body=view.model_dump(mode="json"))


def _parsed_upload(params: dict[str, Any]) -> UploadRequest:
    try:
        return UploadRequest.model_validate(params)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
