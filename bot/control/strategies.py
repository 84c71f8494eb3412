"""Building the engine's strategy list: at start and on `ctl reload-strategies`, through one function.

`build_strategies(settings)` is the single place that turns settings into strategy objects. Today it
reads STRATEGIES and the built-in registry (bot.engine.strategies); the strategy plugin loader
(issue 14 item 1) plugs in here, so a reload re-reads exactly what a start reads.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config import Settings
from ..engine import Strategy, load_strategies


def build_strategies(settings: Settings) -> list[Strategy]:
    """The strategies `settings` name; ValueError naming the bad one."""
    return load_strategies(settings.strategies)


def reload_strategies(engine: Any, read_settings: Any = None) -> dict[str, Any]:
    """Re-read the strategy settings and rebuild the engine's list in place (the app and /status share it).

    Only the strategy settings are taken from the fresh read: every other setting stays what the
    bot started with. A bad name raises ValueError and leaves the running list as it was.
    """
    fresh = (read_settings or Settings.from_env)()
    built = build_strategies(fresh)
    before = [s.name for s in engine.strategies]
    engine.strategies[:] = built
    engine.settings = replace(engine.settings, strategies=fresh.strategies)
    return {"before": before, "after": [s.name for s in built]}
