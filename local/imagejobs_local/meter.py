"""What AWS would bill the offline stack for, counted from the stack's own records (issue #22.1).

Nothing here is taken from moto's answers about cost (moto reports a constant ConsumedCapacity):
- Lambda: each invocation and its duration, from lambdas.py (compute in real seconds, sleeps in
  job seconds, as LambdaContext counts them), at the function's MemorySize; its log bytes.
- Every AWS API request a handler or the local event-source poller makes, by service and
  operation, from botocore itself (BaseClient._make_api_call: one per call).
- DynamoDB request units, computed as AWS documents them from the items' sizes: "DynamoDB item
  sizes and formats" (CapacityUnitCalculations.html) and "read and write operations"
  (read-write-operations.html): writes 1 unit per 1 KB of the larger of the item before and after,
  2 if transactional, plus the same again for every global secondary index the item is in (the
  template's GSIs project ALL); reads 1 unit per 4 KB, half if eventually consistent, 2 if
  transactional; a Query rounds the sum of the items it read up to 4 KB once.
- API Gateway requests, from the local gateway.
- Step Functions transitions, from each execution's history (transitions()).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_local = threading.local()
_lock = threading.Lock()
_active: Meter | None = None
_installed = False
_reader_keys: Any = None
_readers: dict[str, Any] = {}


def _reader(client: Any) -> Any:
    """A DynamoDB client of the meter's own, to the same endpoint as the client it counts."""
    endpoint = client.meta.endpoint_url
    if endpoint not in _readers:
        import boto3

        keys = _reader_keys.client_kwargs() if _reader_keys is not None else {}
        _readers[endpoint] = boto3.client(
            "dynamodb", region_name=client.meta.region_name, endpoint_url=endpoint, **keys
        )
    return _readers[endpoint]


@dataclass
class Meter:
    invocations: Counter[str] = field(default_factory=Counter)
    gb_seconds: dict[str, float] = field(default_factory=dict)
    log_bytes: Counter[str] = field(default_factory=Counter)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (service, operation)
    dynamodb_units: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "write": 0.0})
    api_requests: int = 0
    events_entries: int = 0

    def add_invocation(self, function: str, memory_mb: int, seconds: float, log_bytes: int) -> None:
        billed = math.ceil(max(seconds, 0.0) * 1000) / 1000  # Lambda bills duration by the ms
        with _lock:
            self.invocations[function] += 1
            self.gb_seconds[function] = self.gb_seconds.get(function, 0.0) + memory_mb / 1024 * billed
            self.log_bytes[function] += log_bytes


def current() -> Meter | None:
    return _active


@contextmanager
def metering(reader_keys: Any = None) -> Iterator[Meter]:
    """Counts what the stack does inside the block (one meter at a time per process). The meter
    reads items' sizes as reader_keys (iam.Keys: the stack's admin), never as the function
    whose call it counts: IAM stays enforced for every function while the meter runs."""
    global _active, _reader_keys
    install()
    meter = Meter()
    _reader_keys = reader_keys
    _readers.clear()
    _active = meter
    try:
        yield meter
    finally:
        _active = None


@contextmanager
def unmetered() -> Iterator[None]:
    """Requests the meter makes itself (reading an item's size, an execution's history)."""
    previous = getattr(_local, "off", False)
    _local.off = True
    try:
        yield
    finally:
        _local.off = previous


def api_request() -> None:
    meter = _active
    if meter is not None:
        with _lock:
            meter.api_requests += 1


# -- DynamoDB item sizes (CapacityUnitCalculations.html) -----------------------------------------
def _value_size(value: dict[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        digits = str(inner).lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(getattr(inner, "value", inner))  # bytes, or boto3's Binary around them
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: element}) for element in inner)
    if kind == "L":
        return 3 + sum(1 + _value_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + _value_size(element) for name, element in inner.items())
    return 0


_TYPES = {"S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"}


def _wire(item: dict[str, Any] | None) -> dict[str, Any]:
    """An item as DynamoDB's wire format has it. A boto3 resource's (Table) calls carry plain
    Python values through _make_api_call (its TypeSerializer and TypeDeserializer run in event
    handlers inside the call), a client's carry AttributeValues."""
    if not item:
        return {}
    if all(isinstance(v, dict) and len(v) == 1 and next(iter(v)) in _TYPES for v in item.values()):
        return item
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {name: serializer.serialize(value) for name, value in item.items()}


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + _value_size(value) for name, value in _wire(item).items())


def _write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def _read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return float(units) if consistent else units / 2


