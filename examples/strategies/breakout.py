"""Example user strategy: a Donchian channel breakout.

Run it with the bot (no package edit needed):

    STRATEGY_PATH=examples/strategies STRATEGIES=ma_crossover,breakout \
    STRATEGY_PARAMS='{"breakout": {"lookback": 30, "symbols": ["EURUSD"], "timeframe": "M5"}}' \
    python -m bot run

Buy when the last closed bar closes above the highest high of the `lookback` bars before it, sell
when it closes below their lowest low, hold otherwise. The engine only calls `evaluate` once
`warmup` closed bars exist, and once per newly closed bar.
"""

from __future__ import annotations

from bot.strategies import BUY, HOLD, SELL, Param, Signal, Strategy


class Breakout(Strategy):
    name = "breakout"
    params = {
        "lookback": Param(int, 20, 2, 1000, doc="bars of the channel"),
        "min_break": Param(float, 0.0, 0.0, 1.0, doc="close must clear the channel by this fraction of its width"),
    }

    @property
    def warmup(self) -> int:
        return self.lookback + 1

    def evaluate(self, bars) -> Signal:
        channel_high = float(bars.high[-self.lookback - 1 : -1].max())
        channel_low = float(bars.low[-self.lookback - 1 : -1].min())
        close = float(bars.close[-1])
        margin = (channel_high - channel_low) * self.min_break
        if close > channel_high + margin:
            return Signal(BUY, 0.6, f"close {close:g} broke above the {self.lookback}-bar high {channel_high:g}")
        if close < channel_low - margin:
            return Signal(SELL, 0.6, f"close {close:g} broke below the {self.lookback}-bar low {channel_low:g}")
        return Signal(HOLD, 0.0, f"inside the {self.lookback}-bar channel")
