"""Logger and metrics, made in one place.

Metrics use EphemeralMetrics (a fresh metric set per job) rather than the shared `Metrics`
singleton store: a job's metrics are flushed right where the job settles, and nothing another
invocation added can leak into them.
"""

from __future__ import annotations

import json
from decimal import Decimal

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from imagejobs.adapters.logs import SERVICE, make_logger
from imagejobs.domain import pricing
from imagejobs.domain.failover import Switch
from imagejobs.domain.jobs import JobRecord
from imagejobs.domain.models import JobStatus

__all__ = ["NAMESPACE", "EmfMetrics", "make_logger"]

NAMESPACE = "ImageJobs"


# Failure reasons counted apart, for an alarm or a dashboard line of their own.
ERROR_METRICS = {"submission_unknown": "SubmissionUnknown", "invalid_rules": "UploadRulesInvalid"}


class EmfMetrics:
    """Writes one EMF document per settled job (CloudWatch turns it into metrics), with two
    dimension sets: [model, quality, service] for the dashboard and [service] for the alarms."""

    def job_settled(self, record: JobRecord, orchestration_cost_usd: Decimal) -> None:
        metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        # the catalog's name: one dashboard line per model, however the client spelled it
        metrics.add_dimension(name="model", value=_catalog_name(record.model))
        metrics.add_dimension(name="quality", value=record.quality)
        metrics.add_metadata(key="job_id", value=record.id)
        metrics.add_metadata(key="tenant", value=record.tenant)
        metrics.add_metadata(key="final_status", value=record.status.value)
        if record.status is JobStatus.SUCCEEDED:
            metrics.add_metric(name="JobSucceeded", unit=MetricUnit.Count, value=1)
            metrics.add_metric(name="ImagesGenerated", unit=MetricUnit.Count, value=len(record.outputs))
            if record.submitted_at and record.completed_at:
                seconds = max(0.0, record.completed_at - record.submitted_at)
                metrics.add_metric(name="GenerationSeconds", unit=MetricUnit.Seconds, value=seconds)
        else:
            # Every job that did not succeed; cancelled and expired ones are also counted apart.
            metrics.add_metric(name="JobFailed", unit=MetricUnit.Count, value=1)
            if record.status is JobStatus.CANCELLED:
                metrics.add_metric(name="JobCancelled", unit=MetricUnit.Count, value=1)
            elif record.status is JobStatus.EXPIRED:
                metrics.add_metric(name="JobExpired", unit=MetricUnit.Count, value=1)
            if record.error is not None and record.error.code in ERROR_METRICS:
                metrics.add_metric(name=ERROR_METRICS[record.error.code], unit=MetricUnit.Count, value=1)
        if record.cost is not None:
            metrics.add_metric(name="JobCostUSD", unit=MetricUnit.NoUnit, value=float(record.cost.amount))
        if record.cost_excess_usd:  # the provider priced it past its reservation: charged the reservation
            metrics.add_metric(name="CostOverReservation", unit=MetricUnit.Count, value=1)
            metrics.add_metric(name="CostExcessUSD", unit=MetricUnit.NoUnit, value=float(record.cost_excess_usd))
        metrics.add_metric(name="StatusPolls", unit=MetricUnit.Count, value=record.polls)
        metrics.add_metric(name="OrchestrationCostUSD", unit=MetricUnit.NoUnit, value=float(orchestration_cost_usd))
        document = metrics.serialize_metric_set()
        # The same values also under [service] alone: what the alarms watch (an alarm cannot
        # add up a metric across every model and quality).
        for directive in document["_aws"]["CloudWatchMetrics"]:
            directive["Dimensions"].append(["service"])
        print(json.dumps(document, separators=(",", ":")), flush=True)
        metrics.clear_metrics()

    def gate_state(self, limit: int, running: int, waiting: int, *, model: str | None = None) -> None:
        """The provider's admission gate after a decision: the limit in force (a 429 cuts it), the
        jobs running upstream and the jobs in line; a model's own gate with its Model dimension."""
        metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        if model is not None:
            metrics.add_dimension(name="Model", value=_catalog_name(model))
        metrics.add_metric(name="ProviderConcurrencyLimit", unit=MetricUnit.Count, value=limit)
        metrics.add_metric(name="ProviderRunning", unit=MetricUnit.Count, value=running)
        metrics.add_metric(name="ProviderWaiting", unit=MetricUnit.Count, value=waiting)
        print(json.dumps(metrics.serialize_metric_set(), separators=(",", ":")), flush=True)
        metrics.clear_metrics()

    def rate_state(self, submits_per_minute: float, *, model: str | None = None) -> None:
        """The provider rate cap in force after a 429 stretched it (ProviderSubmitsPerMinute at most,
        or the model's own from ProviderModelLimits, with its Model dimension)."""
        metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        if model is not None:
            metrics.add_dimension(name="Model", value=_catalog_name(model))
        metrics.add_metric(name="ProviderSubmitsPerMinuteInForce", unit=MetricUnit.Count, value=submits_per_minute)
        print(json.dumps(metrics.serialize_metric_set(), separators=(",", ":")), flush=True)
        metrics.clear_metrics()

    def provider_switch(self, switch: Switch) -> None:
        """A failover breaker opened (the model's new jobs go to the other provider) or closed
        (back home): ProviderFailover or ProviderFailback, 1, under [Provider, Model] and [service]
        (the alarm's), with the switch itself as the document's metadata (its log line)."""
        metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
        metrics.add_dimension(name="Provider", value=switch.provider)
        metrics.add_dimension(name="Model", value=_catalog_name(switch.model))
        name = "ProviderFailover" if switch.state == "open" else "ProviderFailback"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        metrics.add_metadata(key="breaker", value=switch.state)
        metrics.add_metadata(key="failures_in_a_row", value=switch.failures)
        metrics.add_metadata(key="switched_at", value=switch.at)
        document = metrics.serialize_metric_set()
        for directive in document["_aws"]["CloudWatchMetrics"]:
            directive["Dimensions"].append(["service"])
        print(json.dumps(document, separators=(",", ":")), flush=True)
        metrics.clear_metrics()


def _catalog_name(model: str) -> str:
    try:
        return pricing.catalog_name(model)
    except pricing.UnknownModel:
        return model
