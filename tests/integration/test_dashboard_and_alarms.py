"""The operators' view in the template: the dashboard and alarms exist, and every metric of ours
they name is one the code emits."""

from __future__ import annotations

import contextlib
import io
import json
import re
from decimal import Decimal
from typing import Any

from imagejobs.adapters.observability import NAMESPACE, EmfMetrics
from imagejobs.domain.failover import Switch
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import Cost, GenerationRequest, JobError, JobStatus
from imagejobs_local import deploy
from imagejobs_local.stack import LocalStack

SEARCHED = re.compile(r"\{ImageJobs[^}]*\} MetricName=\\?\"(\w+)\\?\"")


def emitted() -> tuple[set[str], list[list[list[str]]]]:
    """What EmfMetrics writes for a job in every final state (names and dimension sets)."""
    names: set[str] = set()
    dimension_sets = []
    cases = [(status, None, None) for status in JobStatus if status.final] + [
        (JobStatus.FAILED, "submission_unknown", None),
        (JobStatus.SUCCEEDED, None, "2.37"),  # priced past its reservation by the provider's usage
    ]
    for status, code, excess in cases:
        record = JobRecord(
            id="img_x", tenant="t", model="openai/gpt-image-1", request_hash="h",
            request=GenerationRequest(prompt="p", quality="low"),
            created_at=1.0, updated_at=2.0, deadline_at=900.0, submitted_at=1.0, completed_at=40.0, status=status,
            cost=Cost(amount="0.0132", basis="per_image"),
            error=JobError(code=code, message="x") if code else None, cost_excess_usd=excess,
        )  # fmt: skip
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            EmfMetrics().job_settled(record, Decimal("0.0005"))
        document = json.loads(out.getvalue())
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            names |= {metric["Name"] for metric in directive["Metrics"]}
            dimension_sets.append(directive["Dimensions"])
    for state in ("open", "closed"):  # a failover breaker's switches
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            EmfMetrics().provider_switch(Switch(3.0, "therouter", "openai/gpt-image-2", state, 5))
        for directive in json.loads(out.getvalue())["_aws"]["CloudWatchMetrics"]:
            names |= {metric["Name"] for metric in directive["Metrics"]}
            dimension_sets.append(directive["Dimensions"])
    return names, dimension_sets


def named_in(dashboard_body: str, alarms: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set(SEARCHED.findall(dashboard_body))
    for widget in json.loads(dashboard_body)["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            if metric and metric[0] == NAMESPACE:
                names.add(metric[1])
    for alarm in alarms:
        if alarm.get("Namespace") == NAMESPACE:
            names.add(alarm["MetricName"])
        for query in alarm.get("Metrics") or []:
            metric = (query.get("MetricStat") or {}).get("Metric") or {}
            if metric.get("Namespace") == NAMESPACE:
                names.add(metric["MetricName"])
    return names


def test_every_metric_the_dashboard_and_alarms_name_is_emitted(stack: LocalStack) -> None:
    cloudwatch = stack.client("cloudwatch")
    dashboards = cloudwatch.list_dashboards()["DashboardEntries"]
    assert len(dashboards) == 1
    body = cloudwatch.get_dashboard(DashboardName=dashboards[0]["DashboardName"])["DashboardBody"]
    alarms = cloudwatch.describe_alarms()["MetricAlarms"]
    emitted_names, dimension_sets = emitted()

    named = named_in(body, alarms)
    assert named, "the dashboard and alarms name none of our metrics?"
    assert named <= emitted_names, f"named but never emitted: {named - emitted_names}"
    # the alarms add up across models and qualities through the [service] dimension set
    assert all(["service"] in sets for sets in dimension_sets)
    for name in ("JobSucceeded", "JobFailed", "JobCancelled", "JobExpired", "JobCostUSD", "GenerationSeconds"):
        assert name in named


def test_the_alarms_the_issue_asks_for_exist_with_their_parameters(stack: LocalStack) -> None:
    alarms = {
        a["AlarmName"].rsplit("-", 1)[-1]: a for a in stack.client("cloudwatch").describe_alarms()["MetricAlarms"]
    }
    assert set(alarms) == {
        "SubmitDeadLetterAlarm",
        "NotifyDeadLetterAlarm",
        "FailureRateAlarm",
        "DailySpendAlarm",
        "TimedOutExecutionsAlarm",
        "SubmissionUnknownAlarm",
        "CostOverReservationAlarm",  # issue #21: a job's cost never passes its reservation silently
        "ProviderFailoverAlarm",  # issue #25: every failover switch is alarmed
    }
    parameters = deploy.load_template()["Parameters"]
    assert alarms["FailureRateAlarm"]["Threshold"] == parameters["FailureRateAlarmThreshold"]["Default"]
    assert alarms["DailySpendAlarm"]["Threshold"] == parameters["DailySpendAlarmUSD"]["Default"]
    assert alarms["TimedOutExecutionsAlarm"]["Dimensions"][0]["Value"] == stack.state_machine_arn
    # no e-mail given: alarms without actions (the SNS topic is optional)
    assert all(not alarm["AlarmActions"] for alarm in alarms.values())
