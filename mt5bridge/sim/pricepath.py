"""Random access to a symbol's seeded ticks and bars, with caches sized for a polling bot.

A bot that reads 100 bars of several symbols every cycle must not pay for generation each time:
days of ticks are generated once (numpy, a few ms each) and kept in a small LRU; bars are kept per
(day, timeframe) in a larger one; the forming bar is recomputed only when its tick changes. Paths
are shared between terminals with the same seed, because they are pure functions of it.
"""

import operator
import threading
import zlib
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from .daypath import DayTicks, aggregate_bars, generate_day
from .levels import HourlyLevels
from .records import RATES_DTYPE
from .symbols import SymbolSpec
from .tradingtime import DAY_SECONDS, tick_epoch

DAY_CACHE_SIZE = 4  # ~2 MB of ticks per symbol
BAR_ROWS_BUDGET = 150_000  # per timeframe: covers MT5's default maxbars of M1 history


class _Lru:
    """A minimal LRU mapping (callers hold the path lock)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict = OrderedDict()

    def get(self, key):
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)


class PricePath:
    """Ticks (integer points, one per trading second) and bars of one symbol for one seed."""

    def __init__(self, seed: int, spec: SymbolSpec):
        self.spec = spec
        self._seed = seed
        self._key = zlib.crc32(spec.feed.encode())  # stable: adding symbols changes no path
        self._levels = HourlyLevels(seed, self._key, spec.annual_vol)
        self._days = _Lru(DAY_CACHE_SIZE)
        self._recent: tuple[int | None, DayTicks | None] = (None, None)  # the last day() asked for
        self._bars: dict[int, _Lru] = {}
        self._forming: dict[int, tuple[int, tuple]] = {}
        self._lock = threading.RLock()

    def day(self, day: int) -> DayTicks:
        recent = self._recent  # one read: another thread may replace it
        if recent[0] == day:  # the LRU's most recent entry, or was a moment ago: it only decides what
            # is kept, never a value (days are pure functions of the seed)
            return recent[1]
        with self._lock:
            ticks = self._days.get(day)
            if ticks is None:
                ticks = generate_day(self._levels, self.spec, self._seed, self._key, day)
                self._days.put(day, ticks)
            self._recent = (day, ticks)
            return ticks

    def tick(self, k: int) -> tuple[int, int]:
        """(bid, ask) in points at tick ``k``."""
        day, offset = divmod(k, DAY_SECONDS)
        ticks = self.day(day)
        bid = ticks.bid.item(offset)  # a Python int, without a numpy scalar on the way
        return bid, bid + ticks.spread.item(offset)

    def window(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(bid, ask) arrays in points for ticks ``first..last`` of one trading day."""
        day, start = divmod(first, DAY_SECONDS)
        if last // DAY_SECONDS != day:
            raise ValueError("a window must stay within one trading day")
        ticks = self.day(day)
        stop = start + last - first + 1
        bid = ticks.bid[start:stop]
        return bid, bid + ticks.spread[start:stop]

    def bars(self, seconds: int, first: int, last: int, now_k: int) -> np.ndarray:
        """Bars ``first..last`` (bar n covers ticks n*seconds …) as of tick ``now_k``.

        Bars after the one containing ``now_k`` must not be requested: they are the future.
        """
        forming = now_k // seconds
        if last > forming:
            raise ValueError("bars from the future were requested")
        per_day = DAY_SECONDS // seconds
        with self._lock:
            day = first // per_day
            if first <= last and last // per_day == day:  # one day's rows (a polling bot's case): one copy
                offset = day * per_day
                out = self._day_bars(seconds, day)[first - offset : last - offset + 1].copy()
                if last == forming:
                    out[-1] = self._forming_bar(seconds, now_k)
                return out
            out = np.empty(max(0, last - first + 1), dtype=RATES_DTYPE)
            complete_last = min(last, forming - 1)
            n = first
            while n <= complete_last:
                day = n // per_day
                stop = min(complete_last, (day + 1) * per_day - 1)
                offset = day * per_day
                out[n - first : stop - first + 1] = self._day_bars(seconds, day)[
                    n - offset : stop - offset + 1
                ]
                n = stop + 1
            if last == forming:
                out[-1] = self._forming_bar(seconds, now_k)
        return out

    def _day_bars(self, seconds: int, day: int) -> np.ndarray:
        cache = self._bars.get(seconds)
        if cache is None:
            cache = self._bars[seconds] = _Lru(max(4, BAR_ROWS_BUDGET // (DAY_SECONDS // seconds)))
        bars = cache.get(day)
        if bars is None:
            ticks = self.day(day)
            bars = aggregate_bars(self.spec, ticks.bid, ticks.spread, tick_epoch(day * DAY_SECONDS), seconds)
            cache.put(day, bars)
        return bars

    def _forming_bar(self, seconds: int, now_k: int) -> tuple:
        """The bar containing tick ``now_k``, so far: a RATES_DTYPE row as a tuple."""
        cached = self._forming.get(seconds)
        if cached is not None and cached[0] == now_k:
            return cached[1]
        bar_start = now_k - now_k % seconds
        day, offset = divmod(bar_start, DAY_SECONDS)
        ticks = self.day(day)
        stop = offset + now_k - bar_start + 1
        if stop - offset <= SHORT_BAR_TICKS:
            bar = _short_bar(ticks.bid[offset:stop], ticks.spread[offset:stop], self.spec.scale)
        else:
            bar = _long_bar(ticks.bid[offset:stop], ticks.spread[offset:stop], self.spec.scale)
        bar = (tick_epoch(bar_start), *bar)
        self._forming[seconds] = (now_k, bar)
        return bar


#: Up to this many ticks a forming bar is summarised in Python (a list of a few dozen ints costs
#: a third of numpy's per-call overhead, ~4 us against ~12 us for an M1 bar); above, in numpy.
SHORT_BAR_TICKS = 300


def _short_bar(bid: np.ndarray, spread: np.ndarray, scale: int) -> tuple:
    """open high low close tick_volume spread real_volume of ticks ``bid``/``spread``, in Python.

    The same values as ``_long_bar``: exact integer max/min/counts, and ``int / int`` true
    division rounds like numpy's (both operands are exact doubles below 2**53)."""
    bids = bid.tolist()
    changes = sum(map(operator.ne, bids[1:], bids[:-1]))
    return (bids[0] / scale, max(bids) / scale, min(bids) / scale, bids[-1] / scale, changes + 1,
            min(spread.tolist()), 0)  # fmt: skip


def _long_bar(bid: np.ndarray, spread: np.ndarray, scale: int) -> tuple:
    """The same summary as ``_short_bar``, in numpy (for hour bars and longer)."""
    return (bid[0] / scale, bid.max() / scale, bid.min() / scale, bid[-1] / scale,
            np.count_nonzero(bid[1:] != bid[:-1]) + 1, spread.min(), 0)  # fmt: skip


@lru_cache(maxsize=64)
def price_path(seed: int, spec: SymbolSpec) -> PricePath:
    """The shared path for (seed, spec); deterministic, so sharing is safe.

    Keyed by the whole (frozen) spec: the same feed with other digits or tick size is another path.
    """
    return PricePath(seed, spec)
