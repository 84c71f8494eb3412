"""Trades in the store: opened, closed (with the analytics rollups in the same transaction, db.rollups)
and read back. A mixin of db.repository.Repository.
"""

from datetime import datetime

from sqlalchemy import false, select, true, update
from sqlalchemy.orm import Session

from db import rollups
from db.errors import TradeConflict, UnknownTrade
from db.ledger import ClosedTrade
from db.models import TradeModel
from db.records import TradeClose, TradeOpen, TradeRow
from db.rows import column_type as _column_type
from db.rows import differences as _differences
from db.rows import table_of as _table
from db.rows import values_of as _values
from db.rows import view_of as _view
from db.validation import require_aware


class TradeBook:
    """Repository methods for trades (mixed into Repository, whose database, statements and views they use)."""

    # -- trades --------------------------------------------------------------------------

    def open_trade(self, t: TradeOpen) -> bool:
        """Store a newly opened position; True if it was not already stored."""
        with self._single() as session:
            result = session.connection().execute(self._sql.open_trade, _values(t))
            return result.rowcount == 1

    def close_trade(self, c: TradeClose) -> bool:
        """Mark a trade closed with its exit and net profit; True if this call closed it, False on a repeat.

        The same transaction counts the trade in the analytics rollups (db.rollups).
        """
        cash = _column_type(TradeModel, "profit")
        gross, commission, swap = (
            cash.quantize(c.gross_profit),
            cash.quantize(c.commission),
            cash.quantize(c.swap),
        )
        values = {
            "exit_price": c.exit_price,
            "exit_time": c.exit_time,
            "gross_profit": gross,
            "commission": commission,
            "swap": swap,
            "profit": gross + commission + swap,  # net, from the stored parts so they always add up
            "profit_pips": c.profit_pips,
        }
        if c.close_reason is not None:  # a repeat without a reason (an old spooled close) is still a repeat
            values["close_reason"] = c.close_reason
        table = _table(TradeModel)
        with self._db.session() as session:
            closed = session.execute(
                update(table)
                .where(table.c.account == c.account, table.c.ticket == c.ticket, table.c.is_closed == false())
                .values(is_closed=True, **values)
                .returning(*rollups.closed_trade_columns())
            ).first()
            if closed is not None:
                rollups.record_close(session.connection(), ClosedTrade(**closed._mapping))
                return True
            row = _trade(session, c.account, c.ticket)
            if row is None:
                raise UnknownTrade(
                    f"no trade for account {c.account} ticket {c.ticket}: open_trade must come first"
                )
            differing = _differences(row, values)
            if differing:
                raise TradeConflict(
                    f"trade {c.ticket} of account {c.account} is already closed with different {', '.join(differing)}"
                )
            return False

    def get_trade(self, account: str, ticket: int) -> TradeRow | None:
        with self._single() as session:
            row = _trade(session, account, ticket)
            return None if row is None else _view(TradeRow, row)

    def open_trades(self, account: str) -> list[TradeRow]:
        """The account's trades not yet closed, oldest first."""
        query = (
            select(TradeModel)
            .where(TradeModel.account == account, TradeModel.is_closed == false())
            .order_by(TradeModel.entry_time, TradeModel.id)
        )
        return self._views(TradeRow, query)

    def trades_by_correlation(self, correlation_id: str) -> list[TradeRow]:
        query = (
            select(TradeModel)
            .where(TradeModel.correlation_id == correlation_id)
            .order_by(TradeModel.entry_time, TradeModel.id)
        )
        return self._views(TradeRow, query)

    def closed_trades_between(self, account: str, start: datetime, end: datetime) -> list[TradeRow]:
        """Trades closed in [start, end), in closing order."""
        require_aware("start", start)
        require_aware("end", end)
        query = (
            select(TradeModel)
            .where(
                TradeModel.account == account,
                TradeModel.is_closed == true(),
                TradeModel.exit_time >= start,
                TradeModel.exit_time < end,
            )
            .order_by(TradeModel.exit_time, TradeModel.id)
        )
        return self._views(TradeRow, query)


def _trade(session: Session, account: str, ticket: int) -> TradeModel | None:
    return session.scalars(
        select(TradeModel).where(TradeModel.account == account, TradeModel.ticket == ticket)
    ).one_or_none()
