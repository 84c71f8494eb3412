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


# --- the shipped profiles as test parameters ------------------------------------------------------
# Suites parametrised over every shipped profile (test_mt5_conformance.broker_profiles()) read what
# they expect from the profile itself: its broker symbol names, margin mode, execution and filling.
# A case that does not apply to a profile is not parametrised for it (profiles_where), never skipped.


def shipped_profiles() -> list[str]:
    from test_mt5_conformance import broker_profiles

    return [p for p in broker_profiles() if p is not None]


def load_profile(name: str):
    from mt5bridge.sim import profiles

    return profiles.load(name)


def is_netting(name: str) -> bool:
    return load_profile(name).account.netting


def is_hedging(name: str) -> bool:
    return not is_netting(name)


def profiles_where(predicate) -> list[str]:
    """The shipped profiles with a property, e.g. `profiles_where(is_netting)` for netting-only cases."""
    return [p for p in shipped_profiles() if predicate(p)]


def broker_name(profile: str, feed: str) -> str | None:
    """The profile's name for an instrument (EURUSD -> "EURUSD.m" at retail-hedging), None if not listed."""
    names = [s.name for s in load_profile(profile).symbols.values() if s.feed == feed]
    return names[0] if names else None


def broker_symbols(profile: str, feeds=("EURUSD", "GBPUSD", "USDJPY", "XAUUSD"), count: int | None = None,
                   fill=("EURJPY", "EURGBP", "AUDUSD", "USDCHF")) -> list[str]:
    """The profile's names of `feeds`; instruments it does not list are replaced by others it has (from
    `fill`), so every profile trades the same number of symbols: `count`, by default len(feeds)."""
    count = len(feeds) if count is None else count
    names = [n for f in feeds if (n := broker_name(profile, f))]
    names += [n for f in fill if (n := broker_name(profile, f)) and n not in names]
    assert len(names) >= count, f"{profile} lists only {names}"
    return names[:count]


def filling(profile: str, symbol: str) -> int:
    """A type_filling the profile's broker accepts on a market order of `symbol` (FOK < IOC < RETURN)."""
    return min(load_profile(profile).symbols[symbol].filling)



def broker_positions_history(sim, magic: int | None = None) -> tuple[dict, dict]:
    """The broker's positions history from the simulator's own deals, computed here independently of
    bot.engine.trades_from_deals: per position identifier, its trades (one at the IN deal that opens
    it, one more at every INOUT deal that flips a netted volume's sign), volume in and net profit
    (profit + commission + swap of all its deals). Also {INOUT order ticket: position id}: the ticket
    a reversed position (and the bot's trade for it) carries. On a hedging account every position is
    one trade. Only positions opened by `magic` (any, if None)."""
    from collections import defaultdict
    from decimal import Decimal

    from mt5bridge import constants as mt5
    from mt5bridge.plain import to_plain

    deals = sorted(to_plain(sim.history_deals_get(utc(2000, 1, 1), utc(2100, 1, 1))),
                   key=lambda d: (d["time_msc"], d["ticket"]))
    ours = {d["position_id"] for d in deals if (magic is None or d["magic"] == magic)
            and d["entry"] in (mt5.DEAL_ENTRY_IN, mt5.DEAL_ENTRY_INOUT) and d["symbol"]}
    history: dict[int, dict] = defaultdict(lambda: {"count": 0, "volume": Decimal(0), "net": Decimal(0),
                                                    "open": Decimal(0)})
    for d in deals:
        if d["position_id"] not in ours or d["type"] not in (mt5.DEAL_TYPE_BUY, mt5.DEAL_TYPE_SELL):
            continue
        h = history[d["position_id"]]
        volume = Decimal(str(d["volume"]))
        signed = volume if d["type"] == mt5.DEAL_TYPE_BUY else -volume
        h["net"] += sum(Decimal(str(d[k])) for k in ("profit", "commission", "swap"))
        after = h["open"] + signed
        if d["entry"] == mt5.DEAL_ENTRY_IN:
            h["count"] += h["open"] == 0
            h["volume"] += volume
        elif d["entry"] == mt5.DEAL_ENTRY_INOUT and after != 0:
            h["count"] += 1
            h["volume"] += abs(after)
        h["open"] = after
    reversals = {d["order"]: d["position_id"] for d in deals if d["entry"] == mt5.DEAL_ENTRY_INOUT}
    return dict(history), reversals


def market_deal(term, symbol: str, side: str, volume: float, *, magic: int = 0, comment: str = "",
                position: int | None = None, deviation: int = 50):
    """A market order as a trader (or another EA) would send it on this broker: the filling the symbol
    accepts, the current price, sent again at the fresh price when a Request dealer requotes."""
    from mt5bridge import constants as mt5

    info = term.symbol_info(symbol)
    fill = next(f for f in (mt5.ORDER_FILLING_FOK, mt5.ORDER_FILLING_IOC, mt5.ORDER_FILLING_RETURN)
                if info.filling_mode & (1 << f) or (f == mt5.ORDER_FILLING_RETURN and not info.filling_mode & 3))
    for _ in range(20):
        tick = term.symbol_info_tick(symbol)
        request = {"action": mt5.TRADE_ACTION_DEAL, "symbol": symbol, "volume": volume, "magic": magic,
                   "type": mt5.ORDER_TYPE_BUY if side == "BUY" else mt5.ORDER_TYPE_SELL,
                   "price": tick.ask if side == "BUY" else tick.bid, "deviation": deviation, "comment": comment,
                   "type_time": mt5.ORDER_TIME_GTC, "type_filling": fill}
        if position is not None:
            request["position"] = position
        result = term.order_send(request)
        assert result is not None, term.last_error()
        if result.retcode != mt5.TRADE_RETCODE_REQUOTE:
            return result
    return result
