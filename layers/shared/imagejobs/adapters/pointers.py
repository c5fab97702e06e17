"""DynamoDB adapter of the pointers: a name that leads to a job. A plain call's fingerprint points
at the job its retries join; an uploaded object at its job, found again when a redelivered event
can no longer read the object's metadata."""

from __future__ import annotations

from imagejobs.adapters.tenants import TableAdapter

POINTER_PREFIX = "ptr#"


class Pointers(TableAdapter):
    def pointed_job(self, name: str) -> str | None:
        """The job a name points at (None: none, or expired)."""
        item = self._table.get_item(Key={"pk": POINTER_PREFIX + name}, ConsistentRead=True).get("Item")
        return str(item["job_id"]) if item else None

    def point(self, name: str, job_id: str, ttl: int) -> None:
        """Point a name at a job (the last one wins); DynamoDB's TTL deletes it (`ttl`, epoch
        seconds), and readers check the job itself, so a late delete is harmless."""
        self._table.put_item(Item={"pk": POINTER_PREFIX + name, "job_id": job_id, "ttl": ttl})
