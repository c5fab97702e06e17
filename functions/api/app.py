"""HTTP API: TheRouter's async image contract (submit, poll, fetch) in front of the job stack."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from imagejobs import clock, flows, pricing
from imagejobs.errors import ImageJobsError
from imagejobs.httpapi import (
    ApiError,
    base_url,
    form_parameters,
    from_validation_error,
    json_object_body,
    multipart_form,
    whole_number,
)
from imagejobs.models import (
    FIXED_SIZES,
    ContentRedirect,
    EditRequest,
    ErrorBody,
    GenerationRequest,
    ImagesResponse,
    JobList,
    JobStatus,
    JobView,
    UploadRequest,
    UploadView,
)
from imagejobs.observability import make_logger
from imagejobs.settings import Settings
from imagejobs.wiring import build_deps

logger = make_logger("api")
deps = build_deps(Settings.from_env(), provider=True)
# CORS (CorsAllowOrigins): Powertools answers preflights (OPTIONS, which reach us without a key)
# and puts Access-Control-Allow-Origin on every answer, echoing an allowed Origin; the headers a
# browser script may read are exposed.
origins = deps.settings.cors_origins
app = APIGatewayRestResolver(
    cors=CORSConfig(
        allow_origin=origins[0],
        extra_origins=origins[1:],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-Id"],
        expose_headers=["x-request-id", "Location", "Retry-After", "Deprecation", "Sunset", "Link"],
        max_age=600,
    )
)

ROUTES: dict[str, set[str]] = {
    r"/v1/images/generations": {"POST"},
    r"/v1/images/edits": {"POST"},
    r"/v1/uploads": {"POST"},
    r"/v1/models(/[^/]+){0,2}": {"GET"},
    r"/v1/jobs": {"GET"},
    r"/v1/jobs/[^/]+": {"GET", "DELETE"},
    r"/v1/jobs/[^/]+/content": {"GET"},
    r"/v1/jobs/[^/]+/cancel": {"POST"},
    r"/openapi.json": {"GET"},
}


def _tenant() -> str:
    """The caller's tenant, as the API key authorizer found it (API Gateway passes it on). Every
    route asks first, so its query is checked here too, once the caller is known."""
    authorizer = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    tenant = authorizer.get("tenant")
    if not tenant:
        raise ApiError(401, "Incorrect API key provided.", type_="authentication_error", code="invalid_api_key")
    _check_query()
    return str(tenant)


def _own_job(job_id: str) -> Any:
    tenant = _tenant()
    record = deps.store.get(job_id)
    if record is None or record.tenant != tenant:
        raise ApiError(404, f"No job found with id '{job_id}'.", param="id", code="job_not_found")
    return record


# The query parameters each route takes; any other is refused, as unknown body fields are.
QUERY: dict[str, set[str]] = {
    r"/v1/images/(generations|edits)": {"async"},
    r"/v1/jobs": {"limit", "after", "status"},
    r"/v1/jobs/[^/]+/content": {"index"},
}


def _check_query() -> None:
    event = app.current_event
    given = set(event.query_string_parameters or {})
    allowed = next((names for pattern, names in QUERY.items() if re.fullmatch(pattern, event.path)), set())
    unknown = sorted(given - allowed)
    if unknown:
        raise ApiError(400, f"Unknown query parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter")


def _wants_async() -> bool:
    """async=true (TheRouter's pages; async=1 too): answer 202 at once. Without it the call waits
    for the image up to SyncWaitSeconds, as OpenAI's image API does (a plain SDK call)."""
    value = app.current_event.get_query_string_value("async")
    if value is None or value.lower() in ("false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise ApiError(400, "async must be true or false.", param="async", code="invalid_value")


def _caller(tenant: str) -> flows.Caller:
    headers = {name.lower(): value for name, value in (app.current_event.headers or {}).items()}
    correlation = headers.get("x-correlation-id") or headers.get("x-request-id")
    return flows.Caller(tenant=tenant, base_url=base_url(app.current_event), correlation_id=correlation)


MAX_IDEMPOTENCY_KEY = 255
RETRY_AFTER_SECONDS = 5  # a first poll: the quickest low-quality jobs take about this long


def _idempotency_key() -> str | None:
    headers = app.current_event.headers or {}
    key = next((value for name, value in headers.items() if name.lower() == "idempotency-key"), None)
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            400,
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.",
            param="Idempotency-Key",
            code="invalid_value",
        )
    return key


def _accepted(accept: Any, tenant: str, *, wait: bool = False) -> Response[dict[str, Any]]:
    """Run an accept call and answer 202 with the job object; or, asked to
    wait (no async=true), the images in OpenAI's image response once the job has succeeded within
    SyncWaitSeconds, its error if it failed, and the 202 if it is still running (never lost)."""
    record, created = accept()  # its refusals are ImageJobsErrors: answered by refused() below
    # ("created" is a LogRecord attribute: an extra field of that name would raise KeyError)
    logger.info("job accepted", extra={"job_id": record.id, "new_job": created, "tenant": tenant})
    deprecation = pricing.deprecation_headers(record.model, clock.today())
    if wait:
        left = app.lambda_context.get_remaining_time_in_millis() / 1000 if app.lambda_context else 30.0
        record = flows.wait_until_final(deps, record.id, min(deps.settings.sync_wait_seconds, left - SYNC_RESERVE))
        if record.status is JobStatus.SUCCEEDED:
            body = flows.images_response(deps, record, inline_bytes=SYNC_INLINE_BYTES)
            return Response(status_code=200, content_type="application/json", body=body, headers=deprecation)
        if record.status.final:
            raise _job_error(record)
    view = flows.job_view(deps, record, base_url(app.current_event))
    # Where to poll and when (RFC 9110 Location and Retry-After); a deprecated model is served
    # with RFC 9745 Deprecation / RFC 8594 Sunset headers.
    headers = {"Location": view["polling_url"], "Retry-After": str(RETRY_AFTER_SECONDS)} | deprecation
    return Response(status_code=202, content_type="application/json", body=view, headers=headers)


SYNC_RESERVE = 3.0  # seconds of the invocation kept for the answer after a wait
# What a waited-for answer carries inline as b64_json (what GPT image models return), in all: the
# images' bytes as base64 must stay under Lambda's 6 MB response payload; above it, `url`s.
SYNC_INLINE_BYTES = 4 * 1024 * 1024
# Job errors that are the request's own doing (400); any other failure is the provider's (502).
REQUEST_ERRORS = {"moderation_blocked", "invalid_value", "invalid_request", "rejected", "model_unavailable"}


def _job_error(record: Any) -> ApiError:
    """A job that ended without images while the caller waited, in OpenAI's error shape."""
    error = record.error
    code = error.code if error else record.status.value
    message = f"{error.message if error else 'the job ended ' + record.status.value} (job {record.id})"
    if code in REQUEST_ERRORS:
        return ApiError(
            400, message, code=code, headers={"Location": f"{base_url(app.current_event)}/v1/jobs/{record.id}"}
        )
    return ApiError(
        502,
        message,
        type_="server_error",
        code=code,
        headers={"Location": f"{base_url(app.current_event)}/v1/jobs/{record.id}"},
    )


def _answers(success: int, description: str, *errors: int, model: Any = JobView) -> dict[int, Any]:
    """OpenAPI responses of a route: its success answer, then OpenAI-shaped errors."""
    answers: dict[int, Any] = {success: {"description": description}}
    if model is not None:
        answers[success]["content"] = {"application/json": {"model": model}}
    for status in (401, *errors):
        answers[status] = {"description": ERROR_TEXT[status], "content": {"application/json": {"model": ErrorBody}}}
    return answers


JOB_ID_PATTERN = "^img_[0-9a-f]{24}$"
ERROR_TEXT = {
    400: "invalid request (OpenAI's error shape; `param` names the field)",
    401: "missing, unknown or revoked API key",
    402: "the tenant's daily or monthly budget would be passed",
    404: "no such job for this key's tenant (`after` in a listing too)",
    409: "the job is in the wrong state for this call, or the Idempotency-Key was used for another request",
    413: "request over 10 MB, or an edit over about 4.5 MB (Lambda's 6 MB payload, base64): API Gateway's own 413",
    415: "the body is not in the route's content type (JSON for generations, multipart for edits)",
    502: "called without async=true, the job failed at the provider (`code` says why; Location names the job)",
    503: "the job could not be queued; retry (see Retry-After)",
}


INTAKE_ANSWERS = _answers(
    202,
    "the job, queued (async=true; or, without it, not done within SyncWaitSeconds)",
    400,
    402,
    409,
    413,
    415,
    502,
    503,
)
INTAKE_ANSWERS[200] = {
    "description": "without async=true: the images, in OpenAI's image response",
    "content": {"application/json": {"model": ImagesResponse}},
}


def _parsed[PARSED: GenerationRequest](model: type[PARSED], params: dict[str, Any]) -> PARSED:
    """A request model from the caller's parameters; its rules' refusals in OpenAI's shape."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


@app.post(
    "/v1/images/generations",
    summary="Submit an image generation job",
    responses=INTAKE_ANSWERS,
)
def create_generation() -> Response[dict[str, Any]]:
    tenant = _tenant()
    wait = not _wants_async()
    request = _parsed(GenerationRequest, json_object_body(app.current_event))
    return _accepted(
        lambda: flows.accept_generation(
            deps, caller=_caller(tenant), request=request, idempotency_key=_idempotency_key()
        ),
        tenant,
        wait=wait,
    )


@app.post(
    "/v1/images/edits",
    summary="Submit an image edit job (multipart: image files, optional mask)",
    responses=INTAKE_ANSWERS,
)
def create_edit() -> Response[dict[str, Any]]:
    tenant = _tenant()
    wait = not _wants_async()
    form = multipart_form(app.current_event)
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
        lambda: flows.accept_edit(
            deps,
            caller=_caller(tenant),
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


@app.post(
    "/v1/uploads",
    summary="Upload an image for an edit, straight to S3 (for images an edit request cannot carry)",
    responses=_answers(201, "a presigned POST for the file, and the id to edit with", 400, 415, model=UploadView),
)
def create_upload() -> Response[dict[str, Any]]:
    tenant = _tenant()
    body = _parsed_upload(json_object_body(app.current_event))
    ticket = flows.create_upload(
        deps, caller=_caller(tenant), filename=body.filename, size=body.bytes, mime_type=body.mime_type
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


@app.get(
    "/v1/jobs/<job_id>", summary="Get a job (fresh result URLs on every call)", responses=_answers(200, "the job", 404)
)
def get_job(job_id: str) -> dict[str, Any]:
    return flows.job_view(deps, _own_job(job_id), base_url(app.current_event))


@app.get(
    "/v1/jobs",
    summary="List your jobs, newest first",
    responses=_answers(200, "a page of jobs", 400, 404, model=JobList),
)
def list_jobs() -> dict[str, Any]:
    tenant = _tenant()
    event = app.current_event
    # A parameter given empty is given (and invalid), not absent.
    raw_limit = event.get_query_string_value("limit")
    raw_limit = "20" if raw_limit is None else raw_limit
    limit = whole_number(raw_limit)
    if limit is None or not 1 <= limit <= 100:
        raise ApiError(400, "limit must be a whole number from 1 to 100.", param="limit", code="invalid_value")
    status = None
    if (raw_status := event.get_query_string_value("status")) is not None:
        try:
            status = JobStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise ApiError(400, f"status must be one of {allowed}.", param="status", code="invalid_value") from None
    after = None
    if (after_id := event.get_query_string_value("after")) is not None:
        after = deps.store.get(after_id) if after_id else None
        if after is None or after.tenant != tenant:
            raise ApiError(
                404, f"after must be the id of one of your jobs, not '{after_id}'.", param="after", code="job_not_found"
            )
    records, has_more = deps.store.list_jobs(tenant, limit=limit, after=after, status=status)
    data = [flows.job_view(deps, record, base_url(event)) for record in records]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def _cancel(job_id: str) -> dict[str, Any]:
    _own_job(job_id)
    record = flows.cancel(deps, job_id)  # JobAlreadyFinal, JobFinishedUpstream: 409 (refused() below)
    logger.info("job cancelled", extra={"job_id": job_id})
    return flows.job_view(deps, record, base_url(app.current_event))


@app.post(
    "/v1/jobs/<job_id>/cancel", summary="Cancel a running job", responses=_answers(200, "the job, cancelled", 404, 409)
)
def cancel_job(job_id: str) -> dict[str, Any]:
    return _cancel(job_id)


@app.delete(
    "/v1/jobs/<job_id>", summary="Cancel a running job", responses=_answers(200, "the job, cancelled", 404, 409)
)
def delete_job(job_id: str) -> dict[str, Any]:
    return _cancel(job_id)


@app.get(
    "/v1/jobs/<job_id>/content",
    summary="Redirect to one of the job's images (?index=N, from 0; the first by default)",
    responses=_answers(302, "redirect to a presigned URL of the image", 400, 404, 409, model=ContentRedirect),
)
def get_content(job_id: str) -> Response[str]:
    record = _own_job(job_id)
    raw_index = app.current_event.get_query_string_value("index")
    index = 0 if raw_index is None else whole_number(raw_index)
    if record.status is not JobStatus.SUCCEEDED or not record.outputs:
        raise ApiError(
            409,
            f"Job '{job_id}' is {record.status.value}; its content is available once it has succeeded.",
            param="id",
            code="job_not_succeeded",
        )
    if index is None or not 0 <= index < len(record.outputs):
        last = len(record.outputs) - 1
        raise ApiError(400, f"index must be a whole number from 0 to {last}.", param="index", code="invalid_value")
    url = flows.output_urls(deps, record)[index]
    return Response(
        status_code=302,
        headers={"Location": url},
        content_type="application/json",
        body=ContentRedirect(url=url).model_dump_json(),
    )


@app.get(
    "/v1/models",
    summary="The models this stack serves, with their prices (OpenAI's model list)",
    responses=_answers(200, "the models", model=None),
)
def list_models() -> dict[str, Any]:
    _tenant()
    return {"object": "list", "data": pricing.model_views(clock.today())}


@app.get(
    "/v1/models/<vendor>/<name>",
    summary="One model, e.g. openai/gpt-image-1",
    responses=_answers(200, "the model", 404, model=None),
)
def get_vendor_model(vendor: str, name: str) -> Response[dict[str, Any]]:
    return _model(f"{vendor}/{name}")


@app.get(
    "/v1/models/<name>",
    summary="One model by its short name, e.g. gpt-image-1",
    responses=_answers(200, "the model", 404, model=None),
)
def get_model(name: str) -> Response[dict[str, Any]]:
    return _model(name)


def _model(name: str) -> Response[dict[str, Any]]:
    _tenant()
    today = clock.today()
    try:
        entry = pricing.servable(unquote(name), today)
    except pricing.UnknownModel:
        raise ApiError(404, f"The model '{name}' does not exist here.", param="model", code="model_not_found") from None
    except pricing.ModelShutDown as exc:
        instead = f"; use {exc.replacement} instead" if exc.replacement else ""
        message = f"The model '{name}' was shut down on {exc.shutdown}{instead}."
        raise ApiError(404, message, param="model", code="model_not_found") from None
    return Response(
        status_code=200,
        content_type="application/json",
        body=pricing.model_view(entry),
        headers=pricing.deprecation_headers(entry, today),
    )


@app.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi_json() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=openapi_document())


@cache  # the routes do not change while the function lives
def openapi_document() -> str:
    """The OpenAPI document: Powertools generates paths and answers from the routes; what the
    routes read from the raw event (bodies, query strings, headers) is added here from the models."""
    spec = json.loads(
        app.get_openapi_json_schema(
            title="imagejobs",
            version="1.0.0",
            summary="TheRouter's async image API (submit, poll, fetch) on your AWS account",
            security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},  # type: ignore[dict-item]
            security=[{"bearer": []}],
        )
    )
    spec["servers"] = [{"url": "/"}]
    paths, schemas = spec["paths"], spec.setdefault("components", {}).setdefault("schemas", {})
    for name, model in (
        ("GenerationRequest", GenerationRequest),
        ("EditRequest", EditRequest),
        ("UploadRequest", UploadRequest),
    ):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    async_query = {
        "name": "async",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["true", "1", "false", "0"]},
        "description": "true: answer 202 with the job at once (poll it); without it, wait up to SyncWaitSeconds",
    }
    idempotency = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
        "description": "a retried request with the same key returns the first job",
    }
    generation = paths["/v1/images/generations"]["post"]
    generation["parameters"] = [async_query, idempotency]
    generation["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/GenerationRequest"}}},
    }
    edit = paths["/v1/images/edits"]["post"]
    edit["parameters"] = [async_query, idempotency]
    # multipart has no null: optional fields are simply left out
    edit_fields = {
        name: next((branch for branch in field.get("anyOf", []) if branch.get("type") != "null"), field)
        | {k: v for k, v in field.items() if k not in ("anyOf", "default")}
        for name, field in schemas["EditRequest"]["properties"].items()
    }
    edit_fields["image"] = {
        "type": "array",
        "items": {"type": "string", "format": "binary"},
        "minItems": 1,
        "maxItems": 16,
    }
    edit_fields["mask"] = {"type": "string", "format": "binary"}
    # The JSON bodies' cross-field rules (allOf) are not repeated here (schemathesis cannot
    # generate multipart bodies under them); the size rule they carry is given as the fixed sizes,
    # with the custom ones of models that take them named in the description.
    edit_fields["size"] = {
        "type": "string",
        "enum": FIXED_SIZES,
        "description": "or, for gpt-image-2, WIDTHxHEIGHT within its bounds (see GenerationRequest)",
    }
    upload_id = {"type": "string", "pattern": "^upload_[0-9a-f]{24}$", "description": "an id from POST /v1/uploads"}
    edit_fields["image_upload"] = {"type": "array", "items": upload_id, "maxItems": 16}
    edit_fields["mask_upload"] = upload_id
    paths["/v1/uploads"]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UploadRequest"}}},
    }
    edit["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["prompt"],
                    "anyOf": [{"required": ["image"]}, {"required": ["image_upload"]}],  # files or upload ids
                    "properties": edit_fields,
                    "additionalProperties": False,
                }
            }
        },
    }
    paths["/v1/jobs/{job_id}/content"]["get"].setdefault("parameters", []).append(
        {
            "name": "index",
            "in": "query",
            "schema": {"type": "integer", "minimum": 0, "maximum": 9, "default": 0},
            "description": "which image, from 0 (the order of unsigned_urls)",
        }
    )
    paths["/v1/jobs"]["get"]["parameters"] = [
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
        {"name": "status", "in": "query", "schema": {"type": "string", "enum": [s.value for s in JobStatus]}},
        {
            "name": "after",
            "in": "query",
            "schema": {"type": "string", "pattern": JOB_ID_PATTERN},
            "description": "the last job id of the page before (one of your jobs)",
        },
    ]
    for path in paths.values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "job_id":
                    parameter["schema"]["pattern"] = JOB_ID_PATTERN
    request_id = {"schema": {"type": "string"}, "description": "this request's id (API Gateway's request id)"}
    for path in paths.values():
        for operation in path.values():
            for status, answer in operation.get("responses", {}).items():
                answer.setdefault("headers", {})["x-request-id"] = request_id
                if status == "202":
                    answer["headers"] |= {
                        "Location": {"schema": {"type": "string"}, "description": "the job's polling_url"},
                        "Retry-After": {"schema": {"type": "integer"}, "description": "seconds before a first poll"},
                    }
    paths["/v1/jobs/{job_id}/content"]["get"]["responses"]["302"]["headers"]["Location"] = {
        "schema": {"type": "string"},
        "description": "presigned URL of the first image",
    }
    spec["webhooks"] = {"imageJobFinished": {"post": WEBHOOK_OPERATION}}
    return json.dumps(spec, indent=2, sort_keys=True)


# What a job's webhook_url receives once the job has ended (imagejobs.notify, imagejobs.webhooks).
WEBHOOK_OPERATION: dict[str, Any] = {
    "summary": "The job has ended (Standard Webhooks: signed, retried with backoff until a 2xx)",
    "parameters": [
        {
            "name": "webhook-id",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "<job id>_<status>: the same on every retry of this notice",
        },
        {
            "name": "webhook-timestamp",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "unix seconds (wall clock) of this attempt",
        },
        {
            "name": "webhook-signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "v1,<base64 HMAC-SHA256 of id.timestamp.body>; two, space-separated, in a rotation",
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["type", "timestamp", "data"],
                    "properties": {
                        "type": {"type": "string", "enum": [f"image_job.{s.value}" for s in JobStatus if s.final]},
                        "timestamp": {"type": "string", "format": "date-time"},
                        "data": {"$ref": "#/components/schemas/JobView"},
                    },
                }
            }
        },
    },
    "responses": {"2XX": {"description": "taken; any other answer (or none within 10 s) is retried"}},
}


@app.not_found
def not_found(_: Exception) -> Response:
    path, method = app.current_event.path, app.current_event.http_method
    for pattern, methods in ROUTES.items():
        if re.fullmatch(pattern, path):
            return ApiError(
                405,
                f"Method {method} is not allowed on {path}; use {', '.join(sorted(methods))}.",
                code="method_not_allowed",
                headers={"Allow": ", ".join(sorted(methods))},
            ).response()
    return ApiError(404, f"Unknown route {method} {path}.", code="not_found").response()


@app.exception_handler(ApiError)
def api_error(exc: ApiError) -> Response:
    return exc.response()


@app.exception_handler(ImageJobsError)
def refused(exc: ImageJobsError) -> Response:
    """Every refusal of the job logic, in OpenAI's error shape, from what the error class says of
    itself (status, type, param; its reason is the code): the one map from domain to HTTP."""
    headers = {"Retry-After": f"{exc.retry_after:g}"} if exc.retry_after is not None else None
    if exc.status >= 500:
        logger.warning("refused", extra={"reason": exc.reason, "error": exc.message})
    return ApiError(
        exc.status, exc.message, type_=exc.error_type, param=exc.param, code=exc.reason, headers=headers
    ).response()


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error")
    return ApiError(500, "The server had an error while processing your request.", type_="server_error").response()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = app.resolve(event, context)
    # The id OpenAI's SDKs surface (x-request-id), on every answer of ours, errors included: API
    # Gateway's request id, which its own answers carry as x-amzn-RequestId.
    request_id = (event.get("requestContext") or {}).get("requestId") or context.aws_request_id
    response.setdefault("multiValueHeaders", {})["x-request-id"] = [request_id]
    # One line per request (API Gateway access logs are left off: see the template).
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    logger.info(
        "request",
        extra={
            "method": event.get("httpMethod"),
            "path": event.get("path"),
            "status": response.get("statusCode"),
            "tenant": authorizer.get("tenant"),
            "key_id": authorizer.get("key_id"),
        },
    )
    return response
