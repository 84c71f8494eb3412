"""The engine's view of the strategies; they live in `bot.strategies` (the plugin interface).

Kept so `bot.engine.strategies` imports go on working: `REGISTRY` holds the built-ins by name and
`load_strategies(names)` builds them with their default parameters (the bot itself loads through
`bot.strategies.load_configured`, which adds plugins and configuration).
"""

from __future__ import annotations

from ..strategies import (
    BUILTIN,
    BUY,
    HOLD,
    SELL,
    MovingAverageCrossover,
    RsiMeanReversion,
    Signal,
    Strategy,
    atr,
    rsi,
    sma,
)

REGISTRY: dict[str, type[Strategy]] = {cls.name: cls for cls in BUILTIN}

__all__ = ["BUY", "HOLD", "REGISTRY", "SELL", "MovingAverageCrossover", "RsiMeanReversion", "Signal", "Strategy",
           "atr", "load_strategies", "rsi", "sma"]


def load_strategies(names: tuple[str, ...]) -> list[Strategy]:
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r}; known: {', '.join(sorted(REGISTRY))}")
    return [REGISTRY[n]() for n in names]
