"""A local stand-in for API Gateway (REST, Lambda proxy integration).

Routes come from the template's Api events. Each HTTP request becomes an API Gateway proxy event
(headers, multi-value headers, query strings, path parameters, base64 body for binary content),
the function is invoked through moto's Lambda API, and the proxy result becomes the HTTP answer.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3

from imagejobs_local import meter
from imagejobs_local.deploy import Authorizer, Route

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload limit
# Lambda's synchronous invocation payload quota, each way (6 MB: 6,291,456 bytes for a request),
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html. The proxy event carries
# the body base64-encoded for binary types (multipart edits), so a body over about 4.5 MB never
# reaches the function: API Gateway answers 413 {"message": "Request Too Long"} itself, in a shape
# a GatewayResponse cannot change.
LAMBDA_REQUEST_PAYLOAD_BYTES = 6 * 1024 * 1024
TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded", "application/xml")


def _compile(path: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{(\w+)\+\}", r"(?P<\1>.+)", path)
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    return re.compile(f"^{pattern}$")


def _specificity(route: Route) -> tuple[int, int, int]:
    """Literal paths first, then fewer parameters, then greedy {proxy+} routes last (as API Gateway)."""
    return ("+}" in route.path, route.path.count("{"), -route.path.count("/"))


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) resets connections when dozens of clients connect at once.
    request_queue_size = 256


def _allows(answer: Any, method_arn: str) -> bool:
    """Whether an authorizer's policy allows this call (Allow matching it, no Deny matching it)."""
    if not isinstance(answer, dict):
        return False
    statements = (answer.get("policyDocument") or {}).get("Statement") or []
    verdicts = set()
    for statement in statements:
        resources = statement.get("Resource")
        for resource in [resources] if isinstance(resources, str) else resources or []:
            pattern = re.escape(str(resource)).replace(r"\*", ".*")
            if re.fullmatch(pattern, method_arn):
                verdicts.add(statement.get("Effect"))
    return "Allow" in verdicts and "Deny" not in verdicts


