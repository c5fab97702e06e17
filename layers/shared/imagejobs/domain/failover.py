"""Failover: a circuit breaker per (provider, model) on the submissions that provider failed.

Only what says the provider is down counts: a 5xx, a timeout, a connection that failed
(ProviderUnavailable). A 429 is the provider working as documented (its limits, handled by the
admission gate and the rate cap), and a refusal (4xx) is about the job, not the provider.

    closed     new jobs go to the model's own provider; each failure adds one, a success clears them
    open       `threshold` failures in a row: for `cooldown` seconds new jobs go to the other
               provider that serves the model (imagejobs.adapters.provider_router.alternate)
    half-open  after the cooldown, jobs go to the model's own provider again: the first success
               closes the breaker, the first failure opens it for another cooldown

Every opening and closing is a switch: recorded on the breaker (its last SWITCHES_KEPT), logged
and counted in a metric with an alarm (imagejobs.flows.failover). Pure: no I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

SWITCHES_KEPT = 20


@dataclass(frozen=True)
class Switch:
    at: float
    provider: str  # the provider the breaker is about
    model: str
    state: str  # "open" (new jobs go elsewhere) or "closed" (back to this provider)
    failures: int  # the failures in a row that opened it (0 when it closed)


@dataclass(frozen=True)
class Breaker:
    failures: int = 0  # failed submissions in a row
    opened_at: float | None = None  # None: closed
    switches: tuple[Switch, ...] = field(default_factory=tuple)
    version: int = 0  # what the store's conditional write checks (imagejobs.adapters.breakers)

    def diverts(self, now: float, cooldown: float) -> bool:
        """Whether a new job goes to the other provider now (open, its cooldown not over)."""
        return self.opened_at is not None and now - self.opened_at < cooldown


def after_success(breaker: Breaker, now: float, provider: str, model: str) -> tuple[Breaker, Switch | None]:
    """A submission the provider took: the count clears, and an open breaker closes (a switch).
    An untouched breaker comes back as it is (the caller writes nothing)."""
    if breaker.failures == 0 and breaker.opened_at is None:
        return breaker, None
    switch = Switch(now, provider, model, "closed", 0) if breaker.opened_at is not None else None
    return _with(replace(breaker, failures=0, opened_at=None), switch), switch


def after_failure(
    breaker: Breaker, now: float, provider: str, model: str, *, threshold: int, cooldown: float
) -> tuple[Breaker, Switch | None]:
    """One more failure in a row. At `threshold` a closed breaker opens; a half-open one (open,
    its cooldown over: jobs were let through to try the provider again) opens again at once."""
    failures = breaker.failures + 1
    counted = replace(breaker, failures=failures)
    if failures < threshold or breaker.diverts(now, cooldown):
        return counted, None
    switch = Switch(now, provider, model, "open", failures)
    return _with(replace(counted, opened_at=now), switch), switch


def _with(breaker: Breaker, switch: Switch | None) -> Breaker:
    if switch is None:
        return breaker
    return replace(breaker, switches=(*breaker.switches, switch)[-SWITCHES_KEPT:])
