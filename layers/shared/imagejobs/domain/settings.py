"""Environment settings, validated once at cold start (template.yaml Globals set them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    jobs_table: str = Field(alias="JOBS_TABLE")
    results_bucket: str = Field(alias="RESULTS_BUCKET")
    submit_queue_url: str = Field(alias="SUBMIT_QUEUE_URL")
    submit_dlq_url: str | None = Field(default=None, alias="SUBMIT_DLQ_URL")
    inbox_bucket: str | None = Field(default=None, alias="INBOX_BUCKET")
    inbox_prefix: str = Field(default="uploads/", alias="INBOX_PREFIX")
    rules_key: str = Field(default="config/rules.json", alias="RULES_KEY")
    inbox_tenant: str = Field(default="inbox", alias="INBOX_TENANT")
    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN")
    provider_base_url: str = Field(alias="PROVIDER_BASE_URL")
    provider_secret_id: str = Field(alias="PROVIDER_SECRET_ID")
    provider_download_hosts: str = Field(default="*.amazonaws.com", alias="PROVIDER_DOWNLOAD_HOSTS")  # comma-separated
    # A second provider, OpenAI direct (imagejobs.adapters.openai_direct): its key in its own secret.
    openai_base_url: str = Field(default="https://api.openai.com", alias="OPENAI_BASE_URL")
    openai_secret_id: str | None = Field(default=None, alias="OPENAI_SECRET_ID")
    openai_mainline_model: str = Field(default="gpt-5-nano", alias="OPENAI_MAINLINE_MODEL")
    # Whether OpenAI sends its webhooks here (set up in its dashboard): the loop then waits for
    # them instead of polling, at most the fallback, inside the ~10 minutes a background response
    # is kept for polling (OpenAI's background mode guide).
    openai_webhooks: bool = Field(default=False, alias="OPENAI_WEBHOOKS")
    openai_webhook_fallback_seconds: int = Field(default=300, ge=30, le=540, alias="OPENAI_WEBHOOK_FALLBACK_SECONDS")
    # "model=provider,...": the provider a model's new jobs go to (therouter unless named here).
    provider_routes: str = Field(
        default="", alias="PROVIDER_ROUTES", pattern=r"^\s*([^,=\s]+\s*=\s*(therouter|openai)\s*(,\s*|$))*$"
    )
    # Failover (imagejobs.domain.failover): the models ("a,b") whose new jobs go to the other
    # provider that serves them while their own provider fails; off (empty) by default.
    provider_failover: str = Field(
        default="", alias="PROVIDER_FAILOVER", pattern=r"^\s*([^,=\s]+(\s*,\s*[^,=\s]+)*)?\s*$"
    )
    provider_failover_threshold: int = Field(default=5, ge=1, le=1000, alias="PROVIDER_FAILOVER_THRESHOLD")
    provider_failover_cooldown_seconds: int = Field(
        default=300, ge=10, le=86_400, alias="PROVIDER_FAILOVER_COOLDOWN_SECONDS"
    )
    default_model: str = Field(default="openai/gpt-image-1", alias="DEFAULT_MODEL")
    # "from=to,from=to": requests for a model (e.g. one past its shutdown) run as another.
    model_aliases: str = Field(default="", alias="MODEL_ALIASES", pattern=r"^\s*([^,=\s]+\s*=\s*[^,=\s]+\s*(,\s*|$))*$")
    job_deadline_seconds: int = Field(default=900, ge=10, alias="JOB_DEADLINE_SECONDS")
    result_url_ttl_seconds: int = Field(default=900, ge=60, le=3600, alias="RESULT_URL_TTL_SECONDS")
    job_record_ttl_days: int = Field(default=30, ge=1, alias="JOB_RECORD_TTL_DAYS")
    cors_allow_origins: str = Field(default="*", alias="CORS_ALLOW_ORIGINS")  # comma-separated; * = any
    # How long a call without async=true waits for its image (wall seconds; 0: answers at once
    # that it is still running), within the API's integration timeout (ApiTimeoutSeconds: 29 s by
    # default; Regional REST APIs may raise it by a quota request, up to 300 s).
    sync_wait_seconds: float = Field(default=25.0, ge=0, le=295, alias="SYNC_WAIT_SECONDS")
    api_timeout_seconds: float = Field(default=29.0, ge=29, le=300, alias="API_TIMEOUT_SECONDS")
    result_retention_days: int = Field(default=30, ge=1, alias="RESULT_RETENTION_DAYS")  # the bucket's lifecycle
    submit_max_receive_count: int = Field(default=5, ge=1, alias="SUBMIT_MAX_RECEIVE_COUNT")
    secret_cache_seconds: int = Field(default=300, ge=0, alias="SECRET_CACHE_SECONDS")
    provider_submits_per_minute: int = Field(default=0, ge=0, alias="PROVIDER_SUBMITS_PER_MINUTE")  # 0: no cap
    # Jobs running at the provider at once (imagejobs.domain.admission); 0: no gate.
    provider_max_concurrency: int = Field(default=0, ge=0, alias="PROVIDER_MAX_CONCURRENCY")
    # "model=concurrency[/submits per minute],...": a model whose provider limits differ from the
    # two above has its own gate and rate cap (0: none for that model).
    provider_model_limits: str = Field(
        default="", alias="PROVIDER_MODEL_LIMITS", pattern=r"^\s*([^,=\s]+\s*=\s*\d+(/\d+)?\s*(,\s*|$))*$"
    )
    # What the provider guarantees for a resubmission after an unknown outcome: "header" (the same
    # Idempotency-Key returns the job it already has) or "none" (nothing documented: never resubmit).
    provider_idempotency: Literal["header", "none"] = Field(default="none", alias="PROVIDER_IDEMPOTENCY")
    provider_timeout_seconds: float = Field(default=30.0, gt=0, le=300, alias="PROVIDER_TIMEOUT_SECONDS")
    notify_queue_url: str | None = Field(default=None, alias="NOTIFY_QUEUE_URL")
    notify_dlq_url: str | None = Field(default=None, alias="NOTIFY_DLQ_URL")
    event_bus_name: str = Field(default="default", alias="EVENT_BUS_NAME")
    webhook_max_attempts: int = Field(default=6, ge=1, le=20, alias="WEBHOOK_MAX_ATTEMPTS")
    webhook_allow_loopback: bool = Field(default=False, alias="WEBHOOK_ALLOW_LOOPBACK")
    event_tenant: str = Field(default="events", alias="EVENT_TENANT")
    event_input_buckets: str = Field(default="", alias="EVENT_INPUT_BUCKETS")  # comma-separated

    @property
    def readable_input_buckets(self) -> set[str]:
        """Buckets an ImageJobRequested edit may name: the inbox and EventInputBuckets."""
        named = {name.strip() for name in self.event_input_buckets.split(",") if name.strip()}
        return named | ({self.inbox_bucket} if self.inbox_bucket else set())

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_allow_origins.split(",") if origin.strip()] or ["*"]

    @property
    def aliases(self) -> dict[str, str]:
        pairs = (pair.split("=", 1) for pair in self.model_aliases.split(",") if pair.strip())
        return {source.strip(): target.strip() for source, target in pairs}

    @property
    def routes(self) -> dict[str, str]:
        """ProviderRoutes read: model -> provider name."""
        pairs = (pair.split("=", 1) for pair in self.provider_routes.split(",") if pair.strip())
        return {model.strip(): name.strip() for model, name in pairs}

    @property
    def failover_models(self) -> list[str]:
        """ProviderFailover read: the models that fail over."""
        return [model.strip() for model in self.provider_failover.split(",") if model.strip()]

    @property
    def provider_limited(self) -> bool:
        """Whether any provider limit is set (else a submission reads nothing to check them)."""
        return bool(self.provider_max_concurrency or self.provider_submits_per_minute or self.provider_model_limits)

    @property
    def model_limits(self) -> dict[str, tuple[int, int]]:
        """ProviderModelLimits read: model -> (jobs at once, submissions per minute); 0 is none."""
        limits: dict[str, tuple[int, int]] = {}
        for pair in self.provider_model_limits.split(","):
            name, _, values = (part.strip() for part in pair.partition("="))
            if name:
                concurrency, _, per_minute = values.partition("/")
                limits[name] = (int(concurrency), int(per_minute or 0))
        return limits

    def provider_limits(self, model: str) -> tuple[str, int, int]:
        """Where a model's jobs queue for the provider and its limits: (the gate's and the rate
        cap's name suffix, jobs at once, submissions per minute); 0 is no limit."""
        limits = self.model_limits
        for name in (model, model.rpartition("/")[2]):  # openai/gpt-image-1 or gpt-image-1
            if name in limits:
                return f"#{name}", *limits[name]
        return "", self.provider_max_concurrency, self.provider_submits_per_minute

    @property
    def download_hosts(self) -> list[str]:
        return [host.strip() for host in self.provider_download_hosts.split(",") if host.strip()]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return cls.model_validate(dict(environ if environ is not None else os.environ))
