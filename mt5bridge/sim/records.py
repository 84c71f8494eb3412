"""Result types with the MetaTrader5 package's names, fields and field order (wheel 5.0.6231).

The real package returns tuple subclasses with attribute access and ``_asdict()`` (and no
``_fields``/``_replace``: code that used them against the simulator would break on the real
terminal, so they are absent here too). Code written against the simulator must run unchanged
against the real terminal, so the names here are copied from the package, not invented; the
conformance test checks them against tests/fixtures/mt5-api-5.0.6231.json.

Each type is built with every field by keyword (``Tick(time=..., bid=..., ...)``), or with
``Type.from_known({...})``: the fields the simulator models, the rest from ``DEFAULTS`` (what
a retail forex terminal typically reports for them). Broker profiles fill ``SymbolInfo`` that way.
Only SymbolInfo, AccountInfo and TerminalInfo have DEFAULTS (keyword construction of those fills
the rest too); every other type needs all its fields, so a forgotten one fails loudly.
"""

from collections.abc import Mapping
from operator import itemgetter
from typing import Any

import numpy as np


class ResultTuple(tuple):
    """Base of the result types: a tuple whose items are also attributes, in the real order."""

    __slots__ = ()
    FIELDS: tuple[str, ...] = ()
    DEFAULTS: Mapping[str, Any] = {}

    def __new__(cls, *values: Any, **fields: Any):
        if values and fields:
            raise TypeError(f"{cls.__name__}: give all fields by position or all by name")
        if fields:
            if len(fields) == len(cls.FIELDS):
                try:  # every field given (the views always do): no merge, no set arithmetic
                    return tuple.__new__(cls, cls._GET(fields))
                except KeyError:
                    pass  # an unknown name in place of a real one: the full check says which
            # Types with DEFAULTS (SymbolInfo, AccountInfo, TerminalInfo) fill what is not given.
            fields = {**cls.DEFAULTS, **fields}
            missing = [name for name in cls.FIELDS if name not in fields]
            unknown = sorted(set(fields) - set(cls.FIELDS))
            if missing or unknown:
                raise TypeError(f"{cls.__name__}: missing fields {missing}, unknown fields {unknown}")
            values = tuple(fields[name] for name in cls.FIELDS)
        if len(values) != len(cls.FIELDS):
            raise TypeError(f"{cls.__name__} has {len(cls.FIELDS)} fields, got {len(values)} values")
        return tuple.__new__(cls, values)

    @classmethod
    def from_known(cls, known: Mapping[str, Any]):
        """The fields in ``known`` (each must be a real field), ``DEFAULTS`` for the rest."""
        if len(cls.DEFAULTS) == len(cls.FIELDS):  # DEFAULTS cover every field (checked at creation)
            merged = {**cls.DEFAULTS, **known}
            if len(merged) == len(cls.FIELDS):  # no unknown name in ``known``
                # Why: a symbol_info merges 41 modelled fields into 96 (issue 16): one C-level merge
                # and one C-level pick, not a comprehension and keyword call over all 96.
                return tuple.__new__(cls, cls._GET(merged))
        unknown = sorted(set(known) - set(cls.FIELDS))
        if unknown:
            raise TypeError(f"{cls.__name__} has no fields {unknown}")
        return cls(**{name: known[name] if name in known else cls.DEFAULTS[name] for name in cls.FIELDS})

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self.FIELDS, self, strict=True))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in zip(self.FIELDS, self, strict=True))
        return f"{type(self).__name__}({inner})"

    def __getnewargs__(self):
        return tuple(self)


def _getter(names: tuple[str, ...]):
    """A function of a mapping returning the values of ``names`` as a tuple (KeyError if one is missing)."""
    if len(names) == 1:  # itemgetter of one key returns the bare value, not a 1-tuple
        only = names[0]
        return lambda fields: (fields[only],)
    if not names:
        return lambda fields: ()
    return itemgetter(*names)


def _result_type(name: str, fields: str, defaults: Mapping[str, Any] | None = None) -> type:
    names = tuple(fields.split())
    namespace: dict[str, Any] = {
        "__slots__": (),
        "FIELDS": names,
        "DEFAULTS": dict(defaults or {}),
        "_GET": staticmethod(_getter(names)),  # the fields in order out of a {name: value} mapping
    }
    for index, field in enumerate(names):
        namespace[field] = property(itemgetter(index), doc=f"Alias for field number {index}")
    if defaults is not None:
        assert set(defaults) == set(names), f"{name}: defaults must cover every field"
    return type(name, (ResultTuple,), namespace)


