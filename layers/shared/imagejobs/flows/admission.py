"""The provider's admission gate, as the flows use it: a queued job takes a place before it is sent
(or waits in line, keeping its place), gives it back when it no longer runs upstream, and a place
that frees wakes the next in line. The rules are imagejobs.domain.admission's; here they are read
and written back conditionally, again on a conflict. One gate for the provider
(ProviderMaxConcurrency), and one of its own for each model that ProviderModelLimits names; off
(nothing is read or written) where the limit is 0."""

from __future__ import annotations

from collections.abc import Callable

from imagejobs.domain import admission, clock
from imagejobs.domain.admission import Decision, Gate
from imagejobs.domain.jobs import JobRecord
from imagejobs.flows.ports import Deps

GATE = "provider"
ATTEMPTS = 8  # conditional writes before a decision is given up as contended (the job waits)
WAKE_SECONDS = 900  # a waiter's own message comes back at most this late (SQS's longest delay)


def gate_of(deps: Deps, model: str) -> tuple[str, int]:
    """The gate a model's jobs take their places at, and its limit (0: none): the model's own when
    ProviderModelLimits names it, else the provider's (ProviderMaxConcurrency)."""
    suffix, concurrency, _ = deps.settings.provider_limits(model)
    return GATE + suffix, concurrency


def enabled(deps: Deps, record: JobRecord) -> bool:
    return gate_of(deps, record.model)[1] > 0


def _gates(deps: Deps) -> list[tuple[str, int]]:
    """Every gate in force: the provider's and each model's own."""
    found = [(GATE, deps.settings.provider_max_concurrency), *(gate_of(deps, m) for m in deps.settings.model_limits)]
    return [(name, limit) for name, limit in found if limit > 0]


def _change(deps: Deps, name: str, configured: int, change: Callable[[Gate], Decision]) -> Decision | None:
    """Read the gate, decide, write it back if it changed; again when another writer came first."""
    for _ in range(ATTEMPTS):
        gate = deps.store.gate(name)
        decision = change(gate)
        if decision.gate == gate or deps.store.write_gate(name, decision.gate):
            _report(deps, name, configured, decision.gate)
            return decision
    return None


def _report(deps: Deps, name: str, configured: int, gate: Gate) -> None:
    if deps.metrics is not None:
        limit = admission.limit_in_force(gate, configured, clock.now())
        model = name.partition("#")[2] or None
        deps.metrics.gate_state(limit, len(gate.holders), len(gate.waiters), model=model)


def admit(deps: Deps, record: JobRecord) -> Decision:
    """A place for the job at the provider, or its place in line (admitted, or not with its position
    and estimated wait)."""
    (name, configured), now = gate_of(deps, record.model), clock.now()
    weight = deps.budgets.share_weight(record.tenant) if deps.budgets is not None else 1
    waiter = admission.Waiter(record.tenant, admission.priority_class(record), now, weight)
    decision = _change(deps, name, configured, lambda gate: admission.decide(gate, record.id, waiter, configured, now))
    return decision or Decision(False, Gate(), position=0, estimated_wait=admission.RECOVER_SECONDS)


def leave(deps: Deps, record: JobRecord, *, rate_limited: bool = False) -> None:
    """The job no longer runs upstream (or waits): its place goes to the next in line, who is woken.
    `rate_limited`: the provider refused it with a 429, and the limit in force is cut."""
    name, configured = gate_of(deps, record.model)
    if configured > 0:
        _leave(deps, name, configured, record.id, rate_limited=rate_limited)


def _leave(deps: Deps, name: str, configured: int, job_id: str, *, rate_limited: bool = False) -> None:
    now = clock.now()

    def change(gate: Gate) -> Decision:
        left = admission.leave(gate, job_id, now)
        if rate_limited:
            left = admission.cut(left, configured, now)
        # admitted: it held a place (or waited) and now does not
        return Decision(job_id in gate.holders or job_id in gate.waiters, left)

    decision = _change(deps, name, configured, change)
    # Only the leave that gave the place back wakes the next: the status call's and settle's of
    # the same job would otherwise wake the same waiter twice.
    if decision is not None and decision.admitted and deps.queue is not None:
        for waiting in admission.next_up(decision.gate, configured, now):
            # its turn: admitted when its message comes (a duplicate is harmless)
            deps.queue.send(waiting, tenant=decision.gate.waiters[waiting].tenant)


def place(deps: Deps, record: JobRecord) -> tuple[int, float] | None:
    """A waiting job's position in line (from 1) and its estimated start (job clock)."""
    name, configured = gate_of(deps, record.model)
    if configured <= 0:
        return None
    now = clock.now()
    found = admission.place(deps.store.gate(name), record.id, configured, now)
    return (found[0], now + found[1]) if found else None


def tidy(deps: Deps) -> int:
    """Give back the places of jobs that have ended (a leave whose write failed), at every gate:
    the sweeper's. Returns how many."""
    freed = 0
    for name, configured in _gates(deps):
        gate = deps.store.gate(name)
        ended = [job for job in (*gate.holders, *gate.waiters) if (r := deps.store.get(job)) is None or r.status.final]
        for job_id in ended:
            _leave(deps, name, configured, job_id)
        freed += len(ended)
    return freed


def wake_after(decision: Decision) -> float:
    """When a waiting job looks again by itself (job seconds): a place that frees wakes the next in
    line, so this is only the fallback, at twice its estimated turn (SQS delays 900 s at most)."""
    return min(clock.job_seconds(WAKE_SECONDS), max(admission.RECOVER_SECONDS, 2 * decision.estimated_wait))
