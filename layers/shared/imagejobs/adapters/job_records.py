"""DynamoDB adapter of the job records: one item per job, every state change a conditional write
(a final job never changes), and a job's reservation or charge written in the same transaction as
its record."""

from __future__ import annotations

import heapq
import itertools
import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from imagejobs.adapters.dynamo import cancellation_codes, from_dynamo, is_condition_failure, to_dynamo
from imagejobs.adapters.tenants import TableAdapter, spend_key
from imagejobs.domain import budget
from imagejobs.domain.errors import StaleTransition
from imagejobs.domain.jobs import JobRecord, predecessors
from imagejobs.domain.models import JobStatus, WebhookState

JOB_PREFIX = "job#"
LIST_INDEX = "by-tenant"  # GSI: list_pk = tenant, list_sk = "<created_at>#<job id>", job items only
OPEN_INDEX = "open-jobs"  # sparse GSI: open_pk = "open#<shard>" while a job is not final (the sweeper reads it)
# The index's key is spread over this many values, from the job id: DynamoDB caps one partition at
# 1,000 write units/s, a global secondary index's too, and throttles the table's writes when an
# index's partition is throttled (Amazon DynamoDB Developer Guide, "Understanding DynamoDB warm
# throughput in different scenarios" and "Key range throughput exceeded (hot partitions)"). Every
# write to an open job writes the index (it projects every attribute), so one key would cap the
# stack at about 2,000 jobs a minute (docs/fair-share.md, "How far it goes").
OPEN_SHARDS = 16
LEGACY_OPEN_KEY = "open"  # what records written before the shards carry until they end


def open_key(job_id: str) -> str:
    return _shard_key(zlib.crc32(job_id.encode()) % OPEN_SHARDS)


def _shard_key(shard: int) -> str:
    return f"open#{shard}"


def _record(item: dict[str, Any]) -> JobRecord:
    for name in ("pk", "list_pk", "list_sk", "open_pk", "open_sk"):
        item.pop(name, None)
    return JobRecord.model_validate(item)


def _list_sort_key(record: JobRecord) -> str:
    return f"{record.created_at:020.6f}#{record.id}"


