"""Runs the strategies for the engine: which ones are due on a symbol and timeframe, and isolation.

Isolation: an exception raised inside a strategy (a user's plugin, a built-in bug) disables that
strategy alone for the rest of the run: the others keep their cycle, bars and signals. It is
counted (`tradewatch_strategy_errors_total`), logged once with its traceback, and the strategy's
`tradewatch_strategy_enabled` gauge drops to 0 (alert StrategyDisabled,
prometheus/rules/strategies.yml). Why disable rather than retry next cycle: a strategy that failed
once on some bars will most likely fail again on the next bar, and a traceback every 30 s for
months hides everything else in the log; the operator re-enables it by restarting the bot.

Warm-up: a strategy with fewer closed bars than its `warmup` is not called; it holds.

Bars: read through a rolling window per (symbol, timeframe) (bot/engine/barwindow.py), which fetches
only the bars closed since the last cycle and gives exactly what a full read would. The engine asks
a strategy only when its timeframe's newest closed bar is one it has not seen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..config import TIMEFRAMES
from ..gateway.types import Bars
from ..strategies import ACTIONS, HOLD, Signal, Strategy
from .barwindow import BarWindows

log = logging.getLogger("bot.engine.strategies")


class StrategyRunner:
    def __init__(self, strategies: list[Strategy], symbols: tuple[str, ...], timeframe: str, bars: int,
                 observer: Callable[[], Any], broker_name: Callable[[str], str] = lambda name: name):
        self.strategies = strategies
        self.broker_name = broker_name  # a configured symbol -> the broker's spelling the engine trades
        self.default_symbols = symbols
        self.default_timeframe = timeframe
        self.bars = bars
        self._observer = observer
        self.disabled: dict[str, str] = {}  # strategy name -> the error that disabled it
        self.windows = BarWindows()

    def timeframe_of(self, strategy: Strategy) -> str:
        return strategy.timeframe or self.default_timeframe

    def bars_for(self, strategies: list[Strategy]) -> int:
        """Closed bars to read for these strategies: BARS, or more if a warm-up needs it."""
        return max([self.bars, *(int(getattr(s, "warmup", 0) or 0) + 1 for s in strategies)])

    def closed_bars(self, gateway: Any, symbol: str, timeframe: str, strategies: list[Strategy]) -> Bars:
        """The closed bars of a symbol and timeframe, enough for these strategies' warm-up.

        The bar still forming is dropped: strategies only ever see complete bars. Refused bars raise
        BadBrokerData (the symbol sits the cycle out); the window keeps what it had."""
        return self.windows.closed(gateway, symbol, TIMEFRAMES[timeframe], self.bars_for(strategies))

    def groups(self, symbol: str) -> list[tuple[str, list[Strategy]]]:
        """The enabled strategies trading `symbol`, by timeframe (one bars read per pair)."""
        by_tf: dict[str, list[Strategy]] = {}
        for strategy in self.strategies:
            if strategy.name in self.disabled:
                continue
            if symbol not in {self.broker_name(n) for n in (strategy.symbols or self.default_symbols)}:
                continue
            by_tf.setdefault(self.timeframe_of(strategy), []).append(strategy)
        return list(by_tf.items())

    def plan(self) -> dict[str, list[tuple[str, list[Strategy]]]]:
        """`groups` of every symbol an enabled strategy trades, worked out at once (a cycle's start).

        Why: `groups(symbol)` maps every strategy's symbols to the broker's spelling again for each
        symbol it is asked about; a cycle asks about every symbol (issue 16). The same lists in the
        same order: strategies in their order, timeframes in the order their first strategy has.
        """
        by_symbol: dict[str, dict[str, list[Strategy]]] = {}
        for strategy in self.strategies:
            if strategy.name in self.disabled:
                continue
            timeframe = self.timeframe_of(strategy)
            for symbol in {self.broker_name(n) for n in (strategy.symbols or self.default_symbols)}:
                by_symbol.setdefault(symbol, {}).setdefault(timeframe, []).append(strategy)
        return {symbol: list(by_tf.items()) for symbol, by_tf in by_symbol.items()}

    def find(self, name: str) -> Strategy | None:
        return next((s for s in self.strategies if s.name == name and name not in self.disabled), None)

    def evaluate(self, strategy: Strategy, bars: Any) -> Signal | None:
        """The strategy's signal, HOLD while it warms up, or None once it failed (it is then disabled)."""
        if strategy.name in self.disabled:
            return None
        warmup = int(getattr(strategy, "warmup", 0) or 0)
        if len(bars.close) < warmup:
            return Signal(HOLD, 0.0, f"warming up ({len(bars.close)}/{warmup} bars)")
        try:
            signal = strategy.evaluate(bars)
            if not isinstance(signal, Signal) or signal.action not in ACTIONS:
                raise TypeError(f"evaluate() must return a Signal with action BUY, SELL or HOLD, got {signal!r}")
        except Exception as exc:  # noqa: BLE001 - one strategy's bug must not stop the others
            self._disable(strategy, bars, exc)
            return None
        return signal

    def _disable(self, strategy: Strategy, bars: Any, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self.disabled[strategy.name] = reason
        log.error("strategy %s raised and is disabled for the rest of the run: %s", strategy.name, reason,
                  exc_info=exc, extra={"strategy": strategy.name, "symbol": getattr(bars, "symbol", None),
                                       "error": reason})
        observer = self._observer()
        observer.strategy_failed(strategy.name, reason)
