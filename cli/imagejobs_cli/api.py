"""The API commands: generate, edit, jobs list/get/cancel, over HTTP with an API key."""

from __future__ import annotations

import json
import mimetypes
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

FINAL = {"succeeded", "failed", "cancelled", "expired"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}


class ApiProblem(Exception):
    """An answer or a failure worth one line to the user."""


class Api:
    def __init__(self, base_url: str | None, api_key: str | None, timeout: float = 60.0) -> None:
        if not base_url:
            raise ApiProblem("name the API: --base-url URL (or IMAGEJOBS_BASE_URL; make serve prints it)")
        if not api_key:
            raise ApiProblem("give an API key: --api-key KEY (or IMAGEJOBS_API_KEY)")
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
        )

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiProblem(f"cannot reach {self._http.base_url}: {type(exc).__name__}: {exc}") from None
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code >= 400:
            error = (body or {}).get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                code = error.get("code") or error.get("type")
                raise ApiProblem(f"{answer.status_code} {code}: {error.get('message')}")
            raise ApiProblem(f"{answer.status_code} from {method} {path}: {answer.text[:200]}")
        if not isinstance(body, dict):
            raise ApiProblem(f"{method} {path} answered {answer.status_code} without a JSON object")
        return body

    def download(self, url: str, target: Path) -> int:
        try:
            with httpx.stream("GET", url, timeout=120, follow_redirects=True) as answer:
                if answer.status_code != 200:
                    raise ApiProblem(f"download of {target.name} answered {answer.status_code}")
                size = 0
                with target.open("wb") as out:
                    for chunk in answer.iter_bytes():
                        out.write(chunk)
                        size += len(chunk)
                return size
        except httpx.HTTPError as exc:
            raise ApiProblem(f"download of {target.name} failed: {type(exc).__name__}") from None


def _parameters(args: Any) -> dict[str, Any]:
    names = ("size", "quality", "n", "output_format", "background", "model", "webhook_url")
    chosen = {name: getattr(args, name, None) for name in names}
    return {name: value for name, value in chosen.items() if value is not None}


def generate(api: Api, args: Any, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    job = api.call("POST", "/v1/images/generations?async=true", json={"prompt": args.prompt, **_parameters(args)})
    return _after_submit(api, job, args, out)


def edit(api: Api, args: Any, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    files: list[tuple[str, tuple[str, bytes, str]]] = []
    for name in args.images:
        files.append(("image", _file(name)))
    if args.mask:
        files.append(("mask", _file(args.mask)))
    fields = {name: str(value) for name, value in {"prompt": args.prompt, **_parameters(args)}.items()}
    job = api.call("POST", "/v1/images/edits?async=true", data=fields, files=files)
    return _after_submit(api, job, args, out)


def _file(name: str) -> tuple[str, bytes, str]:
    path = Path(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ApiProblem(f"cannot read {name}: {exc.strerror}") from None
    return path.name, data, mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _after_submit(api: Api, job: dict[str, Any], args: Any, out: TextIO) -> int:
    if not args.watch:
        print(json.dumps(job, indent=2), file=out)
        return 0
    return watch(api, job["id"], Path(args.out), out, interval=args.interval)


def watch(api: Api, job_id: str, folder: Path, out: TextIO, interval: float = 1.0) -> int:
    """Follow a job, one line per change (status, elapsed, status calls), then fetch its images."""
    started, seen = time.monotonic(), None
    while True:
        job = api.call("GET", f"/v1/jobs/{job_id}")
        state = (job["status"], job.get("polls"), job.get("queue_position"))
        if state != seen:
            seen = state
            elapsed = time.monotonic() - started
            line = f"{job_id}  {job['status']:<11} {elapsed:6.1f} s  polls {job.get('polls', 0)}"
            if job.get("queue_position") is not None:  # waiting for a place at the provider
                start_in = max(0, int(job.get("estimated_start_at") or 0) - int(time.time()))
                line += f"  in line: {job['queue_position']} (start in ~{start_in} s)"
            print(line, file=out, flush=True)
        if job["status"] in FINAL:
            break
        time.sleep(interval)
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        print(f"{job_id} ended {job['status']}: {error.get('code')}: {error.get('message')}", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    extension = EXTENSIONS.get(str(job.get("output_format") or ""), "")
    for index, url in enumerate(job.get("unsigned_urls") or []):
        suffix = extension or _extension_of(url)
        target = folder / f"{job_id}-{index}.{suffix}"
        size = api.download(url, target)
        print(f"saved {target} ({size:,} bytes)", file=out)
    cost = job.get("cost") or {}
    if cost:
        print(f"cost ${cost.get('amount')} ({cost.get('basis')})", file=out)
    return 0


def _extension_of(url: str) -> str:
    path = url.split("?", 1)[0]
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else "png"
    return suffix if suffix in ("png", "jpg", "jpeg", "webp") else "png"


def jobs_list(api: Api, args: Any, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    params: dict[str, Any] = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    page = api.call("GET", "/v1/jobs", params=params)
    rows = [
        [
            job["id"],
            job["status"],
            job.get("source") or "-",
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(job["created_at"])),
            str(job.get("polls", 0)),
            f"${(job.get('cost') or {}).get('amount', '-')}" if job.get("cost") else "-",
        ]
        for job in page["data"]
    ]
    table(rows, ["ID", "STATUS", "SOURCE", "CREATED (UTC)", "POLLS", "COST"], out)
    if page.get("has_more"):
        print(f"(more: --limit, or GET /v1/jobs?after={page['last_id']})", file=out)
    return 0


def jobs_get(api: Api, args: Any, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    print(json.dumps(api.call("GET", f"/v1/jobs/{args.job_id}"), indent=2), file=out)
    return 0


def jobs_cancel(api: Api, args: Any, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    job = api.call("POST", f"/v1/jobs/{args.job_id}/cancel")
    print(f"{job['id']} {job['status']}", file=out)
    return 0


def table(rows: list[list[str]], header: list[str], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip(), file=out)
