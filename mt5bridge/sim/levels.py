"""The hourly skeleton of a symbol's seeded price path: trend regimes, volatility and weekend gaps.

Log-price levels at every trading-hour boundary are generated in independent blocks of 52
trading weeks, each from its own seed, and chained by their totals outwards from the anchor (also
backwards, for history before it). Any hour can therefore be reached without generating
anything but a few small blocks, and the result does not depend on the order of requests.

Model per trading hour ``h``: a regime (mean length ~36 h) sets a drift and a volatility
multiplier, an intraday seasonal factor scales volatility by hour of day, and the first hour of a
week starts with a small gap. Volatility is calibrated so that daily returns annualise to the
symbol's ``annual_vol``; the regimes add trends on top, which is what gives moving-average
strategies crossovers to trade.
"""

import threading
from dataclasses import dataclass

import numpy as np

from .tradingtime import TRADING_DAYS_PER_WEEK

HOURS_PER_BLOCK = 24 * TRADING_DAYS_PER_WEEK * 52
HOURS_PER_WEEK = 24 * TRADING_DAYS_PER_WEEK
TRADING_HOURS_PER_YEAR = HOURS_PER_BLOCK
MEAN_REGIME_HOURS = 36
TREND_STRENGTH = 0.15  # regime drift sd, as a fraction of the hourly sd
REGIME_VOL_SD = 0.3  # log-sd of the regime volatility multiplier
WEEKEND_GAP_SD = 0.5  # in hourly sds

_RAW_SEASON = np.array(
    [0.60, 0.60, 0.65, 0.65, 0.60, 0.60, 0.75, 1.00, 1.25, 1.20, 1.10, 1.05,
     1.20, 1.45, 1.50, 1.35, 1.20, 1.00, 0.90, 0.80, 0.70, 0.60, 0.55, 0.55]
)  # fmt: skip
#: Volatility by hour of day (UTC): quiet Asia, busy London/New York overlap; RMS 1.
VOL_SEASON = _RAW_SEASON / np.sqrt(np.mean(_RAW_SEASON**2))

# Stream identifiers, so that every random draw has its own independent seed.
STREAM_HOURLY = 1
STREAM_DAY = 2
STREAM_SLIPPAGE = 3
STREAM_REQUOTE = 4
_INDEX_OFFSET = 1 << 40  # SeedSequence entropy must be non-negative


def rng_for(seed: int, symbol_key: int, stream: int, index: int) -> np.random.Generator:
    """An independent generator for one (seed, symbol, stream, index) cell of the simulation."""
    entropy = [seed % (1 << 64), symbol_key, stream, index + _INDEX_OFFSET]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def hourly_sigma(annual_vol: float) -> float:
    """Hourly log-sd such that daily returns (diffusion plus a day of regime drift) hit ``annual_vol``."""
    return annual_vol / np.sqrt(TRADING_HOURS_PER_YEAR * (1 + 24 * TREND_STRENGTH**2))


@dataclass(frozen=True)
class LevelBlock:
    """Per-hour log levels (relative to the anchor price) for one block of trading hours."""

    open: np.ndarray  # level at the first second of the hour (after any weekend gap)
    close: np.ndarray  # level the hour drifts to (the next hour's open before its gap)
    sigma_per_second: np.ndarray  # diffusion sd per second inside the hour


class HourlyLevels:
    """Seeded hourly levels for one symbol, generated lazily per block and cached."""

    def __init__(self, seed: int, symbol_key: int, annual_vol: float):
        self._seed = seed
        self._key = symbol_key
        self._sigma = hourly_sigma(annual_vol)
        self._raw: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._start: dict[int, float] = {0: 0.0}
        self._blocks: dict[int, LevelBlock] = {}
        self._lock = threading.Lock()

    def block(self, index: int) -> LevelBlock:
        with self._lock:
            cached = self._blocks.get(index)
            if cached is None:
                open_rel, close_rel, sigma = self._raw_block(index)
                start = self._start_of(index)
                cached = LevelBlock(open_rel + start, close_rel + start, sigma)
                self._blocks[index] = cached
            return cached

    def _start_of(self, index: int) -> float:
        """Level at the start of block ``index``, chained outwards from block 0."""
        if index not in self._start:
            step = 1 if index > 0 else -1
            known = index
            while known not in self._start:
                known -= step
            while known != index:
                if step > 0:
                    self._start[known + 1] = self._start[known] + self._raw_block(known)[1][-1]
                else:
                    self._start[known - 1] = self._start[known] - self._raw_block(known - 1)[1][-1]
                known += step
        return self._start[index]

    def _raw_block(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Levels relative to the block's own start, computed once."""
        cached = self._raw.get(index)
        if cached is not None:
            return cached
        rng = rng_for(self._seed, self._key, STREAM_HOURLY, index)
        n = HOURS_PER_BLOCK
        # Fixed-size draws keep the stream layout independent of the values drawn.
        durations = rng.geometric(1.0 / MEAN_REGIME_HOURS, size=n)
        regime_drift = rng.normal(0.0, TREND_STRENGTH * self._sigma, size=n)
        regime_vol = np.exp(rng.normal(0.0, REGIME_VOL_SD, size=n) - REGIME_VOL_SD**2)
        shocks = rng.standard_normal(n)
        gaps = rng.standard_normal(n // HOURS_PER_WEEK) * WEEKEND_GAP_SD * self._sigma

        regime_of_hour = np.repeat(np.arange(n), durations)[:n]
        sigma_hour = self._sigma * np.tile(VOL_SEASON, n // 24) * regime_vol[regime_of_hour]
        increments = regime_drift[regime_of_hour] + sigma_hour * shocks
        gap_per_hour = np.zeros(n)
        gap_per_hour[::HOURS_PER_WEEK] = gaps
        close_rel = np.cumsum(gap_per_hour + increments)
        open_rel = close_rel - increments
        cached = (open_rel, close_rel, sigma_hour / 60.0)
        self._raw[index] = cached
        return cached
