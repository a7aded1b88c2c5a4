import pytest

from keel.llm.provider import retry_after_seconds
from keel.llm.telemetry import estimate_cost
from keel.settings import LLMPrices


def test_cost_uses_the_configured_prices_per_thousand_tokens():
    prices = LLMPrices(prompt_per_1k=0.5, completion_per_1k=1.5)
    assert estimate_cost(prices, 2_000, 1_000) == pytest.approx(2.5)
    assert estimate_cost(LLMPrices(), 10_000, 10_000) == 0.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        (None, None),
        ("", None),
        ("inf", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
    ],
)
def test_retry_after_is_read_in_seconds_only(header, seconds):
    assert retry_after_seconds(header) == seconds