TradePosition = _result_type(
    "TradePosition",
    "ticket time time_msc time_update time_update_msc type magic identifier reason volume price_open "
    "sl tp price_current swap profit symbol comment external_id",
)

TradeOrder = _result_type(
    "TradeOrder",
    "ticket time_setup time_setup_msc time_done time_done_msc time_expiration type type_time type_filling "
    "state magic position_id position_by_id reason volume_initial volume_current price_open sl tp "
    "price_current price_stoplimit symbol comment external_id",
)

TradeDeal = _result_type(
    "TradeDeal",
    "ticket order time time_msc type entry magic position_id reason volume price commission swap profit "
    "fee symbol comment external_id",
)

TradeRequest = _result_type(
    "TradeRequest",
    "action magic order symbol volume price stoplimit sl tp deviation type type_filling type_time "
    "expiration comment position position_by",
)

OrderSendResult = _result_type(
    "OrderSendResult",
    "retcode deal order volume price bid ask comment request_id retcode_external request",
)

OrderCheckResult = _result_type(
    "OrderCheckResult",
    "retcode balance equity profit margin margin_free margin_level comment request",
)

Tick = _result_type("Tick", "time bid ask last volume time_msc flags volume_real")

BookInfo = _result_type("BookInfo", "type price volume volume_dbl")

_ACCOUNT_DEFAULTS = {
    "login": 0, "trade_mode": 0, "leverage": 100, "limit_orders": 200, "margin_so_mode": 0,
    "trade_allowed": True, "trade_expert": True, "margin_mode": 2, "currency_digits": 2,
    "fifo_close": False, "balance": 0.0, "credit": 0.0, "profit": 0.0, "equity": 0.0, "margin": 0.0,
    "margin_free": 0.0, "margin_level": 0.0, "margin_so_call": 50.0, "margin_so_so": 30.0,
    "margin_initial": 0.0, "margin_maintenance": 0.0, "assets": 0.0, "liabilities": 0.0,
    "commission_blocked": 0.0, "name": "", "server": "", "currency": "USD", "company": "",
}  # fmt: skip

AccountInfo = _result_type(
    "AccountInfo",
    "login trade_mode leverage limit_orders margin_so_mode trade_allowed trade_expert margin_mode "
    "currency_digits fifo_close balance credit profit equity margin margin_free margin_level "
    "margin_so_call margin_so_so margin_initial margin_maintenance assets liabilities "
    "commission_blocked name server currency company",
    _ACCOUNT_DEFAULTS,
)

_TERMINAL_DEFAULTS = {
    "community_account": False, "community_connection": False, "connected": True,
    "dlls_allowed": False, "trade_allowed": True, "tradeapi_disabled": False, "email_enabled": False,
    "ftp_enabled": False, "notifications_enabled": False, "mqid": False, "build": 0,
    "maxbars": 100_000, "codepage": 0, "ping_last": 25_000, "community_balance": 0.0,
    "retransmission": 0.0, "company": "", "name": "", "language": "English", "path": "",
    "data_path": "", "commondata_path": "",
}  # fmt: skip

TerminalInfo = _result_type(
    "TerminalInfo",
    "community_account community_connection connected dlls_allowed trade_allowed tradeapi_disabled "
    "email_enabled ftp_enabled notifications_enabled mqid build maxbars codepage ping_last "
    "community_balance retransmission company name language path data_path commondata_path",
    _TERMINAL_DEFAULTS,
)

