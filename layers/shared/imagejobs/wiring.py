"""Builds the real adapters from settings. Handlers call this once at cold start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from imagejobs.aws import EventBus, Executions, JobQueue, Objects, ResultStore
from imagejobs.flows import Deps
from imagejobs.models import EditRequest, GenerationRequest, ProviderJob, UploadFile
from imagejobs.observability import EmfMetrics
from imagejobs.settings import Settings
from imagejobs.store import JobStore
from imagejobs.tenants import Tenants

if TYPE_CHECKING:
    from imagejobs.provider import ProviderClient


def provider_api_key(settings: Settings) -> str:
    """The provider key from Secrets Manager, cached by Powertools Parameters (never logged).

    The secret holds either the bare key or {"api_key": "..."}."""
    from aws_lambda_powertools.utilities import parameters  # on first use: most calls never need it

    value = str(parameters.get_secret(settings.provider_secret_id, max_age=settings.secret_cache_seconds))
    try:
        parsed = json.loads(value)
    except ValueError:
        return value.strip()
    if isinstance(parsed, dict) and "api_key" in parsed:
        return str(parsed["api_key"])
    return value.strip()


class LazyProvider:
    """Imports httpx, reads the key and opens its connection pool on first use (and reads the
    key again after the cache expires): an API call that never reaches the provider pays nothing."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._http: Any = None

    def _client(self) -> ProviderClient:
        from imagejobs.provider import DEFAULT_TIMEOUT, ProviderClient

        if self._http is None:
            import httpx

            timeout = (
                DEFAULT_TIMEOUT
                if self._settings.provider_timeout_seconds == 30.0
                else self._settings.provider_timeout_seconds
            )
            self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        return ProviderClient(
            self._settings.provider_base_url,
            provider_api_key(self._settings),
            self._http,
            download_hosts=self._settings.download_hosts,
            total_seconds=self._settings.provider_timeout_seconds,
        )

    def submit(self, request: GenerationRequest, *, idempotency_key: str) -> ProviderJob:
        return self._client().submit(request, idempotency_key=idempotency_key)

    def submit_edit(
        self, request: EditRequest, images: list[UploadFile], mask: UploadFile | None, *, idempotency_key: str
    ) -> ProviderJob:
        return self._client().submit_edit(request, images, mask, idempotency_key=idempotency_key)

    def get(self, provider_job_id: str) -> ProviderJob:
        return self._client().get(provider_job_id)

    def cancel(self, provider_job_id: str) -> ProviderJob | None:
        return self._client().cancel(provider_job_id)

    def download(self, url: str) -> AbstractContextManager[Iterator[bytes]]:
        return self._client().download(url)


def build_deps(settings: Settings, *, provider: bool = False) -> Deps:
    return Deps(
        settings=settings,
        store=JobStore(settings.jobs_table),
        queue=JobQueue(settings.submit_queue_url, settings.submit_dlq_url),
        objects=Objects(),
        notices=JobQueue(settings.notify_queue_url, settings.notify_dlq_url) if settings.notify_queue_url else None,
        loops=Executions(settings.state_machine_arn),
        provider=LazyProvider(settings) if provider else None,
        results=ResultStore(settings.results_bucket),
        metrics=EmfMetrics(),
        budgets=Tenants(settings.jobs_table),
    )


def event_bus(settings: Settings) -> EventBus:
    return EventBus(settings.event_bus_name)
