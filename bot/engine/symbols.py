"""Each configured symbol as the broker spells it. Checked once at start, after connecting.

Brokers decorate names: `EURUSD.m`, `EURUSDm`, `#EURUSD`. A configured name is matched to the
terminal's list (`symbols_get()`): the exact name first; then the name with the `SYMBOL_SUFFIX`
setting appended (or prepended, for a prefix such as `#`); else the one listed name that is the
configured name plus a short affix. Ambiguity (`EURUSD.m` and `EURUSD.pro`) or no match stops the
bot with one line naming the candidates or the closest names: a misspelt symbol otherwise fails
every cycle like a broker outage.

The broker's name is the truth from here on: the engine trades, stores (signals, orders, deals,
trades, snapshots) and labels metrics with it; the configured name is kept only to say at start
(and in /status) which broker symbol each configured one became.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable

from ..config import ConfigError
from ..gateway import Gateway, GatewayError, SymbolSpec

log = logging.getLogger("bot.engine.symbols")

#: A detected affix is at most this long (".m", "_i", ".pro", "micro" is already too long to guess).
MAX_AFFIX = 4


def symbol_specs(gateway: Gateway, names: Iterable[str], suffix: str = "") -> dict[str, SymbolSpec]:
    """Each configured symbol's specification under the broker's name, keyed by the configured name.

    ConfigError for one the terminal does not offer or offers ambiguously.
    """
    specs: dict[str, SymbolSpec] = {}
    listed: list[str] | None = None
    for name in names:
        try:
            specs[name] = gateway.symbol(name)
            continue
        except GatewayError as exc:
            refused = exc
        if listed is None:
            try:
                listed = gateway.symbol_names()
            except GatewayError:
                listed = None
        if listed is None:
            raise refused  # the list cannot be had: a transient failure, retried like any broker error
        broker_name = match_symbol(name, listed, suffix)
        if broker_name is None or broker_name == name:
            check_offered(name, lambda names=listed: names, refused)
            raise refused  # listed after all: the refusal was something else
        specs[name] = gateway.symbol(broker_name)
        log.info("symbol %s trades as %s at this broker", name, broker_name,
                 extra={"symbol": broker_name, "configured_symbol": name})
    return specs


def match_symbol(name: str, listed: Iterable[str], suffix: str = "") -> str | None:
    """The broker's name for `name`: exact, the configured affix, or the one detected; None if none.

    ConfigError when several listed names fit equally.
    """
    names = set(listed)
    if name in names:
        return name
    if suffix:
        fitting = sorted(n for n in (name + suffix, suffix + name) if n in names)
        if len(fitting) == 1:
            return fitting[0]
        if len(fitting) > 1:
            raise ConfigError(f"SYMBOLS: {name} with SYMBOL_SUFFIX={suffix} is ambiguous at this broker "
                              f"(candidates: {', '.join(fitting)})", "SYMBOLS")
    candidates = sorted(
        n for n in names
        if n != name and 0 < len(n) - len(name) <= MAX_AFFIX and (n.startswith(name) or n.endswith(name))
    )
    if len(candidates) > 1:
        raise ConfigError(f"SYMBOLS: {name} is ambiguous at this broker (candidates: {', '.join(candidates)}); "
                          "set SYMBOL_SUFFIX or write the broker's name", "SYMBOLS")
    return candidates[0] if candidates else None


def check_offered(name: str, offered: Callable[[], Iterable[str] | None], refused: GatewayError) -> None:
    """The terminal refused `name` (`refused`): raise ConfigError if it does not offer it at all.

    If the list cannot be had, or the symbol is on it after all, the refusal was something else
    (a transient failure) and `refused` is raised again, to be retried like any broker error.
    """
    try:
        listed = offered()
    except GatewayError:
        listed = None
    if listed is None:
        raise refused
    names = sorted(set(listed))
    if name in names:
        raise refused
    closest = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if closest:
        hint = f"closest: {', '.join(closest)}"
    elif len(names) <= 12:
        hint = f"it offers {', '.join(names) or 'none'}"
    else:
        hint = f"none of its {len(names)} symbols is close"
    raise ConfigError(f"SYMBOLS: {name} is not offered by the terminal ({hint})", "SYMBOLS")
