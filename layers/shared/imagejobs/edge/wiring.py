"""Builds the real adapters from settings. Handlers call this once at cold start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from imagejobs.adapters.aws import EventBus, Executions, JobQueue, Objects, ResultStore
from imagejobs.adapters.observability import EmfMetrics
from imagejobs.adapters.store import JobStore
from imagejobs.adapters.tenants import Tenants
from imagejobs.adapters.webhooks import WebhookUrls
from imagejobs.domain.models import EditRequest, GenerationRequest, ProviderJob, UploadFile
from imagejobs.domain.settings import Settings
from imagejobs.flows.ports import Deps

if TYPE_CHECKING:
    from imagejobs.adapters.provider_router import ProviderRouter


def provider_api_key(settings: Settings, secret_id: str | None = None, field: str = "api_key") -> str:
    """A provider key from Secrets Manager, cached by Powertools Parameters (never logged).

    The secret holds either the bare key or {"api_key": "..."} (OpenAI's may hold its
    "webhook_secret" beside it)."""
    from aws_lambda_powertools.utilities import parameters  # on first use: most calls never need it

    secret = secret_id or settings.provider_secret_id
    value = str(parameters.get_secret(secret, max_age=settings.secret_cache_seconds))
    try:
        parsed = json.loads(value)
    except ValueError:
        return value.strip()
    if isinstance(parsed, dict):
        return str(parsed.get(field) or "")
    return value.strip() if field == "api_key" else ""


class LazyProvider:
    """Imports httpx, reads the key and opens its connection pool on first use (and reads the
    key again after the cache expires): an API call that never reaches the provider pays nothing."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._http: Any = None

    def warm(self) -> None:
        """httpx and its connection pool now (the key is still read on first use, from its cache)."""
        self._pool()

    def _client(self) -> ProviderRouter:
        """TheRouter, and OpenAI direct where a route names it and its secret is configured; each
        key is read only when a call goes to that provider."""
        from imagejobs.adapters.openai_direct import OpenAIClient
        from imagejobs.adapters.provider import ProviderClient
        from imagejobs.adapters.provider_router import ProviderRouter

        settings = self._settings
        options: dict[str, Any] = {"total_seconds": settings.provider_timeout_seconds}

        def therouter() -> ProviderClient:
            key = provider_api_key(settings)
            return ProviderClient(
                settings.provider_base_url, key, self._pool(), download_hosts=settings.download_hosts, **options
            )

        def openai() -> ProviderClient:
            key = provider_api_key(settings, settings.openai_secret_id)
            mainline = settings.openai_mainline_model
            return OpenAIClient(settings.openai_base_url, key, self._pool(), mainline_model=mainline, **options)

        clients: dict[str, Any] = {"therouter": therouter}
        if settings.openai_secret_id:
            clients["openai"] = openai
        return ProviderRouter(clients, settings.routes)

    def _pool(self) -> Any:
        from imagejobs.adapters.provider import DEFAULT_TIMEOUT

        if self._http is None:
            import httpx

            timeout = (
                DEFAULT_TIMEOUT
                if self._settings.provider_timeout_seconds == 30.0
                else self._settings.provider_timeout_seconds
            )
            self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        return self._http

    def provider_for(self, request: GenerationRequest) -> str:
        return self._client().provider_for(request)

    def alternate(self, request: GenerationRequest, name: str) -> str | None:
        return self._client().alternate(request, name)

    def submit(self, request: GenerationRequest, *, idempotency_key: str, provider: str | None = None) -> ProviderJob:
        return self._client().submit(request, idempotency_key=idempotency_key, provider=provider)

    def submit_edit(
        self,
        request: EditRequest,
        images: list[UploadFile],
        mask: UploadFile | None,
        *,
        idempotency_key: str,
        provider: str | None = None,
    ) -> ProviderJob:
        return self._client().submit_edit(request, images, mask, idempotency_key=idempotency_key, provider=provider)

    def get(self, provider_job_id: str) -> ProviderJob:
        return self._client().get(provider_job_id)

    def cancel(self, provider_job_id: str) -> ProviderJob | None:
        return self._client().cancel(provider_job_id)

    def download(self, url: str) -> AbstractContextManager[Iterator[bytes]]:
        return self._client().download(url)


def build_deps(settings: Settings, *, provider: bool = False, warm: tuple[str, ...] = ()) -> Deps:
    """The adapters, each making its client on first use, except those named in `warm` (the ports
    every invocation of the function uses: see `warm_now`), made here, at init."""
    adapters: dict[str, Any] = {
        "store": JobStore(settings.jobs_table),
        "queue": JobQueue(settings.submit_queue_url, settings.submit_dlq_url),
        "objects": Objects(),
        "notices": JobQueue(settings.notify_queue_url, settings.notify_dlq_url) if settings.notify_queue_url else None,
        "loops": Executions(settings.state_machine_arn),
        "provider": LazyProvider(settings) if provider else None,
        "results": ResultStore(settings.results_bucket),
        "budgets": Tenants(settings.jobs_table),
        "webhooks": WebhookUrls(),
    }
    warm_now(*(adapters[name] for name in warm))
    return Deps(settings=settings, metrics=EmfMetrics(), **adapters)


class Warmable(Protocol):
    def warm(self) -> None: ...


def warm_now(*adapters: Warmable | None) -> None:
    """Make at init the clients that every invocation of a function uses (the adapters make them on
    first use otherwise). Making boto3's clients and resources is about 75 ms of CPU per function
    (make bench: init + first invoke), and where it runs matters: init runs on unthrottled vCPUs
    whatever the memory size, an invocation on memory / 1,769 MB of one
    (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html; init unthrottled, as
    measured in https://lucvandonkersgoed.com/2022/04/09/when-is-the-lambda-init-phase-free-and-when-is-it-billed/),
    so at 160 MB the same work takes about 11 times as long in the first call, and both phases are
    billed alike (https://aws.amazon.com/blogs/compute/aws-lambda-standardizes-billing-for-init-phase/)."""
    for adapter in adapters:
        if adapter is not None:
            adapter.warm()


def event_bus(settings: Settings) -> EventBus:
    return EventBus(settings.event_bus_name)
