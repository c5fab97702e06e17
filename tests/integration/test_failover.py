"""Failover through the real stack: with TheRouter down (the simulator answers every submission
503) and ProviderFailover naming gpt-image-2, its new jobs go to OpenAI direct once the breaker
opens, the jobs that failed at TheRouter too (their queue retries them), every job ends once,
the switch is recorded on the breaker and counted for the alarm; once TheRouter is back and the
cooldown over, jobs go home and the breaker closes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from imagejobs.domain.models import JobStatus
from imagejobs_local.stack import LocalStack
from tests.conftest import TEST_TIME_SCALE
from tests.helpers import emf_documents, wait_for_record

MODEL = "openai/gpt-image-2"
BREAKER = "breaker#therouter#openai/gpt-image-2"
# Job seconds. Longer than the queue's retry (its delay is whole real seconds: 200 job seconds
# here), else a job that failed at home is retried after the cooldown, at home again.
COOLDOWN = 800


@pytest.fixture
def failing_over(stack: LocalStack) -> Iterator[None]:
    """ProviderFailover=openai/gpt-image-2, a breaker that opens at 2 failures in a row, as a
    deployment sets them (the submit function sends the jobs)."""
    settings = {
        "PROVIDER_FAILOVER": MODEL,
        "PROVIDER_FAILOVER_THRESHOLD": "2",
        "PROVIDER_FAILOVER_COOLDOWN_SECONDS": str(COOLDOWN),
    }
    with stack.function_settings("SubmitFunction", **settings):
        yield
    stack.provider.outage.clear()
    stack.client("dynamodb").delete_item(TableName=stack.outputs["JobsTableName"], Key={"pk": {"S": BREAKER}})


def submit(api: httpx.Client, prompt: str) -> str:
    body = {"prompt": prompt, "model": MODEL, "quality": "low", "size": "1024x1024"}
    answer = api.post("/v1/images/generations", params={"async": "true"}, json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def breaker(stack: LocalStack) -> dict[str, object]:
    table = stack.client("dynamodb")
    item = table.get_item(TableName=stack.outputs["JobsTableName"], Key={"pk": {"S": BREAKER}}, ConsistentRead=True)
    return item.get("Item") or {}


def test_with_therouter_down_new_jobs_move_to_openai_and_come_home_after(
    stack: LocalStack, api: httpx.Client, failing_over: None
) -> None:
    stack.provider.outage.add("therouter")
    refused_before = stack.provider.stats.outage_refusals
    jobs = [submit(api, f"A lantern, number {index}") for index in range(4)]
    records = [wait_for_record(stack, job_id) for job_id in jobs]

    for record in records:
        assert record.status is JobStatus.SUCCEEDED and record.provider == "openai", record.error
        assert record.cost is not None and len(record.outputs) == 1
    # the breaker opened after 2 failures in a row (a job already on its way may add one more)
    refused = stack.provider.stats.outage_refusals - refused_before
    assert 2 <= refused <= 4
    item = breaker(stack)
    assert "opened_at" in item
    switches = item["switches"]["L"]  # type: ignore[index]
    assert [switch["M"]["state"]["S"] for switch in switches] == ["open"]
    opened = [doc for doc in emf_documents(stack, "SubmitFunction") if doc.get("breaker") == "open"]
    assert len(opened) == 1 and opened[0]["ProviderFailover"] == [1.0] and opened[0]["Provider"] == "therouter"

    stack.provider.outage.clear()
    time.sleep(COOLDOWN * TEST_TIME_SCALE + 0.5)  # the cooldown, on the job clock
    home = wait_for_record(stack, submit(api, "A lantern, home again"))
    assert home.status is JobStatus.SUCCEEDED and home.provider == "therouter", home.error
    item = breaker(stack)
    assert "opened_at" not in item
    assert [switch["M"]["state"]["S"] for switch in item["switches"]["L"]] == ["open", "closed"]  # type: ignore[index]
