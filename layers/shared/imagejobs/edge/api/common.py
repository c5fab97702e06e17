"""What every route of the HTTP API shares: the caller, the query check, the intake answer
(202, or a waited-for 200), OpenAI-shaped errors and the OpenAPI answers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import APIGatewayRestResolver, Router
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import ValidationError

from imagejobs.adapters.observability import make_logger
from imagejobs.domain import clock, pricing
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import (
    ErrorBody,
    GenerationRequest,
    ImagesResponse,
    JobStatus,
    JobView,
)
from imagejobs.edge.httpapi import (
    ApiError,
    base_url,
    from_validation_error,
)
from imagejobs.flows.intake.api import Caller
from imagejobs.flows.ports import Deps, need
from imagejobs.flows.views import images_response, job_view, wait_until_final

logger = make_logger("api")  # the API function's logger (its handler logs through it too)
# No routes: the request being answered (Powertools sets it on every included router), for the helpers.
scope = Router()
_wired: Deps | None = None


def event() -> APIGatewayProxyEvent:
    """The request being answered (a REST API proxy event)."""
    return cast(APIGatewayProxyEvent, scope.current_event)


def wire(deps: Deps) -> None:
    """The function's ports, made once at cold start (imagejobs.edge.wiring)."""
    global _wired
    _wired = deps


def wired() -> Deps:
    return need(_wired, "the API's ports (imagejobs.edge.api.wire)")


@dataclass(frozen=True)
class Route:
    """One path of the HTTP API and the methods it takes (Powertools' path syntax, /v1/jobs/<job_id>)."""

    path: str
    rule: re.Pattern[str]  # Powertools' own matcher for the path
    methods: frozenset[str]

    @property
    def template_path(self) -> str:
        """As API Gateway and the template write it: /v1/jobs/{job_id}."""
        return re.sub(r"<(\w+)>", r"{\1}", self.path)


def route_table(resolver: APIGatewayRestResolver) -> list[Route]:
    """The routes as the resolver holds them once the routers are included: the one route list
    (the 405 answer's Allow header and the template's test read it; the OpenAPI document is
    Powertools' own from the same routes). Powertools keeps them in `_static_routes` and
    `_dynamic_routes` (aws_lambda_powertools 3.37, event_handler/api_gateway.py); a test fails if
    that moves."""
    by_path: dict[str, tuple[re.Pattern[str], set[str]]] = {}
    for route in [*resolver._static_routes, *resolver._dynamic_routes]:  # private lists: see above
        by_path.setdefault(route.path, (route.rule, set()))[1].add(route.method.upper())
    return [Route(path, rule, frozenset(methods)) for path, (rule, methods) in sorted(by_path.items())]


def _tenant() -> str:
    """The caller's tenant, as the API key authorizer found it (API Gateway passes it on). Every
    route asks first, so its query is checked here too, once the caller is known."""
    authorizer = (event().raw_event.get("requestContext") or {}).get("authorizer") or {}
    tenant = authorizer.get("tenant")
    if not tenant:
        raise ApiError(401, "Incorrect API key provided.", type_="authentication_error", code="invalid_api_key")
    _check_query()
    return str(tenant)


def _own_job(job_id: str) -> Any:
    tenant = _tenant()
    record = wired().store.get(job_id)
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
    request = event()
    given = set(request.query_string_parameters or {})
    allowed = next((names for pattern, names in QUERY.items() if re.fullmatch(pattern, request.path)), set())
    unknown = sorted(given - allowed)
    if unknown:
        raise ApiError(400, f"Unknown query parameter: '{unknown[0]}'.", param=unknown[0], code="unknown_parameter")


