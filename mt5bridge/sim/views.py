"""Conversion of the exact internal books into the float-valued MetaTrader5 result tuples."""

from decimal import Decimal

from mt5bridge.constants import (
    SYMBOL_EXPIRATION_GTC,
    TICK_FLAG_ASK,
    TICK_FLAG_BID,
)

from . import money
from .book import Deal, HistoryOrder, Position
from .money import ONE, Rate
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
        identifier=position.position_id,
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


def symbol_view(
    spec: SymbolSpec, epoch: int, bid: int, ask: int, selected: bool = True, rates: tuple[Rate, Rate] = (ONE, ONE)
) -> SymbolInfo:
    """All 96 SymbolInfo fields: the modelled ones from ``spec`` (its broker profile) and the quote,
    the rest defaults. ``rates``: the quote currency's conversion at bid and at ask (tick value for
    profit / loss)."""

    def tick_value_at(rate: Rate) -> float:
        return float(round(money.tick_value(spec, rate) * spec.tick_size, 6))  # per tick_size move

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
            "trade_mode": spec.trade_mode,
            "trade_stops_level": spec.stops_level,
            "trade_freeze_level": spec.freeze_level,
            "trade_exemode": spec.execution,
            "swap_mode": spec.swap_mode,
            "swap_rollover3days": spec.swap_rollover3days,
            "expiration_mode": SYMBOL_EXPIRATION_GTC,
            "filling_mode": spec.filling_mode,
            "order_mode": spec.order_mode,
            "bid": bid_price,
            "bidhigh": bid_price,
            "bidlow": bid_price,
            "ask": ask_price,
            "askhigh": ask_price,
            "asklow": ask_price,
            "point": float(spec.point),
            "trade_tick_value": tick_value_at(rates[0]),
            "trade_tick_value_profit": tick_value_at(rates[0]),
            "trade_tick_value_loss": tick_value_at(rates[1]),
            "trade_tick_size": float(spec.tick_size_price),
            "trade_contract_size": float(spec.contract_size),
            "volume_min": float(spec.volume_min),
            "volume_max": float(spec.volume_max),
            "volume_step": float(spec.volume_step),
            "swap_long": float(spec.swap_long),
            "swap_short": float(spec.swap_short),
            "margin_initial": float(spec.margin_initial),
            "margin_hedged": float(spec.contract_size),
            "currency_base": spec.base,
            "currency_profit": spec.quote,
            "currency_margin": spec.margin_currency,
            "description": spec.description,
            "name": spec.name,
            "path": spec.path,
        }
    )
