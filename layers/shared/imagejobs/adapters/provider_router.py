"""More than one provider behind the one Provider port: a job goes to the provider its model is
routed to (ProviderRoutes), and its provider job id names that provider from then on, so every
later call (poll, cancel, finalize, the sweeper's check) reaches the one that has the job.

Ids are stored qualified, `openai:resp_...`; TheRouter's stay bare, as every record written before
a second provider existed has them (imagejobs.domain.jobs.split_provider_id)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from imagejobs.adapters.provider import ProviderClient
from imagejobs.domain import pricing
from imagejobs.domain.jobs import DEFAULT_PROVIDER, qualified_provider_id, split_provider_id
from imagejobs.domain.models import EditRequest, GenerationRequest, ProviderJob, UploadFile


class ProviderRouter:
    def __init__(self, clients: dict[str, Callable[[], ProviderClient]], routes: dict[str, str]) -> None:
        self._clients = clients  # name -> a factory (each reads its own key on first use)
        self._routes = routes

    def provider_for(self, request: GenerationRequest) -> str:
        """Where a new job goes: its model's route, if that provider is configured and can make
        what is asked (OpenAI's image tool makes one image per call: n > 1 stays on TheRouter)."""
        name = pricing.routed(request.model or "", self._routes)
        return name if name is not None and self._can_make(name, request) else DEFAULT_PROVIDER

    def alternate(self, request: GenerationRequest, name: str) -> str | None:
        """The other provider that can make this job, if one is configured (failover: the model's
        catalog entry prices it there, imagejobs.domain.pricing.served_by)."""
        others = (other for other in self._clients if other != name)
        return next((other for other in others if self._can_make(other, request)), None)

    def _can_make(self, name: str, request: GenerationRequest) -> bool:
        if name not in self._clients:
            return False
        return name == DEFAULT_PROVIDER or (request.n == 1 and pricing.served_by(request.model or "", name))

    def _client(self, name: str) -> ProviderClient:
        return self._clients[name if name in self._clients else DEFAULT_PROVIDER]()

    def _named(self, name: str, job: ProviderJob) -> ProviderJob:
        return job.model_copy(update={"id": qualified_provider_id(name, job.id)})

    def submit(self, request: GenerationRequest, *, idempotency_key: str, provider: str | None = None) -> ProviderJob:
        """Send a job to `provider` (chosen by the flow: failover), else to its route."""
        name = provider or self.provider_for(request)
        return self._named(name, self._client(name).submit(request, idempotency_key=idempotency_key))

    def submit_edit(
        self,
        request: EditRequest,
        images: list[UploadFile],
        mask: UploadFile | None,
        *,
        idempotency_key: str,
        provider: str | None = None,
    ) -> ProviderJob:
        name = provider or self.provider_for(request)
        job = self._client(name).submit_edit(request, images, mask, idempotency_key=idempotency_key)
        return self._named(name, job)

    def get(self, provider_job_id: str) -> ProviderJob:
        name, raw = split_provider_id(provider_job_id)
        return self._named(name, self._client(name).get(raw))

    def cancel(self, provider_job_id: str) -> ProviderJob | None:
        name, raw = split_provider_id(provider_job_id)
        job = self._client(name).cancel(raw)
        return None if job is None else self._named(name, job)

    def download(self, url: str) -> AbstractContextManager[Iterator[bytes]]:
        """OpenAI's images come inline (data: URLs, which any client reads without a call);
        URLs to fetch are TheRouter's."""
        return self._client(DEFAULT_PROVIDER).download(url)
