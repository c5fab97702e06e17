"""Keys and budgets as an operator and a tenant meet them: the admin command makes and revokes
keys, the authorizer maps keys to tenants (cached), and budgets cap what a tenant can spend."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal

import httpx
import pytest

from imagejobs.domain import budget, clock, pricing
from imagejobs.domain.models import GenerationRequest, JobStatus
from imagejobs_cli.main import main as cli
from imagejobs_local.stack import LocalStack
from tests.conftest import AUTHORIZER_CACHE_SECONDS
from tests.helpers import load_event, wait_for_job
from tests.integration.test_uploads import photo, upload, wait_for_upload_job

GENERATIONS = "/v1/images/generations?async=true"


def admin(stack: LocalStack, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli([*args, "--table", stack.outputs["JobsTableName"]])
    out, err = capsys.readouterr()
    return code, out, err


def new_key(stack: LocalStack, capsys: pytest.CaptureFixture[str], tenant: str) -> str:
    code, out, _ = admin(stack, capsys, "keys", "create", "--tenant", tenant, "--name", "tests")
    assert code == 0
    return out.strip().splitlines()[-1]


@contextmanager
def client(stack: LocalStack, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as c:
        yield c


def today(stack: LocalStack) -> tuple[str, str]:
    return budget.periods(clock.wall_now())


# -- keys ------------------------------------------------------------------------------------------
def test_authorizer_sample_event_maps_a_key_to_its_tenant(stack: LocalStack) -> None:
    function = stack.function_name("AuthorizerFunction")
    event = load_event("authorizer_token", **{"sk-local-replace-me": stack.api_key})
    answer = json.loads(
        stack.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))["Payload"].read()
    )
    assert answer["context"]["tenant"] == "local"
    statement = answer["policyDocument"]["Statement"][0]
    # One cached answer must serve every route of the API, so the policy covers all of it.
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/*/*",
    }
    event["authorizationToken"] = "Bearer sk-not-a-key"
    refused = stack.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    assert refused.get("FunctionError")
    assert json.loads(refused["Payload"].read())["errorMessage"] == "Unauthorized"


def test_admin_keys_create_list_and_revoke(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    api_key = new_key(stack, capsys, "acme")
    code, out, _ = admin(stack, capsys, "keys", "list", "--tenant", "acme")
    assert code == 0
    assert api_key not in out  # keys are shown once, when made, and stored hashed
    key_ids = [line.split()[0] for line in out.splitlines()[1:]]
    assert len(key_ids) == 1 and key_ids[0].startswith("key_")
    items = stack.client("dynamodb").scan(TableName=stack.outputs["JobsTableName"])["Items"]
    assert api_key not in json.dumps(items)

    with client(stack, api_key) as acme:
        calls_before = stack.gateway.authorizer_calls if stack.gateway else 0
        job_id = acme.post(GENERATIONS, json={"prompt": "acme's", "quality": "low"}).json()["id"]
        assert acme.get(f"/v1/jobs/{job_id}").status_code == 200
        assert [job["id"] for job in acme.get("/v1/jobs").json()["data"]] == [job_id]
        assert stack.gateway is not None
        # Two requests, one authorizer call: API Gateway caches the answer per key.
        assert stack.gateway.authorizer_calls == calls_before + 1

        code, out, _ = admin(stack, capsys, "keys", "revoke", key_ids[0])
        assert code == 0 and "revoked" in out
        time.sleep(AUTHORIZER_CACHE_SECONDS + 0.2)  # the cached answer runs out
        refused = acme.get(f"/v1/jobs/{job_id}")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
    _, out, _ = admin(stack, capsys, "keys", "list", "--tenant", "acme")
    assert out.splitlines()[1].split()[-1].endswith("Z")  # shown with its revocation time


def test_admin_errors_are_one_clear_line(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ("keys", "revoke", "key_000000000000"),
        ("keys", "create", "--tenant", "#not a name"),
        ("budget", "set", "--tenant", "acme", "--daily", "lots"),
        ("budget", "set", "--tenant", "acme", "--daily", "nan"),  # issue #15.14: both were tracebacks
        ("budget", "set", "--tenant", "acme", "--monthly", "1e999"),
        ("budget", "set", "--tenant", "acme", "--daily", "-1"),
    ):
        code, _, err = admin(stack, capsys, *args)
        assert code == 1
        assert len(err.strip().splitlines()) == 1 and err.startswith("imagejobs: ")
        assert "Traceback" not in err
    assert cli(["keys", "list"]) == 1  # no table named
    assert "--table" in capsys.readouterr().err


def test_tenants_see_only_their_own_jobs(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    with client(stack, new_key(stack, capsys, "blue")) as blue, client(stack, new_key(stack, capsys, "green")) as green:
        job_id = blue.post(GENERATIONS, json={"prompt": "blue's", "quality": "low"}).json()["id"]
        wait_for_job(blue, job_id)
        for answer in (
            green.get(f"/v1/jobs/{job_id}"),
            green.get(f"/v1/jobs/{job_id}/content"),
            green.post(f"/v1/jobs/{job_id}/cancel"),
            green.delete(f"/v1/jobs/{job_id}"),
        ):
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "job_not_found"
        assert green.get("/v1/jobs").json()["data"] == []
        assert green.get("/v1/jobs", params={"after": job_id}).status_code == 404
        assert blue.get(f"/v1/jobs/{job_id}/content").status_code == 302


# -- budgets -------------------------------------------------------------------------------------
def test_parallel_submits_never_pass_the_daily_cap(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    api_key = new_key(stack, capsys, "capped")
    assert admin(stack, capsys, "budget", "set", "--tenant", "capped", "--daily", "0.10")[0] == 0
    body = {"prompt": "a small red fox", "quality": "low", "size": "1024x1024"}
    reserve = pricing.reserve_amount("openai/gpt-image-1", GenerationRequest.model_validate(body))
    fits = int(Decimal("0.10") // reserve)  # 7 at $0.013208 each

    with client(stack, api_key) as capped, ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: capped.post(GENERATIONS, json=body), range(12)))
        accepted = [answer.json()["id"] for answer in answers if answer.status_code == 202]
        refused = [answer for answer in answers if answer.status_code != 202]
        assert len(accepted) == fits
        for answer in refused:
            assert answer.status_code == 402
            error = answer.json()["error"]
            assert (error["type"], error["code"]) == ("insufficient_quota", "budget_exceeded")
            assert "daily cap of $0.10" in error["message"]
        day, month = today(stack)
        assert stack.tenants.spent("capped", day) == reserve * fits <= Decimal("0.10")
        # a refused request leaves nothing behind: the transaction that would have recorded it rolled back
        assert len(capped.get("/v1/jobs", params={"limit": "100"}).json()["data"]) == fits

        jobs = [wait_for_job(capped, job_id) for job_id in accepted]
    # Settled to what the jobs cost (the provider's reported usage), not what they reserved.
    costs = sum(Decimal(job["cost"]["amount"]) for job in jobs)
    assert 0 < costs < reserve * fits
    assert stack.tenants.spent("capped", day) == costs
    assert stack.tenants.spent("capped", month) == costs
    _, out, _ = admin(stack, capsys, "budget", "show", "--tenant", "capped")
    assert f"${costs:.4f}" in out and "$0.10" in out


def test_monthly_cap_refuses_with_its_own_message(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    api_key = new_key(stack, capsys, "monthly")
    admin(stack, capsys, "budget", "set", "--tenant", "monthly", "--monthly", "0.05")
    with client(stack, api_key) as monthly:
        answer = monthly.post(GENERATIONS, json={"prompt": "too dear", "quality": "high"})
    assert answer.status_code == 402
    assert "monthly cap of $0.05" in answer.json()["error"]["message"]
    assert stack.tenants.spent("monthly", today(stack)[1]) == 0


def test_unbilled_failure_refunds_its_reservation(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    with client(stack, new_key(stack, capsys, "refunded")) as refunded:
        job_id = refunded.post(GENERATIONS, json={"prompt": "[sim:fail] never billed", "quality": "high"}).json()["id"]
        day, _ = today(stack)
        assert stack.tenants.spent("refunded", day) > 0  # reserved while it runs
        job = wait_for_job(refunded, job_id)
    assert job["status"] == "failed" and job["cost"] is None
    assert stack.tenants.spent("refunded", day) == 0


def test_upload_over_budget_ends_failed_saying_why(stack: LocalStack) -> None:
    tenant = "inbox"  # the template's InboxTenant default
    previous = stack.tenants.caps(tenant)
    stack.tenants.set_caps(tenant, daily_usd=Decimal("0"), monthly_usd=None)
    try:
        job_id = upload(stack, "uploads/over-budget.png", photo(), prompt="make it blue")
        record = wait_for_upload_job(stack, job_id)
    finally:
        stack.tenants.set_caps(tenant, daily_usd=previous.daily_usd, monthly_usd=previous.monthly_usd)
    assert record.status is JobStatus.FAILED
    assert record.error is not None and record.error.code == "budget_exceeded"
    assert record.provider_job_id is None  # never sent


def test_admin_webhook_secret_is_made_once_and_rotates(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = admin(stack, capsys, "webhook-secret", "--tenant", "hooked")
    first = out.strip().splitlines()[-1]
    assert code == 0 and first.startswith("whsec_")
    assert admin(stack, capsys, "webhook-secret", "--tenant", "hooked")[1].strip().splitlines()[-1] == first
    assert stack.store.webhook_secret("hooked") == first  # what the notify step signs with
    code, out, _ = admin(stack, capsys, "webhook-secret", "--tenant", "hooked", "--rotate")
    rotated = out.strip().splitlines()[-1]
    assert code == 0 and rotated.startswith("whsec_") and rotated != first
    assert stack.store.webhook_secret("hooked") == rotated


def test_a_retry_after_the_cap_was_lowered_returns_the_first_job(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #15.13: an idempotent retry got 402 once the cap was lowered below the job, and the
    402 said "$0.0000 spent" whatever had been."""
    api_key = new_key(stack, capsys, "lowered")
    assert admin(stack, capsys, "budget", "set", "--tenant", "lowered", "--daily", "1.00")[0] == 0
    body = {"prompt": "a heron", "quality": "low"}
    with client(stack, api_key) as lowered:
        first = lowered.post(GENERATIONS, json=body, headers={"Idempotency-Key": "heron-1"})
        assert first.status_code == 202
        wait_for_job(lowered, first.json()["id"])
        spent = stack.tenants.spent("lowered", today(stack)[0])
        assert spent > 0
        assert admin(stack, capsys, "budget", "set", "--tenant", "lowered", "--daily", "0.005")[0] == 0
        retry = lowered.post(GENERATIONS, json=body, headers={"Idempotency-Key": "heron-1"})
        assert retry.status_code == 202 and retry.json()["id"] == first.json()["id"]
        refused = lowered.post(GENERATIONS, json=body)
    assert refused.status_code == 402
    assert f"${spent:.4f}" in refused.json()["error"]["message"]


def test_an_edit_refused_for_its_budget_leaves_nothing_behind(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #21.15: a 402 edit left its input in the results bucket."""
    api_key = new_key(stack, capsys, "broke-editor")
    assert admin(stack, capsys, "budget", "set", "--tenant", "broke-editor", "--daily", "0.001")[0] == 0
    bucket = stack.outputs["ResultsBucketName"]

    def inputs() -> set[str]:
        listed = stack.client("s3").list_objects_v2(Bucket=bucket, Prefix="inputs/")
        return {item["Key"] for item in listed.get("Contents", [])}

    before = inputs()
    with client(stack, api_key) as broke:
        files = {"image": ("a.png", photo(), "image/png")}
        for headers in ({}, {"Idempotency-Key": "broke-1"}):
            refused = broke.post("/v1/images/edits?async=true", data={"prompt": "x"}, files=files, headers=headers)
            assert refused.status_code == 402, refused.text
    assert inputs() - before == set()
