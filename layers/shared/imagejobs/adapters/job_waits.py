"""DynamoDB adapter of a job's wait for its provider's word (OpenAI direct's webhooks): the task
token of the poll loop's wait, and the provider's event once one came. Each write returns the job
as it is after it, so of a webhook and a wait that meet, at least one sees the other: the wait
that starts after the event ends at once, the event that comes during the wait ends it."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from imagejobs.adapters.dynamo import from_dynamo, is_condition_failure, to_dynamo
from imagejobs.adapters.job_records import JOB_PREFIX, _record
from imagejobs.adapters.tenants import TableAdapter
from imagejobs.domain.jobs import JobRecord

MAX_TASK_TOKEN = 2048  # SendTaskSuccess's taskToken: 1 to 2048 characters (its API reference)


class JobWaits(TableAdapter):
    def record_task_token(self, job_id: str, token: str, at: float) -> JobRecord | None:
        """The token of the loop's wait (a new wait replaces an old one's, which has ended)."""
        if not 0 < len(token) <= MAX_TASK_TOKEN:
            raise ValueError("a task token is 1 to 2048 characters")
        update = "SET task_token = :token, updated_at = :at ADD waits :one"
        return self._wait_update(job_id, update, {":token": token, ":at": at, ":one": 1})

    def record_provider_event(self, job_id: str, event: str, at: float) -> JobRecord | None:
        """The provider said the job ended (how: completed, failed, ...); a duplicate only counts."""
        update = (
            "SET provider_event = if_not_exists(provider_event, :event), "
            "provider_event_at = if_not_exists(provider_event_at, :at) ADD provider_events :one"
        )
        return self._wait_update(job_id, update, {":event": event[:32], ":at": at, ":one": 1})

    def _wait_update(self, job_id: str, update: str, values: dict[str, Any]) -> JobRecord | None:
        try:
            result = self._table.update_item(
                Key={"pk": JOB_PREFIX + job_id},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=to_dynamo(values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return _record(from_dynamo(result["Attributes"]))