#: What a retail forex symbol reports for the fields the simulator does not model (session
#: statistics, options, exchange data) and neutral values for the ones it does.
_SYMBOL_DEFAULTS = {
    "custom": False, "chart_mode": 0, "select": True, "visible": True, "session_deals": 0,
    "session_buy_orders": 0, "session_sell_orders": 0, "volume": 0, "volumehigh": 0, "volumelow": 0,
    "time": 0, "digits": 5, "spread": 0, "spread_float": True, "ticks_bookdepth": 10,
    "trade_calc_mode": 0, "trade_mode": 4, "start_time": 0, "expiration_time": 0,
    "trade_stops_level": 0, "trade_freeze_level": 0, "trade_exemode": 2, "swap_mode": 1,
    "swap_rollover3days": 3, "margin_hedged_use_leg": False, "expiration_mode": 15,
    "filling_mode": 1, "order_mode": 127, "order_gtc_mode": 0, "option_mode": 0, "option_right": 0,
    "bid": 0.0, "bidhigh": 0.0, "bidlow": 0.0, "ask": 0.0, "askhigh": 0.0, "asklow": 0.0,
    "last": 0.0, "lasthigh": 0.0, "lastlow": 0.0, "volume_real": 0.0, "volumehigh_real": 0.0,
    "volumelow_real": 0.0, "option_strike": 0.0, "point": 0.00001, "trade_tick_value": 1.0,
    "trade_tick_value_profit": 1.0, "trade_tick_value_loss": 1.0, "trade_tick_size": 0.00001,
    "trade_contract_size": 100000.0, "trade_accrued_interest": 0.0, "trade_face_value": 0.0,
    "trade_liquidity_rate": 0.0, "volume_min": 0.01, "volume_max": 100.0, "volume_step": 0.01,
    "volume_limit": 0.0, "swap_long": 0.0, "swap_short": 0.0, "margin_initial": 0.0,
    "margin_maintenance": 0.0, "session_volume": 0.0, "session_turnover": 0.0,
    "session_interest": 0.0, "session_buy_orders_volume": 0.0, "session_sell_orders_volume": 0.0,
    "session_open": 0.0, "session_close": 0.0, "session_aw": 0.0, "session_price_settlement": 0.0,
    "session_price_limit_min": 0.0, "session_price_limit_max": 0.0, "margin_hedged": 100000.0,
    "price_change": 0.0, "price_volatility": 0.0, "price_theoretical": 0.0,
    "price_greeks_delta": 0.0, "price_greeks_theta": 0.0, "price_greeks_gamma": 0.0,
    "price_greeks_vega": 0.0, "price_greeks_rho": 0.0, "price_greeks_omega": 0.0,
    "price_sensitivity": 0.0, "basis": "", "category": "", "currency_base": "USD",
    "currency_profit": "USD", "currency_margin": "USD", "bank": "", "description": "", "exchange": "",
    "formula": "", "isin": "", "name": "", "page": "", "path": "",
}  # fmt: skip

SymbolInfo = _result_type(
    "SymbolInfo",
    "custom chart_mode select visible session_deals session_buy_orders session_sell_orders volume "
    "volumehigh volumelow time digits spread spread_float ticks_bookdepth trade_calc_mode trade_mode "
    "start_time expiration_time trade_stops_level trade_freeze_level trade_exemode swap_mode "
    "swap_rollover3days margin_hedged_use_leg expiration_mode filling_mode order_mode order_gtc_mode "
    "option_mode option_right bid bidhigh bidlow ask askhigh asklow last lasthigh lastlow volume_real "
    "volumehigh_real volumelow_real option_strike point trade_tick_value trade_tick_value_profit "
    "trade_tick_value_loss trade_tick_size trade_contract_size trade_accrued_interest trade_face_value "
    "trade_liquidity_rate volume_min volume_max volume_step volume_limit swap_long swap_short "
    "margin_initial margin_maintenance session_volume session_turnover session_interest "
    "session_buy_orders_volume session_sell_orders_volume session_open session_close session_aw "
    "session_price_settlement session_price_limit_min session_price_limit_max margin_hedged "
    "price_change price_volatility price_theoretical price_greeks_delta price_greeks_theta "
    "price_greeks_gamma price_greeks_vega price_greeks_rho price_greeks_omega price_sensitivity basis "
    "category currency_base currency_profit currency_margin bank description exchange formula isin "
    "name page path",
    _SYMBOL_DEFAULTS,
)

#: Every result type, by the package's name for it.
RESULT_TYPES: dict[str, type] = {
    t.__name__: t
    for t in (
        TradePosition,
        TradeOrder,
        TradeDeal,
        TradeRequest,
        OrderSendResult,
        OrderCheckResult,
        Tick,
        TerminalInfo,
        SymbolInfo,
        AccountInfo,
        BookInfo,
    )
}

#: The dtype of the array ``copy_rates_*`` returns in the real package.
RATES_DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_volume", "<u8"),
        ("spread", "<i4"),
        ("real_volume", "<u8"),
    ]
)

#: The dtype of the array ``copy_ticks_*`` returns in the real package.
TICKS_DTYPE = np.dtype(
    [
        ("time", "<i8"),
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("last", "<f8"),
        ("volume", "<u8"),
        ("time_msc", "<i8"),
        ("flags", "<u4"),
        ("volume_real", "<f8"),
    ]
)
