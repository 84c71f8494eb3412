"""Is each configured symbol offered by the terminal? Checked once at start, after connecting.

A misspelt symbol (SYMBOLS=EURUSDD) otherwise fails every cycle like a broker outage; here it
stops the bot with one line that offers the terminal's closest names. Names are compared as
configured: how they are spelt or suffixed is the settings' business, not this check's.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from ..config import ConfigError
from ..gateway import Gateway, GatewayError, SymbolSpec


def symbol_specs(gateway: Gateway, names: Iterable[str]) -> dict[str, SymbolSpec]:
    """Each configured symbol's specification; ConfigError for one the terminal does not offer."""
    specs = {}
    for name in names:
        try:
            specs[name] = gateway.symbol(name)
        except GatewayError as exc:
            check_offered(name, gateway.symbol_names, exc)
    return specs


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
