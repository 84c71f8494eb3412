"""Execution modes as a table: which fillings a symbol accepts and how a market order is priced.

MQL5 rules (see REFERENCE.md "Real brokers"): Instant and Request execution accept FOK only and
requote (10004) when the market moved beyond the request's ``deviation`` from its price; Request
execution needs that price; Market and Exchange execution ignore ``deviation`` (the fill is
wherever the market is) and accept what ``symbol_info().filling_mode`` allows, Exchange also
RETURN. The demo profile lists IOC under Instant execution (``permissive_filling``), which is
how the simulator always behaved.
"""

from dataclasses import dataclass

from mt5bridge.constants import (
    ORDER_FILLING_RETURN,
    SYMBOL_TRADE_EXECUTION_EXCHANGE,
    SYMBOL_TRADE_EXECUTION_INSTANT,
    SYMBOL_TRADE_EXECUTION_MARKET,
    SYMBOL_TRADE_EXECUTION_REQUEST,
    TRADE_RETCODE_INVALID_PRICE,
    TRADE_RETCODE_REQUOTE,
)

from .levels import STREAM_REQUOTE, STREAM_SLIPPAGE, rng_for
from .symbols import SymbolSpec

SLIPPAGE_NONE_SHARE = 0.6  # most market fills are at the quoted price
SLIPPAGE_ADVERSE_SHARE = 0.25  # the rest split between worse and better prices


@dataclass(frozen=True)
class ExecutionRule:
    requotes: bool  # the request's price is checked against the market within deviation
    price_required: bool  # the request must carry a price
    deviation_caps_slippage: bool
    return_always: bool  # RETURN filling accepted whatever filling_mode says


RULES = {
    SYMBOL_TRADE_EXECUTION_REQUEST: ExecutionRule(True, True, True, False),
    SYMBOL_TRADE_EXECUTION_INSTANT: ExecutionRule(True, False, True, False),
    SYMBOL_TRADE_EXECUTION_MARKET: ExecutionRule(False, False, False, False),
    SYMBOL_TRADE_EXECUTION_EXCHANGE: ExecutionRule(False, False, False, True),
}


def accepts_filling(spec: SymbolSpec, filling: int) -> bool:
    return filling in spec.filling or (filling == ORDER_FILLING_RETURN and RULES[spec.execution].return_always)


def market_price(spec: SymbolSpec, is_buy: bool, requested: int, deviation: int, bid: int, ask: int,
                 requote_draw: float | None = None) -> tuple[int, str | None]:
    """(price before slippage, None) or (retcode, comment) when the order is refused.

    ``requote_draw``: a seeded uniform draw for Request execution's dealer requotes (None in
    order_check, which does not ask the dealer).
    """
    rule = RULES[spec.execution]
    market = ask if is_buy else bid
    if rule.price_required and not requested:
        return TRADE_RETCODE_INVALID_PRICE, "Invalid price: Request execution needs the price"
    if rule.requotes and requested and abs(requested - market) > deviation:
        return TRADE_RETCODE_REQUOTE, "Requote"
    if rule.price_required and requote_draw is not None and requote_draw < spec.requote_share:
        return TRADE_RETCODE_REQUOTE, "Requote"
    return market, None


def requote_draw(seed: int, attempt: int) -> float:
    return float(rng_for(seed, 0, STREAM_REQUOTE, attempt).random())


def within_deviation(spec: SymbolSpec, requested: int, deviation: int, price: int) -> int:
    """The fill held to ``requested`` ± ``deviation`` where the dealer honours the deviation.

    Instant/Request execution: the request's deviation is the most the client accepts from the
    price it asked for, so a market already near the edge plus slippage must not fill past it
    (the market check alone allows up to twice the deviation). Whole ticks keep it on the grid.
    """
    if not (requested and RULES[spec.execution].deviation_caps_slippage):
        return price
    reach = deviation // spec.tick_size * spec.tick_size
    return min(max(price, requested - reach), requested + reach)


def slippage(spec: SymbolSpec, deviation: int, seed: int, index: int) -> int:
    """Seeded slippage in points (positive = worse for the client), in whole ticks.

    Instant/Request execution never slip beyond ``deviation``; Market execution ignores it.
    """
    cap = spec.max_slippage
    if RULES[spec.execution].deviation_caps_slippage:
        cap = min(deviation, cap)
    cap //= spec.tick_size
    if cap == 0:
        return 0
    rng = rng_for(seed, 0, STREAM_SLIPPAGE, index)
    draw = rng.random()
    size = int(rng.integers(1, cap + 1)) * spec.tick_size
    if draw < SLIPPAGE_NONE_SHARE:
        return 0
    return size if draw < SLIPPAGE_NONE_SHARE + SLIPPAGE_ADVERSE_SHARE else -size
