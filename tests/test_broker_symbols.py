"""Configured symbols matched to the broker's own names: exact, SYMBOL_SUFFIX, or detected."""

import pytest

from bot.config import ConfigError
from bot.engine.symbols import match_symbol

BROKER = ["EURUSD.m", "GBPUSD.m", "XAUUSD", "XAUUSD.pro", "#US500", "USDJPYm", "USDJPY.ecn", "EURJPY"]


@pytest.mark.parametrize(("name", "suffix", "expected"), [
    ("XAUUSD", "", "XAUUSD"),  # exact first, although XAUUSD.pro also fits
    ("EURUSD", "", "EURUSD.m"),  # the one candidate
    ("US500", "", "#US500"),  # a prefix
    ("USDJPY", "m", "USDJPYm"),  # the setting picks among USDJPYm and USDJPY.ecn
    ("US500", "#", "#US500"),
    ("AUDUSD", "", None),
    ("eurusd", "", None),  # case-sensitive: brokers spell names their own way
])
def test_matching(name, suffix, expected):
    assert match_symbol(name, BROKER, suffix) == expected


def test_two_candidates_stop_with_one_line_naming_them():
    with pytest.raises(ConfigError) as ambiguous:
        match_symbol("USDJPY", BROKER)
    message = str(ambiguous.value)
    assert message.startswith("SYMBOLS:") and "\n" not in message
    assert "USDJPYm" in message and "USDJPY.ecn" in message and "SYMBOL_SUFFIX" in message
