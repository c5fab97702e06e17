"""What a job reserves against its tenant's budget, and when it does not fit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imagejobs.adapters.tenants import bearer_token
from imagejobs.domain import budget, pricing
from imagejobs.domain.budget import Caps
from imagejobs.domain.models import GenerationRequest

MODEL = "openai/gpt-image-1"


def test_reserve_is_the_dearest_the_request_can_cost() -> None:
    low = pricing.reserve_amount(MODEL, GenerationRequest(prompt="a", quality="low", size="1024x1024", n=1))
    one_token = Decimal("6.00") / 1_000_000  # the prompt "a": one text token at most
    assert low == Decimal("0.0132") + one_token  # the per-image price exactly, and the prompt
    # quality auto may be billed as high; sizes other than 1024x1024 cost up to 1.5x
    dearest = pricing.reserve_amount(MODEL, GenerationRequest(prompt="a", n=2))
    assert dearest == Decimal("0.2004") * Decimal("1.5") * 2 + one_token
    # an edit also pays for its input images as image tokens
    edit = pricing.reserve_amount(MODEL, GenerationRequest(prompt="a", quality="low", size="1024x1024"), input_images=2)
    assert edit == low + Decimal(2 * 6240 * 12) / 1_000_000


def test_a_reservation_that_does_not_fit_names_its_period() -> None:
    reservation = budget.Reservation(
        "acme", Decimal("0.30"), "2026-11-25", "2026-11", Caps(daily_usd=Decimal("1"), monthly_usd=Decimal("5"))
    )
    budget.check_fits(reservation, {"2026-11-25": Decimal("0.70"), "2026-11": Decimal("4.70")})  # exactly fits
    with pytest.raises(budget.BudgetExceeded) as daily:
        budget.check_fits(reservation, {"2026-11-25": Decimal("0.71")})
    assert daily.value.period_name == "daily" and "$1.00" in daily.value.message
    with pytest.raises(budget.BudgetExceeded) as monthly:
        budget.check_fits(reservation, {"2026-11": Decimal("4.71")})
    assert monthly.value.period_name == "monthly"
    budget.check_fits(budget.Reservation("free", Decimal("99"), "d", "m", Caps()), {"d": Decimal("1e9")})


def test_periods_are_utc_day_and_month() -> None:
    assert budget.periods(1_795_651_199.0) == ("2026-11-25", "2026-11")  # 23:59:59 UTC
    assert budget.periods(1_795_651_200.0) == ("2026-11-26", "2026-11")


@pytest.mark.parametrize(
    ("header", "key"),
    [("Bearer sk-1", "sk-1"), ("bearer  sk-2 ", "sk-2"), ("Basic abc", ""), ("", ""), (None, ""), ("Bearer", "")],
)
def test_bearer_token(header: str | None, key: str) -> None:
    assert bearer_token(header) == key


def test_caps_are_shown_as_they_were_set() -> None:
    """Issue #21: a cap of $0.001 was shown as $0.00."""
    from decimal import Decimal

    from imagejobs.domain.budget import usd

    assert [usd(Decimal(text)) for text in ("0.001", "1", "0.10", "12.5")] == ["$0.001", "$1.00", "$0.10", "$12.50"]
