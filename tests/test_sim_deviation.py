"""On every shipped profile, a symbol whose dealer honours the deviation (Instant and Request execution)
fills within the request's deviation of the asked price, or requotes: never past it, even with the
market already at the deviation's edge and the profile's slippage on top (stop 11's CI failure)."""

from __future__ import annotations

import pytest
from sim_profile_helpers import buy, filling, load_profile, profiles_where, sell, terminal, utc

from mt5bridge import constants as mt5
from mt5bridge.sim.execution import RULES

ORDERS = 40


def _capped(profile: str) -> list[str]:
    return [name for name, spec in load_profile(profile).symbols.items()
            if RULES[spec.execution].deviation_caps_slippage]


def _close(term, symbol, side, info, ticket, deviation, type_filling):
    """Close the fill (the margin stays free for the next order), at the market; a requote is retried."""
    close = sell if side == "buy" else buy
    for _ in range(20):
        tick = term.symbol_info_tick(symbol)
        result = close(term, symbol, info.volume_min, position=ticket, deviation=deviation, type_filling=type_filling,
                       price=tick.bid if side == "buy" else tick.ask)
        if result.retcode != mt5.TRADE_RETCODE_REQUOTE:
            assert result.retcode == mt5.TRADE_RETCODE_DONE, (symbol, result.retcode, result.comment)
            return
    raise AssertionError(f"{symbol}: position {ticket} requoted 20 times in a row")


@pytest.mark.parametrize("profile", profiles_where(lambda p: bool(_capped(p))))
def test_fills_stay_within_the_deviation_of_the_asked_price(profile):
    term = terminal(profile, utc(2026, 1, 6, 10))
    fills = 0
    for symbol in _capped(profile):
        assert term.symbol_select(symbol, True)
        info = term.symbol_info(symbol)
        ticks = max(1, round(info.trade_tick_size / info.point))
        deviation = 10 * ticks  # points, whole ticks
        reach = deviation * info.point + info.point / 10  # the edge itself is allowed; float slack
        for side, send in (("buy", buy), ("sell", sell)):
            for _ in range(ORDERS):
                tick = term.symbol_info_tick(symbol)
                market = tick.ask if side == "buy" else tick.bid
                # asked price at the deviation's edge, on the side that makes adverse slippage go past it
                asked = round(market - deviation * info.point if side == "buy" else market + deviation * info.point,
                              info.digits)
                result = send(term, symbol, info.volume_min, price=asked, deviation=deviation,
                              type_filling=filling(profile, symbol))
                if result.retcode == mt5.TRADE_RETCODE_REQUOTE:
                    continue  # the dealer's own requotes (Request execution) or a market that moved
                assert result.retcode == mt5.TRADE_RETCODE_DONE, (symbol, result.retcode, result.comment)
                assert abs(result.price - asked) <= reach, (symbol, side, asked, result.price, deviation)
                fills += 1
                _close(term, symbol, side, info, result.order, deviation, filling(profile, symbol))
    assert fills >= ORDERS  # the check ran on real fills
