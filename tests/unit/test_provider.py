"""The provider client maps every HTTP outcome to a domain error (httpx.MockTransport, no network)."""

from collections.abc import Callable

import httpx
import pytest

from imagejobs.adapters.provider import DownloadHosts, ProviderClient
from imagejobs.adapters.provider_answers import parse_timestamp
from imagejobs.domain.errors import (
    DownloadFailed,
    DownloadRefused,
    JobRejected,
    ProviderAuthError,
    ProviderOutOfCredits,
    ProviderUnavailable,
    RateLimited,
)
from imagejobs.domain.models import GenerationRequest, JobStatus

REQUEST = GenerationRequest(prompt="a cat")


def client_answering(answer: Callable[[httpx.Request], httpx.Response]) -> ProviderClient:
    return ProviderClient(
        "https://provider.test",
        "sk-test",
        httpx.Client(transport=httpx.MockTransport(answer)),
        download_hosts=["files.test"],
    )


def job_body(**fields: object) -> dict:
    return {"id": "img_p1", "object": "image_job", "status": "queued", "created_at": 1_800_000_000, **fields}


def test_submit_sends_async_flag_key_and_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=job_body())

    job = client_answering(answer).submit(REQUEST, idempotency_key="img_ours")
    assert job.id == "img_p1" and job.status is JobStatus.QUEUED
    assert seen[0].url.params["async"] == "true"
    assert seen[0].headers["authorization"] == "Bearer sk-test"
    assert seen[0].headers["idempotency-key"] == "img_ours"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": {"message": "bad key"}}, ProviderAuthError),
        (402, {"error": {"message": "no credits"}}, ProviderOutOfCredits),
        (500, {"error": {"message": "boom"}}, ProviderUnavailable),
        (502, None, ProviderUnavailable),
        (503, None, ProviderUnavailable),
        (400, {"error": {"code": "moderation_blocked", "message": "refused"}}, JobRejected),
    ],
)
def test_http_errors_become_domain_errors(status: int, body: dict | None, error: type[Exception]) -> None:
    client = client_answering(lambda _: httpx.Response(status, json=body) if body else httpx.Response(status))
    with pytest.raises(error):
        client.submit(REQUEST, idempotency_key="k")


def test_moderation_refusal_keeps_its_code() -> None:
    client = client_answering(
        lambda _: httpx.Response(400, json={"error": {"code": "moderation_blocked", "message": "refused"}})
    )
    with pytest.raises(JobRejected) as caught:
        client.submit(REQUEST, idempotency_key="k")
    assert caught.value.code == "moderation_blocked"


def test_429_carries_retry_after() -> None:
    client = client_answering(lambda _: httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {}}))
    with pytest.raises(RateLimited) as caught:
        client.get("img_p1")
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(("header", "seconds"), [("inf", 3600.0), ("1e12", 3600.0), ("-5", 0.0), ("nan", None)])
def test_a_429s_retry_after_is_bounded(header: str, seconds: float | None) -> None:
    """It delays the job and, under a rate cap, every submission's next turn: an answer of
    "inf" or a year must not stop the stack (nor an infinity reach DynamoDB)."""
    client = client_answering(lambda _: httpx.Response(429, headers={"Retry-After": header}, json={"error": {}}))
    with pytest.raises(RateLimited) as caught:
        client.get("img_p1")
    assert caught.value.retry_after == seconds


def test_429_without_retry_after() -> None:
    with pytest.raises(RateLimited) as caught:
        client_answering(lambda _: httpx.Response(429)).get("img_p1")
    assert caught.value.retry_after is None


def test_malformed_json_is_transient() -> None:
    with pytest.raises(ProviderUnavailable):
        client_answering(lambda _: httpx.Response(200, content=b"{not json")).get("img_p1")


def test_a_status_the_contract_does_not_name_is_not_final() -> None:
    """Nothing documents every status a provider may report: an unknown one is followed (and
    shown as reported) until our deadline, never taken for an end."""
    job = client_answering(lambda _: httpx.Response(200, json=job_body(status="dreaming", extra={"x": 1}))).get("j")
    assert job.status is JobStatus.IN_PROGRESS and job.reported_status == "dreaming"


@pytest.mark.parametrize(
    "results",
    [
        {"unsigned_urls": ["https://files.test/0.png", "https://files.test/1.png"]},  # TheRouter's job page
        {"result": {"data": [{"url": "https://files.test/0.png"}, {"url": "https://files.test/1.png"}]}},  # async-media
        {"data": [{"url": "https://files.test/0.png"}, {"url": "https://files.test/1.png"}]},  # OpenAI's url form
    ],
)
def test_results_are_found_in_every_documented_shape(results: dict) -> None:
    body = job_body(status="succeeded", expires_at="2027-01-16T08:00:00Z", **results)
    job = client_answering(lambda _: httpx.Response(200, json=body)).get("img_p1")
    assert job.unsigned_urls == ["https://files.test/0.png", "https://files.test/1.png"]
    assert job.usage is None


