"""Failover (imagejobs.domain.failover) as submit uses it: which provider a new job goes to, and
what each submission's outcome does to that provider's breaker for the model. Models not named
in ProviderFailover read and write nothing here."""

from __future__ import annotations

from imagejobs.domain import clock, failover, pricing
from imagejobs.domain.models import GenerationRequest
from imagejobs.flows.ports import Deps, need

# A breaker written by another submission between this one's read and write: read it again.
WRITE_ATTEMPTS = 5


def fails_over(deps: Deps, model: str) -> bool:
    return any(pricing.same_model(model, named) for named in deps.settings.failover_models)


def breaker_name(provider: str, model: str) -> str:
    try:
        return f"{provider}#{pricing.catalog_name(model)}"
    except pricing.UnknownModel:
        return f"{provider}#{model}"


def choose(deps: Deps, request: GenerationRequest) -> str:
    """The provider a job's first submission goes to: its route, or, while the route's breaker is
    open for the model and the other provider's is not, the other provider that makes it."""
    provider = need(deps.provider, "provider")
    home, model = provider.provider_for(request), request.model or ""
    if not fails_over(deps, model):
        return home
    other = provider.alternate(request, home)
    if other is None:
        return home
    now, cooldown = clock.now(), deps.settings.provider_failover_cooldown_seconds
    if deps.store.breaker(breaker_name(home, model)).diverts(now, cooldown) and not deps.store.breaker(
        breaker_name(other, model)
    ).diverts(now, cooldown):
        return other
    return home


def observe(deps: Deps, provider: str, model: str, *, ok: bool) -> failover.Switch | None:
    """Count a submission's outcome at `provider` (ok: it took the job; else it failed as a
    provider does when it is down). A switch this makes is counted in a metric (an alarm)."""
    if not fails_over(deps, model):
        return None
    settings, name = deps.settings, breaker_name(provider, model)
    for _ in range(WRITE_ATTEMPTS):
        breaker, now = deps.store.breaker(name), clock.now()
        if ok:
            changed, switch = failover.after_success(breaker, now, provider, model)
        else:
            threshold, cooldown = settings.provider_failover_threshold, settings.provider_failover_cooldown_seconds
            changed, switch = failover.after_failure(
                breaker, now, provider, model, threshold=threshold, cooldown=cooldown
            )
        if changed is breaker or deps.store.write_breaker(name, changed):
            break
    else:
        return None  # a breaker contended this much is being moved by others' outcomes already
    if switch is not None and deps.metrics is not None:
        deps.metrics.provider_switch(switch)
    return switch
