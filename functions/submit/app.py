"""Submit: fed by the submit queue (HTTP jobs, inbox uploads, requested events); sends each job to
the provider once and starts its poll loop. Reports partial batch failures."""

from __future__ import annotations

from functools import partial

from imagejobs.adapters.observability import make_logger
from imagejobs.domain.settings import Settings
from imagejobs.edge.queue_handler import queue_handler
from imagejobs.edge.wiring import build_deps
from imagejobs.flows import submit_queue

logger = make_logger("submit")
settings = Settings.from_env()
deps = build_deps(settings, provider=True, warm=("store", "provider", "loops"))  # every submission
handler = queue_handler(
    logger,
    partial(submit_queue.process, deps),
    reserve_seconds=submit_queue.seconds_per_message(settings),
    release=partial(submit_queue.release, deps),
)
