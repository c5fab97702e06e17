"""DynamoDB adapter of the admission gate (imagejobs.domain.admission): one item per gate, its
holders, waiters and tenants' recent use as maps, every write conditional on the version it was
read at, so two functions deciding at once never both take the last place."""

from __future__ import annotations

from typing import Any

from imagejobs.adapters.dynamo import from_dynamo
from imagejobs.adapters.tenants import TableAdapter
from imagejobs.domain.admission import Gate, Holder, Used, Waiter

GATE_PREFIX = "gate#"


def _gate(item: dict[str, Any]) -> Gate:
    return Gate(
        holders={job: Holder(str(h["t"]), float(h["s"])) for job, h in (item.get("holders") or {}).items()},
        waiters={
            job: Waiter(str(w["t"]), int(w["c"]), float(w["s"]), int(w.get("w", 1)))
            for job, w in (item.get("waiters") or {}).items()
        },
        usage={tenant: Used(float(u["a"]), float(u["t"])) for tenant, u in (item.get("used") or {}).items()},
        cut_limit=int(item["cut_limit"]) if item.get("cut_limit") is not None else None,
        cut_at=float(item["cut_at"]) if item.get("cut_at") is not None else None,
        mean_seconds=float(item.get("mean_seconds", Gate.mean_seconds)),
        version=int(item.get("version", 0)),
    )


class Gates(TableAdapter):
    def gate(self, name: str) -> Gate:
        item = self._table.get_item(Key={"pk": GATE_PREFIX + name}, ConsistentRead=True).get("Item")
        return _gate(from_dynamo(item)) if item else Gate()

    def write_gate(self, name: str, gate: Gate) -> bool:
        """Write the gate as decided from the state read at `gate.version`; False when another
        writer came first (read again and decide again)."""
        values = {
            ":h": {job: {"t": h.tenant, "s": h.since} for job, h in gate.holders.items()},
            ":w": {job: {"t": w.tenant, "c": w.klass, "s": w.since, "w": w.weight} for job, w in gate.waiters.items()},
            # "used": "usage" is one of DynamoDB's reserved words
            ":u": {tenant: {"a": used.amount, "t": used.at} for tenant, used in gate.usage.items()},
            ":m": gate.mean_seconds,
        }
        sets = "holders = :h, waiters = :w, used = :u, mean_seconds = :m"
        if gate.cut_limit is not None:
            sets += ", cut_limit = :cl, cut_at = :ca"
            values |= {":cl": gate.cut_limit, ":ca": gate.cut_at}
        return self._write_versioned(GATE_PREFIX + name, sets, values, gate.version)
