"""Which filling mode a market order may carry, from the symbol's execution mode and filling bits.

A real broker refuses a filling mode the symbol does not allow with 10030 (TRADE_RETCODE_INVALID_FILL):
an FOK-only forex symbol refuses IOC, an Instant/Request execution symbol takes FOK only, an
exchange symbol may take only RETURN. The rules are MQL5's (ENUM_ORDER_TYPE_FILLING,
SYMBOL_FILLING_MODE) written as one table: execution mode -> filling modes in order of preference,
each with the `filling_mode` bit that allows it. IOC comes first where allowed (it is what the bot
always sent: a partial fill is kept rather than the whole order refused), then FOK, then RETURN.
"""

from __future__ import annotations

from mt5bridge import constants as mt5

#: The candidate is allowed whatever the bits say.
ALWAYS = 0
#: The candidate is allowed only when the symbol allows neither FOK nor IOC (filling_mode == 0).
ONLY_IF_NONE = -1

_FOK_IOC = (
    (mt5.ORDER_FILLING_IOC, mt5.SYMBOL_FILLING_IOC),
    (mt5.ORDER_FILLING_FOK, mt5.SYMBOL_FILLING_FOK),
)

#: execution mode -> ((order filling mode, the filling_mode bit that allows it), ...) in preference order.
FILLING_TABLE: dict[int, tuple[tuple[int, int], ...]] = {
    # Request and Instant execution: market orders are always Fill or Kill.
    mt5.SYMBOL_TRADE_EXECUTION_REQUEST: ((mt5.ORDER_FILLING_FOK, ALWAYS),),
    mt5.SYMBOL_TRADE_EXECUTION_INSTANT: ((mt5.ORDER_FILLING_FOK, ALWAYS),),
    # Market execution: IOC / FOK as the bits allow; RETURN only when neither is allowed.
    mt5.SYMBOL_TRADE_EXECUTION_MARKET: (*_FOK_IOC, (mt5.ORDER_FILLING_RETURN, ONLY_IF_NONE)),
    # Exchange execution: IOC / FOK as allowed, and RETURN always.
    mt5.SYMBOL_TRADE_EXECUTION_EXCHANGE: (*_FOK_IOC, (mt5.ORDER_FILLING_RETURN, ALWAYS)),
}

NAMES = {mt5.ORDER_FILLING_FOK: "FOK", mt5.ORDER_FILLING_IOC: "IOC", mt5.ORDER_FILLING_RETURN: "RETURN"}


def allowed_fillings(exemode: int, filling_bits: int) -> tuple[int, ...]:
    """The order filling modes a market order on this symbol may use, best first.

    An execution mode the table does not know is treated as Market execution (the common case
    for any newer mode): the bits still decide.
    """
    rows = FILLING_TABLE.get(int(exemode), FILLING_TABLE[mt5.SYMBOL_TRADE_EXECUTION_MARKET])
    bits = int(filling_bits) & (mt5.SYMBOL_FILLING_FOK | mt5.SYMBOL_FILLING_IOC)
    out = []
    for mode, needs in rows:
        if needs == ALWAYS or (needs == ONLY_IF_NONE and bits == 0) or (needs > 0 and bits & needs):
            out.append(mode)
    return tuple(out)


def next_filling(exemode: int, filling_bits: int, tried: set[int]) -> int | None:
    """The first allowed filling mode not yet tried (None: every allowed one was tried)."""
    return next((mode for mode in allowed_fillings(exemode, filling_bits) if mode not in tried), None)
