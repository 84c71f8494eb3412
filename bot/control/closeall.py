"""`ctl close-all [--symbol S] [--strategy N]`: flatten this bot's positions through the engine's order path.

Every close is a QueuedOrder through `Engine._send`, i.e. the same exactly-once path as the
engine's own exits (bot/resilience/order_flow.py, bot/engine/orders.py): the intent is persisted
before the send under a fresh client order id, a reply lost in flight is resolved at the broker,
never resent. Runs on the caller's thread while it holds the engine's cycle lock.
"""

from __future__ import annotations

from typing import Any

from ..engine.engine import CycleReport
from ..engine.strategies import BUY, SELL
from ..telemetry.context import new_cycle_id

OPERATOR = "operator"  # the strategy name on closes of positions no strategy of ours owns (adopted)


def close_all(engine: Any, correlation_id: str, symbol: str | None = None, strategy: str | None = None) -> dict[str, Any]:
    if not engine.started:
        raise RuntimeError("the engine has not started yet (terminal not reached)")
    now = engine._broker_now()
    owners = engine._position_strategies()
    chosen = [p for p in engine._our_positions()
              if (symbol is None or p.symbol == symbol) and (strategy is None or owners.get(p.ticket) == strategy)]
    report = CycleReport(cycle_id=new_cycle_id(), number=engine.cycles)
    skipped: list[int] = []
    for position in chosen:
        if position.symbol not in engine.specs:
            skipped.append(position.ticket)  # a symbol the bot does not trade (any more): close it in the terminal
            continue
        side = SELL if position.direction == BUY else BUY
        quote = engine.gateway.quote(position.symbol)
        engine._send(report, now, correlation_id, None, position.symbol, owners.get(position.ticket) or OPERATOR,
                     side=side, purpose="close", volume=position.volume,
                     price=quote.ask if side == BUY else quote.bid, position_ticket=position.ticket)
    if report.orders:
        engine.books.sync(now, engine.settings.history_days, {p.ticket for p in engine._our_positions()})
    return {"positions": len(chosen), "orders": dict(report.orders), "not_ours_to_price": skipped}
