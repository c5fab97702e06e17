"""Cost: DESIGN.md §5 prices reproduced exactly, from data, in Decimal."""

from decimal import Decimal

import pytest

from imagejobs import pricing
from imagejobs.models import Usage


@pytest.mark.parametrize(("quality", "price"), [("low", "0.0132"), ("medium", "0.0504"), ("high", "0.2004")])
def test_per_image_prices(quality: str, price: str) -> None:
    cost = pricing.job_cost("openai/gpt-image-1", quality, images=1, usage=None)
    assert Decimal(cost.amount) == Decimal(price)
    assert cost.basis == "per_image"
    assert cost.currency == "USD"


@pytest.mark.parametrize(
    ("usage", "price"),
    [
        (
            Usage(input_tokens=1_000_000, input_tokens_details={"text_tokens": 1_000_000}, total_tokens=1_000_000),
            "6.00",
        ),
        (
            Usage(
                input_tokens=1_000_000,
                input_tokens_details={"text_tokens": 0, "image_tokens": 1_000_000},
                total_tokens=1_000_000,
            ),
            "12.00",
        ),
        (Usage(output_tokens=1_000_000, total_tokens=1_000_000), "48.00"),
    ],
)
def test_token_prices_per_million(usage: Usage, price: str) -> None:
    cost = pricing.job_cost("openai/gpt-image-1", "medium", images=1, usage=usage)
    assert Decimal(cost.amount) == Decimal(price)
    assert cost.basis == "usage"


def test_usage_wins_over_the_per_image_table_and_adds_up() -> None:
    usage = Usage(
        input_tokens=50,
        input_tokens_details={"text_tokens": 40, "image_tokens": 10},
        output_tokens=4160,
        total_tokens=4210,
    )
    cost = pricing.job_cost("gpt-image-1", "high", images=1, usage=usage)
    expected = (Decimal(40) * 6 + Decimal(10) * 12 + Decimal(4160) * 48) / 1_000_000
    assert Decimal(cost.amount) == expected.quantize(Decimal("0.000001"))


def test_several_images_and_auto_quality() -> None:
    assert Decimal(pricing.job_cost("openai/gpt-image-1", "low", 3, None).amount) == Decimal("0.0396")
    assert Decimal(pricing.job_cost("openai/gpt-image-1", "auto", 1, None).amount) == Decimal("0.0504")


def test_unknown_model_is_an_error_not_a_zero() -> None:
    with pytest.raises(pricing.UnknownModel):
        pricing.job_cost("acme/painter", "low", 1, None)


def test_orchestration_cost_grows_with_polls_and_stays_small() -> None:
    few, many = pricing.orchestration_cost(polls=3), pricing.orchestration_cost(polls=30)
    assert Decimal(0) < few < many
    # 30 polls still cost well under a cent: the loop is cheap next to any image
    assert many < Decimal("0.01")
    assert isinstance(many, Decimal)


def test_gpt_image_2_is_priced_from_its_own_table() -> None:
    """TheRouter's gpt-image-2 page: $0.0072 / $0.0636 / $0.2532 per image; per 1M tokens $6.00
    text input, $9.60 image input, $36.00 output (https://therouter.ai/models/openai--gpt-image-2/)."""
    per_image = [pricing.job_cost("openai/gpt-image-2", q, 1, None).amount for q in ("low", "medium", "high")]
    assert [Decimal(amount) for amount in per_image] == [Decimal("0.0072"), Decimal("0.0636"), Decimal("0.2532")]
    usage = Usage(input_tokens=1000, output_tokens=1000, total_tokens=2000)
    assert Decimal(pricing.job_cost("gpt-image-2", "high", 1, usage).amount) == Decimal("0.042")  # 6 + 36 per 1M


def test_a_vendor_prefix_must_be_the_models_own() -> None:
    assert pricing.catalog_name("gpt-image-1") == "openai/gpt-image-1"
    assert pricing.catalog_name("openai/gpt-image-2") == "openai/gpt-image-2"
    for name in ("othervendor/gpt-image-1", "anything/gpt-image-2", "gpt-image-9"):
        with pytest.raises(pricing.UnknownModel):
            pricing.catalog_name(name)