class JobRecords(TableAdapter):
    def create(self, record: JobRecord, reservation: budget.Reservation | None = None) -> bool:
        """Write a new job; False if a job with this id exists already. With a reservation, the
        job and its reserved cost are written in one transaction that keeps the tenant's day and
        month under their caps (BudgetExceeded otherwise, and nothing is written)."""
        item = to_dynamo(record.model_dump(mode="json"))
        item["pk"] = JOB_PREFIX + record.id
        item["list_pk"] = record.tenant
        item["list_sk"] = _list_sort_key(record)
        if not record.status.final:
            item["open_pk"] = open_key(record.id)
            item["open_sk"] = _list_sort_key(record)
        if reservation is None:
            try:
                self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
            except ClientError as exc:
                if is_condition_failure(exc):
                    return False
                raise
            return True
        if any(cap is not None and reservation.amount > cap for _, _, cap in reservation.limits()):
            # A job dearer than a whole cap never fits; say so with what was spent, not $0.
            budget.check_fits(reservation, {p: self.spent(reservation.tenant, p) for _, p, _ in reservation.limits()})
        put = {
            "Put": {
                "TableName": self._table.name,
                "Item": item,  # the table's own client serializes Python values, in transactions too
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        spends = [
            self._spend_update(reservation.tenant, period, reservation.amount, cap, record.created_at)
            for _, period, cap in reservation.limits()
        ]
        for _attempt in range(3):
            try:
                items: list[Any] = [put, *spends]
                self._table.meta.client.transact_write_items(TransactItems=items)
                return True
            except ClientError as exc:
                codes = cancellation_codes(exc)
                if codes is None:
                    raise
                if codes and codes[0] == "ConditionalCheckFailed":
                    return False
            # A cap refused it (or a concurrent transaction conflicted): say which, or try again
            # if spending moved under us (a refund between the write and this read).
            spent = {period: self.spent(reservation.tenant, period) for _, period, _ in reservation.limits()}
            budget.check_fits(reservation, spent)
        raise budget.BudgetExceeded(
            reservation.tenant,
            "daily",
            reservation.caps.daily_usd or Decimal(0),
            spent[reservation.day],
            reservation.amount,
        )

    def _spend_update(
        self, tenant: str, period: str, amount: Decimal, cap: Decimal | None, at: float
    ) -> dict[str, Any]:
        values: dict[str, Any] = {
            ":zero": Decimal(0),
            ":amount": amount,
            ":tenant": tenant,
            ":ttl": int(at) + budget.SPEND_TTL_DAYS * 86_400,
        }
        update: dict[str, Any] = {
            "TableName": self._table.name,
            "Key": {"pk": spend_key(tenant, period)},
            "UpdateExpression": "SET usd = if_not_exists(usd, :zero) + :amount, tenant = :tenant, #ttl = :ttl",
            "ExpressionAttributeNames": {"#ttl": "ttl"},
        }
        if cap is not None:
            update["ConditionExpression"] = "attribute_not_exists(usd) OR usd <= :room"
            values[":room"] = cap - amount
        update["ExpressionAttributeValues"] = to_dynamo(values)
        return {"Update": update}

    def get(self, job_id: str) -> JobRecord | None:
        item = self._table.get_item(Key={"pk": JOB_PREFIX + job_id}, ConsistentRead=True).get("Item")
        if item is None:
            return None
        item = from_dynamo(item)
        return _record(item)

    def record_submission(
        self, job_id: str, provider_job_id: str, at: float, poll_window: dict[str, float] | None = None
    ) -> None:
        """Remember the provider's job id (and the poll window chosen for the job, first one wins);
        a second, different id for the same job is refused."""
        update = "SET provider_job_id = :pid, submitted_at = if_not_exists(submitted_at, :at), updated_at = :at"
        values: dict[str, Any] = {":pid": provider_job_id, ":at": at, ":queued": "queued", ":running": "in_progress"}
        if poll_window is not None:
            update += ", poll_window = if_not_exists(poll_window, :window)"
            values[":window"] = poll_window
        self._update(
            job_id,
            update,
            "(attribute_not_exists(provider_job_id) OR provider_job_id = :pid) AND #status IN (:queued, :running)",
            values,
        )

    def mark_submitting(self, job_id: str, at: float, previous: float | None, provider: str) -> None:
        """Record that a submission is about to be sent, and to which provider; refused
        (StaleTransition) if another submitter marked it since `previous` was read, or the job
        already has a provider id."""
        condition = "attribute_not_exists(provider_job_id) AND #status IN (:queued, :running) AND "
        if previous is not None:
            condition += "submission_started_at = :previous"
        else:
            condition += "attribute_not_exists(submission_started_at)"
        values: dict[str, Any] = {":at": at, ":to": provider, ":queued": "queued", ":running": "in_progress"}
        if previous is not None:
            values[":previous"] = previous
        update = "SET submission_started_at = :at, submitting_to = :to, updated_at = :at"
        self._update(job_id, update, condition, values)

    def clear_submitting(self, job_id: str, at: float) -> None:
        """The provider definitely did not take the submission (it answered an error, or the
        connection was refused): a later attempt is a clean first one."""
        self._update(
            job_id,
            "REMOVE submission_started_at, submitting_to SET updated_at = :at",
            "attribute_not_exists(provider_job_id)",
            {":at": at},
        )

    def record_execution(self, job_id: str, execution_arn: str, at: float) -> None:
        self._update(
            job_id,
            "SET execution_arn = :arn, updated_at = :at",
            "attribute_exists(pk)",
            {":arn": execution_arn, ":at": at},
        )

    def record_poll(
        self, job_id: str, provider_status: JobStatus, at: float, checks: int = 1, held: float = 0.0
    ) -> JobRecord:
        """Count one status call (its provider checks and the time it held); move queued ->
        in_progress when the provider says so."""
        names = {"#status": "status"}
        values: dict[str, Any] = {
            ":one": 1,
            ":checks": checks,
            ":held": round(held, 3),
            ":at": at,
            ":queued": "queued",
            ":running": "in_progress",
        }
        counts = " ADD polls :one, provider_checks :checks, held_seconds :held"
        update = "SET updated_at = :at" + counts
        if provider_status is JobStatus.IN_PROGRESS:
            update = "SET updated_at = :at, #status = :running" + counts
        try:
            result = self._table.update_item(
                Key={"pk": JOB_PREFIX + job_id},
                UpdateExpression=update,
                ConditionExpression="#status IN (:queued, :running)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_dynamo(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise StaleTransition(f"job {job_id} is already final") from exc
            raise
        return _record(from_dynamo(result["Attributes"]))

    def settle(
        self, job_id: str, status: JobStatus, fields: dict[str, Any], charge: budget.Charge | None = None
    ) -> bool:
        """Move a job to a final status with its result fields. True only for the one writer that
        made the change: everything that must happen once per job (metrics, events, the budget
        charge, which is written in the same transaction) hangs on it."""
        update = self._final_update(job_id, status, fields)
        if charge is None or charge.delta == 0:
            try:
                self._table.update_item(**update)
            except ClientError as exc:
                if is_condition_failure(exc):
                    return False
                raise
            return True
        job_update = {**update, "TableName": self._table.name}
        spends = [
            {
                "Update": {
                    "TableName": self._table.name,
                    "Key": {"pk": spend_key(charge.tenant, period)},
                    "UpdateExpression": "ADD usd :delta",
                    "ExpressionAttributeValues": {":delta": charge.delta},
                }
            }
            for period in (charge.day, charge.month)
        ]
        try:
            items: list[Any] = [{"Update": job_update}, *spends]
            self._table.meta.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            codes = cancellation_codes(exc)
            if codes and codes[0] == "ConditionalCheckFailed":
                return False
            raise
        return True

    @staticmethod
    def _final_update(job_id: str, status: JobStatus, fields: dict[str, Any]) -> dict[str, Any]:
        """The conditional write that ends a job: from a status `status` may follow, with its fields
        (a None field is removed), and out of the open-jobs index."""
        allowed = predecessors(status)
        values: dict[str, Any] = {":new": status.value}
        placeholders = []
        for index, previous in enumerate(allowed):
            values[f":p{index}"] = previous.value
            placeholders.append(f":p{index}")
        sets = []
        removes = ["open_pk", "open_sk"]
        names = {"#status": "status"}
        for index, (name, value) in enumerate(fields.items()):
            names[f"#f{index}"] = name
            if value is None:  # absent (e.g. no usage from the provider): no value to SET
                removes.append(f"#f{index}")
                continue
            values[f":f{index}"] = value
            sets.append(f"#f{index} = :f{index}")
        # Status last: DynamoDB applies an update atomically, moto one action at a time, and a
        # reader that sees the final status must also see what came with it.
        sets.append("#status = :new")
        return {
            "Key": {"pk": JOB_PREFIX + job_id},
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes),
            "ConditionExpression": f"#status IN ({', '.join(placeholders)})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_dynamo(values),
        }

    def _update(self, job_id: str, update: str, condition: str, values: dict[str, Any]) -> None:
        names = {"#status": "status"} if "#status" in condition or "#status" in update else None
        kwargs: dict[str, Any] = {
            "Key": {"pk": JOB_PREFIX + job_id},
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": to_dynamo(values),
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            self._table.update_item(**kwargs)
        except ClientError as exc:
            if is_condition_failure(exc):
                raise StaleTransition(f"job {job_id}: {update} refused") from exc
            raise

    def list_jobs(
        self, tenant: str, *, limit: int, after: JobRecord | None = None, status: JobStatus | None = None
    ) -> tuple[list[JobRecord], bool]:
        """A tenant's jobs, newest first, `limit` at most, starting after the job `after`.
        Returns (jobs, has_more)."""
        found: list[JobRecord] = []
        start: dict[str, Any] | None = None
        if after is not None:
            start = {"pk": JOB_PREFIX + after.id, "list_pk": tenant, "list_sk": _list_sort_key(after)}
        while True:
            kwargs: dict[str, Any] = {
                "IndexName": LIST_INDEX,
                "KeyConditionExpression": "list_pk = :tenant",
                "ExpressionAttributeValues": {":tenant": tenant},
                "ScanIndexForward": False,
                "Limit": limit + 1 - len(found),
            }
            if status is not None:
                kwargs["FilterExpression"] = "#status = :status"
                kwargs["ExpressionAttributeNames"] = {"#status": "status"}
                kwargs["ExpressionAttributeValues"][":status"] = status.value
            if start:
                kwargs["ExclusiveStartKey"] = start
            page = self._table.query(**kwargs)
            for item in page.get("Items", []):
                found.append(_record(from_dynamo(item)))
            start = page.get("LastEvaluatedKey")
            if len(found) > limit or not start:
                break
        return found[:limit], len(found) > limit

    def open_jobs(self, limit: int = 500) -> list[JobRecord]:
        """Jobs not yet final, oldest first (what the sweeper looks after): each shard's oldest, merged,
        read a page at a time, so a sweep reads about `limit` items and one page per shard."""
        keys = (LEGACY_OPEN_KEY, *(_shard_key(shard) for shard in range(OPEN_SHARDS)))
        page = max(10, limit // OPEN_SHARDS)
        merged = heapq.merge(*(self._open_in(key, page) for key in keys), key=lambda pair: pair[0])
        return [record for _, record in itertools.islice(merged, limit)]

    def _open_in(self, key: str, page: int) -> Iterator[tuple[str, JobRecord]]:
        kwargs: dict[str, Any] = {
            "IndexName": OPEN_INDEX,
            "KeyConditionExpression": "open_pk = :open",
            "ExpressionAttributeValues": {":open": key},
            "Limit": page,
        }
        while True:
            answer = self._table.query(**kwargs)
            for item in answer.get("Items", []):
                sort_key = str(item.get("open_sk", ""))
                yield sort_key, _record(from_dynamo(item))
            if "LastEvaluatedKey" not in answer:
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def record_resume(self, job_id: str, execution_arn: str, at: float) -> None:
        self._update(
            job_id,
            "SET execution_arn = :arn, updated_at = :at ADD resumes :one",
            "attribute_exists(pk)",
            {":arn": execution_arn, ":at": at, ":one": 1},
        )

    def record_event_published(self, job_id: str, at: float) -> None:
        self._update(job_id, "SET event_published_at = :at", "attribute_exists(pk)", {":at": at})

    def record_webhook_attempt(self, job_id: str, attempt: dict[str, Any], state: WebhookState) -> None:
        self._update(
            job_id,
            "SET webhook_attempts = list_append(if_not_exists(webhook_attempts, :none), :attempt), "
            "webhook_state = :state",
            "attribute_exists(pk)",
            {":none": [], ":attempt": [attempt], ":state": state},
        )

    def extend_caller_wait(self, job_id: str, until: float) -> None:
        """A caller waits on this open job until `until` (job clock), if that is later than any
        other caller's; a job that ended meanwhile is left alone (StaleTransition)."""
        self._update(
            job_id,
            "SET caller_waits_until = :until",
            "#status IN (:queued, :running) AND "
            "(attribute_not_exists(caller_waits_until) OR caller_waits_until < :until)",
            {":until": until, ":queued": "queued", ":running": "in_progress"},
        )
