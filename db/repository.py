"""The engine's only door to the store: records in, records out, one short transaction per call
(or, inside `unit()`, one transaction for a whole trading cycle: see db.database).

Every write is idempotent, so a caller that is unsure whether a call landed
(a crash, a timeout, a restart) can simply repeat it:
- a repeat leaves the same rows (INSERT ... ON CONFLICT on each table's natural key);
- a repeat with *different* content for the same key is refused with a
  `StoreError` instead of silently keeping either version.
Conditional UPDATEs (`... WHERE status IN ('pending', 'unknown')`) make state
transitions atomic, so two writers racing on one order cannot both win.

Signals (db.repo_signals) and trades (db.repo_trades) are mixins of their own; the helpers every
part uses to turn records into rows and back are db.rows.
"""

from contextlib import suppress
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, false, func, select, update
from sqlalchemy.orm import Session

from db import (
    brokerday,
    deal_marks,
    mt5deals,
    operator_actions,
    quarantine,
    sqlite_rows,
)
from db import metrics_history as minutes_store
from db.database import Database
from db.errors import (
    DealConflict,
    DuplicateClientOrderId,
    OutcomeConflict,
    UnknownOrder,
)
from db.metrics_history import MetricsMinute
from db.models import (
    AccountSnapshotModel,
    DailyPerformanceModel,
    DealModel,
    OrderModel,
    PositionSnapshotModel,
    TradeModel,
)
from db.operator_actions import OperatorAction
from db.quarantine import QuarantineRecord
from db.records import (
    EXECUTION_FIELDS,
    AccountSnapshot,
    DailyPerformance,
    DealRecord,
    OrderIntent,
    OrderOutcome,
    OrderRow,
    PositionSnapshot,
)
from db.repo_signals import SignalWrites
from db.repo_trades import TradeBook
from db.rows import View
from db.rows import differences as _differences
from db.rows import fields_of as _fields
from db.rows import table_of as _table
from db.rows import values_of as _values
from db.rows import view_of as _view
from db.statements import statements
from db.upsert import insert_for
from db.validation import require_aware
from db.vocabulary import ACCOUNT_LEN, OPEN_ORDER_STATUSES, ORDER_STATUSES

_ACCOUNT_SNAPSHOT_ROWS = sqlite_rows.ignoring_rows(AccountSnapshotModel.__table__, ("account", "time"))
_POSITION_ROWS = sqlite_rows.ignoring_rows(PositionSnapshotModel.__table__, ("account", "time", "ticket"))
_TRADE_KEY = ("account", "ticket")
#: Position snapshots written as one statement at most on SQLite (db.sqlite_rows: its rows per
#: statement, within SQLite's 32 766 parameters; a snapshot row has about a dozen columns).
_ONE_STATEMENT_ROWS = sqlite_rows.ROWS_PER_STATEMENT
# What identifies an outcome.  message and resolved_at only describe when and how we learned it,
# and retcode is compared only when both sides have one (history reconciliation may not know it).
_OUTCOME_FACTS = ("status", "broker_order", "broker_deal", "fill_price", "fill_volume")


