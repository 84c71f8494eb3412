"""convert.price / convert.money keep recent conversions (issue 16): a kept Decimal is the one the
plain formula gives for that very input, every time, whatever came before it (signed zeros,
ints against equal floats, numpy scalars, digits beyond the table, a full cache)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np
import pytest

from bot.gateway import convert

VALUES = [1.17141, 1.17141, -0.0, 0.0, 0, -1.5, 1, 1.0, True, 2**60, float(2**60), 1e20, 10**20, 156.635,
          0.1, np.float32(0.1), np.float64(0.1), np.float64(-0.0), 4353.83, 1e-7, 2.675, 0.285, 123456789.12345678,
          np.int64(7), "1.25", Decimal("2.5")]


def plain_price(value, digits):
    return Decimal(str(round(float(value), digits))).quantize(Decimal(1).scaleb(-digits))


def plain_money(value):
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _outcome(convert_, *args):
    """The Decimal's sign, digits and exponent (a zero's sign too, not just ==), or the error raised."""
    try:
        return convert_(*args).as_tuple()
    except (InvalidOperation, ValueError, TypeError) as error:
        return type(error)


@pytest.mark.parametrize("cache_size", [4096, 1])
def test_kept_prices_and_amounts_are_what_the_plain_formula_gives(monkeypatch, cache_size):
    monkeypatch.setattr(convert, "CACHE_SIZE", cache_size)
    monkeypatch.setattr(convert, "_PRICES", {})
    monkeypatch.setattr(convert, "_MONEY", {})
    for _ in range(2):  # the second round meets every value kept
        for value in VALUES:
            for digits in (0, 2, 3, 5, 11, 13):
                if isinstance(value, str | Decimal):
                    continue
                assert _outcome(convert.price, value, digits) == _outcome(plain_price, value, digits), (value, digits)
            assert _outcome(convert.money, value) == _outcome(plain_money, value), value
    assert len(convert._PRICES) <= cache_size and len(convert._MONEY) <= cache_size
    assert cache_size == 1 or (1.17141, 5) in convert._PRICES  # it does keep (or it saves nothing)


def test_what_the_plain_formula_refuses_is_refused_and_not_kept():
    for value in (float("inf"), float("-inf")):
        with pytest.raises(InvalidOperation):
            convert.price(value, 5)
        with pytest.raises(InvalidOperation):
            convert.money(value)
    assert (float("inf"), 5) not in convert._PRICES and float("inf") not in convert._MONEY