class _Tables:
    """Each table's key names and its global secondary indexes' keys, read once (unmetered)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[list[str], list[list[str]]]] = {}

    def shape(self, client: Any, table: str) -> tuple[list[str], list[list[str]]]:
        if table not in self._known:
            with unmetered():
                description = _reader(client).describe_table(TableName=table)["Table"]
            keys = [k["AttributeName"] for k in description["KeySchema"]]
            indexes = [
                [k["AttributeName"] for k in index["KeySchema"]]
                for index in description.get("GlobalSecondaryIndexes", [])
            ]
            self._known[table] = (keys, indexes)
        return self._known[table]


_tables = _Tables()


def _stored(client: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    with unmetered():
        item: dict[str, Any] | None = (
            _reader(client).get_item(TableName=table, Key=_wire(key), ConsistentRead=True).get("Item")
        )
    return item


def _write(client: Any, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None, factor: int) -> int:
    _, indexes = _tables.shape(client, table)
    size = max(item_size(before), item_size(after))
    units = _write_units(size) * factor
    for index_keys in indexes:  # an index holds the item when the item has the index's keys
        if any(all(name in (item or {}) for name in index_keys) for item in (before, after)):
            units += _write_units(size)
    return units


def _key_of(client: Any, table: str, item: dict[str, Any]) -> dict[str, Any]:
    keys, _ = _tables.shape(client, table)
    return {name: item[name] for name in keys if name in item}


_SINGLE_WRITES = {"PutItem": "Put", "UpdateItem": "Update", "DeleteItem": "Delete"}


def _planned_writes(
    client: Any, operation: str, params: dict[str, Any]
) -> list[tuple[str, dict[str, Any], dict[str, Any], Any, int]] | None:
    """(kind, spec, key, item before, factor) for each item a write call touches; None for reads.
    A transaction's writes count twice (read-write-operations.html)."""
    if operation in _SINGLE_WRITES:
        entries, factor = [{_SINGLE_WRITES[operation]: params}], 1
    elif operation == "TransactWriteItems":
        entries, factor = params.get("TransactItems", []), 2
    else:
        return None
    planned = []
    for entry in entries:
        (kind, spec), *_ = entry.items()
        key = spec.get("Key") or _key_of(client, spec["TableName"], spec.get("Item", {}))
        planned.append((kind, spec, key, _stored(client, spec["TableName"], key), factor))
    return planned


def _write_units_of(
    client: Any, planned: list[tuple[str, dict[str, Any], dict[str, Any], Any, int]], settled: bool
) -> int:
    """Units for the planned writes: refused (the items as they were) or settled (as they are now).
    A condition check is a transactional read of its item: 2 units."""
    units = 0
    for kind, spec, key, before, factor in planned:
        if kind == "ConditionCheck":
            units += 2
            continue
        after = before
        if settled:
            after = spec.get("Item") if kind == "Put" else None
            if kind == "Update":
                after = _stored(client, spec["TableName"], key)
        units += _write(client, spec["TableName"], before, after, factor)
    return units


def _dynamodb(client: Any, operation: str, params: dict[str, Any], call: Any, meter: Meter) -> Any:
    """One DynamoDB call, its read and write units counted from the items' sizes."""
    reads, writes = 0.0, 0
    try:
        writes_planned = _planned_writes(client, operation, params)
        if writes_planned is not None:
            writes = _write_units_of(client, writes_planned, settled=False)  # refused writes consume units too
            answer = call()
            writes = _write_units_of(client, writes_planned, settled=True)
            return answer
        answer = call()
        consistent = bool(params.get("ConsistentRead"))
        if operation == "GetItem":
            reads = _read_units(item_size(answer.get("Item")), consistent)
        elif operation in ("Query", "Scan"):
            # Units count what was read before any filter (ScannedCount items); the items
            # returned stand in for the sizes of those filtered out.
            items = answer.get("Items", [])
            size = sum(item_size(item) for item in items)
            scanned = answer.get("ScannedCount", len(items))
            if items and scanned > len(items):
                size = int(size * scanned / len(items))
            reads = _read_units(size, consistent and "IndexName" not in params)
        elif operation == "TransactGetItems":
            reads = sum(2.0 * max(1, math.ceil(item_size(r.get("Item")) / 4096)) for r in answer.get("Responses", []))
        elif operation == "BatchGetItem":
            reads = sum(
                _read_units(item_size(item), bool(params["RequestItems"][table_name].get("ConsistentRead")))
                for table_name, items in answer.get("Responses", {}).items()
                for item in items
            )
        return answer
    finally:
        with _lock:
            meter.dynamodb_units["read"] += reads
            meter.dynamodb_units["write"] += writes


def _make_api_call(original: Any) -> Any:
    def make_api_call(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        meter = _active
        if meter is None or getattr(_local, "off", False):
            return original(self, operation_name, api_params)
        service = self.meta.service_model.service_name
        with _lock:
            meter.requests[(service, operation_name)] += 1
            if service == "events" and operation_name == "PutEvents":
                meter.events_entries += len(api_params.get("Entries", []))
        if service != "dynamodb":
            return original(self, operation_name, api_params)
        return _dynamodb(self, operation_name, api_params, lambda: original(self, operation_name, api_params), meter)

    return make_api_call


def install() -> None:
    global _installed
    if _installed:
        return
    import botocore.client

    client_class: Any = botocore.client.BaseClient
    client_class._make_api_call = _make_api_call(client_class._make_api_call)
    _installed = True


def transitions(client: Any, execution_arn: str) -> int:
    """State transitions AWS bills for one Standard execution: "each time a step of your workflow
    is executed", retries included (Step Functions pricing page). From its history: every state
    entered, plus every task scheduled again after a failure in the same state (a retry)."""
    entered = retried = 0
    scheduled_in_state = 0
    with unmetered():
        pages = client.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        for page in pages:
            for event in page["events"]:
                kind = event["type"]
                if kind.endswith("StateEntered"):
                    entered += 1
                    scheduled_in_state = 0
                elif kind in ("TaskScheduled", "LambdaFunctionScheduled"):
                    scheduled_in_state += 1
                    retried += scheduled_in_state > 1
    return entered + retried
