"""A simulated upstream provider: a real HTTP server speaking TheRouter's async image contract.

It renders real images with Pillow in the requested size, format and background, reports an
OpenAI-style usage block (both: sim_output), and follows its own clock (imagejobs.domain.clock, scaled in tests) so a
"90 s" generation can take a fraction of a second. Behaviour is chosen per job by markers in the
prompt, e.g. "[sim:fail]"; `Behaviour` (sim_behaviour) is where fault knobs live.
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import secrets
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from imagejobs.domain import clock
from imagejobs_local.sim_behaviour import Behaviour, Latency, size_refusal
from imagejobs_local.sim_openai import OpenAIDialect
from imagejobs_local.sim_output import evil_usage, noise, render, usage_of


@dataclass
class SimJob:
    id: str
    request: dict[str, Any]
    behaviour: Behaviour
    created_at: float
    latency: float
    polls: int = 0
    source_image: bytes | None = None  # edits: the first input image
    cancelled_at: float | None = None
    billed_on_cancel: bool = False  # cancelled after generation started: the input was billed
    key: str = ""  # the caller's Idempotency-Key (our job id), for per-job fault counters

    @property
    def finishes_at(self) -> float:
        return self.created_at + self.latency

    def status(self, now: float) -> str:
        if self.cancelled_at is not None:
            return "cancelled"
        if now < self.created_at + min(2.0, self.latency * 0.1):
            return "queued"
        if self.behaviour.outcome == "never" or now < self.finishes_at:
            return "in_progress"
        return "failed" if self.behaviour.outcome == "moderated" else self.behaviour.outcome


@dataclass
class SimStats:
    submissions: Counter[str] = field(default_factory=Counter)  # idempotency key -> jobs created
    rate_limited: Counter[str] = field(default_factory=Counter)  # idempotency key -> 429s answered
    faults: Counter[tuple[str, str]] = field(default_factory=Counter)  # (job key, fault) -> times served
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (job key, submit|poll|download) -> calls
    submit_times: list[float] = field(default_factory=list)  # job-clock times of submissions that made a job
    concurrent_jobs_peak: int = 0
    concurrency_refusals: int = 0  # 429s for max_concurrent
    outage_refusals: int = 0  # 503s for a dialect in `outage`
    submit_calls: int = 0
    cancel_calls: int = 0
    poll_calls: int = 0
    downloads: int = 0

    def summary(self) -> dict[str, Any]:
        """What a test of a stack in another process reads (GET /sim/stats)."""
        return {
            "submissions": dict(self.submissions),
            "submit_calls": self.submit_calls,
            "poll_calls": self.poll_calls,
            "cancel_calls": self.cancel_calls,
            "downloads": self.downloads,
        }


class SimulatedProvider:
    def __init__(
        self,
        *,
        api_key: str = "sim-provider-key",
        latency: Latency | None = None,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        fault_rate: float = 0.0,
        timeout_sleep: float = 6.0,
        max_concurrent: int = 0,
    ) -> None:
        self.api_key = api_key
        # The provider's own limit on jobs running at once (0: none): a submission past it is
        # answered 429 with Retry-After, as providers answer a concurrency limit.
        self.max_concurrent = max_concurrent
        self.fault_rate = fault_rate  # chance of a random transient fault (429, 5xx, reset) per call
        # Dialects that are down ("therouter", "openai"): every submission there is answered 503,
        # as a provider in an outage answers (failover's tests and `make faults`).
        self.outage: set[str] = set()
        self.timeout_sleep = timeout_sleep  # real seconds a "timeout" fault holds the answer back
        self.latency = latency or Latency()
        self.stats = SimStats()
        self._rng = random.Random(seed)
        self._jobs: dict[str, SimJob] = {}
        self._by_key: dict[str, str] = {}
        self._rendered: dict[tuple[str, int], bytes] = {}
        self._served_5xx = 0
        self._lock = threading.Lock()
        self._server = _QuietServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.openai = OpenAIDialect(self)  # the same jobs in OpenAI's dialect: /v1/responses

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def other_host_url(self) -> str:
        """This server under another host name: what a download allow-list must refuse."""
        return f"http://localhost:{self._server.server_address[1]}"

    def start(self) -> SimulatedProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, name="sim-provider", daemon=True)
        self._thread.start()
        self.openai.start()
        return self

    def stop(self) -> None:
        self.openai.stop()
        self._server.shutdown()
        self._server.server_close()

    # -- the contract --------------------------------------------------------------------------
    def create_job(
        self,
        body: dict[str, Any],
        idempotency_key: str | None,
        source_image: bytes | None = None,
        id_prefix: str = "img_sim_",
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Returns (status, body, headers)."""
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return 400, _error("Missing required parameter: 'prompt'.", "invalid_request_error", "prompt"), {}
        refusal = size_refusal(str(body.get("model", "openai/gpt-image-1")), str(body.get("size", "auto")))
        if refusal:
            return 400, _error(refusal, "invalid_request_error", "size", "invalid_value"), {}
        behaviour = Behaviour.from_prompt(prompt)
        if behaviour.reject_at_submit:
            return (
                400,
                _error(
                    "Your request was rejected by the safety system.",
                    "invalid_request_error",
                    None,
                    behaviour.reject_at_submit,
                ),
                {},
            )
        with self._lock:
            self.stats.submit_calls += 1
            key = idempotency_key or prompt
            if self.stats.rate_limited[key] < behaviour.rate_limited_submits:
                self.stats.rate_limited[key] += 1
                headers = {"Retry-After": f"{behaviour.retry_after:g}"} if behaviour.retry_after is not None else {}
                return 429, _error("Rate limit reached; slow down.", "rate_limit_error", None, "rate_limited"), headers
            if idempotency_key and behaviour.honours_key and idempotency_key in self._by_key:
                return 202, self.job_object(self._jobs[self._by_key[idempotency_key]]), {}
            job_id = (
                f"{uuid.uuid4()}:v2" if behaviour.odd_id else id_prefix + secrets.token_hex(10)
            )  # ids of any shape: nothing documents theirs
            quality = str(body.get("quality") or "auto")
            latency = behaviour.latency if behaviour.latency is not None else self.latency.draw(self._rng, quality)
            job = SimJob(
                id=job_id,
                request=dict(body),
                behaviour=behaviour,
                created_at=clock.now(),
                latency=latency,
                source_image=source_image,
                key=idempotency_key or job_id,
            )
            now = clock.now()
            running = sum(1 for other in self._jobs.values() if other.status(now) in ("queued", "in_progress"))
            if self.max_concurrent and running >= self.max_concurrent:
                self.stats.concurrency_refusals += 1
                error = _error("Too many concurrent jobs; try again later.", "rate_limit_error", None, "rate_limited")
                return 429, error, {"Retry-After": "5"}
            self.stats.concurrent_jobs_peak = max(self.stats.concurrent_jobs_peak, running + 1)
            self.stats.submit_times.append(clock.now())
            self._jobs[job_id] = job
            if idempotency_key:
                self._by_key[idempotency_key] = job_id
            self.stats.submissions[idempotency_key or job_id] += 1
        return 202, self.job_object(job), {}

    def job_object(self, job: SimJob) -> dict[str, Any]:
        status = job.status(clock.now())
        shape = job.behaviour
        stamp = _iso if shape.iso_times else int
        body: dict[str, Any] = {
            "id": job.id,
            "object": "image_job",
            "status": "processing" if shape.unknown_status and status == "in_progress" else status,
            "model": job.request.get("model", "openai/gpt-image-1"),
            "created_at": stamp(job.created_at),
            "polling_url": f"{self.base_url}/v1/jobs/{quote(job.id, safe='')}",
            "expires_at": stamp(job.created_at + 86_400),
            "provider_region": "sim-1",  # a field nobody documents: clients must ignore it
        }
        evil = shape.evil
        if status == "succeeded" and "regress" in evil:
            job.polls += 1
            if job.polls == 2:  # said succeeded once; now, once, that it is not done
                body["status"] = status = "in_progress"
        if status == "succeeded":
            ext = job.request.get("output_format", "png")
            body["completed_at"] = _iso(job.finishes_at)  # the other timestamp form, on purpose
            if "bad_times" in evil:
                body["completed_at"], body["created_at"], body["expires_at"] = "inf", 1e15, float("nan")
            files = self.other_host_url if shape.download_via == "elsewhere" else self.base_url
            count = 200 if "extra_urls" in evil else int(job.request.get("n", 1))
            urls = [f"{files}/files/{quote(job.id, safe='')}/{index}.{ext}" for index in range(count)]
            if shape.results == "unsigned_urls":
                body["unsigned_urls"] = urls
            elif shape.results == "result_data":
                body["result"] = {"created": int(job.finishes_at), "data": [{"url": url} for url in urls]}
            elif shape.results == "data_url":
                body["data"] = [{"url": url} for url in urls]
            else:
                body["data"] = [
                    {"b64_json": base64.b64encode(self.image_bytes(job.id, index) or b"").decode()}
                    for index in range(count)
                ]
            if job.behaviour.usage:
                body["usage"] = evil_usage(usage_of(job.request, edited=job.source_image is not None), evil)
        elif status == "failed" and "echo_key" in evil:
            body["error"] = {"code": "generation_failed", "message": f"invalid request with Bearer {self.api_key}"}
        elif status == "failed" and job.behaviour.outcome == "moderated":
            body["error"] = {"code": "moderation_blocked", "message": "the output was blocked by the safety system"}
        elif status == "failed":
            body["error"] = {"code": "generation_failed", "message": "the model could not generate this image"}
        elif status == "expired":
            body["error"] = {"code": "job_expired", "message": "the job expired before it ran"}
        elif status == "cancelled":
            body["error"] = {"code": "job_cancelled", "message": "the job was cancelled"}
            if job.billed_on_cancel:
                usage = usage_of(job.request, edited=job.source_image is not None)
                usage["total_tokens"] -= usage["output_tokens"]
                usage["output_tokens"] = 0
                body["usage"] = usage
        return body

    def take_fault(self, key: str, where: str, behaviour: Behaviour) -> str | None:
        """The fault to serve on this call, if any: a counted one from the prompt, else a random one."""
        with self._lock:
            self.stats.calls[(key, where)] += 1
            for kind in ("429", "5xx", "reset", "timeout", "malformed", "403", "404", "cut"):
                name = f"{where}_{kind}"
                if self.stats.faults[(key, name)] < behaviour.fault_count(name):
                    self.stats.faults[(key, name)] += 1
                    return kind
            if self.fault_rate and where != "download" and self._rng.random() < self.fault_rate:
                kind = self._rng.choice(["429", "5xx", "reset"])
                self.stats.faults[(key, f"{where}_random_{kind}")] += 1
                return kind
        return None

    def faults_served(self, key: str) -> int:
        with self._lock:
            return sum(count for (job_key, _), count in self.stats.faults.items() if job_key == key)

    def next_5xx_index(self) -> int:
        with self._lock:
            self._served_5xx += 1
            return self._served_5xx % 3

    def cancel_job(self, job_id: str) -> SimJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None and job.status(clock.now()) in ("queued", "in_progress"):
                job.billed_on_cancel = job.status(clock.now()) == "in_progress"
                job.cancelled_at = clock.now()
            self.stats.cancel_calls += 1
            return job

    def get_job(self, job_id: str) -> SimJob | None:
        with self._lock:
            self.stats.poll_calls += 1
            job = self._jobs.get(job_id)
            if job is not None:
                job.polls += 1
            return job

    def image_bytes(self, job_id: str, index: int) -> bytes | None:
        job = self._jobs.get(job_id)
        if job is None or job.status(clock.now()) != "succeeded":
            return None
        if "not_image" in job.behaviour.evil or ("partial" in job.behaviour.evil and index > 0):
            return b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
        if "huge_output" in job.behaviour.evil:  # a real PNG's head, then 60 MB of nothing
            return render(job.request, 0, job.source_image)[:64] + bytes(60 * 1024 * 1024)
        if index >= int(job.request.get("n", 1)):
            if "extra_urls" not in job.behaviour.evil:
                return None
            index = 0
        key = (job_id, index)
        if key not in self._rendered:
            self._rendered[key] = (
                noise(job.request, index) if job.behaviour.noise else render(job.request, index, job.source_image)
            )
        self.stats.downloads += 1
        return self._rendered[key]


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _error(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Form fields (numbers as ints) and the `image`/`image[]` files of a multipart body."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    fields: dict[str, Any] = {}
    images: list[bytes] = []
    if not message.is_multipart():
        return fields, images
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            if name in ("image", "image[]"):
                images.append(data)
        elif isinstance(name, str):
            text = data.decode("utf-8", errors="replace")
            fields[name] = int(text) if text.isdigit() else text
    return fields, images


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (a timeout fault did its job) is not an error worth a traceback."""

    request_queue_size = 256  # the default backlog (5) resets connections under load

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _handler_for(sim: SimulatedProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(
            self,
            status: int,
            body: Any = None,
            headers: dict[str, str] | None = None,
            raw: bytes | None = None,
            content_type: str = "application/json",
        ) -> None:
            payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _fault(self, kind: str, behaviour: Behaviour) -> bool:
            """Serve a fault instead of the answer. True when the request is done with."""
            if kind == "timeout":
                time.sleep(sim.timeout_sleep)  # real seconds: the client's read timeout is real too
                return False
            if kind == "429":
                headers = {"Retry-After": f"{behaviour.retry_after:g}"} if behaviour.retry_after is not None else {}
                self._send(
                    429, _error("Rate limit reached; slow down.", "rate_limit_error", None, "rate_limited"), headers
                )
            elif kind == "5xx":
                status = (500, 502, 503)[sim.next_5xx_index()]
                self._send(status, _error("The server had an error.", "server_error"))
            elif kind in ("403", "404"):
                self._send(int(kind), _error("Access denied." if kind == "403" else "Gone.", "invalid_request_error"))
            elif kind == "malformed":
                self._send(200, raw=b'{"id": "img_sim_broken", "status": ', content_type="application/json")
            elif kind == "reset":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
            return True

        def _fault_download(self, kind: str, job: SimJob) -> bool:
            if kind == "cut":
                data = sim.image_bytes(job.id, 0) or b"x" * 1000
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return True
            return self._fault(kind, job.behaviour)

        def _send_slowly(self, data: bytes, content_type: str, seconds: float) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            pieces = 10
            step = max(1, len(data) // pieces)
            for start in range(0, len(data), step):
                self.wfile.write(data[start : start + step])
                self.wfile.flush()
                time.sleep(seconds / pieces)

        def _has_key(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {sim.api_key}"

        def _authorised(self) -> bool:
            if self._has_key():
                return True
            self._send(401, _error("Incorrect API key provided.", "authentication_error", None, "invalid_api_key"))
            return False

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = url.path.strip("/").split("/")
            if parts[:2] == ["v1", "responses"]:
                self._openai_post(parts, raw)
                return
            if len(parts) == 4 and parts[:2] == ["v1", "jobs"] and parts[3] == "cancel":
                if not self._authorised():
                    return
                job = sim.cancel_job(unquote(parts[2]))
                if job is None:
                    self._send(404, _error(f"No job '{parts[2]}'.", "invalid_request_error", "id", "job_not_found"))
                else:
                    self._send(200, sim.job_object(job))
                return
            if url.path not in ("/v1/images/generations", "/v1/images/edits"):
                self._send(404, _error("Unknown route.", "invalid_request_error"))
                return
            if not self._authorised():
                return
            if self._down("therouter"):
                return
            if parse_qs(url.query).get("async") != ["true"]:
                self._send(400, _error("This simulator only serves ?async=true.", "invalid_request_error", "async"))
                return
            source: bytes | None = None
            if url.path == "/v1/images/edits":
                body, images = _multipart(self.headers.get("Content-Type", ""), raw)
                if not images:
                    self._send(400, _error("Missing required parameter: 'image'.", "invalid_request_error", "image"))
                    return
                source = images[0]
            else:
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, _error("Invalid JSON body.", "invalid_request_error"))
                    return
                if not isinstance(body, dict):
                    self._send(400, _error("The body must be a JSON object.", "invalid_request_error"))
                    return
            key = self.headers.get("Idempotency-Key") or str(body.get("prompt"))
            fault = sim.take_fault(key, "submit", Behaviour.from_prompt(str(body.get("prompt", ""))))
            if fault and self._fault(fault, Behaviour.from_prompt(str(body.get("prompt", "")))):
                return
            status, answer, headers = sim.create_job(body, self.headers.get("Idempotency-Key"), source)
            self._send(status, answer, headers)

        def _down(self, dialect: str) -> bool:
            if dialect not in sim.outage:
                return False
            sim.stats.outage_refusals += 1
            self._send(
                503, _error("The server is temporarily unavailable.", "server_error", None, "service_unavailable")
            )
            return True

        def _openai_authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {sim.openai.api_key}":
                return True
            self._send(401, _error("Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key"))
            return False

        def _openai_post(self, parts: list[str], raw: bytes) -> None:
            if not self._openai_authorised():
                return
            if len(parts) == 4 and parts[3] == "cancel":
                job = sim.cancel_job(unquote(parts[2]))
                if job is None or job.id not in sim.openai.responses:
                    self._send(404, _error("No response found.", "invalid_request_error", "id", "not_found"))
                else:
                    self._send(200, sim.openai.response_object(job))
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, _error("Invalid JSON body.", "invalid_request_error"))
                return
            if self._down("openai"):
                return
            behaviour = Behaviour.from_prompt(json.dumps(body.get("input")) if isinstance(body, dict) else "")
            key = self.headers.get("Idempotency-Key") or "responses"
            fault = sim.take_fault(key, "submit", behaviour)
            if fault and self._fault(fault, behaviour):
                return
            status, answer, headers = sim.openai.create(body, self.headers.get("Idempotency-Key"))
            self._send(status, answer, headers)

        def _openai_get(self, parts: list[str]) -> None:
            if not self._openai_authorised():
                return
            job = sim.get_job(unquote(parts[2])) if len(parts) == 3 else None
            if job is None or job.id not in sim.openai.responses:
                self._send(404, _error("No response found.", "invalid_request_error", "id", "not_found"))
                return
            fault = sim.take_fault(job.key, "poll", job.behaviour)
            if fault and self._fault(fault, job.behaviour):
                return
            self._send(200, sim.openai.response_object(job))

        def do_GET(self) -> None:
            parts = urlsplit(self.path).path.strip("/").split("/")
            if parts[:2] == ["v1", "responses"]:
                self._openai_get(parts)
                return
            if parts == ["sim", "stats"]:  # the simulator's own counts, for tests of a served stack
                with sim._lock:
                    self._send(200, sim.stats.summary())
                return
            if len(parts) == 3 and parts[0] == "files":
                parts[1] = unquote(parts[1])
                index = parts[2].split(".")[0]
                owner = sim._jobs.get(parts[1])
                if owner is not None and owner.behaviour.auth_downloads and not self._has_key():
                    self._send(401, _error("Missing bearer key.", "invalid_request_error", None, "unauthorized"))
                    return
                via = owner.behaviour.download_via if owner is not None else None
                if via in ("redirect", "redirect_elsewhere") and "hop=1" not in self.path:
                    target = sim.other_host_url if via == "redirect_elsewhere" else sim.base_url
                    self._send(302, headers={"Location": f"{target}{urlsplit(self.path).path}?hop=1"})
                    return
                if owner is not None:
                    fault = sim.take_fault(owner.key, "download", owner.behaviour)
                    if fault and self._fault_download(fault, owner):
                        return
                data = sim.image_bytes(parts[1], int(index)) if index.isdigit() else None
                if data is None:
                    self._send(404, _error("No such file.", "invalid_request_error"))
                    return
                fmt = parts[2].rsplit(".", 1)[-1]
                if owner is not None and owner.behaviour.download_seconds:
                    self._send_slowly(data, f"image/{fmt}", owner.behaviour.download_seconds)
                    return
                self._send(200, raw=data, content_type=f"image/{fmt}")
                return
            if len(parts) in (3, 4) and parts[:2] == ["v1", "jobs"]:
                if not self._authorised():
                    return
                job = sim.get_job(unquote(parts[2]))
                if job is None:
                    self._send(404, _error(f"No job '{parts[2]}'.", "invalid_request_error", "id", "job_not_found"))
                    return
                fault = sim.take_fault(job.key, "poll", job.behaviour)
                if fault and self._fault(fault, job.behaviour):
                    return
                body = sim.job_object(job)
                if len(parts) == 4 and parts[3] == "content":
                    if body["status"] != "succeeded":
                        self._send(409, _error("Job has not succeeded.", "invalid_request_error"))
                        return
                    first = f"{sim.base_url}/files/{quote(job.id, safe='')}/0.{job.request.get('output_format', 'png')}"
                    self._send(302, headers={"Location": first})
                    return
                self._send(200, body)
                return
            self._send(404, _error("Unknown route.", "invalid_request_error"))

    return Handler
