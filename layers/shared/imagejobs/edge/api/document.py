"""The OpenAPI document: Powertools generates paths and answers from the routes; what the routes
read from the raw event (bodies, query strings, headers) and the webhooks are added from the models."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from imagejobs.domain.models import (
    FIXED_SIZES,
    EditRequest,
    GenerationRequest,
    JobStatus,
    UploadRequest,
)
from imagejobs.edge.api.common import JOB_ID_PATTERN, MAX_IDEMPOTENCY_KEY


@cache  # the routes do not change while the function lives
def openapi_document(app: APIGatewayRestResolver) -> str:
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
    _request_bodies(paths, schemas)
    _query_parameters(paths)
    _answer_headers(paths)
    _provider_webhooks(paths)
    spec["webhooks"] = {"imageJobFinished": {"post": WEBHOOK_OPERATION}}
    return json.dumps(spec, indent=2, sort_keys=True)


def _provider_webhooks(paths: dict[str, Any]) -> None:
    """OpenAI's webhooks come with no API key (the route has no authorizer): their Standard
    Webhooks headers are the authentication, and the body is OpenAI's event object."""
    operation = paths["/v1/providers/openai/webhooks"]["post"]
    operation["security"] = []
    operation["parameters"] = [
        {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": about}
        for name, about in (
            ("webhook-id", "the delivery's id"),
            ("webhook-timestamp", "unix seconds; refused more than 300 s from now either way"),
            ("webhook-signature", 'v1,<base64 HMAC-SHA256 of "id.timestamp.body">, space-separated'),
        )
    ]
    event = {
        "type": "object",
        "required": ["type", "data"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "event"},
            "created_at": {"type": "integer"},
            "type": {"type": "string", "examples": ["response.completed"]},
            "data": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
        },
    }
    operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": event}}}


def _json_body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _request_bodies(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """The JSON bodies of generations and uploads, and the edit's multipart form."""
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
    generation["requestBody"] = _json_body("GenerationRequest")
    paths["/v1/uploads"]["post"]["requestBody"] = _json_body("UploadRequest")
    edit = paths["/v1/images/edits"]["post"]
    edit["parameters"] = [async_query, idempotency]
    edit["requestBody"] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["prompt"],
                    "anyOf": [{"required": ["image"]}, {"required": ["image_upload"]}],  # files or upload ids
                    "properties": _edit_fields(schemas["EditRequest"]),
                    "additionalProperties": False,
                }
            }
        },
    }


def _edit_fields(edit_request: dict[str, Any]) -> dict[str, Any]:
    """The edit's form fields: EditRequest's, without null (multipart has none: optional fields
    are simply left out), and the files or upload ids of its images and mask."""
    edit_fields = {
        name: next((branch for branch in field.get("anyOf", []) if branch.get("type") != "null"), field)
        | {k: v for k, v in field.items() if k not in ("anyOf", "default")}
        for name, field in edit_request["properties"].items()
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
    return edit_fields


def _query_parameters(paths: dict[str, Any]) -> None:
    """The query strings the job routes read, and the job id's pattern wherever it is a parameter."""
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


def _answer_headers(paths: dict[str, Any]) -> None:
    """Every answer's x-request-id, a 202's Location and Retry-After, the content redirect's Location."""
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


# What a job's webhook_url receives once the job has ended (imagejobs.edge.notify, imagejobs.adapters.webhooks).
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
