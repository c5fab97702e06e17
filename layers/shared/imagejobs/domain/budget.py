"""Per-tenant budgets: what a job reserves before it is sent, and how it settles.

A job reserves its upper-bound cost (pricing.reserve_amount) against its tenant's UTC day and
month in the same DynamoDB transaction that records it, with conditions that keep each period
under its cap: concurrent submits cannot overshoot. When the job ends, the same transaction that
settles it moves each period by (actual cost - reserved): a failure the provider did not bill
refunds everything, a success keeps what it cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from imagejobs.domain.errors import ImageJobsError

SPEND_TTL_DAYS = 400  # spend counters outlive the longest period they describe


def periods(at: float) -> tuple[str, str]:
    """The UTC day and month a job's spending counts against, for `at` on the wall clock: caps
    are calendar days and months, offline too (the job clock runs faster there, and its "day"
    would end every few minutes: a burst across its midnight passed the cap, and the admin
    command, which reads the wall clock's day, saw none of it)."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%Y-%m")


@dataclass(frozen=True)
class Caps:
    """Budget caps in USD; None means no cap for that period."""

    daily_usd: Decimal | None = None
    monthly_usd: Decimal | None = None


@dataclass(frozen=True)
class Reservation:
    tenant: str
    amount: Decimal
    day: str
    month: str
    caps: Caps

    def limits(self) -> list[tuple[str, str, Decimal | None]]:
        """(period name, period, cap) for the day and the month."""
        return [("daily", self.day, self.caps.daily_usd), ("monthly", self.month, self.caps.monthly_usd)]


@dataclass(frozen=True)
class Charge:
    """How a settling job moves its tenant's spend (negative: a refund)."""

    tenant: str
    day: str
    month: str
    delta: Decimal


class BudgetExceeded(ImageJobsError):
    reason = "budget_exceeded"
    status, error_type = 402, "insufficient_quota"

    def __init__(self, tenant: str, period_name: str, cap: Decimal, spent: Decimal, amount: Decimal) -> None:
        when = "today (UTC)" if period_name == "daily" else "this month (UTC)"
        super().__init__(
            f"Budget exceeded: tenant '{tenant}' has a {period_name} cap of {usd(cap)} and has spent or reserved "
            f"${spent:.4f} {when}; this job needs up to ${amount:.4f}. Try a cheaper request (quality, size, n), "
            "wait for the next period, or ask for a higher cap."
        )
        self.tenant = tenant
        self.period_name = period_name
        self.cap = cap
        self.spent = spent
        self.amount = amount


def check_fits(reservation: Reservation, spent: dict[str, Decimal]) -> None:
    """Raise BudgetExceeded for the first period the reservation does not fit into."""
    for name, period, cap in reservation.limits():
        if cap is not None and spent.get(period, Decimal(0)) + reservation.amount > cap:
            raise BudgetExceeded(reservation.tenant, name, cap, spent.get(period, Decimal(0)), reservation.amount)


def usd(amount: Decimal) -> str:
    """A cap as it was set: cents at least ($1.00), and every digit it has beyond them, never
    rounded ($0.001 is not $0.00)."""
    exponent = amount.as_tuple().exponent
    shown = amount if isinstance(exponent, int) and exponent <= -2 else amount.quantize(Decimal("0.01"))
    return f"${shown:f}"
