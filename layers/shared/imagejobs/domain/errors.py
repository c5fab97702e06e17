"""Domain errors. Adapters raise these; the state machine's Retry/Catch name them by class name.

Transient errors are retried (queue redelivery or Step Functions Retry); final errors end the job
with `reason` as its error code.
"""

from __future__ import annotations


class ImageJobsError(Exception):
    """Base class. `reason` is the machine-readable code recorded on a job that ends with it.

    A caller's refusal also says how the HTTP API answers it, as data (the API's one exception
    handler reads it): `status`, `error_type` (OpenAI's `type`), `param`, and `retry_after`."""

    reason = "internal_error"
    transient = False
    status = 500
    error_type = "server_error"
    param: str | None = None
    retry_after: float | None = None

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message or self.__class__.__name__
        if reason:
            self.reason = reason


class RateLimited(ImageJobsError):
    """The provider answered 429; try again after `retry_after` seconds."""

    reason = "rate_limited"
    transient = True

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message or "provider rate limit reached")
        self.retry_after = retry_after


class ProviderUnavailable(ImageJobsError):
    """5xx, connection failure, timeout or an unreadable answer: worth retrying.

    `outcome_unknown`: the request may have reached the provider and been acted on (a read timeout,
    a connection lost after sending, an unreadable 2xx); a refused connection or an HTTP error
    answer says it was not accepted."""

    reason = "provider_unavailable"
    transient = True

    def __init__(self, message: str = "", *, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


class SubmissionInFlight(ImageJobsError):
    """Another delivery of the job's message is sending it to the provider right now: this one
    comes back later instead of sending it a second time."""

    reason = "submission_in_flight"
    transient = True


class ProviderAuthError(ImageJobsError):
    """401/403 from the provider: the configured key is wrong. Final for the job."""

    reason = "provider_auth_failed"


class ProviderOutOfCredits(ImageJobsError):
    """402 from the provider. Final for the job."""

    reason = "provider_out_of_credits"


class JobRejected(ImageJobsError):
    """The provider refused the job itself (moderation, invalid parameters). Never retried."""

    reason = "rejected"

    def __init__(self, message: str = "", *, code: str = "rejected") -> None:
        super().__init__(message or code, reason=code)
        self.code = code


class DownloadFailed(ImageJobsError):
    """An output could not be fetched from the provider (non-2xx, cut short)."""

    reason = "download_failed"
    transient = True


class DownloadRefused(ImageJobsError):
    """An output URL (or a redirect) points outside the provider's download hosts: not fetched."""

    reason = "download_refused"


class ObjectMissing(ImageJobsError):
    """An S3 object we were told about is gone (e.g. an upload deleted before we read it)."""

    reason = "source_missing"


class SourceChanged(ObjectMissing):
    """An input is no longer the object that was checked (its ETag is another): what was checked
    is what gets sent, or nothing is. The job ends failed saying so, charged nothing."""

    reason = "source_changed"


class ObjectUnreadable(ObjectMissing):
    """S3 answered 403: the object is missing and we may not list its bucket, or we may not read it.
    (S3 gives 403, not 404, for a missing key to a caller without s3:ListBucket on the bucket.)"""

    reason = "source_unreadable"


class EventNotPublished(ImageJobsError):
    reason = "event_not_published"
    transient = True


class InvalidValue(ImageJobsError):
    """A value of the request refused (400, `param` names it)."""

    reason = "invalid_value"
    status, error_type = 400, "invalid_request_error"

    def __init__(self, message: str, *, param: str) -> None:
        super().__init__(message)
        self.param = param


class JobNotFound(ImageJobsError):
    reason = "job_not_found"
    status, error_type, param = 404, "invalid_request_error", "id"


class StaleTransition(ImageJobsError):
    """A state change lost a race or would leave a final state (final states never change)."""

    reason = "stale_transition"
