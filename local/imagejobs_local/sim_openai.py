"""The simulator's OpenAI dialect: background responses with the image generation tool, and the
signed webhooks OpenAI sends when one ends, as OpenAI documents them (not as our client uses them).

- `POST /v1/responses` with `background: true` answers the Response object at once (status
  queued); `GET /v1/responses/{id}` and `POST /v1/responses/{id}/cancel` (background guide).
- A completed response has an `image_generation_call` output item whose `result` is the base64
  image; the image model's tokens are `tool_usage.image_gen`, the mainline model's are `usage`
  (openai-python types/responses/response.py, response_output_item.py).
- Webhooks follow Standard Webhooks: headers webhook-id, webhook-timestamp (wall-clock seconds),
  webhook-signature `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the `whsec_`
  secret; the body is `{id, object: "event", created_at, type: "response.completed", data: {id}}`
  (OpenAI's webhooks guide; openai-python types/webhooks/). Only the id travels: the receiver
  must fetch the response to learn anything else.

The jobs themselves (timing, prompt markers, rendering, faults) are the TheRouter dialect's
(provider_sim.SimulatedProvider.create_job); `[sim:webhook_drop]`, `_duplicate`, `_late=S`,
`_forged`, `_stale` choose what happens to a job's webhook (sim_behaviour.Behaviour.webhook)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx

from imagejobs.domain import clock, webhooks
from imagejobs_local.sim_output import usage_of

if TYPE_CHECKING:
    from imagejobs_local.provider_sim import SimJob, SimulatedProvider

STATUS = {"succeeded": "completed", "expired": "incomplete"}  # the rest are spelt alike
EVENT_TYPES = {"completed": "response.completed", "failed": "response.failed", "cancelled": "response.cancelled"}
REPLAY_WINDOW_SECONDS = 300  # the SDK's verify_signature tolerance


class OpenAIDialect:
    def __init__(self, sim: SimulatedProvider, api_key: str = "sim-openai-key") -> None:
        self.sim = sim
        self.api_key = api_key
        self.webhook_secret = webhooks.new_secret()
        self.webhook_url: str | None = None  # where response.* events go (set once the stack is up)
        self.responses: set[str] = set()
        self.sent: Counter[str] = Counter()  # response id -> webhook deliveries made
        self.webhook_answers: Counter[int] = Counter()  # the receiver's status codes
        self._notified: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the API -----------------------------------------------------------------------------------
    def create(self, body: Any, idempotency_key: str | None) -> tuple[int, dict[str, Any], dict[str, str]]:
        request, source, problem = _image_request(body)
        if problem:
            error = {"message": problem, "type": "invalid_request_error", "param": None, "code": None}
            return 400, {"error": error}, {}
        status, answer, headers = self.sim.create_job(request, idempotency_key, source, id_prefix="resp_")
        if status >= 300:
            return status, answer, headers
        with self.sim._lock:
            self.responses.add(answer["id"])
            job = self.sim._jobs[answer["id"]]
        return 200, self.response_object(job), headers

    def response_object(self, job: SimJob) -> dict[str, Any]:
        theirs = self.sim.job_object(job)  # the job as TheRouter's dialect sees it (status, faults)
        status = STATUS.get(theirs["status"], theirs["status"])
        tool = {"type": "image_generation", "model": str(job.request.get("model", "")).rpartition("/")[2]}
        body: dict[str, Any] = {
            "id": job.id,
            "object": "response",
            "created_at": int(job.created_at),
            "status": status,
            "background": True,
            "model": job.request.get("mainline", "gpt-5-nano"),
            "tools": [tool],
            "output": [],
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        }
        if status == "completed":
            body["completed_at"] = int(job.finishes_at)
            image = self.sim.image_bytes(job.id, 0) or b""
            body["output"] = [
                {
                    "type": "image_generation_call",
                    "id": "ig_" + job.id.removeprefix("resp_"),
                    "status": "completed",
                    "result": base64.b64encode(image).decode(),
                    "revised_prompt": job.request.get("prompt"),
                    "size": job.request.get("size", "auto"),
                    "quality": job.request.get("quality", "auto"),
                    "output_format": job.request.get("output_format", "png"),
                }
            ]
            if job.behaviour.usage:
                body["tool_usage"] = {"image_gen": usage_of(job.request, edited=job.source_image is not None)}
                body["usage"] = {"input_tokens": 120, "output_tokens": 64, "total_tokens": 184}
        elif status == "failed":
            body["error"] = theirs.get("error") or {"code": "server_error", "message": "generation failed"}
        return body

    # -- webhooks ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._send_webhooks, name="sim-openai-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _send_webhooks(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.wait(0.02):
                for job in self._due():
                    self._deliver(client, job)

    def _due(self) -> list[SimJob]:
        now, due = clock.now(), []
        with self.sim._lock:
            for response_id in self.responses - self._notified:
                job = self.sim._jobs[response_id]
                status = STATUS.get(job.status(now), job.status(now))
                ended = job.cancelled_at if job.cancelled_at is not None else job.finishes_at
                if status in EVENT_TYPES and now >= ended + job.behaviour.webhook_delay:
                    self._notified.add(response_id)
                    due.append(job)
        return due

    def _deliver(self, client: httpx.Client, job: SimJob) -> None:
        shape = job.behaviour.webhook
        if shape == "drop" or self.webhook_url is None:
            return
        status = STATUS.get(job.status(clock.now()), job.status(clock.now()))
        event_id = "evt_" + secrets.token_hex(12)
        event = {
            "id": event_id,
            "object": "event",
            "created_at": int(time.time()),
            "type": EVENT_TYPES[status],
            "data": {"id": job.id},
        }
        body = json.dumps(event)
        secret = webhooks.new_secret() if shape == "forged" else self.webhook_secret
        stamp = int(time.time()) - (2 * REPLAY_WINDOW_SECONDS if shape == "stale" else 0)
        headers = webhooks.signed_headers(secret, event_id, body, timestamp=stamp)
        for _ in range(2 if shape == "duplicate" else 1):
            try:
                answer = client.post(self.webhook_url, content=body, headers=headers)
                self.webhook_answers[answer.status_code] += 1
            except httpx.HTTPError:
                self.webhook_answers[0] += 1
            self.sent[job.id] += 1


def _image_request(body: Any) -> tuple[dict[str, Any], bytes | None, str | None]:
    """The image job a Responses body asks for: (the job's request, its first input image, why not)."""
    if not isinstance(body, dict):
        return {}, None, "The body must be a JSON object."
    if body.get("background") is not True:
        return {}, None, "This simulator serves background responses only (background: true)."
    tools = body.get("tools")
    tool = tools[0] if isinstance(tools, list) and tools and isinstance(tools[0], dict) else {}
    if tool.get("type") != "image_generation":
        return {}, None, "Only the image_generation tool is simulated."
    prompt, source = _prompt_and_image(body.get("input"))
    request = {name: tool[name] for name in ("size", "quality", "background", "output_format") if name in tool}
    request.update(prompt=prompt, n=1, model="openai/" + str(tool.get("model", "gpt-image-1")))
    request["mainline"] = str(body.get("model", ""))
    return request, source, None


def _prompt_and_image(content: Any) -> tuple[str, bytes | None]:
    if isinstance(content, str):
        return content, None
    texts, image = [], None
    for message in content if isinstance(content, list) else []:
        for part in message.get("content", []) if isinstance(message, dict) else []:
            if isinstance(part, dict) and part.get("type") == "input_text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") == "input_image" and image is None:
                image = base64.b64decode(str(part.get("image_url", ",")).split(",", 1)[1])
    return " ".join(texts), image
