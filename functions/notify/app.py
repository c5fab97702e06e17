"""Notify: fed by the notify queue once a job is final; publishes its EventBridge event and
delivers its webhook, retrying by redelivery. Reports partial batch failures."""

from __future__ import annotations

from typing import Any

from imagejobs.adapters.observability import make_logger
from imagejobs.domain.settings import Settings
from imagejobs.edge import notify
from imagejobs.edge.queue_handler import queue_handler
from imagejobs.edge.wiring import build_deps, event_bus, warm_now

logger = make_logger("notify")
settings = Settings.from_env()
deps = build_deps(settings, warm=("store",))
bus = event_bus(settings)
warm_now(bus)  # every final job's event


def notify_message(body: str, **delivery: Any) -> str:
    return notify.process_message(deps, bus, body, **delivery)


handler = queue_handler(logger, notify_message)
