"""Strategies as plugins: the interface (`api`), the built-ins, indicators and the loader.

Write your own: subclass `Strategy`, set `name`, declare `params`, implement `evaluate(bars)`;
put the file in a STRATEGY_PATH folder or ship it in a package with an entry point in the
`tradewatch.strategies` group (README, "Write your own strategy"; examples/strategies/).
"""

from .api import ACTIONS, BUY, HOLD, SELL, Param, Signal, Strategy
from .builtin import BUILTIN, MovingAverageCrossover, RsiMeanReversion
from .indicators import atr, rsi, sma
from .loader import ENTRY_POINT_GROUP, StrategyConfigError, discover, from_settings, load_configured

__all__ = ["ACTIONS", "BUILTIN", "BUY", "ENTRY_POINT_GROUP", "HOLD", "SELL", "MovingAverageCrossover", "Param",
           "RsiMeanReversion", "Signal", "Strategy", "StrategyConfigError", "atr", "discover", "from_settings", "load_configured",
           "rsi", "sma"]
