"""HTTP API: TheRouter's async image contract (submit, poll, fetch) in front of the job stack.
Wiring only: the routes are imagejobs.edge.api's routers; here they meet the resolver, CORS, the one
map from refusals to OpenAI-shaped errors, and the request id."""

from __future__ import annotations

import re
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from imagejobs.domain.errors import ImageJobsError
from imagejobs.domain.settings import Settings
from imagejobs.edge.api import common, document, images, jobs, models, providers
from imagejobs.edge.api.common import ApiError, logger
from imagejobs.edge.wiring import build_deps

deps = build_deps(Settings.from_env(), provider=True, warm=("store",))  # every route reads a job or a key
common.wire(deps)
# CORS (CorsAllowOrigins): Powertools answers preflights (OPTIONS, which reach us without a key)
# and puts Access-Control-Allow-Origin on every answer, echoing an allowed Origin; the headers a
# browser script may read are exposed.
origins = deps.settings.cors_origins
app = APIGatewayRestResolver(
    cors=CORSConfig(
        allow_origin=origins[0],
        extra_origins=origins[1:],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-Id"],
        # x-should-retry and retry-after-ms: what OpenAI's JS SDK reads to decide a retry, and a
        # browser shows a script only the headers an answer exposes (Fetch standard, CORS).
        expose_headers=[
            "x-request-id",
            "Location",
            "Retry-After",
            "retry-after-ms",
            "x-should-retry",
            "Deprecation",
            "Sunset",
            "Link",
        ],
        max_age=600,
    )
)
for router in (common.scope, images.router, jobs.router, models.router, providers.router):
    app.include_router(router)


@app.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi_json() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=openapi_document())


def openapi_document() -> str:
    return document.openapi_document(app)


# Every route is registered by now: the one route table, read from the resolver itself.
ROUTES = common.route_table(app)


@app.not_found
def not_found(_: Exception) -> Response:
    path, method = app.current_event.path, app.current_event.http_method
    for route in ROUTES:
        if route.rule.match(path):
            allowed = ", ".join(sorted(route.methods))
            return ApiError(
                405,
                f"Method {method} is not allowed on {path}; use {allowed}.",
                code="method_not_allowed",
                headers={"Allow": allowed},
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


# A header list as a preflight names it (Fetch standard: field names, comma-separated).
HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")


def _allow_requested_headers(event: dict[str, Any], response: dict[str, Any]) -> None:
    """A preflight's Access-Control-Allow-Headers echoes what it asks for: OpenAI's JS SDK sends
    x-stainless-* (arch, lang, os, package-version, retry-count, runtime, runtime-version,
    timeout), OpenAI-Organization and OpenAI-Project on every call (openai-node client.ts
    buildHeaders, internal/detect-platform.ts), and that list changes with its versions. Keys are
    bearer tokens and no cookies are used, so no header is worth refusing."""
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    requested = (headers.get("access-control-request-headers") or "").strip()
    if event.get("httpMethod") != "OPTIONS" or not requested or not HEADER_LIST.match(requested):
        return
    answer = response.setdefault("multiValueHeaders", {})
    for name in [name for name in answer if name.lower() == "access-control-allow-headers"]:
        answer[name] = [requested]


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    common.invocation_started()
    response = app.resolve(event, context)
    _allow_requested_headers(event, response)
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
