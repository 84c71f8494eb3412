"""The trade store: signals, orders, deals, trades, snapshots and daily results.

    from db import init_db, Repository
    repo = Repository(init_db())          # migrates to the newest schema first

SQLite (data/tradewatch.db) by default, PostgreSQL when DATABASE_URL says so.
Callers exchange plain records with `Repository`; ORM models stay inside `db`.
Analytics over the closed trades (kept exact by rollups, db.rollups) are in
`db.analytics`; what the exporter shows per scrape in `db.scoreboard`.  The same history
counted as MT5's Trade History Report counts it (from the deals) is `db.mt5report`; the
terminal's report file is read by `db.report_import`.
"""

from db.database import Database, init_db
from db.errors import (
    DealConflict,
    DuplicateClientOrderId,
    DuplicateSignal,
    OutcomeConflict,
    StoreError,
    TradeConflict,
    UnknownOrder,
    UnknownSignal,
    UnknownTrade,
)
from db.metrics_history import MetricsMinute
from db.operator_actions import OperatorAction
from db.quarantine import QuarantineRecord
from db.records import (
    AccountSnapshot,
    DailyPerformance,
    DealRecord,
    OrderIntent,
    OrderOutcome,
    OrderRow,
    PositionSnapshot,
    SignalRecord,
    TradeClose,
    TradeOpen,
    TradeRow,
)
from db.repository import Repository
from db.url import DEFAULT_URL, redact_url, resolve_url

__all__ = [
    "DEFAULT_URL",
    "AccountSnapshot",
    "DailyPerformance",
    "Database",
    "DealConflict",
    "DealRecord",
    "DuplicateClientOrderId",
    "DuplicateSignal",
    "MetricsMinute",
    "OperatorAction",
    "OrderIntent",
    "OrderOutcome",
    "OrderRow",
    "OutcomeConflict",
    "PositionSnapshot",
    "QuarantineRecord",
    "Repository",
    "SignalRecord",
    "StoreError",
    "TradeClose",
    "TradeConflict",
    "TradeOpen",
    "TradeRow",
    "UnknownOrder",
    "UnknownSignal",
    "UnknownTrade",
    "init_db",
    "redact_url",
    "resolve_url",
]
