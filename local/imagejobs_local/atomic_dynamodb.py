"""Make each moto DynamoDB request atomic, as each DynamoDB request is.

moto's DynamoDB has no locking: two conditional writes racing from different threads can both
succeed, an update's actions are applied one at a time while another thread reads the item, and a
read can fail with "dictionary changed size during iteration". Our guarantees (one settle, one
turn per interval) rest on DynamoDB's atomic single-request semantics, so the offline runtime
serializes DynamoDB requests. They never wait on anything else, so the lock cannot deadlock.

Transactions: moto deep-copies every table a transaction touches before running it (to roll back),
which costs time in proportion to the table: with budgets every job is created and settled in a
transaction, and offline throughput fell as the jobs table grew. Here a transaction snapshots only
the items it names and puts those back if it is cancelled (same outcome; requests are serialized).
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.RLock()
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    def atomic_call_action(self: Any) -> Any:
        with _lock:
            return original(self)

    DynamoHandler.call_action = atomic_call_action  # type: ignore[method-assign]
    _install_item_level_rollback()
    _installed = True


class _NoTableCopies:
    """moto.dynamodb.models' `copy` module, except that whole tables are not deep-copied."""

    def __init__(self, real: Any, table_type: type) -> None:
        self._real, self._table_type = real, table_type

    def deepcopy(self, value: Any, *args: Any) -> Any:
        return value if isinstance(value, self._table_type) else self._real.deepcopy(value, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _install_item_level_rollback() -> None:
    import copy

    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    original = models.DynamoDBBackend.transact_write_items
    models.copy = _NoTableCopies(copy, Table)  # type: ignore[assignment]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        snapshots = []
        for item in transact_items:
            op_type, op = next(iter(item.items()))
            try:
                table = self.get_table(op["TableName"])
                if op_type == "Put":
                    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = op["Item"][table.range_key_attr]
                else:
                    key = op["Key"]
                existing = self.get_item(op["TableName"], key)
            except Exception:  # let moto report a malformed request its own way
                continue
            snapshots.append((op["TableName"], key, existing.to_json()["Attributes"] if existing else None))
        try:
            original(self, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(snapshots):
                if attributes is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, copy.deepcopy(attributes), overwrite=True)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
