"""Admission to the provider: how many jobs run upstream at once, and whose turn is next.

The gate is one record: the jobs running at the provider (its holders), the jobs waiting for a
place (its waiters) and what each tenant has used lately. A job is admitted when its place in line
is among the free places; otherwise it waits, and keeps its place. The line is a weighted fair
queue over tenants and priority classes: the k-th waiting job of a tenant in a class comes at
(its tenant's recent use + its running jobs + k) / (the tenant's weight x the class's weight),
earliest first. Recent use counts the jobs the tenant sent, each fading by half every
USAGE_HALF_LIFE (job clock).

- **Fair share, over time.** A tenant's weight is a tenant setting (1 unless set). A tenant with a
  backlog takes idle places, but a tenant that arrives later goes ahead of that backlog at once,
  and stays ahead until it has used as much lately as the backlog's tenant has: the places a
  flood took while others were idle count against it when they come. Waiting longer never moves
  a backlog ahead of a newcomer; each job a tenant sends moves its next ones back, so the
  newcomer's lead ends, and nobody is shut out for long.
- **Classes.** A caller waiting on a plain call weighs 16, an async API job 4, an inbox or event
  job (bulk) 1: a waiting plain call goes ahead of all but the first jobs of idle tenants, and an
  API backlog takes four places for each one bulk work gets, so no class starves.
- **The limit adapts.** A provider 429 sets the limit in force to what the provider held when it
  refused (the jobs still running, at least 1): a concurrency cap answers exactly there, so that
  is the level it takes, where halving would leave places idle it has shown it takes. The limit
  comes back one place per RECOVER_SECONDS, up to the configured limit (ProviderMaxConcurrency), so
  the gate probes a higher level that often and a cap that grew is found again.
- **So does the rate.** With ProviderSubmitsPerMinute set, submissions take evenly spaced turns.
  A 429 doubles the spacing (up to RATE_STRETCH_MAX times the setting) and holds the next turn
  until the provider's Retry-After; each turn taken after that brings it back 10% of the way.

Pure: the flows read the gate, decide here, and write it back conditionally (imagejobs.flows.admission).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from imagejobs.domain.jobs import JobRecord

INTERACTIVE, API, BULK = 0, 1, 2
CLASS_NAMES = {INTERACTIVE: "interactive", API: "api", BULK: "bulk"}
CLASS_WEIGHTS = {INTERACTIVE: 16, API: 4, BULK: 1}
RECOVER_SECONDS = 30.0  # after a cut, one place back per this long (each probe past a cap costs a 429)
DEFAULT_JOB_SECONDS = 60.0  # how long a job holds its place until the gate has seen some finish
MEAN_WEIGHT = 0.2  # how much each finished job moves the gate's mean hold
USAGE_HALF_LIFE = 600.0  # job seconds: a tenant's use of the provider counts half as much this much later
USAGE_FORGOTTEN = 0.05  # use below this is dropped from the gate (keeps the record small)
RATE_STRETCH_MAX = 16.0  # a rate cap's spacing grows at most to this many times its setting
RATE_RELAX = 0.9  # each turn taken brings a stretched spacing this much of the way back


@dataclass(frozen=True)
class Waiter:
    tenant: str
    klass: int
    since: float  # job clock: when it joined the line
    weight: int = 1


@dataclass(frozen=True)
class Holder:
    tenant: str
    since: float  # job clock: when it was admitted


@dataclass(frozen=True)
class Used:
    amount: float  # jobs sent, each fading by half every USAGE_HALF_LIFE
    at: float  # job clock: when `amount` was reckoned

    def now(self, now: float) -> float:
        return self.amount * 0.5 ** (max(0.0, now - self.at) / USAGE_HALF_LIFE)


@dataclass(frozen=True)
class Gate:
    holders: dict[str, Holder] = field(default_factory=dict)
    waiters: dict[str, Waiter] = field(default_factory=dict)
    usage: dict[str, Used] = field(default_factory=dict)  # per tenant
    cut_limit: int | None = None  # what a 429 cut the limit to, and when
    cut_at: float | None = None
    mean_seconds: float = DEFAULT_JOB_SECONDS  # how long a job holds its place, on average
    version: int = 0  # the write this state came from (each write is conditional on it)


@dataclass(frozen=True)
class Decision:
    admitted: bool
    gate: Gate  # the state to write (unchanged: nothing to write)
    position: int = 0  # in line, from 1, when not admitted
    estimated_wait: float = 0.0  # job seconds until its turn, when not admitted


def priority_class(record: JobRecord) -> int:
    if record.caller_waits_until is not None:
        return INTERACTIVE
    return API if record.source == "api" else BULK


def limit_in_force(gate: Gate, configured: int, now: float) -> int:
    if gate.cut_limit is None or gate.cut_at is None:
        return configured
    return min(configured, gate.cut_limit + int(max(0.0, now - gate.cut_at) / RECOVER_SECONDS))


def line(gate: Gate, now: float) -> list[str]:
    """The waiters in the order they get places."""
    # what each tenant has ahead of its waiters: its recent use and its running jobs
    ahead: dict[str, float] = {tenant: used.now(now) for tenant, used in gate.usage.items()}
    for holder in gate.holders.values():
        ahead[holder.tenant] = ahead.get(holder.tenant, 0) + 1
    seen: dict[tuple[str, int], int] = {}  # a tenant's waiters so far, per class
    keys: list[tuple[float, int, float, str]] = []
    for job_id, waiter in sorted(gate.waiters.items(), key=lambda item: (item[1].since, item[0])):
        k = seen[waiter.tenant, waiter.klass] = seen.get((waiter.tenant, waiter.klass), 0) + 1
        weight = max(1, waiter.weight) * CLASS_WEIGHTS.get(waiter.klass, 1)
        keys.append(((ahead.get(waiter.tenant, 0) + k) / weight, waiter.klass, waiter.since, job_id))
    return [job_id for *_, job_id in sorted(keys)]


def decide(gate: Gate, job_id: str, waiter: Waiter, configured: int, now: float) -> Decision:
    """Admit the job if its place in line is among the free places, else keep it in line."""
    if job_id in gate.holders:
        return Decision(True, gate)
    waiters = gate.waiters if job_id in gate.waiters else {**gate.waiters, job_id: waiter}
    queued = dataclasses.replace(gate, waiters=waiters)
    free = limit_in_force(gate, configured, now) - len(gate.holders)
    rank = line(queued, now).index(job_id)
    if rank < free:
        remaining = {other: w for other, w in waiters.items() if other != job_id}
        holders = {**gate.holders, job_id: Holder(waiter.tenant, now)}
        usage = _used(gate.usage, waiter.tenant, now)
        return Decision(True, dataclasses.replace(gate, holders=holders, waiters=remaining, usage=usage))
    return Decision(False, queued, position=rank + 1, estimated_wait=_wait(queued, rank + 1, configured, now))


def place(gate: Gate, job_id: str, configured: int, now: float) -> tuple[int, float] | None:
    """A waiting job's position in line (from 1) and the job seconds until its estimated start."""
    if job_id not in gate.waiters:
        return None
    position = line(gate, now).index(job_id) + 1
    return position, _wait(gate, position, configured, now)