def test_inline_b64_json_images_are_stored_without_a_download() -> None:
    import base64

    body = job_body(status="succeeded", data=[{"b64_json": base64.b64encode(b"\x89PNG image").decode()}])
    client = client_answering(lambda request: pytest.fail(f"nothing to fetch, yet {request.url}"))
    job = client_answering(lambda _: httpx.Response(200, json=body)).get("img_p1")
    with client.download(job.unsigned_urls[0]) as chunks:
        assert b"".join(chunks) == b"\x89PNG image"


def test_result_urls_behind_the_key_get_it_on_the_providers_host_only() -> None:
    seen: list[tuple[str, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("authorization")))
        return httpx.Response(200, content=b"img") if request.headers.get("authorization") else httpx.Response(401)

    client = client_answering(answer)
    with client.download("https://provider.test/files/j/0.png") as chunks:
        assert b"".join(chunks) == b"img"
    assert seen == [
        ("https://provider.test/files/j/0.png", None),
        ("https://provider.test/files/j/0.png", "Bearer sk-test"),
    ]
    seen.clear()
    with pytest.raises(DownloadFailed), client.download("https://files.test/0.png") as chunks:
        b"".join(chunks)
    assert seen == [("https://files.test/0.png", None)]  # another host never sees the key


def test_job_ids_of_any_shape_stay_one_path_segment() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json=job_body(id="job/7 a:b"))

    assert client_answering(answer).get("job/7 a:b").id == "job/7 a:b"
    assert seen == ["/v1/jobs/job%2F7%20a%3Ab"]


def test_connection_failures_and_timeouts_are_transient() -> None:
    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection reset", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for answer in (reset, slow):
        with pytest.raises(ProviderUnavailable):
            client_answering(answer).get("img_p1")


def test_both_timestamp_forms_are_read() -> None:
    assert parse_timestamp(1_800_000_000) == 1_800_000_000.0
    assert parse_timestamp("1800000000") == 1_800_000_000.0
    assert parse_timestamp("2027-01-15T08:00:00Z") == parse_timestamp("2027-01-15T08:00:00+00:00")
    assert parse_timestamp("2027-01-15T08:00:00Z") == 1_800_000_000.0
    assert parse_timestamp("not a time") is None


def test_succeeded_job_with_iso_completion_and_usage() -> None:
    body = job_body(
        status="succeeded",
        completed_at="2027-01-15T08:01:30Z",
        unsigned_urls=["https://files.test/0.png"],
        usage={"input_tokens": 10, "output_tokens": 272, "total_tokens": 282},
    )
    job = client_answering(lambda _: httpx.Response(200, json=body)).get("img_p1")
    assert job.status is JobStatus.SUCCEEDED
    assert job.completed_at == 1_800_000_090.0  # ISO string beside a unix created_at
    assert job.usage is not None and job.usage.output_tokens == 272


def test_download_cut_short_is_detected() -> None:
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": "100"}, content=b"x" * 60)

    client = client_answering(answer)
    with pytest.raises((DownloadFailed, httpx.HTTPError)), client.download("https://files.test/0.png") as chunks:
        b"".join(chunks)


def test_download_answering_403_fails() -> None:
    client = client_answering(lambda _: httpx.Response(403))
    with pytest.raises(DownloadFailed), client.download("https://files.test/0.png") as chunks:
        b"".join(chunks)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8080/files/a/0.png", True),  # the provider's own host, its own scheme
        ("https://results.s3.us-east-1.amazonaws.com/a.png?X-Amz-Signature=x", True),
        ("http://results.s3.us-east-1.amazonaws.com/a.png", False),  # not https
        ("https://evilamazonaws.com/a.png", False),
        ("https://results.amazonaws.com.evil.example/a.png", False),
        ("https://169.254.169.254/latest/meta-data/", False),
        ("http://localhost:8080/files/a/0.png", False),  # same server, another host name
        ("http://127.0.0.1:9999/files/a/0.png", False),  # another port
        ("not a url", False),
    ],
)
def test_downloads_only_from_allowed_hosts(url: str, allowed: bool) -> None:
    hosts = DownloadHosts("http://127.0.0.1:8080", ["*.amazonaws.com"])
    assert hosts.allows(url) is allowed


def test_a_redirect_to_another_host_is_refused_before_it_is_followed() -> None:
    fetched: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        fetched.append(request.url.host)
        if request.url.host == "files.test":
            return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        return httpx.Response(200, content=b"secret")

    client = client_answering(answer)
    with pytest.raises(DownloadRefused), client.download("https://files.test/0.png") as chunks:
        b"".join(chunks)
    assert fetched == ["files.test"]


def test_a_provider_that_does_not_serve_the_model_ends_the_job_without_retries() -> None:
    """404/410 to a submission: the model is not served (any more): final, code model_unavailable."""
    body = {"error": {"message": "model gone", "code": "model_not_found"}}
    for status in (404, 410):
        with pytest.raises(JobRejected) as caught:
            client_answering(lambda _, status=status: httpx.Response(status, json=body)).submit(  # type: ignore[misc]
                REQUEST, idempotency_key="k"
            )
        assert caught.value.code == "model_unavailable" and caught.value.message == "model gone"