class LocalGateway:
    def __init__(
        self,
        routes: list[Route],
        function_names: dict[str, str],
        region: str,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "",
        gateway_responses: dict[str, Any] | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        self._gateway_responses = gateway_responses or {}
        self._authorizer = authorizer
        self._auth_cache: dict[str, tuple[float, dict[str, Any]]] = {}  # token -> (expires, answer)
        self._auth_lock = threading.Lock()
        self.authorizer_calls = 0
        self._routes = [(route, _compile(route.path)) for route in sorted(routes, key=_specificity)]
        self._functions = function_names
        self._lambda = boto3.client("lambda", region_name=region)
        self._region = region
        self._stage = stage
        self._server = _Server((host, port), self._handler())
        self._server.daemon_threads = True

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LocalGateway:
        threading.Thread(target=self._server.serve_forever, name="local-gateway", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """As API Gateway routes: the most specific resource that matches the path (a literal part
        before a {param}, a {param} before a greedy {proxy+}), then a method of that resource; a
        method the resource lacks does not fall through to {proxy+} (API Gateway answers it with
        MISSING_AUTHENTICATION_TOKEN)."""
        candidates = [(route, found) for route, pattern in self._routes if (found := pattern.match(path))]
        if not candidates:
            return None

        def specificity(route: Route) -> tuple[int, int]:
            return ("+}" in route.path, route.path.count("{"))

        best = min(specificity(route) for route, _ in candidates)
        # A resource's own method before its ANY: "ANY ... will catch any HTTP method that wasn't
        # explicitly declared" (API Gateway developer guide, x-amazon-apigateway-any-method)
        for methods in ((method,), ("ANY",)):
            for route, found in candidates:
                if specificity(route) == best and route.method in methods:
                    return route, found.groupdict()
        return None

    def authorize(self, token: str | None, method: str, path: str) -> tuple[str, dict[str, Any] | None]:
        """As API Gateway runs a TOKEN authorizer: no token -> 401 without calling it; an
        "Unauthorized" error -> 401; a policy that does not allow the call -> 403; answers that
        allow are cached per token for the authorizer's TTL. Returns (verdict, authorizer context)."""
        assert self._authorizer is not None
        if not token:
            return "UNAUTHORIZED", None
        method_arn = f"arn:aws:execute-api:{self._region}:123456789012:local/{self._stage or 'local'}/{method}{path}"
        now = time.monotonic()
        with self._auth_lock:
            cached = self._auth_cache.get(token)
        if cached and cached[0] > now:
            answer = cached[1]
        else:
            self.authorizer_calls += 1
            response = self._lambda.invoke(
                FunctionName=self._functions[self._authorizer.function_logical_id],
                Payload=json.dumps({"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}).encode(),
            )
            answer = json.loads(response["Payload"].read() or b"null")
            if "FunctionError" in response:
                unauthorized = isinstance(answer, dict) and answer.get("errorMessage") == "Unauthorized"
                return ("UNAUTHORIZED" if unauthorized else "AUTHORIZER_FAILURE"), None
            if self._authorizer.cache_seconds > 0:
                with self._auth_lock:
                    self._auth_cache[token] = (now + self._authorizer.cache_seconds, answer)
        if not _allows(answer, method_arn):
            return "ACCESS_DENIED", None
        context = dict(answer.get("context") or {})
        context["principalId"] = answer.get("principalId")
        return "ALLOW", context

    def proxy_event(
        self,
        method: str,
        raw_path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        route: Route,
        path_parameters: dict[str, str],
        source_ip: str,
    ) -> dict[str, Any]:
        url = urlsplit(raw_path)
        query = parse_qs(url.query, keep_blank_values=True)
        single_headers: dict[str, str] = {}
        multi_headers: dict[str, list[str]] = {}
        port = self._server.server_address[1]
        headers = [
            *headers,
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Port", str(port)),
            ("X-Forwarded-For", source_ip),
        ]
        for name, value in headers:
            single_headers[name] = value
            multi_headers.setdefault(name, []).append(value)
        content_type = single_headers.get("Content-Type", single_headers.get("content-type", ""))
        is_text = not body or content_type.startswith(TEXT_TYPES)
        if is_text and body:
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                is_text = False  # not text whatever it claims: passed on base64-encoded, as API Gateway does
        stage_path = f"/{self._stage}{url.path}" if self._stage else url.path
        return {
            "resource": route.path,
            "path": url.path,
            "httpMethod": method,
            "headers": single_headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": method,
                "path": stage_path,
                "stage": self._stage or "local",
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(time.time() * 1000),
                "protocol": "HTTP/1.1",
                "identity": {"sourceIp": source_ip, "userAgent": single_headers.get("User-Agent")},
                "accountId": "123456789012",
                "apiId": "local",
            },
            "body": (body.decode("utf-8") if is_text else base64.b64encode(body).decode()) if body else None,
            "isBase64Encoded": bool(body) and not is_text,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status: int, message: str, code: str) -> None:
                body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
                self._answer(status, {"Content-Type": "application/json"}, json.dumps(body).encode())

            def _gateway_response(self, kind: str, status: int, default_message: str) -> None:
                """API Gateway's own answer, as customised by the template's GatewayResponses."""
                spec = gateway._gateway_responses.get(kind)
                if not spec:
                    self._answer(
                        status, {"Content-Type": "application/json"}, json.dumps({"message": default_message}).encode()
                    )
                    return
                # A value is a literal ('...') or, as API Gateway maps them, method.request.header.<name>.
                headers = {
                    name: (
                        self.headers.get(str(value).removeprefix("method.request.header."), "")
                        if str(value).startswith("method.request.header.")
                        else str(value).strip("'")
                    )
                    for name, value in ((spec.get("ResponseParameters") or {}).get("Headers") or {}).items()
                }
                headers = {name: value for name, value in headers.items() if value}
                body = next(iter((spec.get("ResponseTemplates") or {}).values()), "")
                self._answer(int(spec.get("StatusCode", status)), headers, str(body).encode())

            def _read_chunked(self) -> bytes | None:
                """A Transfer-Encoding: chunked body (RFC 9112 §7.1; what the Node SDK sends for a
                stream), as API Gateway reads one; None past the payload limit."""
                body = b""
                while True:
                    size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
                    size = int(size_line or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(1024).strip():  # trailer fields, if any
                            pass
                        return body
                    if len(body) + size > MAX_PAYLOAD_BYTES:
                        return None
                    body += self.rfile.read(size)
                    self.rfile.readline(16)  # the CRLF after each chunk

            def _dispatch(self) -> None:
                meter.api_request()  # REST APIs bill every request they receive, answered by a Lambda or not
                chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
                length = int(self.headers.get("Content-Length") or 0)
                received = self._read_chunked() if chunked else None
                if length > MAX_PAYLOAD_BYTES or (chunked and received is None):
                    self._gateway_response("REQUEST_TOO_LARGE", 413, "Request Entity Too Large")
                    self.close_connection = True
                    return
                body = received if chunked and received is not None else self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                found = gateway.match(self.command, path)
                if found is None:  # API Gateway's own answer, unless the template customises it
                    self._gateway_response("MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token")
                    return
                route, params = found
                event = gateway.proxy_event(
                    self.command, self.path, list(self.headers.items()), body, route, params, self.client_address[0]
                )
                if gateway._authorizer is not None and not route.public:
                    verdict, context = gateway.authorize(
                        self.headers.get(gateway._authorizer.header), self.command, path
                    )
                    if verdict != "ALLOW":
                        status = {"UNAUTHORIZED": 401, "ACCESS_DENIED": 403}.get(verdict, 500)
                        self._gateway_response(
                            verdict,
                            status,
                            {401: "Unauthorized", 403: "Forbidden"}.get(status, "Internal server error"),
                        )
                        return
                    event["requestContext"]["authorizer"] = context
                invocation = json.dumps(event).encode()
                if len(invocation) > LAMBDA_REQUEST_PAYLOAD_BYTES:
                    self._answer(413, {"Content-Type": "application/json"}, b'{"message": "Request Too Long"}')
                    self.close_connection = True
                    return
                response = gateway._lambda.invoke(
                    FunctionName=gateway._functions[route.function_logical_id], Payload=invocation
                )
                payload = json.loads(response["Payload"].read() or b"null")
                if "FunctionError" in response or not isinstance(payload, dict) or "statusCode" not in payload:
                    self._error(502, "Internal server error", "bad_gateway")
                    return
                headers = dict(payload.get("headers") or {})
                for name, values in (payload.get("multiValueHeaders") or {}).items():
                    headers[name] = ", ".join(values)
                raw = payload.get("body") or ""
                data = base64.b64decode(raw) if payload.get("isBase64Encoded") else raw.encode("utf-8")
                self._answer(int(payload["statusCode"]), headers, data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

            def __getattr__(self, name: str) -> Any:
                # Any other method (TRACE, QUERY, ...) goes to the function too, which answers
                # 405 for a method a route does not serve: never the HTTP server's own 501.
                if name.startswith("do_"):
                    return self._dispatch
                raise AttributeError(name)

        return Handler
