"""The upstream provider (TheRouter's async image API) over httpx. HTTP failures become domain errors."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from imagejobs.adapters.provider_answers import error_fields, parse_job, raise_for_provider_error, redacted
from imagejobs.domain.errors import (
    DownloadFailed,
    DownloadRefused,
    JobRejected,
    ProviderOutOfCredits,
    ProviderUnavailable,
    RateLimited,
)
from imagejobs.domain.models import EditRequest, GenerationRequest, ProviderJob, UploadFile

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=5.0)
CANCEL_TIMEOUT = httpx.Timeout(8.0, connect=3.0)  # cancel runs inside an HTTP request (API Gateway: 29 s)
CANCEL_TOTAL_SECONDS = 8.0
DOWNLOAD_CHUNK = 1024 * 1024
MAX_REDIRECTS = 5
# A provider's JSON answer at most (a job object; with inline b64_json images, several MB each):
# a 200 MB poll answer is not read whole into a 256 MB function.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
UNFRAMED = {"content-encoding", "content-length", "transfer-encoding"}


def _url(text: str) -> httpx.URL | None:
    try:
        return httpx.URL(text)
    except (httpx.InvalidURL, ValueError):
        return None


class DownloadHosts:
    """Where outputs may be fetched from: the provider's own host (with its base URL's scheme) and
    https hosts matching the allow-list patterns ('*.amazonaws.com', 'cdn.example.com')."""

    def __init__(self, base_url: str, patterns: list[str]) -> None:
        base = httpx.URL(base_url)
        self._provider = (base.scheme, base.host, base.port)
        self._patterns = [pattern.strip().lower() for pattern in patterns if pattern.strip()]

    def allows(self, url: str) -> bool:
        parsed = _url(url)
        if parsed is None:
            return False
        if (parsed.scheme, parsed.host, parsed.port) == self._provider:
            return True
        host = parsed.host.lower()
        return parsed.scheme == "https" and any(fnmatch.fnmatchcase(host, pattern) for pattern in self._patterns)

    def is_provider(self, url: str) -> bool:
        parsed = _url(url)
        return parsed is not None and (parsed.scheme, parsed.host, parsed.port) == self._provider

    def check(self, url: str) -> None:
        if not self.allows(url):
            host = urlsplit(url).hostname or url[:80]
            raise DownloadRefused(f"output URL host {host!r} is not an allowed download host (ProviderDownloadHosts)")


class ProviderClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        client: httpx.Client | None = None,
        download_hosts: list[str] | None = None,
        total_seconds: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._total_seconds = total_seconds
        self._client = client or httpx.Client(timeout=DEFAULT_TIMEOUT, follow_redirects=False)
        self._downloads = DownloadHosts(self._base_url, download_hosts or [])

    def _redact(self, text: str) -> str:
        return redacted(text, self._api_key)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}"}
        headers.update(extra or {})
        return headers

    def _send(self, method: str, url: str, *, total_seconds: float | None = None, **kwargs: Any) -> httpx.Response:
        """One call, read whole but bounded: at most MAX_ANSWER_BYTES, within `total_seconds` in
        all (httpx's timeouts count each read alone, so a provider dripping a byte every few
        seconds would hold a call forever). Its answer comes back as a complete response."""
        deadline = time.monotonic() + (total_seconds or self._total_seconds)
        try:
            with self._client.stream(method, url, **kwargs) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise ProviderUnavailable(
                            f"provider answered more than {MAX_ANSWER_BYTES // 1_048_576} MB", outcome_unknown=True
                        )
                    if time.monotonic() > deadline:
                        raise ProviderUnavailable("provider took too long to answer", outcome_unknown=True)
                # decoded already: the rebuilt response carries no transfer or content coding
                headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in UNFRAMED]
                return httpx.Response(
                    response.status_code, headers=headers, content=bytes(body), request=response.request
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left: the provider cannot have acted on it.
            raise ProviderUnavailable(f"provider unreachable: {type(exc).__name__}") from exc
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(f"provider timed out: {type(exc).__name__}", outcome_unknown=True) from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"provider unreachable: {type(exc).__name__}", outcome_unknown=True) from exc

    def _json(self, response: httpx.Response) -> Any:
        try:
            raise_for_provider_error(response)
        except (RateLimited, ProviderOutOfCredits, JobRejected) as exc:
            exc.message = self._redact(exc.message)
            exc.args = (exc.message,)
            raise
        try:
            return response.json()
        except ValueError as exc:  # a 2xx we cannot read: it may have been accepted
            raise ProviderUnavailable("provider answered with malformed JSON", outcome_unknown=True) from exc

    def _submitted(self, response: httpx.Response) -> ProviderJob:
        """A submission's answer. 404/410 to a submission: the provider does not serve the model
        (any more): final for the job, never retried."""
        if response.status_code in (404, 410):
            _, message = error_fields(response)
            unavailable = f"the provider does not serve this model ({response.status_code})"
            raise JobRejected(self._redact(message) or unavailable, code="model_unavailable")
        return self._parsed(self._json(response))

    _parse = staticmethod(parse_job)  # the answer's reader (OpenAI direct's: its Response objects)

    def _parsed(self, body: Any) -> ProviderJob:
        job = self._parse(body)
        if job.error_message:
            job = job.model_copy(update={"error_message": self._redact(job.error_message)})
        return job

    def submit(self, request: GenerationRequest, *, idempotency_key: str) -> ProviderJob:
        response = self._send(
            "POST",
            f"{self._base_url}/v1/images/generations",
            params={"async": "true"},
            json=request.provider_body(),
            headers=self._headers({"Idempotency-Key": idempotency_key}),
        )
        return self._submitted(response)

    def submit_edit(
        self,
        request: EditRequest,
        images: list[UploadFile],
        mask: UploadFile | None,
        *,
        idempotency_key: str,
    ) -> ProviderJob:
        """POST /v1/images/edits as multipart/form-data: one `image` part, or `image[]` parts for
        several (OpenAI's form), an optional `mask`, and the parameters as form fields."""
        field = "image" if len(images) == 1 else "image[]"
        files: list[tuple[str, UploadFile]] = [(field, image) for image in images]
        if mask is not None:
            files.append(("mask", mask))
        data = {name: str(value) for name, value in request.provider_body().items()}
        response = self._send(
            "POST",
            f"{self._base_url}/v1/images/edits",
            params={"async": "true"},
            data=data,
            files=files,
            headers=self._headers({"Idempotency-Key": idempotency_key}),
        )
        return self._submitted(response)

    def _job_url(self, provider_job_id: str, *rest: str) -> str:
        """The job's URL: its id quoted, since nothing documents the shape of the provider's ids."""
        return "/".join([f"{self._base_url}/v1/jobs/{quote(provider_job_id, safe='')}", *rest])

    def get(self, provider_job_id: str) -> ProviderJob:
        response = self._send("GET", self._job_url(provider_job_id), headers=self._headers())
        return self._parsed(self._json(response))

    def cancel(self, provider_job_id: str) -> ProviderJob | None:
        """Ask the provider to stop a job. None when it offers no cancel (404/405 on the route).
        Best effort, from an HTTP request that API Gateway ends at 29 s: at most CANCEL_TIMEOUT."""
        response = self._send(
            "POST",
            self._job_url(provider_job_id, "cancel"),
            headers=self._headers(),
            timeout=CANCEL_TIMEOUT,
            total_seconds=CANCEL_TOTAL_SECONDS,
        )
        if response.status_code in (404, 405, 501):
            return None
        return self._parsed(self._json(response))

    @contextmanager
    def download(self, url: str) -> Iterator[Iterator[bytes]]:
        """Stream one output. Yields an iterator of chunks; raises DownloadFailed if cut short,
        DownloadRefused if the URL or a redirect leaves the allowed download hosts."""
        if url.startswith("data:"):  # an inline image (b64_json): nothing to fetch
            yield _inline_chunks(url)
            return
        try:
            with_key = False
            for _hop in range(MAX_REDIRECTS + 2):
                self._downloads.check(url)
                # The bearer key goes to the provider's own host only, and only when it asked.
                headers = self._headers() if with_key and self._downloads.is_provider(url) else None
                with self._client.stream("GET", url, headers=headers, follow_redirects=False) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = str(response.url.join(response.headers["location"]))
                        continue
                    if response.status_code in (401, 403) and not with_key and self._downloads.is_provider(url):
                        with_key = True  # result URLs behind the provider's key: ask again with it
                        continue
                    if response.status_code != 200:
                        raise DownloadFailed(f"output download answered {response.status_code}")
                    expected = response.headers.get("content-length")
                    yield _checked_chunks(response, int(expected) if expected else None)
                    return
            raise DownloadFailed(f"output download redirected more than {MAX_REDIRECTS} times")
        except httpx.HTTPError as exc:
            raise DownloadFailed(f"output download broke: {type(exc).__name__}") from exc


def _inline_chunks(url: str) -> Iterator[bytes]:
    import base64
    import binascii

    try:
        data = base64.b64decode(url.split(",", 1)[1], validate=True)
    except (IndexError, binascii.Error) as exc:
        raise DownloadFailed("an inline (b64_json) output is not valid base64") from exc
    for start in range(0, len(data), DOWNLOAD_CHUNK):
        yield data[start : start + DOWNLOAD_CHUNK]


# One output's download in all (httpx's timeouts count each read alone: a host dripping a byte
# every few seconds would hold finalize to its own timeout); a few MB take about a second.
DOWNLOAD_SECONDS = 60.0


def _checked_chunks(response: httpx.Response, expected: int | None) -> Iterator[bytes]:
    received = 0
    deadline = time.monotonic() + DOWNLOAD_SECONDS
    for chunk in response.iter_bytes(DOWNLOAD_CHUNK):
        received += len(chunk)
        if time.monotonic() > deadline:
            raise DownloadFailed(f"output download took more than {DOWNLOAD_SECONDS:.0f} s")
        yield chunk
    if expected is not None and received != expected:
        raise DownloadFailed(f"output download cut short: {received} of {expected} bytes")
