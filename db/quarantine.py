"""Quarantined broker records: what the gateway refused, stored raw so an operator can see it.

Why a table of its own, and raw text: a refused record is by definition one the trading tables
cannot hold (NaN profit, a 10 000-character comment, year 3000), so it is kept as the gateway
received it, encoded as JSON text (non-finite numbers spelled out, long strings cut), next to why
it was refused.  The stable key (account, record_kind, fingerprint of the raw record) makes the
write idempotent: the same record refused again, replayed from the spool or after a restart,
stays one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from db.models import QuarantineModel
from db.upsert import insert_for_connection
from db.validation import check_record, require_aware

_TABLE = QuarantineModel.__table__
_KEY = ("account", "record_kind", "fingerprint")


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """One refused broker record: its kind (deal, position, quote ...), its key, the reason and the raw text."""

    account: str
    record_kind: str
    record_key: str
    reject_reason: str
    reject_field: str | None
    detail: str
    raw: str
    fingerprint: str
    broker_time: datetime | None
    received_at: datetime

    def __post_init__(self) -> None:
        check_record(self)


def record(connection: Connection, rec: QuarantineRecord) -> bool:
    """Store a refused record once; True if it was not stored before."""
    values = {name: getattr(rec, name) for name in QuarantineRecord.__dataclass_fields__}
    result = connection.execute(
        insert_for_connection(connection, _TABLE).values(**values).on_conflict_do_nothing(index_elements=list(_KEY))
    )
    return result.rowcount == 1


def rows(connection: Connection, account: str, since: datetime | None = None, limit: int = 1000) -> list[QuarantineRecord]:
    """The account's quarantined records, oldest first (at most `limit`)."""
    columns = [_TABLE.c[name] for name in QuarantineRecord.__dataclass_fields__]
    query = select(*columns).where(_TABLE.c.account == account)
    if since is not None:
        require_aware("since", since)
        query = query.where(_TABLE.c.received_at >= since)
    query = query.order_by(_TABLE.c.received_at, _TABLE.c.id).limit(limit)
    return [QuarantineRecord(**row._mapping) for row in connection.execute(query)]
