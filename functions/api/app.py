"""HTTP API: TheRouter's async image contract (submit, poll, fetch) in front of the job stack."""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from imagejobs import budget, service
from imagejobs.httpapi import (
    ApiError,
    base_url,
    form_parameters,
    from_validation_error,
    json_object_body,
    multipart_form,
)
from imagejobs.images import InvalidImage
from imagejobs.models import EditRequest, GenerationRequest, JobStatus
from imagejobs.observability import make_logger
from imagejobs.settings import Settings
from imagejobs.webhooks import WebhookRefused
from imagejobs.wiring import build_deps

logger = make_logger("api")
deps = build_deps(Settings.from_env(), provider=True)
app = APIGatewayRestResolver()

ROUTES: dict[str, set[str]] = {
    r"/v1/images/generations": {"POST"},
    r"/v1/images/edits": {"POST"},
    r"/v1/jobs": {"GET"},
    r"/v1/jobs/[^/]+": {"GET", "DELETE"},
    r"/v1/jobs/[^/]+/content": {"GET"},
    r"/v1/jobs/[^/]+/cancel": {"POST"},
}


def _tenant() -> str:
    """The caller's tenant, as the API key authorizer found it (API Gateway passes it on)."""
    authorizer = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    tenant = authorizer.get("tenant")
    if not tenant:
        raise ApiError(401, "Incorrect API key provided.", type_="authentication_error", code="invalid_api_key")
    return str(tenant)


def _own_job(job_id: str) -> Any:
    tenant = _tenant()
    record = deps.store.get(job_id)
    if record is None or record.tenant != tenant:
        raise ApiError(404, f"No job found with id '{job_id}'.", param="id", code="job_not_found")
    return record


def _require_async(route: str) -> None:
    if (app.current_event.get_query_string_value("async") or "").lower() != "true":
        raise ApiError(
            400,
            f"Image jobs run asynchronously here: call POST {route}?async=true and poll the job.",
            param="async",
            code="async_required",
        )


def _caller(tenant: str) -> service.Caller:
    headers = {name.lower(): value for name, value in (app.current_event.headers or {}).items()}
    correlation = headers.get("x-correlation-id") or headers.get("x-request-id")
    return service.Caller(tenant=tenant, base_url=base_url(app.current_event), correlation_id=correlation)


def _idempotency_key() -> str | None:
    headers = app.current_event.headers or {}
    return next((value for name, value in headers.items() if name.lower() == "idempotency-key"), None)


def _accepted(accept: Any, tenant: str) -> Response:
    """Run an accept call, map its refusals to HTTP, answer 202 with the job object."""
    try:
        record, created = accept()
    except service.IdempotencyConflict as exc:
        raise ApiError(409, exc.message, param="Idempotency-Key", code=exc.reason) from None
    except InvalidImage as exc:
        raise ApiError(400, exc.message, param=exc.param, code=exc.reason) from None
    except WebhookRefused as exc:
        raise ApiError(400, exc.message, param="webhook_url", code=exc.reason) from None
    except budget.BudgetExceeded as exc:
        raise ApiError(402, exc.message, type_="insufficient_quota", code=exc.reason) from None
    except service.UnsupportedModel as exc:
        raise ApiError(400, exc.message, param="model", code=exc.reason) from None
    except service.EnqueueFailed as exc:
        raise ApiError(503, exc.message, type_="server_error", code=exc.reason, headers={"Retry-After": "1"}) from None
    logger.info("job accepted", extra={"job_id": record.id, "created": created, "tenant": tenant})
    view = service.job_view(deps, record, base_url(app.current_event))
    return Response(status_code=202, content_type="application/json", body=view)


@app.post("/v1/images/generations")
def create_generation() -> Response:
    tenant = _tenant()
    _require_async("/v1/images/generations")
    try:
        request = GenerationRequest.model_validate(json_object_body(app.current_event))
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    return _accepted(
        lambda: service.accept_generation(
            deps, caller=_caller(tenant), request=request, idempotency_key=_idempotency_key()
        ),
        tenant,
    )


@app.post("/v1/images/edits")
def create_edit() -> Response:
    tenant = _tenant()
    _require_async("/v1/images/edits")
    form = multipart_form(app.current_event)
    images = form.files.get("image", []) + form.files.get("image[]", [])
    if not images:
        raise ApiError(
            400,
            "Missing required parameter: 'image' (send it as a file).",
            param="image",
            code="missing_required_parameter",
        )
    masks = form.files.get("mask", [])
    if len(masks) > 1:
        raise ApiError(400, "Send at most one mask.", param="mask", code="invalid_value")
    try:
        request = EditRequest.model_validate(form_parameters(form.fields))
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    return _accepted(
        lambda: service.accept_edit(
            deps,
            caller=_caller(tenant),
            request=request,
            images=images,
            mask=masks[0] if masks else None,
            idempotency_key=_idempotency_key(),
        ),
        tenant,
    )


@app.get("/v1/jobs/<job_id>")
def get_job(job_id: str) -> dict[str, Any]:
    return service.job_view(deps, _own_job(job_id), base_url(app.current_event))


@app.get("/v1/jobs")
def list_jobs() -> dict[str, Any]:
    tenant = _tenant()
    event = app.current_event
    raw_limit = event.get_query_string_value("limit") or "20"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise ApiError(400, "limit must be a whole number from 1 to 100.", param="limit", code="invalid_value")
    status = None
    if raw_status := event.get_query_string_value("status"):
        try:
            status = JobStatus(raw_status)
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise ApiError(400, f"status must be one of {allowed}.", param="status", code="invalid_value") from None
    after = None
    if after_id := event.get_query_string_value("after"):
        after = deps.store.get(after_id)
        if after is None or after.tenant != tenant:
            raise ApiError(
                400, f"after must be the id of one of your jobs, not '{after_id}'.", param="after", code="invalid_value"
            )
    records, has_more = deps.store.list_jobs(tenant, limit=int(raw_limit), after=after, status=status)
    data = [service.job_view(deps, record, base_url(event)) for record in records]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def _cancel(job_id: str) -> dict[str, Any]:
    _own_job(job_id)
    try:
        record = service.cancel(deps, job_id)
    except service.JobAlreadyFinal as exc:
        raise ApiError(
            409,
            f"Job '{job_id}' is already {exc.record.status.value}; only a running job can be cancelled.",
            param="id",
            code="job_already_final",
        ) from None
    logger.info("job cancelled", extra={"job_id": job_id})
    return service.job_view(deps, record, base_url(app.current_event))


@app.post("/v1/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> dict[str, Any]:
    return _cancel(job_id)


@app.delete("/v1/jobs/<job_id>")
def delete_job(job_id: str) -> dict[str, Any]:
    return _cancel(job_id)


@app.get("/v1/jobs/<job_id>/content")
def get_content(job_id: str) -> Response:
    record = _own_job(job_id)
    if record.status is not JobStatus.SUCCEEDED or not record.outputs:
        raise ApiError(
            409,
            f"Job '{job_id}' is {record.status.value}; its content is available once it has succeeded.",
            param="id",
            code="job_not_succeeded",
        )
    return Response(status_code=302, headers={"Location": service.output_urls(deps, record)[0]}, body="")


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


@app.exception_handler(Exception)
def unexpected(exc: Exception) -> Response:
    logger.exception("unhandled error")
    return ApiError(500, "The server had an error while processing your request.", type_="server_error").response()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = app.resolve(event, context)
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
