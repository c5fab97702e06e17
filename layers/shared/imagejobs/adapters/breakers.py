"""DynamoDB adapter of the failover breakers (imagejobs.domain.failover): one item per provider
and model, written only when it changes (a healthy provider's successes write nothing), each write
conditional on the version it was read at."""

from __future__ import annotations

import dataclasses
from typing import Any

from imagejobs.adapters.dynamo import from_dynamo
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
        values: dict[str, Any] = {
            ":f": breaker.failures,
            ":s": [dataclasses.asdict(switch) for switch in breaker.switches],
        }
        sets, removes = "failures = :f, switches = :s", ""
        if breaker.opened_at is None:
            removes = "opened_at"
        else:
            sets += ", opened_at = :o"
            values[":o"] = breaker.opened_at
        return self._write_versioned(BREAKER_PREFIX + name, sets, values, breaker.version, removes)
