"""HTTP edge helpers: OpenAI-shaped errors, body parsing, bearer auth, base URL of the API."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import ValidationError

from imagejobs.domain.models import whole_number


class ApiError(Exception):
    """An answer in OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}

    def response(self) -> Response:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return Response(
            status_code=self.status,
            content_type="application/json",
            body=json.dumps(body),
            headers=self.headers,
        )


def from_validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ())]
    param = location[0] if location else None
    kind = first.get("type", "")
    message = first.get("msg", "invalid request").removeprefix("Value error, ")
    if kind == "missing":
        return ApiError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if kind == "extra_forbidden":
        return ApiError(400, f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")
    if kind == "string_pattern_mismatch" and param == "size":
        # in words, not the pattern: which sizes each model takes is its catalog entry's rule
        message = (
            "it must be auto or WIDTHxHEIGHT, e.g. 1024x1024, 1536x1024 or 1024x1536 "
            "(each model's sizes: GET /v1/models)"
        )
    if param:
        message = f"Invalid value for '{param}': {message}."
    return ApiError(400, message, param=param, code="invalid_value")


def json_object_body(event: APIGatewayProxyEvent) -> dict[str, Any]:
    content_type = (event.headers.get("content-type") or event.headers.get("Content-Type") or "").lower()
    if content_type.split(";")[0].strip() != "application/json":
        raise ApiError(
            415,
            "Send the request body as JSON with 'Content-Type: application/json'.",
            code="unsupported_content_type",
        )
    try:
        # (a body that is not UTF-8 arrives base64-encoded and fails to decode: a ValueError too)
        body = json.loads(event.decoded_body or "")
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise ApiError(
            400,
            "We could not parse the JSON body of your request. Send valid JSON.",
            code="invalid_json",
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


@dataclass
class MultipartForm:
    fields: dict[str, str] = field(default_factory=dict)  # the last value of each text field
    files: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    repeated: dict[str, list[str]] = field(default_factory=dict)  # every value of each text field


def _header(event: APIGatewayProxyEvent, name: str) -> str:
    return next((v for k, v in (event.headers or {}).items() if k.lower() == name), "")


def multipart_form(event: APIGatewayProxyEvent) -> MultipartForm:
    """multipart/form-data as curl -F and OpenAI's SDKs send it (parsed with the standard library)."""
    content_type = _header(event, "content-type")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise ApiError(
            415,
            'Send image edits as multipart/form-data (e.g. curl -F "image=@photo.png" -F "prompt=...").',
            code="unsupported_content_type",
        )
    raw_body = event.get("body") or ""
    body = base64.b64decode(raw_body) if event.get("isBase64Encoded") else raw_body.encode("utf-8")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ApiError(400, "The multipart body could not be read.", code="invalid_multipart")
    form = MultipartForm()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            form.files.setdefault(name, []).append((filename, data))
        else:
            text = data.decode(part.get_content_charset() or "utf-8", errors="replace")
            form.fields[name] = text
            form.repeated.setdefault(name, []).append(text)
    return form


INTEGER_FIELDS = ("n", "output_compression")


def form_parameters(fields: dict[str, str]) -> dict[str, Any]:
    """Form fields are text: whole numbers become ints, so the model's rules judge the values."""
    params: dict[str, Any] = dict(fields)
    for name in INTEGER_FIELDS:
        value = params.get(name)
        if isinstance(value, str) and (number := whole_number(value)) is not None:
            params[name] = number
    return params


def base_url(event: APIGatewayProxyEvent) -> str:
    """The URL clients used to reach us, stage prefix included (REST API: /Prod/...)."""
    headers = {k.lower(): v for k, v in (event.headers or {}).items()}
    proto = headers.get("x-forwarded-proto", "https")
    host = headers.get("host", "localhost")
    full_path = str(event.request_context.path or event.path or "")
    prefix = full_path[: len(full_path) - len(event.path)] if full_path.endswith(event.path) else ""
    return f"{proto}://{host}{prefix}"
