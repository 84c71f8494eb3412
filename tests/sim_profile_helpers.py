"""Shared helpers of the broker-profile tests: terminals on a profile, orders, profile variants."""

from datetime import UTC, datetime
from pathlib import Path

from mt5bridge.constants import ORDER_TYPE_BUY, ORDER_TYPE_SELL, TRADE_ACTION_DEAL, TRADE_ACTION_SLTP
from mt5bridge.sim import SimTerminal
from mt5bridge.sim.profiles import HERE as PROFILE_DIR


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def terminal(profile: str, start: datetime, **kwargs) -> SimTerminal:
    term = SimTerminal(profile=profile, stepped=True, start=start, **kwargs)
    assert term.initialize()
    return term


def send(term, symbol, order_type, volume, **extra):
    request = {"action": TRADE_ACTION_DEAL, "symbol": symbol, "volume": volume, "type": order_type, **extra}
    result = term.order_send(request)
    assert result is not None, term.last_error()
    return result


def buy(term, symbol, volume, **extra):
    return send(term, symbol, ORDER_TYPE_BUY, volume, **extra)


def sell(term, symbol, volume, **extra):
    return send(term, symbol, ORDER_TYPE_SELL, volume, **extra)


def modify(term, ticket, symbol, sl=0.0, tp=0.0):
    result = term.order_send({"action": TRADE_ACTION_SLTP, "symbol": symbol, "position": ticket, "sl": sl, "tp": tp})
    assert result is not None, term.last_error()
    return result


def variant(tmp_path: Path, profile: str, replacements: dict[str, str]) -> str:
    """A copy of a shipped profile with some lines rewritten (e.g. no slippage for exact figures)."""
    text = (PROFILE_DIR / f"{profile}.toml").read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{profile}-variant.toml"
    path.write_text(text)
    return str(path)
