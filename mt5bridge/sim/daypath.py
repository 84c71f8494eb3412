"""One trading day of ticks (one per second) and the bars built from them.

Inside each hour the path is a Brownian bridge between the hour's seeded open and close levels,
so the fine path has exactly the statistics of the hourly skeleton and a day can be generated on
its own, from its own seed, in a few milliseconds. Prices are kept as integer points: exact, and
half the memory of floats. Bars are built from bid ticks, as MetaTrader 5 builds them, so a bar's
high/low always contain the ticks inside it.
"""

from dataclasses import dataclass

import numpy as np

from .levels import HOURS_PER_BLOCK, STREAM_DAY, HourlyLevels, rng_for
from .records import RATES_DTYPE
from .symbols import SymbolSpec
from .tradingtime import DAY_SECONDS

SPREAD_SEGMENT_SECONDS = 10
SPREAD_LOG_SD = 0.2
_RAW_SPREAD_SEASON = np.ones(24)
_RAW_SPREAD_SEASON[[21, 22, 23, 0, 1]] = [1.2, 1.3, 1.6, 1.8, 1.2]  # around the 00:00 rollover
#: Spread multiplier by hour of day, normalised so that the daily mean is the typical spread.
SPREAD_SEASON = _RAW_SPREAD_SEASON / _RAW_SPREAD_SEASON.mean()
_FRACTION = np.arange(3600) / 3600.0


@dataclass(frozen=True)
class DayTicks:
    """Bid and spread, in points, for each second of one trading day."""

    bid: np.ndarray  # int32[86400]
    spread: np.ndarray  # int16[86400]


def generate_day(levels: HourlyLevels, spec: SymbolSpec, seed: int, symbol_key: int, day: int) -> DayTicks:
    """Deterministically generate trading ``day`` for one symbol."""
    first_hour = 24 * day
    block_index, hour_in_block = divmod(first_hour, HOURS_PER_BLOCK)
    block = levels.block(block_index)
    hours = slice(hour_in_block, hour_in_block + 24)
    open_x, close_x, sigma = block.open[hours], block.close[hours], block.sigma_per_second[hours]

    rng = rng_for(seed, symbol_key, STREAM_DAY, day)
    walk = np.cumsum(rng.standard_normal((24, 3600)), axis=1)
    before = np.zeros_like(walk)
    before[:, 1:] = walk[:, :-1]
    bridge = before - _FRACTION * walk[:, -1:]
    log_level = open_x[:, None] + (close_x - open_x)[:, None] * _FRACTION + sigma[:, None] * bridge
    mid_points = spec.start_price * spec.scale * np.exp(log_level.ravel())

    noise = rng.standard_normal(DAY_SECONDS // SPREAD_SEGMENT_SECONDS)
    hour_factor = np.repeat(SPREAD_SEASON, 3600 // SPREAD_SEGMENT_SECONDS)
    segment_spread = spec.typical_spread * hour_factor * np.exp(SPREAD_LOG_SD * noise - SPREAD_LOG_SD**2 / 2)
    lowest = max(1, round(spec.typical_spread * 0.5))
    spread = np.clip(np.rint(segment_spread), lowest, 8 * spec.typical_spread).astype(np.int16)
    spread = np.repeat(spread, SPREAD_SEGMENT_SECONDS)

    bid = np.rint(mid_points - spread / 2).astype(np.int32)
    if spec.tick_size > 1:  # prices move in ticks of several points (an index at 0.25)
        tick = spec.tick_size
        bid = (np.rint(bid / tick) * tick).astype(np.int32)
        spread = np.maximum(tick, np.rint(spread / tick) * tick).astype(np.int16)
    return DayTicks(bid=bid, spread=spread)


def aggregate_bars(
    spec: SymbolSpec, bid: np.ndarray, spread: np.ndarray, first_epoch: int, seconds: int
) -> np.ndarray:
    """Bars of ``seconds`` length from whole bars' worth of ticks starting at ``first_epoch``."""
    bid_rows = bid.reshape(-1, seconds)
    rates = np.empty(bid_rows.shape[0], dtype=RATES_DTYPE)
    rates["time"] = first_epoch + np.arange(bid_rows.shape[0]) * seconds
    rates["open"] = bid_rows[:, 0] / spec.scale
    rates["high"] = bid_rows.max(axis=1) / spec.scale
    rates["low"] = bid_rows.min(axis=1) / spec.scale
    rates["close"] = bid_rows[:, -1] / spec.scale
    rates["tick_volume"] = np.count_nonzero(np.diff(bid_rows, axis=1), axis=1) + 1
    rates["spread"] = spread.reshape(-1, seconds).min(axis=1)
    rates["real_volume"] = 0
    return rates