class Repository(SignalWrites, TradeBook):
    """Signals, orders, deals, trades, snapshots and daily results of the trading engine."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._sql = statements(database.backend)
        # Inside a unit (group commit) a call that writes with one statement, or only reads, needs no
        # SAVEPOINT on SQLite: a failed statement undoes itself there and leaves the transaction
        # going, so a refused call leaves nothing behind (two statements less per call). PostgreSQL
        # aborts the whole transaction on a failed statement: there every call keeps its SAVEPOINT.
        self._sqlite = database.backend == "sqlite"  # also: the hot writes go through db.sqlite_rows
        self._savepoint_one_statement = not self._sqlite

    def _single(self):
        """The session of a call that writes with one statement or only reads (see `__init__`)."""
        return self._db.session(savepoint=self._savepoint_one_statement)

    # -- group commit (db.database) ------------------------------------------------------

    def unit(self):
        """`with repo.unit():` every call of this thread in the block shares one transaction."""
        return self._db.unit()

    def commit(self, durable: bool = True) -> None:
        """Commit the open unit's writes now (no-op outside a unit); durable before it returns unless
        `durable=False` (the end of a cycle: see db.database.Database.commit)."""
        self._db.commit(durable)

    def rollback(self) -> None:
        """Drop the open unit's transaction (its connection failed)."""
        self._db.rollback()

    @property
    def in_unit(self) -> bool:
        return self._db.in_unit

    @property
    def commits(self) -> int:
        """Transactions committed on the database so far (see db.database.Database.commits)."""
        return self._db.commits

    # -- orders --------------------------------------------------------------------------

    def record_order_intent(self, intent: OrderIntent) -> None:
        """Store an order before it is sent; repeating the identical intent is a no-op."""
        values = _values(intent)
        with self._single() as session:
            result = session.connection().execute(self._sql.order_intent, {**values, "status": "pending", "message": ""})
            if result.rowcount == 1:
                return
            row = _order(session, intent.client_order_id)
            differing = _differences(row, values)
            if differing:
                raise DuplicateClientOrderId(
                    f"client_order_id {intent.client_order_id!r} already recorded with different "
                    f"{', '.join(differing)}"
                )

    def record_order_outcome(self, outcome: OrderOutcome) -> None:
        """Settle an order. 'unknown' can later become final; a final outcome never changes."""
        values = _measured(_values(outcome))
        client_order_id = values.pop("client_order_id")
        table = _table(OrderModel)
        with self._single() as session:
            result = session.execute(
                update(table)
                .where(table.c.client_order_id == client_order_id, table.c.status.in_(OPEN_ORDER_STATUSES))
                .values(**values)
            )
            if result.rowcount == 1:
                return
            row = _order(session, client_order_id)
            if row is None:
                raise UnknownOrder(
                    f"no order with client_order_id {client_order_id!r}: record the intent first"
                )
            facts = {name: values[name] for name in _OUTCOME_FACTS}
            if outcome.retcode is not None and row.retcode is not None:
                facts["retcode"] = outcome.retcode
            differing = _differences(row, facts)
            if differing:
                raise OutcomeConflict(
                    f"order {client_order_id!r} is already {row.status} (retcode {row.retcode}); "
                    f"refusing {outcome.status} with different {', '.join(differing)}"
                )

    def get_order(self, client_order_id: str) -> OrderRow | None:
        with self._single() as session:
            row = _order(session, client_order_id)
            return None if row is None else _view(OrderRow, row)

    def orders_by_status(self, account: str, status: str) -> list[OrderRow]:
        """Orders of an account in one status, oldest first (e.g. 'unknown' ones to reconcile)."""
        if status not in ORDER_STATUSES:
            raise ValueError(f"order status must be one of {', '.join(ORDER_STATUSES)}, got {status!r}")
        query = (
            select(OrderModel)
            .where(OrderModel.account == account, OrderModel.status == status)
            .order_by(OrderModel.created_at, OrderModel.id)
        )
        return self._views(OrderRow, query)

    # -- deals ---------------------------------------------------------------------------

    def record_deal(self, rec: DealRecord) -> bool:
        """Store a broker deal on (account, ticket); True if it was not known before.

        MT5 deals never change once made, so a repeat with different content is refused with
        `DealConflict` (naming the fields) and the stored deal is kept, never overwritten.
        """
        values = _values(rec)
        with self._single() as session:
            connection = session.connection()
            if connection.execute(self._sql.deal, values).rowcount == 1:
                self._mark_deal(connection, rec)
                return True
            row = session.scalars(
                select(DealModel).where(DealModel.account == rec.account, DealModel.ticket == rec.ticket)
            ).one()
            differing = _differences(row, values)
            if differing:
                raise DealConflict(
                    f"deal {rec.ticket} of account {rec.account} is already stored with different "
                    f"{', '.join(differing)}"
                )
            return False

    def _mark_deal(self, connection: Any, rec: DealRecord) -> None:
        """Move the account's deal mark with the deal just inserted (db.deal_marks), in its transaction.

        Without a SAVEPOINT (SQLite in a unit: see `__init__`) a failed mark would leave the deal stored
        unmarked in the unit: the deal is taken out again here, so the call leaves nothing behind."""
        try:
            deal_marks.added(connection, rec.account, 1, rec.time)
        except BaseException:
            if not self._savepoint_one_statement:
                with suppress(Exception):  # a connection gone: the unit is rolled back as a whole
                    table = _table(DealModel)
                    connection.execute(table.delete().where(table.c.account == rec.account,
                                                            table.c.ticket == rec.ticket))
            raise

    def known_deal_tickets(self, account: str, since: datetime | None = None) -> set[int]:
        """Tickets of the account's stored deals, optionally only those at or after `since`."""
        query = select(DealModel.ticket).where(DealModel.account == account)
        if since is not None:
            require_aware("since", since)
            query = query.where(DealModel.time >= since)
        with self._single() as session:
            return set(session.scalars(query))

    def positions_without_trade(self, account: str, since: datetime) -> list[int]:
        """Position ids with a stored entry deal at or after `since` but no trade it opens, oldest first.

        A deal and the trade it opens are written by two calls; a cycle that fails between them
        (the database gone mid-cycle, the bot killed) leaves a deal the next run will not fetch as
        new. The books settle these positions again instead of losing their trades. The trade an
        entry deal opens has the position id as ticket (the order's for a netting reversal).
        """
        require_aware("since", since)
        opened = case((DealModel.entry == mt5deals.ENTRY_INOUT, DealModel.order_ticket),
                      (DealModel.position_id != 0, DealModel.position_id), else_=DealModel.order_ticket)
        has_trade = (select(TradeModel.id).where(TradeModel.account == DealModel.account, TradeModel.ticket == opened)
                     .exists())
        query = (select(DealModel.position_id)
                 .where(DealModel.account == account, DealModel.time >= since,
                        DealModel.type.in_((mt5deals.BUY, mt5deals.SELL)),
                        DealModel.entry.in_((mt5deals.ENTRY_IN, mt5deals.ENTRY_INOUT)), ~has_trade)
                 .group_by(DealModel.position_id).order_by(func.min(DealModel.time), DealModel.position_id))
        with self._single() as session:
            return list(session.scalars(query))

    def last_deal_time(self, account: str) -> datetime | None:
        """Time of the account's newest stored deal: where a history scan can resume."""
        with self._single() as session:
            return session.scalar(select(func.max(DealModel.time)).where(DealModel.account == account))

    def deals_since(self, account: str, since: datetime) -> list[DealRecord]:
        """The account's stored deals at or after `since`, oldest first (to compare with the broker's)."""
        require_aware("since", since)
        query = (select(DealModel).where(DealModel.account == account, DealModel.time >= since)
                 .order_by(DealModel.time, DealModel.ticket))
        return self._views(DealRecord, query)

    # -- snapshots and daily results -----------------------------------------------------

    def record_position_snapshots(
        self, account: str, time: datetime, positions: list[PositionSnapshot]
    ) -> None:
        """Store the open positions seen at `time` (one row per position; repeats are ignored)."""
        if not isinstance(account, str) or not 0 < len(account) <= ACCOUNT_LEN:
            raise ValueError(f"account must be a non-empty string of at most {ACCOUNT_LEN} characters")
        require_aware("time", time)
        if not positions:
            return
        # On SQLite the rows go as one multi-row INSERT through the driver (db.sqlite_rows, up to
        # _ONE_STATEMENT_ROWS), so a refused row undoes the lot by itself and no SAVEPOINT is needed;
        # given by column, account and time as one value repeated (no dict per row).
        count, (names, read) = len(positions), _fields(PositionSnapshot)
        with self._db.connection(savepoint=not (one := self._sqlite and count <= _ONE_STATEMENT_ROWS)) as connection:
            if one:
                columns = [(account,) * count, (time,) * count, *zip(*map(read, positions), strict=True)]
                _POSITION_ROWS.insert_columns(connection, ("account", "time", *names), columns, returning=False)
            else:
                rows = [{"account": account, "time": time, **_values(position)} for position in positions]
                connection.execute(self._sql.position_snapshots, rows)  # one executemany

    def record_account_snapshot(self, s: AccountSnapshot) -> None:
        """Store balance and equity at a moment; a repeat for the same (account, time) is ignored."""
        with self._db.connection(savepoint=self._savepoint_one_statement) as connection:
            if self._sqlite:  # each cycle: db.sqlite_rows, the one row as columns of one value
                names, read = _fields(AccountSnapshot)
                _ACCOUNT_SNAPSHOT_ROWS.insert_columns(connection, names, list(zip(read(s))), returning=False)
            else:
                connection.execute(self._sql.account_snapshot, _values(s))

    def last_account_snapshot(self, account: str) -> AccountSnapshot | None:
        query = (
            select(AccountSnapshotModel)
            .where(AccountSnapshotModel.account == account)
            .order_by(AccountSnapshotModel.time.desc())
            .limit(1)
        )
        snapshots = self._views(AccountSnapshot, query)
        return snapshots[0] if snapshots else None

    def upsert_daily_performance(self, d: DailyPerformance) -> None:
        """Write the day's results, replacing what was stored for that (account, date)."""
        values = _values(d)
        table = _table(DailyPerformanceModel)
        with self._db.session() as session:
            statement = insert_for(session, table).values(**values)
            statement = statement.on_conflict_do_update(
                index_elements=["account", "date"],
                set_={name: statement.excluded[name] for name in values if name not in ("account", "date")},
            )
            session.execute(statement)

    # -- broker days and netting adds (db.brokerday, bot.engine.books) --------------------------

    def record_broker_offset(self, account: str, since: datetime, offset_seconds: int) -> bool:
        """The trade server's UTC offset the bot measured, in force from `since` (db.brokerday.record)."""
        require_aware("record_broker_offset.since", since)
        with self._db.session() as session:
            return brokerday.record(session.connection(), account, since, int(offset_seconds))

    def latest_broker_offset(self, account: str) -> int | None:
        """The newest server offset stored for `account` (None: none yet), to seed a restarted bot's clock."""
        with self._db.session() as session:
            return brokerday.load(session.connection(), account).latest

    def record_trade_volume(self, account: str, ticket: int, volume: Decimal, entry_price: Decimal) -> bool:
        """An open trade's volume and volume-weighted entry price after a netting add; False if not open."""
        table = _table(TradeModel)
        with self._single() as session:
            result = session.execute(
                update(table)
                .where(table.c.account == account, table.c.ticket == ticket, table.c.is_closed == false())
                .values(volume=volume, entry_price=entry_price)
            )
            return result.rowcount == 1

    # -- quarantined broker records ---------------------------------------------------------

    def record_quarantine(self, rec: QuarantineRecord) -> bool:
        """Keep a broker record the gateway refused; True if it was not stored before (idempotent)."""
        with self._db.session() as session:
            return quarantine.record(session.connection(), rec)

    def quarantined(self, account: str, since: datetime | None = None, limit: int = 1000) -> list[QuarantineRecord]:
        """The account's quarantined broker records, oldest first."""
        with self._db.session() as session:
            return quarantine.rows(session.connection(), account, since, limit)

    # -- operator actions (python -m bot ctl) ------------------------------------------------

    def record_operator_action(self, action: OperatorAction) -> int:
        """Keep one operator command and its result; returns its row id."""
        with self._db.session() as session:
            return operator_actions.record(session.connection(), action)

    def operator_actions(self, account: str, since: datetime | None = None, limit: int = 1000) -> list[OperatorAction]:
        """The account's operator commands, oldest first."""
        with self._db.session() as session:
            return operator_actions.rows(session.connection(), account, since, limit)

    # -- the bot's metrics history -----------------------------------------------------------

    def record_metrics_minute(self, m: MetricsMinute) -> None:
        """Add a flush of the bot's counters to its minute: counts and sums add, max and last replace."""
        with self._db.connection(savepoint=self._savepoint_one_statement) as connection:  # one statement
            minutes_store.record_minute(connection, m)

    def metrics_history(
        self, account: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[MetricsMinute]:
        """The account's stored minutes in [since, until), oldest first."""
        with self._db.session() as session:
            return minutes_store.minutes(session.connection(), account, since, until)

    def prune_metrics_history(self, account: str, older_than: datetime) -> int:
        """Retention: delete the account's minutes before `older_than`, returning how many."""
        with self._db.session() as session:
            return minutes_store.prune(session.connection(), account, older_than)

    # -- health --------------------------------------------------------------------------

    def ping(self) -> bool:
        """True if the store is reachable and writable."""
        return self._db.ping()

    def _views(self, cls: type[View], query: Any) -> list[View]:
        with self._single() as session:
            return [_view(cls, row) for row in session.scalars(query)]


def _measured(values: dict[str, Any]) -> dict[str, Any]:
    """Outcome values without the execution figures it did not measure: a later outcome (an unknown
    order resolved at the broker) must not erase what the send measured."""
    return {name: value for name, value in values.items() if value is not None or name not in EXECUTION_FIELDS}


def _order(session: Session, client_order_id: str) -> OrderModel | None:
    return session.scalars(
        select(OrderModel).where(OrderModel.client_order_id == client_order_id)
    ).one_or_none()
