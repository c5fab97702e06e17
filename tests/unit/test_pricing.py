"""Cost: the catalog's prices (TheRouter's model pages) reproduced exactly, from data, in Decimal."""

from decimal import Decimal

import pytest

from imagejobs.domain import pricing
from imagejobs.domain.models import GenerationRequest, Usage


@pytest.mark.parametrize(("quality", "price"), [("low", "0.0132"), ("medium", "0.0504"), ("high", "0.2004")])
def test_per_image_prices(quality: str, price: str) -> None:
    cost = pricing.job_cost("openai/gpt-image-1", quality, images=1, usage=None, size="auto")
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
    cost = pricing.job_cost("openai/gpt-image-1", "medium", images=1, usage=usage, size="auto")
    assert Decimal(cost.amount) == Decimal(price)
    assert cost.basis == "usage"


def test_usage_wins_over_the_per_image_table_and_adds_up() -> None:
    usage = Usage(
        input_tokens=50,
        input_tokens_details={"text_tokens": 40, "image_tokens": 10},
        output_tokens=4160,
        total_tokens=4210,
    )
    cost = pricing.job_cost("gpt-image-1", "high", images=1, usage=usage, size="auto")
    expected = (Decimal(40) * 6 + Decimal(10) * 12 + Decimal(4160) * 48) / 1_000_000
    assert Decimal(cost.amount) == expected.quantize(Decimal("0.000001"))


def test_several_images_and_auto_quality() -> None:
    assert Decimal(pricing.job_cost("openai/gpt-image-1", "low", 3, None, size="auto").amount) == Decimal("0.0396")
    assert Decimal(pricing.job_cost("openai/gpt-image-1", "auto", 1, None, size="auto").amount) == Decimal("0.0504")


def test_unknown_model_is_an_error_not_a_zero() -> None:
    with pytest.raises(pricing.UnknownModel):
        pricing.job_cost("acme/painter", "low", 1, None, size="auto")


def test_orchestration_cost_grows_with_polls_and_stays_small() -> None:
    few, many = pricing.orchestration_cost(polls=3), pricing.orchestration_cost(polls=30)
    assert Decimal(0) < few < many
    # 30 polls still cost well under a cent: the loop is cheap next to any image
    assert many < Decimal("0.01")
    assert isinstance(many, Decimal)


def test_gpt_image_2_is_priced_from_its_own_table() -> None:
    """TheRouter's gpt-image-2 page: $0.0072 / $0.0636 / $0.2532 per image; per 1M tokens $6.00
    text input, $9.60 image input, $36.00 output (https://therouter.ai/models/openai--gpt-image-2/)."""
    per_image = [
        pricing.job_cost("openai/gpt-image-2", q, 1, None, size="auto").amount for q in ("low", "medium", "high")
    ]
    assert [Decimal(amount) for amount in per_image] == [Decimal("0.0072"), Decimal("0.0636"), Decimal("0.2532")]
    usage = Usage(input_tokens=1000, output_tokens=1000, total_tokens=2000)
    assert Decimal(pricing.job_cost("gpt-image-2", "high", 1, usage, size="auto").amount) == Decimal(
        "0.042"
    )  # 6 + 36 per 1M


def test_a_vendor_prefix_must_be_the_models_own() -> None:
    assert pricing.catalog_name("gpt-image-1") == "openai/gpt-image-1"
    assert pricing.catalog_name("openai/gpt-image-2") == "openai/gpt-image-2"
    for name in ("othervendor/gpt-image-1", "anything/gpt-image-2", "gpt-image-9"):
        with pytest.raises(pricing.UnknownModel):
            pricing.catalog_name(name)


# Sizes: gpt-image-1 takes three (OpenAI's image API reference); gpt-image-2 any WIDTHxHEIGHT with
# sides multiples of 16, longest side <= 3840, ratio <= 3:1, 655,360 to 8,294,400 pixels (OpenAI's
# gpt-image-2 notes as OpenAI-compatible gateways republish them; the catalog entry names its source).
@pytest.mark.parametrize(
    ("model", "size", "taken"),
    [
        ("gpt-image-1", "1536x1024", True),
        ("gpt-image-1", "auto", True),
        ("gpt-image-1", "2048x1152", False),
        ("gpt-image-2", "auto", True),
        ("gpt-image-2", "1024x1024", True),
        ("gpt-image-2", "2048x1152", True),
        ("gpt-image-2", "3840x2160", True),
        ("gpt-image-2", "2160x3840", True),
        ("gpt-image-2", "1000x1000", False),  # not multiples of 16
        ("gpt-image-2", "3856x1296", False),  # a side over 3840
        ("gpt-image-2", "2560x800", False),  # 3.2:1
        ("gpt-image-2", "2400x800", True),  # exactly 3:1, 1,920,000 pixels
        ("gpt-image-2", "768x768", False),  # 589,824 pixels: too few
        ("gpt-image-2", "3840x2176", False),  # 8,355,840 pixels: too many
    ],
)
def test_each_model_takes_its_own_sizes(model: str, size: str, taken: bool) -> None:
    problem = pricing.size_problem(model, size)
    assert (problem is None) is taken, problem
    if problem:
        assert size in problem


