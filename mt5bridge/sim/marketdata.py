"""History reads by date: copy_rates_from / copy_rates_range and copy_ticks_from / copy_ticks_range.

They read the same seeded path as copy_rates_from_pos and symbol_info_tick, so every view of the
market agrees: a bar from copy_rates_range is the bar copy_rates_from_pos returns for the same
time, and its close is the bid of the last tick copy_ticks_range returns inside it. Nothing from
the future is ever returned (bars up to the forming one, ticks up to now), and the history is as
deep as the terminal's ``maxbars``.

Ticks are the seconds at which the bid or the ask changed (MetaTrader 5 records changes, not
samples), flagged TICK_FLAG_BID / TICK_FLAG_ASK by which side moved. Forex has no trade ticks, so
COPY_TICKS_TRADE returns an empty array, as it does at a real forex broker.
"""

import numpy as np

from mt5bridge.constants import COPY_TICKS_ALL, COPY_TICKS_INFO, TICK_FLAG_ASK, TICK_FLAG_BID

from .quotes import Quotes
from .records import RATES_DTYPE, TICKS_DTYPE
from .tradingtime import DAY_SECONDS, tick_epoch, tick_index

#: At most this many ticks per call (a real terminal also caps what one call returns).
MAX_TICKS = 1_000_000


def first_tick_at_or_after(epoch: float) -> int:
    k = tick_index(epoch)
    return k if tick_epoch(k) >= epoch else k + 1


def _bars(quotes: Quotes, symbol: str, seconds: int, first: int, last: int, now_k: int, maxbars: int):
    forming = now_k // seconds
    first = max(first, forming - maxbars + 1)
    last = min(last, forming)
    if last < first:
        return np.empty(0, dtype=RATES_DTYPE)
    return quotes.path(symbol).bars(seconds, first, last, now_k)


def rates_from(
    quotes: Quotes, symbol: str, seconds: int, date_from: float, count: int, now_k: int, maxbars: int
):
    """``count`` bars opened at or before ``date_from``, oldest first."""
    last = min(tick_index(date_from), now_k) // seconds  # the future has no bars yet
    return _bars(quotes, symbol, seconds, last - count + 1, last, now_k, maxbars)


def rates_range(
    quotes: Quotes, symbol: str, seconds: int, date_from: float, date_to: float, now_k: int, maxbars: int
):
    """Bars whose open time is within [date_from, date_to], oldest first."""
    first = -(-first_tick_at_or_after(date_from) // seconds)
    last = tick_index(date_to) // seconds  # that bar opened at or before date_to
    return _bars(quotes, symbol, seconds, first, last, now_k, maxbars)


def _wants_info(flags: int) -> bool:
    return flags == COPY_TICKS_ALL or bool(flags & COPY_TICKS_INFO)


def _tick_rows(quotes: Quotes, symbol: str, first: int, last: int, limit: int) -> np.ndarray:
    """Changed ticks among seconds ``first..last``, at most ``limit`` of them."""
    scale = quotes.spec(symbol).scale
    chunks: list[np.ndarray] = []
    found = 0
    k = first
    while k <= last and found < limit:
        stop = min(last, (k // DAY_SECONDS + 1) * DAY_SECONDS - 1)
        bid, ask = quotes.window(symbol, k, stop)
        prev_bid, prev_ask = quotes.window(symbol, k - 1, k - 1) if k % DAY_SECONDS else (None, None)
        bid, ask = np.asarray(bid, dtype=np.int64), np.asarray(ask, dtype=np.int64)
        before_bid = np.concatenate(([-1 if prev_bid is None else prev_bid[0]], bid[:-1]))
        before_ask = np.concatenate(([-1 if prev_ask is None else prev_ask[0]], ask[:-1]))
        flags = np.where(bid != before_bid, TICK_FLAG_BID, 0) | np.where(ask != before_ask, TICK_FLAG_ASK, 0)
        changed = np.flatnonzero(flags)[: limit - found]
        rows = np.zeros(changed.size, dtype=TICKS_DTYPE)
        epochs = tick_epoch(k) + changed.astype(np.int64)  # a trading day is contiguous wall time
        rows["time"] = epochs
        rows["time_msc"] = epochs * 1000
        rows["bid"] = bid[changed] / scale
        rows["ask"] = ask[changed] / scale
        rows["flags"] = flags[changed]
        chunks.append(rows)
        found += changed.size
        k = stop + 1
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=TICKS_DTYPE)


def ticks_from(quotes: Quotes, symbol: str, date_from: float, count: int, flags: int, now_k: int):
    """Up to ``count`` ticks at or after ``date_from`` (and not after now), oldest first."""
    if not _wants_info(flags):
        return np.empty(0, dtype=TICKS_DTYPE)
    return _tick_rows(quotes, symbol, first_tick_at_or_after(date_from), now_k, min(count, MAX_TICKS))


def ticks_range(quotes: Quotes, symbol: str, date_from: float, date_to: float, flags: int, now_k: int):
    """Ticks within [date_from, date_to] (and not after now), oldest first."""
    if not _wants_info(flags):
        return np.empty(0, dtype=TICKS_DTYPE)
    last = min(tick_index(date_to), now_k)
    return _tick_rows(quotes, symbol, first_tick_at_or_after(date_from), last, MAX_TICKS)