def _wait(gate: Gate, position: int, configured: int, now: float) -> float:
    """Job seconds until the `position`-th in line is sent: the free places go first, then one
    place frees per mean hold / limit."""
    limit = max(1, limit_in_force(gate, configured, now))
    free = max(0, limit - len(gate.holders))
    return max(0, position - free) * gate.mean_seconds / limit


def leave(gate: Gate, job_id: str, now: float) -> Gate:
    """A job that no longer runs upstream (or no longer waits): its place is free; how long it held
    it moves the gate's mean."""
    holder = gate.holders.get(job_id)
    if holder is None and job_id not in gate.waiters:
        return gate
    mean = gate.mean_seconds
    if holder is not None:
        mean = (1 - MEAN_WEIGHT) * mean + MEAN_WEIGHT * max(0.0, now - holder.since)
    return dataclasses.replace(
        gate,
        holders={other: h for other, h in gate.holders.items() if other != job_id},
        waiters={other: w for other, w in gate.waiters.items() if other != job_id},
        mean_seconds=mean,
    )


def cut(gate: Gate, configured: int, now: float) -> Gate:
    """The provider answered 429 (the refused job has left): the limit in force becomes what it still
    holds, at least 1. A provider that keeps refusing lowers it again at each 429, as its jobs end."""
    running = min(len(gate.holders), limit_in_force(gate, configured, now))
    return dataclasses.replace(gate, cut_limit=max(1, running), cut_at=now)


def next_up(gate: Gate, configured: int, now: float) -> list[str]:
    """The waiters the free places go to (woken when a place frees)."""
    free = limit_in_force(gate, configured, now) - len(gate.holders)
    return line(gate, now)[: max(0, free)]


def _used(usage: dict[str, Used], tenant: str, now: float) -> dict[str, Used]:
    """The tenants' recent use after `tenant` sent one more job (faded ones dropped)."""
    mine = usage.get(tenant)
    kept = {other: used for other, used in usage.items() if other != tenant and used.now(now) >= USAGE_FORGOTTEN}
    return {**kept, tenant: Used((mine.now(now) if mine else 0.0) + 1, now)}


def stretched(stretch: float) -> float:
    """The rate cap's spacing, as a multiple of its setting, after a provider 429."""
    return min(RATE_STRETCH_MAX, max(1.0, stretch) * 2)


def relaxed(stretch: float) -> float:
    """The spacing after a turn is taken: back towards the setting, gradually."""
    return max(1.0, 1.0 + (stretch - 1.0) * RATE_RELAX)
