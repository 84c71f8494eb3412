"""Building the engine's strategy list: at start and on `ctl reload-strategies`, through one function.

`build_strategies(settings)` is the single place that turns settings into strategy objects: the
strategy plugin loader (bot.strategies.from_settings: built-ins, STRATEGY_PATH files, installed
entry points, STRATEGY_PARAMS / STRATEGIES_FILE), so a reload re-reads exactly what a start reads.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config import Settings
from ..strategies import Strategy
from ..strategies import from_settings as strategies_from_settings

#: The settings a reload takes from the fresh read; every other setting stays as the bot started.
STRATEGY_SETTINGS = ("strategies", "strategy_path", "strategy_params", "strategies_file")


def build_strategies(settings: Settings) -> list[Strategy]:
    """The strategies `settings` name, built and checked (StrategyConfigError, a ValueError, naming the bad one)."""
    return strategies_from_settings(settings)


def reload_strategies(engine: Any, read_settings: Any = None) -> dict[str, Any]:
    """Re-read the strategy settings and rebuild the engine's list in place (the app, /status and the
    engine's strategy runner share that list); a strategy disabled for raising gets its new chance.

    A bad strategy or parameter raises ValueError and leaves the running list as it was.
    """
    fresh = (read_settings or Settings.from_env)()
    settings = replace(engine.settings, **{name: getattr(fresh, name) for name in STRATEGY_SETTINGS
                                           if hasattr(fresh, name)})
    built = build_strategies(settings)
    before = [s.name for s in engine.strategies]
    engine.strategies[:] = built
    runner = getattr(engine, "runner", None)
    if runner is not None:
        runner.disabled.clear()
    engine.settings = settings
    return {"before": before, "after": [s.name for s in built]}
