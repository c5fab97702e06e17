"""The HTTP API as a TheRouter client meets it: 202 job objects, OpenAI-shaped errors, no job for bad input."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from imagejobs.domain import clock
from imagejobs_local.stack import LocalStack
from tests.conftest import TEST_SYNC_WAIT_SECONDS
from tests.helpers import load_event, wait_for_job

SYNC_RESERVE_SLACK = 3.5  # a wait ends SYNC_RESERVE (3 s) before the API's timeout at the latest

GENERATIONS = "/v1/images/generations?async=true"
EDITS = "/v1/images/edits?async=true"
JSON_TYPE = {"Content-Type": "application/json"}


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 90, 0)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()


def job_count(stack: LocalStack) -> int:
    table = stack.client("dynamodb")
    items = table.scan(
        TableName=stack.outputs["JobsTableName"],
        Select="COUNT",
        FilterExpression="begins_with(pk, :job)",
        ExpressionAttributeValues={":job": {"S": "job#"}},
    )
    return int(items["Count"])


def assert_openai_error(answer: httpx.Response, status: int, param: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def test_submit_answers_202_with_therouters_job_object(stack: LocalStack, api: httpx.Client) -> None:
    answer = api.post(GENERATIONS, json={"prompt": "a cat", "quality": "low"})
    assert answer.status_code == 202
    job = answer.json()
    assert job["id"].startswith("img_")
    assert (job["object"], job["status"], job["model"]) == ("image_job", "queued", "openai/gpt-image-1")
    assert job["polling_url"] == f"{stack.base_url}/v1/jobs/{job['id']}"
    assert isinstance(job["created_at"], int) and job["expires_at"] > job["created_at"]


def test_poll_then_fetch_content(stack: LocalStack, api: httpx.Client) -> None:
    job_id = api.post(GENERATIONS, json={"prompt": "a cat", "quality": "low", "n": 2}).json()["id"]
    early = api.get(f"/v1/jobs/{job_id}/content")
    job = wait_for_job(api, job_id)

    assert_openai_error(early, 409)
    assert job["status"] == "succeeded" and len(job["unsigned_urls"]) == 2
    assert job["cost"]["currency"] == "USD" and job["cost"]["basis"] == "usage"
    content = api.get(f"/v1/jobs/{job_id}/content")
    assert content.status_code == 302
    assert f"results/{job_id}/0.png" in content.headers["location"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({}, 400, "prompt"),
        ({"prompt": "x" * 32_001}, 400, "prompt"),
        ({"prompt": "a", "size": "640x480"}, 400, "size"),
        ({"prompt": "a", "quality": "best"}, 400, "quality"),
        ({"prompt": "a", "background": "pink"}, 400, "background"),
        ({"prompt": "a", "output_format": "bmp"}, 400, "output_format"),
        ({"prompt": "a", "n": 0}, 400, "n"),
        ({"prompt": "a", "n": 11}, 400, "n"),
        ({"prompt": "a", "background": "transparent", "output_format": "jpeg"}, 400, None),
        ({"prompt": "a", "output_compression": 50}, 400, None),
    ],
)
def test_bad_parameters_get_a_clear_400_and_no_job(
    stack: LocalStack, api: httpx.Client, body: dict, status: int, param: str | None
) -> None:
    before = job_count(stack)
    error = assert_openai_error(api.post(GENERATIONS, json=body), status, param)
    assert error["type"] == "invalid_request_error"
    assert job_count(stack) == before


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'"a cat"', "application/json", 400),
        (b"prompt=a+cat", "application/x-www-form-urlencoded", 415),
        (b'{"prompt": "a cat"}', "text/plain", 415),
    ],
)
def test_unreadable_bodies_get_a_clear_4xx_and_no_job(
    stack: LocalStack, api: httpx.Client, content: bytes, content_type: str, status: int
) -> None:
    before = job_count(stack)
    assert_openai_error(api.post(GENERATIONS, content=content, headers={"Content-Type": content_type}), status)
    assert job_count(stack) == before


def test_missing_or_wrong_key_is_401(stack: LocalStack) -> None:
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": "Basic abc"}):
        answer = httpx.post(stack.base_url + GENERATIONS, json={"prompt": "a"}, headers=headers)
        assert assert_openai_error(answer, 401)["type"] == "authentication_error"
        assert_openai_error(httpx.get(f"{stack.base_url}/v1/jobs/img_x", headers=headers), 401)


def test_unknown_job_is_404(api: httpx.Client) -> None:
    assert_openai_error(api.get("/v1/jobs/img_doesnotexist"), 404, "id")
    assert_openai_error(api.get("/v1/jobs/img_doesnotexist/content"), 404, "id")


def test_another_tenants_job_is_404(stack: LocalStack, api: httpx.Client) -> None:
    job_id = api.post(GENERATIONS, json={"prompt": "mine", "quality": "low"}).json()["id"]
    stack.tenants.add_key("sk-other-tenant", "other", clock.now())
    other = httpx.get(f"{stack.base_url}/v1/jobs/{job_id}", headers={"Authorization": "Bearer sk-other-tenant"})
    assert_openai_error(other, 404)


def test_unsupported_method_is_405(api: httpx.Client) -> None:
    for method, path in (("DELETE", "/v1/images/generations"), ("PUT", "/v1/jobs/img_1"), ("GET", GENERATIONS)):
        answer = api.request(method, path)
        assert_openai_error(answer, 405)
        assert answer.headers["allow"]


def test_unknown_route_is_404_in_openai_shape(stack: LocalStack, api: httpx.Client) -> None:
    assert_openai_error(api.get("/v1/nothing/here"), 404)
    # API Gateway answers a path or a method that no resource serves with its own 403 "Missing
    # Authentication Token" (it does not fall through to {proxy+}): the root and /openapi.json are
    # resources of their own, served by the function for every method.
    assert_openai_error(api.get("/"), 404)
    for method in ("POST", "DELETE"):
        answer = httpx.request(method, stack.base_url + "/openapi.json")
        assert_openai_error(answer, 405)
        assert answer.headers["allow"] == "GET"
    assert httpx.get(stack.base_url + "/openapi.json").status_code == 200


def test_a_plain_sdk_call_gets_openais_image_response(api: httpx.Client) -> None:
    """Issue #16.1, #20: without async=true (what OpenAI's SDKs send) the call waits, on the wall
    clock, up to SyncWaitSeconds and answers 200 with `created`, `data[].b64_json` (what GPT image
    models return), `usage`, `size`, `quality`, `output_format`, `background`."""
    import base64
    import io

    from PIL import Image

    body = {"prompt": "a plain call", "quality": "low", "size": "1024x1536"}
    answer = api.post("/v1/images/generations", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert set(result) >= {"created", "data", "usage", "size", "quality", "output_format", "background"}
    (image,) = result["data"]
    assert Image.open(io.BytesIO(base64.b64decode(image["b64_json"]))).size == (1024, 1536)
    assert (result["size"], result["quality"], result["output_format"]) == ("1024x1536", "low", "png")
    (job,) = [job for job in api.get("/v1/jobs", params={"limit": 5}).json()["data"] if job["usage"] == result["usage"]]
    assert result["created"] == job["completed_at"]
    # What was made, as OpenAI answers, not the "auto" asked for (#20.8)
    made = api.post("/v1/images/generations", json={"prompt": "size and background left to the model"}).json()
    assert made["size"] == "1024x1024" and made["background"] in ("opaque", "transparent")


def test_a_plain_call_whose_wait_runs_out_is_retried_into_the_same_job(stack: LocalStack, api: httpx.Client) -> None:
    """Issue #20.4: never a 202 to a plain call (OpenAI's SDKs read it as an empty success). When
    the wait runs out: 504 with x-should-retry: true and retry-after-ms (what the SDKs obey), the
    job id and polling_url in the message; the SDK's retry (same body, x-stainless-retry-count: 1,
    no idempotency header) joins that job: no second submission."""
    body = {"prompt": "[sim:never] too slow to wait for", "quality": "low"}
    started = time.monotonic()
    slow = api.post("/v1/images/generations", json=body, headers={"x-stainless-retry-count": "0"})
    waited = time.monotonic() - started
    error = assert_openai_error(slow, 504)
    assert error["code"] == "job_still_running" and slow.headers["x-should-retry"] == "true"
    assert slow.headers["retry-after-ms"] == "1000"
    job_id = slow.headers["Location"].rsplit("/", 1)[1]
    assert job_id in error["message"] and slow.headers["Location"] in error["message"]
    assert waited >= TEST_SYNC_WAIT_SECONDS - SYNC_RESERVE_SLACK  # wall seconds, not job seconds
    retried = api.post("/v1/images/generations", json=body, headers={"x-stainless-retry-count": "1"})
    assert assert_openai_error(retried, 504)["code"] == "job_still_running"
    assert retried.headers["Location"].endswith(job_id)  # the same job, waited on again
    assert stack.provider.stats.submissions[job_id] == 1
    # A first attempt of the same body on purpose (retry count 0) is a job of its own.
    again = api.post("/v1/images/generations?async=false", json=body, headers={"x-stainless-retry-count": "0"})
    assert not again.headers["Location"].endswith(job_id)
    for other in (job_id, again.headers["Location"].rsplit("/", 1)[1]):
        api.post(f"/v1/jobs/{other}/cancel")


def test_a_plain_call_whose_job_fails_says_why_and_not_to_retry(api: httpx.Client) -> None:
    doomed = api.post("/v1/images/generations", json={"prompt": "[sim:fail] doomed", "quality": "low"})
    error = assert_openai_error(doomed, 502)
    assert error["type"] == "server_error" and error["code"] == "generation_failed"
    assert "/v1/jobs/img_" in doomed.headers["Location"] and doomed.headers["x-should-retry"] == "false"
    refused = api.post("/v1/images/generations", json={"prompt": "[sim:moderated] refused", "quality": "low"})
    assert assert_openai_error(refused, 400)["code"] == "moderation_blocked"
    assert refused.headers["x-should-retry"] == "false"
    assert_openai_error(api.post("/v1/images/generations?async=maybe", json={"prompt": "a"}), 400, "async")


def test_idempotency_key_returns_the_first_job(stack: LocalStack, api: httpx.Client) -> None:
    headers = {"Idempotency-Key": "order-1234"}
    first = api.post(GENERATIONS, json={"prompt": "a cat", "quality": "low"}, headers=headers)
    again = api.post(GENERATIONS, json={"prompt": "a cat", "quality": "low"}, headers=headers)
    other_body = api.post(GENERATIONS, json={"prompt": "a dog", "quality": "low"}, headers=headers)

    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert_openai_error(other_body, 409, "Idempotency-Key")
    wait_for_job(api, first.json()["id"])
    assert stack.provider.stats.submissions[first.json()["id"]] == 1


def test_api_gateway_sample_event_through_the_function(stack: LocalStack) -> None:
    """The events/ file (AWS's REST proxy event shape, stage prefix and all) straight into the function."""
    event = load_event("api_create_generation", **{"sk-local-replace-me": stack.api_key})
    answer = stack.client("lambda").invoke(
        FunctionName=stack.function_name("ApiFunction"), Payload=json.dumps(event).encode()
    )
    result = json.loads(answer["Payload"].read())
    job = json.loads(result["body"])
    assert result["statusCode"] == 202
    assert job["polling_url"] == f"https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod/v1/jobs/{job['id']}"

    get_event = load_event("api_get_job", img_replace_me=job["id"], **{"sk-local-replace-me": stack.api_key})
    answer = stack.client("lambda").invoke(
        FunctionName=stack.function_name("ApiFunction"), Payload=json.dumps(get_event).encode()
    )
    fetched = json.loads(answer["Payload"].read())
    assert fetched["statusCode"] == 200 and json.loads(fetched["body"])["id"] == job["id"]


def test_a_body_that_is_not_utf8_is_a_400_not_a_crash(stack: LocalStack, api: httpx.Client) -> None:
    before = job_count(stack)
    answer = api.post(GENERATIONS, content=b'{"prompt": "\xff\xfe"}', headers={"Content-Type": "application/json"})
    assert assert_openai_error(answer, 400)["code"] == "invalid_json"
    assert job_count(stack) == before


def test_idempotency_keys_longer_than_255_characters_are_refused(api: httpx.Client) -> None:
    answer = api.post(GENERATIONS, json={"prompt": "a"}, headers={"Idempotency-Key": "k" * 256})
    assert assert_openai_error(answer, 400, "Idempotency-Key")["code"] == "invalid_value"


def test_integral_floats_are_integers(api: httpx.Client) -> None:
    """JSON Schema counts 2.0 as an integer; 2.5 is not one."""
    assert api.post(GENERATIONS, json={"prompt": "two", "n": 2.0, "quality": "low"}).status_code == 202
    assert_openai_error(api.post(GENERATIONS, json={"prompt": "two and a half", "n": 2.5}), 400, "n")


def test_any_other_method_is_405_not_a_server_error(api: httpx.Client) -> None:
    for method in ("TRACE", "QUERY"):
        assert_openai_error(api.request(method, "/v1/jobs"), 405)


def test_models_are_listed_in_openais_shape_with_their_prices(api: httpx.Client) -> None:
    """What an SDK's models.list() / models.retrieve() ask: every catalog entry, each with its
    per-image prices and lifecycle; short and vendor names are one entry; others are 404."""
    listed = api.get("/v1/models")
    assert listed.status_code == 200
    body = listed.json()
    assert body["object"] == "list"
    models = {model["id"]: model for model in body["data"]}
    assert {"openai/gpt-image-1", "openai/gpt-image-2"} <= set(models)
    for model in models.values():
        assert model["object"] == "model" and isinstance(model["created"], int) and model["owned_by"]
    assert models["openai/gpt-image-2"]["pricing"]["per_image"] == {
        "low": "0.0072",
        "medium": "0.0636",
        "high": "0.2532",
    }
    assert models["openai/gpt-image-1"]["lifecycle"]["upstream_shutdown"] == "2026-10-23"
    assert api.get("/v1/models/openai/gpt-image-2").json() == models["openai/gpt-image-2"]
    assert api.get("/v1/models/gpt-image-1").json()["id"] == "openai/gpt-image-1"
    assert_openai_error(api.get("/v1/models/othervendor/gpt-image-1"), 404, "model")
    assert_openai_error(api.post("/v1/models"), 405)


def test_a_vendor_prefix_that_is_not_the_models_own_is_refused(api: httpx.Client) -> None:
    error = assert_openai_error(
        api.post(GENERATIONS, json={"prompt": "a", "model": "othervendor/gpt-image-1"}), 400, "model"
    )
    assert "openai/gpt-image-1" in error["message"]  # the refusal names what is served
    assert (
        api.post(GENERATIONS, json={"prompt": "a", "model": "openai/gpt-image-2", "quality": "low"}).status_code == 202
    )


def test_a_request_takes_only_what_its_model_accepts(api: httpx.Client) -> None:
    """gpt-image-2 refuses background=transparent; input_fidelity is gpt-image-1's alone (the
    catalog's rules, data in prices.json)."""
    transparent = {"prompt": "a", "model": "openai/gpt-image-2", "background": "transparent", "output_format": "png"}
    assert_openai_error(api.post(GENERATIONS, json=transparent), 400, "background")
    opaque = {**transparent, "background": "opaque", "quality": "low"}
    assert api.post(GENERATIONS, json=opaque).status_code == 202
    assert api.post(GENERATIONS, json={**transparent, "model": "gpt-image-1", "quality": "low"}).status_code == 202


def test_each_model_takes_its_own_sizes(stack: LocalStack, api: httpx.Client) -> None:
    """gpt-image-1: 1024x1024, 1536x1024, 1024x1536, auto (OpenAI's image API reference);
    gpt-image-2: WIDTHxHEIGHT, sides multiples of 16, ratio at most 3:1 (the catalog's rules)."""
    before = job_count(stack)
    error = assert_openai_error(api.post(GENERATIONS, json={"prompt": "a", "size": "2048x1152"}), 400, "size")
    assert "1536x1024" in error["message"]
    for size in ("1000x1000", "2560x800"):
        refused = api.post(GENERATIONS, json={"prompt": "a", "model": "gpt-image-2", "size": size})
        assert size in assert_openai_error(refused, 400, "size")["message"]
    assert job_count(stack) == before  # nothing recorded, nothing reserved
    answer = api.post(GENERATIONS, json={"prompt": "a", "model": "gpt-image-2", "size": "2048x1152", "quality": "low"})
    assert answer.status_code == 202, answer.text


def test_a_shut_down_model_is_refused_naming_its_replacement(stack: LocalStack, api: httpx.Client) -> None:
    """OpenAI shut gpt-image-1.5 down on 2026-12-01 (its deprecations page): refused at the door,
    unless the operator maps it (ModelAliases), when it runs, is priced and answered as the target."""
    error = assert_openai_error(api.post(GENERATIONS, json={"prompt": "a", "model": "gpt-image-1.5"}), 400, "model")
    assert error["code"] == "model_shutdown" and "openai/gpt-image-2" in error["message"]
    assert_openai_error(api.get("/v1/models/openai/gpt-image-1.5"), 404, "model")
    with stack.function_settings("ApiFunction", MODEL_ALIASES="gpt-image-1.5=openai/gpt-image-2"):
        answer = api.post(GENERATIONS, json={"prompt": "a", "model": "gpt-image-1.5", "quality": "low"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["model"] == "openai/gpt-image-2"
    record = wait_for_job(api, answer.json()["id"])
    assert record["status"] == "succeeded"
    stored = stack.store.get(answer.json()["id"])
    assert stored is not None and stored.model == "openai/gpt-image-2"


def test_a_deprecated_model_is_served_with_deprecation_headers(api: httpx.Client) -> None:
    """gpt-image-1, shut upstream on 2026-10-23 and still served by TheRouter: RFC 9745 Deprecation
    (@seconds) and a successor Link; no Sunset, as no date is announced. gpt-image-2: none."""
    old = api.post(GENERATIONS, json={"prompt": "a", "model": "gpt-image-1", "quality": "low"})
    assert old.status_code == 202
    assert old.headers["Deprecation"] == "@1792713600"
    assert "successor-version" in old.headers["Link"] and "Sunset" not in old.headers
    assert api.get("/v1/models/gpt-image-1").headers["Deprecation"] == "@1792713600"
    new = api.post(GENERATIONS, json={"prompt": "a", "model": "gpt-image-2", "quality": "low"})
    assert new.status_code == 202 and "Deprecation" not in new.headers


@pytest.mark.parametrize(
    ("send", "param"),
    [
        # JSON nested deeper than the parser goes (RecursionError was a 500)
        (lambda api: api.post(GENERATIONS, content=b"[" * 10_000 + b"]" * 10_000, headers=JSON_TYPE), None),
        (
            lambda api: api.post(
                GENERATIONS, content=b'{"prompt": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", headers=JSON_TYPE
            ),
            None,
        ),
        # digits int() refuses though str.isdigit() takes them
        (lambda api: api.get("/v1/jobs", params={"limit": "²"}), "limit"),
        (lambda api: api.get("/v1/jobs", params={"limit": "9" * 5000}), "limit"),
        (
            lambda api: api.post(EDITS, data={"prompt": "a", "n": "²"}, files={"image": ("a.png", PNG, "image/png")}),
            "n",
        ),
        # webhook URLs whose host or port cannot be parsed, or which httpx would refuse to send
        (lambda api: api.post(GENERATIONS, json={"prompt": "a", "webhook_url": "https://[::1/"}), "webhook_url"),
        (
            lambda api: api.post(GENERATIONS, json={"prompt": "a", "webhook_url": "https://example.com:99999/"}),
            "webhook_url",
        ),
        (
            lambda api: api.post(GENERATIONS, json={"prompt": "a", "webhook_url": "https://" + "a" * 64 + ".com/"}),
            "webhook_url",
        ),
        (
            lambda api: api.post(GENERATIONS, json={"prompt": "a", "webhook_url": "https://example.com/\r\nX: 1"}),
            "webhook_url",
        ),
    ],
)
def test_hostile_input_is_a_clear_400_never_a_500(
    stack: LocalStack, api: httpx.Client, send: Any, param: str | None
) -> None:
    """Issue #15.7: each of these was a 500."""
    before = job_count(stack)
    assert_openai_error(send(api), 400, param)
    assert job_count(stack) == before


def test_answers_carry_the_headers_sdks_read(api: httpx.Client) -> None:
    """Issue #16.4: the 202 says where and when to poll; every answer of ours, errors included,
    carries x-request-id (OpenAI's SDKs surface it as the request id)."""
    accepted = api.post(GENERATIONS, json={"prompt": "a", "quality": "low"})
    assert accepted.status_code == 202
    assert accepted.headers["Location"] == accepted.json()["polling_url"]
    assert int(accepted.headers["Retry-After"]) > 0
    refused = api.post(GENERATIONS, json={"prompt": ""})
    ids = {
        accepted.headers["x-request-id"],
        refused.headers["x-request-id"],
        api.get("/v1/models").headers["x-request-id"],
    }
    assert len(ids) == 3 and all(ids)


def test_query_parameters_are_held_to_each_route(api: httpx.Client) -> None:
    """Issue #16.7: async=1 is async=true; an unknown query parameter is refused like an unknown
    body field (it used to be ignored)."""
    assert api.post("/v1/images/generations?async=1", json={"prompt": "a", "quality": "low"}).status_code == 202
    refused = api.post("/v1/images/generations?async=true&asnyc=true", json={"prompt": "a"})
    assert assert_openai_error(refused, 400, "asnyc")["code"] == "unknown_parameter"
    assert_openai_error(api.get("/v1/jobs", params={"limit": "5", "page": "2"}), 400, "page")
    assert_openai_error(api.get("/v1/models", params={"x": "1"}), 400, "x")


def test_content_serves_each_image_by_index(stack: LocalStack, api: httpx.Client) -> None:
    """Issue #16.3: /content?index=N redirects to image N (from 0, the order of unsigned_urls)."""
    answer = api.post(GENERATIONS, json={"prompt": "two boats", "quality": "low", "n": 2})
    job = wait_for_job(api, answer.json()["id"])
    assert job["status"] == "succeeded"
    locations = [
        api.get(f"/v1/jobs/{job['id']}/content", params={"index": str(index)}).headers["Location"] for index in (0, 1)
    ]
    assert [location.split("?")[0] for location in locations] == [url.split("?")[0] for url in job["unsigned_urls"]]
    assert api.get(f"/v1/jobs/{job['id']}/content").headers["Location"].split("?")[0] == locations[0].split("?")[0]
    for bad in ("2", "-1", "one"):
        assert_openai_error(api.get(f"/v1/jobs/{job['id']}/content", params={"index": bad}), 400, "index")


def test_a_succeeded_job_carries_openais_image_response_and_says_how_long_it_is_kept(api: httpx.Client) -> None:
    """Issue #16.3: TheRouter's async-media page shows `result.data[].url`; `expires_at` is when
    the results stop being available (ResultRetentionDays, 30 by default, after they were made)."""
    queued = api.post(GENERATIONS, json={"prompt": "a kite", "quality": "low", "size": "1536x1024"}).json()
    assert "result" not in queued and queued["expires_at"] - queued["created_at"] <= 86_400  # the deadline
    job = wait_for_job(api, queued["id"])
    result = job["result"]
    assert [image["url"] for image in result["data"]] == job["unsigned_urls"]
    assert (result["size"], result["quality"], result["output_format"]) == ("1536x1024", "low", "png")
    assert result["created"] == job["completed_at"] and result["usage"] == job["usage"]
    assert job["expires_at"] == job["completed_at"] + 30 * 86_400


def test_what_a_client_sees_agrees_with_the_wall_clock(api: httpx.Client) -> None:
    """Issue #16.8: offline the job clock runs fast (the stack's time scale); job timestamps ran
    hours ahead of the wall clock. They are shown on the wall clock; only the waits are scaled."""
    import time as wall

    before = wall.time()
    job = wait_for_job(api, api.post(GENERATIONS, json={"prompt": "a clock", "quality": "low"}).json()["id"])
    after = wall.time()
    assert before - 1 <= job["created_at"] <= job["completed_at"] <= after + 1
    assert job["result"]["created"] == job["completed_at"]


def test_browsers_may_call_the_api_and_fetch_the_images(stack: LocalStack, api: httpx.Client) -> None:
    """Issue #16.5: a preflight (OPTIONS, no key) got 401 and answers carried no
    Access-Control-Allow-Origin."""
    origin = {"Origin": "http://127.0.0.1:5173"}
    preflight = httpx.options(
        stack.base_url + "/v1/images/generations",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 204, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    job = wait_for_job(api, api.post(GENERATIONS, json={"prompt": "a", "quality": "low"}, headers=origin).json()["id"])
    answer = api.get(f"/v1/jobs/{job['id']}", headers=origin)
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "x-request-id" in answer.headers["Access-Control-Expose-Headers"].lower()
    refused = httpx.get(stack.base_url + "/v1/jobs", headers=origin)  # API Gateway's own 401
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == "*"
    # The results bucket's CORS rule is read by a real browser: tests/e2e/test_browser.py.


def test_streaming_is_refused_in_words_pointing_to_async_jobs(api: httpx.Client) -> None:
    """Issue #20.9: OpenAI streams partial images; a Python Lambda cannot stream its answer, so a
    stream request gets a 400 that says what to do instead, and no job."""
    for body in ({"prompt": "a", "stream": True}, {"prompt": "a", "partial_images": 2}):
        error = assert_openai_error(api.post("/v1/images/generations", json=body), 400)
        assert error["code"] == "streaming_not_supported" and "async=true" in error["message"]


def test_a_preflight_allows_the_headers_the_js_sdk_sends(stack: LocalStack, api: httpx.Client) -> None:
    """Issue #20.6: OpenAI's JS SDK sends x-stainless-* and OpenAI-Organization/-Project on every call
    (openai-node client.ts buildHeaders); the preflight allows what it asks for, and the answers
    expose the headers that SDK reads to decide a retry."""
    asked = "authorization,content-type,x-stainless-arch,x-stainless-retry-count,openai-organization"
    preflight = httpx.options(
        stack.base_url + "/v1/images/generations",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-headers"] == asked
    answer = api.get("/v1/models", headers={"Origin": "https://app.example"})
    exposed = {name.strip().lower() for name in answer.headers.get("access-control-expose-headers", "").split(",")}
    assert {"x-should-retry", "retry-after-ms", "retry-after"} <= exposed


def test_response_format_is_taken_as_dall_e_apps_send_it(api: httpx.Client) -> None:
    """Issue #20.8: GPT image models always answer base64 (OpenAI's API reference); an app written
    for dall-e sends response_format: b64_json is what it gets anyway, url gets presigned URLs."""
    as_base64 = api.post(
        "/v1/images/generations", json={"prompt": "b64", "quality": "low", "response_format": "b64_json"}
    )
    assert as_base64.status_code == 200 and as_base64.json()["data"][0]["b64_json"]
    as_url = api.post("/v1/images/generations", json={"prompt": "url", "quality": "low", "response_format": "url"})
    (image,) = as_url.json()["data"]
    assert "b64_json" not in image and "/results/img_" in image["url"] and "Signature=" in image["url"]
    assert_openai_error(api.post(GENERATIONS, json={"prompt": "a", "response_format": "png"}), 400, "response_format")
