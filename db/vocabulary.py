"""The words and sizes the trade store accepts, in one place.

The models (CHECK constraints, column lengths) and the record validation read
these (migrations keep their own frozen copy), so a value the database would reject is refused
earlier with a readable message, the same way on SQLite (which enforces no
lengths) and on PostgreSQL.
"""

SIDES = ("BUY", "SELL")
SIGNALS = ("BUY", "SELL", "HOLD")
PURPOSES = ("open", "close")

ORDER_STATUSES = ("pending", "filled", "rejected", "unknown", "expired")
# An order in one of these states may still learn its outcome.
OPEN_ORDER_STATUSES = ("pending", "unknown")
# An order in one of these states is settled for good.
FINAL_ORDER_STATUSES = ("filled", "rejected", "expired")
# What an outcome may report: 'pending' is where an intent starts, not an outcome.
OUTCOME_STATUSES = ("unknown", *FINAL_ORDER_STATUSES)

# Why a trade was closed (trades.close_reason): from its last exit deal's DEAL_REASON_*
# (bot.engine.trades_from_deals.CLOSE_REASONS); 'other' for a reason MT5 adds later.
CLOSE_REASONS = ("manual", "expert", "stop_loss", "take_profit", "stop_out", "rollover", "variation_margin",
                 "split", "other")
CLOSE_REASON_LEN = 16

ACCOUNT_LEN = 32
SYMBOL_LEN = 32
NAME_LEN = 64  # strategy names
ID_LEN = 64  # cycle, correlation and client order ids
COMMENT_LEN = 64  # MT5 keeps 31 characters; brokers may rewrite them
# Quarantined broker records (db.quarantine): what kind, which one, why.
RECORD_KIND_LEN = 16
RECORD_KEY_LEN = 64
REJECT_REASON_LEN = 32
REJECT_FIELD_LEN = 64
FINGERPRINT_LEN = 64
# Operator actions (db.operator_actions): who sent which ctl command, and how it ended.
ACTOR_LEN = 64
ACTION_LEN = 32
RESULT_LEN = 16

# Maximum length of a text field, by field name, wherever it appears in a record.
TEXT_LIMITS = {
    "account": ACCOUNT_LEN,
    "symbol": SYMBOL_LEN,
    "strategy": NAME_LEN,
    "strategy_name": NAME_LEN,
    "cycle_id": ID_LEN,
    "correlation_id": ID_LEN,
    "client_order_id": ID_LEN,
    "comment": COMMENT_LEN,
    "record_kind": RECORD_KIND_LEN,
    "record_key": RECORD_KEY_LEN,
    "reject_reason": REJECT_REASON_LEN,
    "reject_field": REJECT_FIELD_LEN,
    "fingerprint": FINGERPRINT_LEN,
    "actor": ACTOR_LEN,
    "action": ACTION_LEN,
    "result": RESULT_LEN,
}


def sql_in(column: str, values: tuple[str, ...]) -> str:
    """The text of a CHECK constraint limiting `column` to `values`."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"