def test_a_larger_size_costs_and_reserves_in_proportion() -> None:
    """The tables price 1024x1024: 1536x1024 counts 1.5 images (OpenAI's per-size prices for
    gpt-image-1 are 1.5x), a custom gpt-image-2 size its pixels over 1024x1024."""
    square = Decimal(pricing.job_cost("gpt-image-2", "low", 1, None, size="1024x1024").amount)
    wide = Decimal(pricing.job_cost("gpt-image-2", "low", 1, None, size="2048x1152").amount)
    assert (square, wide) == (Decimal("0.0072"), Decimal("0.0162"))  # 2.25 x 0.0072
    assert Decimal(pricing.job_cost("gpt-image-1", "high", 2, None, size="1536x1024").amount) == Decimal("0.6012")
    reserved = pricing.reserve_amount("gpt-image-2", GenerationRequest(prompt="a", quality="high", size="3840x2160"))
    assert reserved >= Decimal("0.2532") * 3840 * 2160 / (1024 * 1024)
    # auto: reserved at its dearest, billed (without usage) as the priced size
    assert pricing.reserve_amount("gpt-image-1", GenerationRequest(prompt="a", quality="low")) == Decimal("0.019806")
    assert Decimal(pricing.job_cost("gpt-image-1", "low", 1, None, size="auto").amount) == Decimal("0.0132")


def test_lifecycles_from_the_catalog() -> None:
    """OpenAI's deprecations page: gpt-image-1 shut upstream 2026-10-23 (TheRouter still serves it:
    deprecated here); gpt-image-1.5, gpt-image-1-mini, chatgpt-image-latest shut 2026-12-01."""
    from datetime import date

    assert pricing.lifecycle("gpt-image-2", date(2026, 12, 1)) == "active"
    assert pricing.lifecycle("gpt-image-1", date(2026, 12, 1)) == "deprecated"
    assert pricing.lifecycle("gpt-image-1.5", date(2026, 11, 30)) == "shut_down"  # its status says so
    with pytest.raises(pricing.ModelShutDown) as shut:
        pricing.servable("openai/gpt-image-1.5", date(2026, 12, 1))
    assert (shut.value.shutdown, shut.value.replacement) == ("2026-12-01", "openai/gpt-image-2")
    listed = [view["id"] for view in pricing.model_views(date(2026, 12, 1))]
    assert listed == ["openai/gpt-image-1", "openai/gpt-image-2"]


def test_deprecated_models_answer_with_rfc_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    import copy
    from datetime import date

    headers = pricing.deprecation_headers("gpt-image-1", date(2026, 12, 1))
    assert headers["Deprecation"] == "@1792713600"  # 2026-10-23T00:00:00Z, RFC 9745's @seconds
    assert "Sunset" not in headers  # TheRouter has announced no date
    assert headers["Link"] == '</v1/models/openai/gpt-image-2>; rel="successor-version"'
    table = copy.deepcopy(pricing.price_table())
    table["models"]["openai/gpt-image-1"]["lifecycle"]["shutdown"] = "2027-01-15"
    monkeypatch.setattr(pricing, "price_table", lambda: table)
    soon = pricing.deprecation_headers("gpt-image-1", date(2026, 12, 1))
    assert soon["Sunset"] == "Fri, 15 Jan 2027 00:00:00 GMT"  # RFC 8594: an HTTP-date
    assert pricing.lifecycle("gpt-image-1", date(2027, 1, 15)) == "shut_down"  # the date came
    assert pricing.deprecation_headers("gpt-image-2", date(2026, 12, 1)) == {}


def test_aliases_map_any_spelling_once() -> None:
    aliases = {"gpt-image-1": "openai/gpt-image-2"}
    assert pricing.aliased("openai/gpt-image-1", aliases) == "openai/gpt-image-2"
    assert pricing.aliased("gpt-image-1", aliases) == "openai/gpt-image-2"
    assert pricing.aliased("othervendor/gpt-image-1", aliases) == "othervendor/gpt-image-1"
    assert pricing.aliased("gpt-image-2", {"gpt-image-2": "gpt-image-1", "gpt-image-1": "x"}) == "gpt-image-1"


def test_the_documented_size_rule_names_the_models_that_take_custom_sizes() -> None:
    """The OpenAPI document's size rule (models.CUSTOM_SIZE_MODELS) agrees with the catalog."""
    from imagejobs.domain.models import CUSTOM_SIZE_MODELS

    custom = {
        name
        for name, entry in pricing.price_table()["models"].items()
        if entry.get("rules", {}).get("size", {}).get("custom")
    }
    assert {pricing.catalog_name(str(name)) for name in CUSTOM_SIZE_MODELS} == custom


def test_a_reservation_bounds_any_prompt_from_its_bytes() -> None:
    """Issue #21: the reservation undercounted prompt tokens for emoji and CJK text (0.5 a
    character); a token is at least one byte of UTF-8, so bytes bound tokens for any text."""
    ascii_prompt, emoji = "a" * 1000, "🦊" * 1000  # 4 bytes each
    model = "openai/gpt-image-1"
    reserved = {
        text: pricing.reserve_amount(model, GenerationRequest(prompt=text)) for text in (emoji, "a", ascii_prompt)
    }
    # 4,000 tokens at most are reserved for the emoji (less the one byte of "a")
    assert reserved[emoji] - reserved["a"] >= Decimal(3999) * Decimal("6.00") / 1_000_000
    assert reserved[emoji] > reserved[ascii_prompt]