def _wants_async() -> bool:
    """async=true (TheRouter's pages; async=1 too): answer 202 at once. Without it the call waits
    for the image up to SyncWaitSeconds, as OpenAI's image API does (a plain SDK call)."""
    value = event().get_query_string_value("async")
    if value is None or value.lower() in ("false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise ApiError(400, "async must be true or false.", param="async", code="invalid_value")


def _caller(tenant: str, waits_until: float | None = None) -> Caller:
    """Who asks; for a plain call, until when it waits (wall clock) and whether the client says it
    is a retry: OpenAI's SDKs send x-stainless-retry-count on every request (0 on the first try;
    openai-python _base_client.py, openai-node client.ts buildHeaders)."""
    headers = {name.lower(): value for name, value in (event().headers or {}).items()}
    correlation = headers.get("x-correlation-id") or headers.get("x-request-id")
    retries = headers.get("x-stainless-retry-count", "")
    return Caller(
        tenant=tenant,
        base_url=base_url(event()),
        correlation_id=correlation,
        waits_until=None if waits_until is None else clock.now() + clock.job_seconds(waits_until - clock.wall_now()),
        retry_count=int(retries) if retries.isascii() and retries.isdigit() and len(retries) < 6 else None,
    )


# When API Gateway's integration timeout started counting for the invocation being answered: at
# its start, or for a cold start at init (API Gateway counts Lambda's init time, which the
# context's remaining time leaves out). This module is loaded during the API function's init.
_invoked_at: float = clock.wall_now()
_init_started_at: float | None = _invoked_at


def invocation_started() -> None:
    """Called by the API function's handler as each invocation starts."""
    global _init_started_at, _invoked_at
    _invoked_at = _init_started_at if _init_started_at is not None else clock.wall_now()
    _init_started_at = None


def _answer_by() -> float:
    """The wall-clock instant a plain call stops waiting: SyncWaitSeconds after it arrived, and
    never so late that its answer (SYNC_RESERVE) would pass API Gateway's integration timeout
    (ApiTimeoutSeconds, counted from the invocation or its cold start) or the function's own."""
    settings = wired().settings
    now = clock.wall_now()
    by = min(now + settings.sync_wait_seconds, _invoked_at + settings.api_timeout_seconds - SYNC_RESERVE)
    if scope.lambda_context is not None:
        by = min(by, now + scope.lambda_context.get_remaining_time_in_millis() / 1000 - SYNC_RESERVE)
    return max(now, by)


MAX_IDEMPOTENCY_KEY = 255
RETRY_AFTER_SECONDS = 5  # a first poll: the quickest low-quality jobs take about this long


def _idempotency_key() -> str | None:
    headers = event().headers or {}
    key = next((value for name, value in headers.items() if name.lower() == "idempotency-key"), None)
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise ApiError(
            400,
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.",
            param="Idempotency-Key",
            code="invalid_value",
        )
    return key


def _accepted(
    accept: Callable[[Caller], tuple[JobRecord, bool]], tenant: str, *, wait: bool = False
) -> Response[dict[str, Any]]:
    """Run an accept call and answer 202 with the job object (async=true). A plain call (an OpenAI
    SDK's images.generate / images.edit) is held like OpenAI's own: the images in OpenAI's image
    response once the job has succeeded, its error if it failed, and if it is still running when
    the wait ends, never a 202 (the SDKs read it as an empty success: `data` is None) but a 504
    the SDKs retry by themselves (x-should-retry: true); that retry joins the same job."""
    answer_by = _answer_by() if wait else None
    record, created = accept(_caller(tenant, answer_by))  # refusals are ImageJobsErrors: see refused()
    # ("created" is a LogRecord attribute: an extra field of that name would raise KeyError)
    logger.info("job accepted", extra={"job_id": record.id, "new_job": created, "tenant": tenant})
    deprecation = pricing.deprecation_headers(record.model, clock.today())
    if answer_by is not None:
        record = wait_until_final(wired(), record.id, answer_by)
        if record.status is JobStatus.SUCCEEDED:
            inline = 0 if record.request and record.request.response_format == "url" else SYNC_INLINE_BYTES
            body = images_response(wired(), record, inline_bytes=inline)
            return Response(status_code=200, content_type="application/json", body=body, headers=deprecation)
        if record.status.final:
            raise _job_error(record)
        raise _still_running(record)
    view = job_view(wired(), record, base_url(event()))
    # Where to poll and when (RFC 9110 Location and Retry-After); a deprecated model is served
    # with RFC 9745 Deprecation / RFC 8594 Sunset headers.
    headers = {"Location": view["polling_url"], "Retry-After": str(RETRY_AFTER_SECONDS)} | deprecation
    return Response(status_code=202, content_type="application/json", body=view, headers=headers)


SYNC_RESERVE = 3.0  # seconds kept for the answer after a wait (reading and encoding the images)
# How soon a plain call whose wait ran out is retried: OpenAI's SDKs take retry-after-ms first,
# then Retry-After (openai-python _calculate_retry_timeout honours 0 < delay <= 120 s; openai-node
# retryRequest), instead of their own backoff.
STILL_RUNNING_RETRY_MS = 1000


def _still_running(record: JobRecord) -> ApiError:
    """A plain call's wait ran out while its job runs. 504 (RFC 9110: a gateway that did not get a
    timely answer from upstream, as API Gateway's own integration timeout answers) with
    x-should-retry: true, which both SDKs obey before looking at the status: their retry of the
    same call joins this job (imagejobs.flows.intake), so a job up to about (1 + max_retries)
    windows long still comes back as images, from one provider submission."""
    polling_url = f"{base_url(event())}/v1/jobs/{record.id}"
    return ApiError(
        504,
        f"The image is not ready yet: job {record.id} is {record.status.value}. Send the same request again "
        f"to keep waiting for it (OpenAI's SDKs retry it by themselves; nothing is submitted twice), "
        f"or poll {polling_url}.",
        type_="server_error",
        code="job_still_running",
        headers={
            "x-should-retry": "true",
            "retry-after-ms": str(STILL_RUNNING_RETRY_MS),
            "Retry-After": str(max(1, STILL_RUNNING_RETRY_MS // 1000)),
            "Location": polling_url,
        },
    )


# What a waited-for answer carries inline as b64_json (what GPT image models return), in all: the
# images' bytes as base64 must stay under Lambda's 6 MB response payload; above it, `url`s.
SYNC_INLINE_BYTES = 4 * 1024 * 1024
# Job errors that are the request's own doing (400); any other failure is the provider's (502).
REQUEST_ERRORS = {"moderation_blocked", "invalid_value", "invalid_request", "rejected", "model_unavailable"}


def _job_error(record: JobRecord) -> ApiError:
    """A job that ended without images while the caller waited, in OpenAI's error shape."""
    error = record.error
    code = error.code if error else record.status.value
    message = f"{error.message if error else 'the job ended ' + record.status.value} (job {record.id})"
    status, type_ = (400, "invalid_request_error") if code in REQUEST_ERRORS else (502, "server_error")
    # x-should-retry: false, or the SDKs would retry the 502 (any 5xx) and make the job again.
    headers = {"Location": f"{base_url(event())}/v1/jobs/{record.id}", "x-should-retry": "false"}
    return ApiError(status, message, type_=type_, code=code, headers=headers)


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
    504: (
        "called without async=true, the job is still running when the wait ends (`job_still_running`; "
        "x-should-retry: true, retry-after-ms; the same call again waits on the same job; Location names it)"
    ),
}


INTAKE_ANSWERS = _answers(
    202,
    "the job, queued (async=true)",
    400,
    402,
    409,
    413,
    415,
    502,
    503,
    504,
)
INTAKE_ANSWERS[200] = {
    "description": "without async=true: the images, in OpenAI's image response",
    "content": {"application/json": {"model": ImagesResponse}},
}


# OpenAI streams partial images (stream, partial_images) for GPT image models. Not here: API
# Gateway REST APIs stream only from a function that streams its response, and Lambda's Python
# managed runtimes cannot (Lambda developer guide, "Response streaming": Node.js managed runtimes
# and custom runtimes only). A job's progress is its status: async=true and a poll or a webhook.
STREAMING = ("stream", "partial_images")


def _parsed[PARSED: GenerationRequest](model: type[PARSED], params: dict[str, Any]) -> PARSED:
    """A request model from the caller's parameters; its rules' refusals in OpenAI's shape."""
    asked = next(
        (name for name in STREAMING if name in params and params[name] not in (None, False, "false", 0, "0")), None
    )
    if asked:
        raise ApiError(
            400,
            f"Streaming ('{asked}') is not supported here: send the request with async=true and poll "
            "polling_url, or give a webhook_url to be told when the image is ready.",
            param=asked,
            code="streaming_not_supported",
        )
    params = {name: value for name, value in params.items() if name not in STREAMING}
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
