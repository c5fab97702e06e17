"""Make each moto DynamoDB request atomic, as each DynamoDB request is.

moto's DynamoDB has no locking: two conditional writes racing from different threads can both
succeed, an update's actions are applied one at a time while another thread reads the item, and a
read can fail with "dictionary changed size during iteration". Our guarantees (one settle, one
turn per interval) rest on DynamoDB's atomic single-request semantics, so the offline runtime
serializes DynamoDB requests. They never wait on anything else, so the lock cannot deadlock.
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
    _installed = True
