"""Conversion of the exact internal books into the float-valued MetaTrader5 result tuples."""

from decimal import Decimal

from mt5bridge.constants import (
    DAY_OF_WEEK_WEDNESDAY,
    SYMBOL_EXPIRATION_GTC,
    SYMBOL_FILLING_FOK,
    SYMBOL_FILLING_IOC,
    SYMBOL_ORDER_MARKET,
    SYMBOL_ORDER_SL,
    SYMBOL_ORDER_TP,
    SYMBOL_SWAP_MODE_POINTS,
    SYMBOL_TRADE_EXECUTION_INSTANT,
    SYMBOL_TRADE_MODE_FULL,
    TICK_FLAG_ASK,
    TICK_FLAG_BID,
)

from . import money
from .book import Deal, HistoryOrder, Position
from .records import SymbolInfo, Tick, TradeDeal, TradeOrder, TradePosition
from .symbols import SymbolSpec


def _money(amount: Decimal) -> float:
    return float(money.cents(amount))


def _price(spec: SymbolSpec, points: int) -> float:
    return spec.to_float(points) if points else 0.0


def position_view(position: Position, spec: SymbolSpec, profit: Decimal, current: int) -> TradePosition:
    return TradePosition(
        ticket=position.ticket,
        time=position.time_msc // 1000,
        time_msc=position.time_msc,
        time_update=position.time_update_msc // 1000,
        time_update_msc=position.time_update_msc,
        type=position.type,
        magic=position.magic,
        identifier=position.ticket,
        reason=position.reason,
        volume=float(position.volume),
        price_open=_price(spec, position.price_open),
        sl=_price(spec, position.sl),
        tp=_price(spec, position.tp),
        price_current=_price(spec, current),
        swap=_money(position.swap),
        profit=_money(profit),
        symbol=position.symbol,
        comment=position.comment,
        external_id="",
    )


def order_view(order: HistoryOrder, spec: SymbolSpec) -> TradeOrder:
    return TradeOrder(
        ticket=order.ticket,
        time_setup=order.time_setup_msc // 1000,
        time_setup_msc=order.time_setup_msc,
        time_done=order.time_done_msc // 1000,
        time_done_msc=order.time_done_msc,
        time_expiration=0,
        type=order.type,
        type_time=order.type_time,
        type_filling=order.type_filling,
        state=order.state,
        magic=order.magic,
        position_id=order.position_id,
        position_by_id=0,
        reason=order.reason,
        volume_initial=float(order.volume),
        volume_current=0.0,
        price_open=_price(spec, order.price_open),
        sl=_price(spec, order.sl),
        tp=_price(spec, order.tp),
        price_current=_price(spec, order.price_current),
        price_stoplimit=0.0,
        symbol=order.symbol,
        comment=order.comment,
        external_id="",
    )


def deal_view(deal: Deal, spec: SymbolSpec) -> TradeDeal:
    return TradeDeal(
        ticket=deal.ticket,
        order=deal.order,
        time=deal.time_msc // 1000,
        time_msc=deal.time_msc,
        type=deal.type,
        entry=deal.entry,
        magic=deal.magic,
        position_id=deal.position_id,
        reason=deal.reason,
        volume=float(deal.volume),
        price=_price(spec, deal.price),
        commission=_money(deal.commission),
        swap=_money(deal.swap),
        profit=_money(deal.profit),
        fee=0.0,
        symbol=deal.symbol,
        comment=deal.comment,
        external_id="",
    )


def tick_view(spec: SymbolSpec, epoch: int, bid: int, ask: int) -> Tick:
    return Tick(
        time=epoch,
        bid=spec.to_float(bid),
        ask=spec.to_float(ask),
        last=0.0,
        volume=0,
        time_msc=epoch * 1000,
        flags=TICK_FLAG_BID | TICK_FLAG_ASK,
        volume_real=0.0,
    )


def symbol_view(spec: SymbolSpec, epoch: int, bid: int, ask: int, selected: bool = True) -> SymbolInfo:
    """All 96 SymbolInfo fields: the modelled ones from ``spec`` and the quote, the rest defaults."""

    def tick_value_at(points: int) -> float:
        return float(round(money.tick_value(spec, spec.to_price(points)), 6))

    bid_price, ask_price = spec.to_float(bid), spec.to_float(ask)
    return SymbolInfo.from_known(
        {
            "select": selected,
            "visible": selected,
            "time": epoch,
            "digits": spec.digits,
            "spread": ask - bid,
            "spread_float": True,
            "trade_calc_mode": spec.calc_mode,
            "trade_mode": SYMBOL_TRADE_MODE_FULL,
            "trade_stops_level": spec.stops_level,
            "trade_freeze_level": 0,
            "trade_exemode": SYMBOL_TRADE_EXECUTION_INSTANT,
            "swap_mode": SYMBOL_SWAP_MODE_POINTS,
            "swap_rollover3days": DAY_OF_WEEK_WEDNESDAY,
            "expiration_mode": SYMBOL_EXPIRATION_GTC,
            "filling_mode": SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC,
            "order_mode": SYMBOL_ORDER_MARKET | SYMBOL_ORDER_SL | SYMBOL_ORDER_TP,
            "bid": bid_price,
            "bidhigh": bid_price,
            "bidlow": bid_price,
            "ask": ask_price,
            "askhigh": ask_price,
            "asklow": ask_price,
            "point": float(spec.point),
            "trade_tick_value": tick_value_at(bid),
            "trade_tick_value_profit": tick_value_at(bid),
            "trade_tick_value_loss": tick_value_at(ask),
            "trade_tick_size": float(spec.point),
            "trade_contract_size": float(spec.contract_size),
            "volume_min": float(spec.volume_min),
            "volume_max": float(spec.volume_max),
            "volume_step": float(spec.volume_step),
            "swap_long": float(spec.swap_long),
            "swap_short": float(spec.swap_short),
            "margin_hedged": float(spec.contract_size),
            "currency_base": spec.base,
            "currency_profit": spec.quote,
            "currency_margin": spec.margin_currency,
            "description": spec.description,
            "name": spec.name,
            "path": spec.path,
        }
    )
