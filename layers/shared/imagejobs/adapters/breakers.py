"""DynamoDB adapter of the failover breakers (imagejobs.domain.failover): one item per provider
and model, written only when it changes (a healthy provider's successes write nothing), each write
conditional on the version it was read at."""

from __future__ import annotations

import dataclasses

from botocore.exceptions import ClientError

from imagejobs.adapters.dynamo import from_dynamo, is_condition_failure, to_dynamo
from imagejobs.adapters.tenants import TableAdapter
from imagejobs.domain.failover import Breaker, Switch

BREAKER_PREFIX = "breaker#"


class Breakers(TableAdapter):
    def breaker(self, name: str) -> Breaker:
        item = self._table.get_item(Key={"pk": BREAKER_PREFIX + name}, ConsistentRead=True).get("Item")
        if not item:
            return Breaker()
        item = from_dynamo(item)
        opened = item.get("opened_at")
        return Breaker(
            failures=int(item.get("failures", 0)),
            opened_at=float(opened) if opened is not None else None,
            switches=tuple(Switch(**switch) for switch in item.get("switches") or []),
            version=int(item.get("version", 0)),
        )

    def write_breaker(self, name: str, breaker: Breaker) -> bool:
        """Write the breaker as decided from the state read at `breaker.version`; False when
        another writer came first (read again and decide again)."""
        values = {
            ":f": breaker.failures,
            ":o": breaker.opened_at,
            ":s": [dataclasses.asdict(switch) for switch in breaker.switches],
            ":seen": breaker.version,
            ":next": breaker.version + 1,
        }
        sets = "failures = :f, switches = :s, version = :next"
        update = f"SET {sets}, opened_at = :o" if breaker.opened_at is not None else f"SET {sets} REMOVE opened_at"
        if breaker.opened_at is None:
            del values[":o"]
        try:
            self._table.update_item(
                Key={"pk": BREAKER_PREFIX + name},
                UpdateExpression=update,
                ConditionExpression="attribute_not_exists(version) OR version = :seen",
                ExpressionAttributeValues=to_dynamo(values),
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True
