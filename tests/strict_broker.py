"""A strict retail broker played over the stand-in, for behaviours the default sim does not have.

`StrictBroker(Mt5Module(terminal))` has the module's calls and conventions and adds, as a common
retail MT5 broker does: a symbol suffix (EURUSD is listed as EURUSD.m), Instant execution with
FOK-only forex (any other filling gets 10030), symbols outside Market Watch until
`symbol_select` (no tick before), and a server clock `offset` seconds ahead of UTC on every time
it reports (ticks, bars, positions, deals, orders), with history date ranges read in server time.

Once the broker profiles exist (mt5bridge.sim.profiles), the same tests also run on the real
profiles; this wrapper stays for the default sim and for states a profile does not start in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from mt5bridge import constants as mt5
from mt5bridge.sim.records import OrderSendResult

TIME_FIELDS = ("time", "time_setup", "time_done", "time_update", "time_expiration")
MSC_FIELDS = ("time_msc", "time_setup_msc", "time_done_msc", "time_update_msc")


class StrictBroker:
    def __init__(self, module, suffix: str = ".m", offset: int = 7200, fok_only=("EURUSD", "GBPUSD", "USDJPY"),
                 hidden=("XAUUSD",), fill_bits: dict[str, int] | None = None):
        self.module = module
        self.terminal = module.terminal
        self.suffix, self.offset = suffix, offset
        self.fok_only = set(fok_only)
        self.hidden = set(hidden)
        self.fill_bits = dict(fill_bits or {})  # base name -> filling_mode bits under Market execution
        self.selected: set[str] = set()
        self.select_calls: list[str] = []
        self.fillings: list[tuple[str, int]] = []  # (broker name, type_filling) of every order_send
        self.trading_disabled = False
        self.explain_disabled = True  # False: -8 while terminal_info() shows every switch on

    def __getattr__(self, name):
        return getattr(self.module, name)

    # -- names -------------------------------------------------------------------------------

    def broker(self, base: str) -> str:
        return base + self.suffix

    def base(self, name) -> str | None:
        if isinstance(name, str) and name.endswith(self.suffix):
            return name[: -len(self.suffix)]
        return None

    def _shift(self, record, symbol: bool = True):
        fields = record._asdict()
        for key in TIME_FIELDS:
            if fields.get(key):
                fields[key] = fields[key] + self.offset
        for key in MSC_FIELDS:
            if fields.get(key):
                fields[key] = fields[key] + self.offset * 1000
        if symbol and fields.get("symbol"):
            fields["symbol"] = self.broker(fields["symbol"])
        return type(record)(**fields)

    # -- symbols -----------------------------------------------------------------------------

    def symbols_get(self, *args, **kwargs):
        rows = self.module.symbols_get(*args, **kwargs)
        return None if rows is None else tuple(self._symbol(r) for r in rows)

    def symbol_info(self, name):
        base = self.base(name)
        info = self.module.symbol_info(base) if base is not None else None
        if info is None:
            self.terminal.set_last_error((mt5.RES_E_NOT_FOUND, "Terminal: Not found"))
            return None
        return self._symbol(info)

    def _symbol(self, info):
        fields = info._asdict()
        base = fields["name"]
        fields["name"] = self.broker(base)
        visible = base not in self.hidden or self.broker(base) in self.selected
        fields["visible"] = fields["select"] = visible
        if base in self.fok_only:
            fields["trade_exemode"] = mt5.SYMBOL_TRADE_EXECUTION_INSTANT
            fields["filling_mode"] = mt5.SYMBOL_FILLING_FOK
        else:
            fields["trade_exemode"] = mt5.SYMBOL_TRADE_EXECUTION_MARKET
            fields["filling_mode"] = self.fill_bits.get(base, mt5.SYMBOL_FILLING_IOC)
        return type(info)(**fields)

    def symbol_select(self, name, enable=True):
        if self.base(name) is None:
            return False
        self.select_calls.append(name)
        (self.selected.add if enable else self.selected.discard)(name)
        return True

    def symbol_info_tick(self, name):
        base = self.base(name)
        if base is None or (base in self.hidden and name not in self.selected):
            self.terminal.set_last_error((mt5.RES_E_NOT_FOUND, "Terminal: Not found"))
            return None
        tick = self.module.symbol_info_tick(base)
        return None if tick is None else self._shift(tick, symbol=False)

    def copy_rates_from_pos(self, name, timeframe, start, count):
        base = self.base(name)
        rates = self.module.copy_rates_from_pos(base, timeframe, start, count) if base else None
        if rates is None:
            return None
        shifted = rates.copy()
        shifted["time"] = shifted["time"] + np.int64(self.offset)
        return shifted

    # -- books (server time out, server time in) -----------------------------------------------

    def _server_to_utc(self, value):
        return value - timedelta(seconds=self.offset) if isinstance(value, datetime) else value

    def positions_get(self, **kwargs):
        if "symbol" in kwargs:
            kwargs["symbol"] = self.base(kwargs["symbol"])
        rows = self.module.positions_get(**kwargs)
        return None if rows is None else tuple(self._shift(r) for r in rows)

    def orders_get(self, **kwargs):
        rows = self.module.orders_get(**kwargs)
        return None if rows is None else tuple(self._shift(r) for r in rows)

    def history_deals_get(self, *args, **kwargs):
        args = tuple(self._server_to_utc(a) for a in args)
        rows = self.module.history_deals_get(*args, **kwargs)
        return None if rows is None else tuple(self._shift(r) for r in rows)

    def history_orders_get(self, *args, **kwargs):
        args = tuple(self._server_to_utc(a) for a in args)
        rows = self.module.history_orders_get(*args, **kwargs)
        return None if rows is None else tuple(self._shift(r) for r in rows)

    # -- trading ---------------------------------------------------------------------------------

    def terminal_info(self):
        info = self.module.terminal_info()
        if info is None or not self.trading_disabled or not self.explain_disabled:
            return info
        return type(info)(**dict(info._asdict(), tradeapi_disabled=True))  # "Disable ... via external Python API"

    def order_send(self, request):
        name = request.get("symbol") if isinstance(request, dict) else None
        self.fillings.append((name, request.get("type_filling")))
        if self.trading_disabled:
            self.terminal.set_last_error((mt5.RES_E_AUTO_TRADING_DISABLED, "AutoTrading disabled"))
            return None
        base = self.base(name)
        info = self.symbol_info(name) if base else None
        if info is not None:
            allowed = _allowed(info.trade_exemode, info.filling_mode)
            if request.get("type_filling") not in allowed:
                return self._result(request, mt5.TRADE_RETCODE_INVALID_FILL, "Unsupported filling mode")
        result = self.module.order_send(dict(request, symbol=base))
        return result

    def _result(self, request, retcode, comment):
        return OrderSendResult(retcode=retcode, deal=0, order=0, volume=0.0, price=0.0, bid=0.0, ask=0.0,
                               comment=comment, request_id=0, retcode_external=0, request=None)


def _allowed(exemode: int, bits: int) -> set[int]:
    """The broker's own rule (written independently of bot.gateway.filling's table)."""
    if exemode in (mt5.SYMBOL_TRADE_EXECUTION_INSTANT, mt5.SYMBOL_TRADE_EXECUTION_REQUEST):
        return {mt5.ORDER_FILLING_FOK}
    allowed = set()
    if bits & mt5.SYMBOL_FILLING_FOK:
        allowed.add(mt5.ORDER_FILLING_FOK)
    if bits & mt5.SYMBOL_FILLING_IOC:
        allowed.add(mt5.ORDER_FILLING_IOC)
    if exemode == mt5.SYMBOL_TRADE_EXECUTION_EXCHANGE or not allowed:
        allowed.add(mt5.ORDER_FILLING_RETURN)
    return allowed
