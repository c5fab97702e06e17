"""DynamoDB adapter of what the schedulers share across functions: the provider's rate cap (turns
claimed one at a time) and the latency histograms the poll schedule learns from."""

from __future__ import annotations

from decimal import Decimal

from botocore.exceptions import ClientError

from imagejobs.adapters.dynamo import is_condition_failure, to_dynamo
from imagejobs.adapters.tenants import TableAdapter
from imagejobs.domain import admission, polling

RATE_PREFIX = "rate#"
LATENCY_PREFIX = "latency#"


class Schedules(TableAdapter):
    # -- provider rate cap -----------------------------------------------------------------------
    def take_turn(self, name: str, interval_seconds: float, now: float) -> float:
        """A shared schedule of evenly spaced turns (at most one per `interval_seconds`, times the
        stretch a provider 429 put on it), claimed with a conditional write so concurrent submitters
        never share a turn. Returns 0 when the caller got the turn, else the seconds until the next
        free one."""
        key = {"pk": RATE_PREFIX + name}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        next_at = float(str(item["next_at"])) if item else 0.0
        stretch = float(str(item.get("stretch", 1))) if item else 1.0
        if now < next_at:
            return next_at - now
        condition = "attribute_not_exists(pk) OR next_at = :seen"
        spacing = interval_seconds * max(1.0, stretch)
        try:
            self._table.put_item(
                Item=to_dynamo({**key, "next_at": max(now, next_at) + spacing, "stretch": admission.relaxed(stretch)}),
                ConditionExpression=condition,
                ExpressionAttributeValues=to_dynamo({":seen": next_at}),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return spacing  # someone else took this turn
            raise
        return 0.0

    def slow_down(self, name: str, now: float, hold_seconds: float) -> float:
        """The provider answered 429: the turns' spacing doubles (admission.stretched) and none is
        given before `hold_seconds` from now (its Retry-After). Returns the stretch now in force; a
        writer that came between is left to have its turn (this 429 counts once at most)."""
        key = {"pk": RATE_PREFIX + name}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        next_at = float(str(item["next_at"])) if item else 0.0
        stretch = admission.stretched(float(str(item.get("stretch", 1))) if item else 1.0)
        try:
            self._table.put_item(
                Item=to_dynamo({**key, "next_at": max(next_at, now + hold_seconds), "stretch": stretch}),
                ConditionExpression="attribute_not_exists(pk) OR next_at = :seen",
                ExpressionAttributeValues=to_dynamo({":seen": next_at}),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
        return stretch

    # -- observed latencies (the poll schedule learns from them) --------------------------------
    def latency_counts(self, kind: str) -> dict[int, float]:
        """The rolling latency histogram of one kind of job (model#quality#size): bucket -> jobs."""
        item = self._table.get_item(Key={"pk": LATENCY_PREFIX + kind}).get("Item") or {}
        return {
            int(name[1:]): float(str(value)) for name, value in item.items() if name[:1] == "b" and name[1:].isdigit()
        }

    def record_latency(self, kind: str, seconds: float) -> None:
        """Count one finished job in its kind's histogram; past polling.DECAY_AT jobs every count
        is halved, so old history fades (a conditional write: one halving per crossing)."""
        key = {"pk": LATENCY_PREFIX + kind}
        bucket = f"b{polling.bucket_of(seconds)}"
        result = self._table.update_item(
            Key=key,
            UpdateExpression=f"ADD {bucket} :one, n :one",
            ExpressionAttributeValues={":one": 1},
            ReturnValues="ALL_NEW",
        )
        item = result["Attributes"]
        total = int(str(item.get("n", 0)))
        if total < polling.DECAY_AT:
            return
        halved = {name: (Decimal(str(value)) / 2) for name, value in item.items() if name[:1] == "b"}
        sets = ", ".join(f"{name} = :{name}" for name in halved)
        try:
            self._table.update_item(
                Key=key,
                UpdateExpression=f"SET {sets}, n = :half",
                ConditionExpression="n = :seen",
                ExpressionAttributeValues={
                    **{f":{name}": value for name, value in halved.items()},
                    ":half": total // 2,
                    ":seen": total,
                },
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
