"""Operator actions: every `python -m bot ctl` command, who sent it, when, and what came of it.

Why a table: a pause or a close-all changes what the bot does with money; the trail has to outlive
the log retention and be readable next to the trades (Grafana "Operator actions" panel). One row
per command, written when the command has finished (its result known); a command refused for a
bad token is not a command and leaves no row (it is counted and logged by the control endpoint).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select

from db.models import OperatorActionModel
from db.validation import check_record, require_aware

_TABLE = OperatorActionModel.__table__
ACTIONS = ("status", "pause", "resume", "close-all", "reload-strategies")
RESULTS = ("ok", "refused", "failed")


@dataclass(frozen=True, slots=True)
class OperatorAction:
    account: str
    actor: str  # who: the OS user and host the ctl client reported
    action: str
    arguments: str  # JSON text of the command's options
    correlation_id: str
    requested_at: datetime
    finished_at: datetime
    result: str
    detail: str

    def __post_init__(self) -> None:
        check_record(self, {"action": ACTIONS, "result": RESULTS})


def record(connection: Connection, action: OperatorAction) -> int:
    values = {name: getattr(action, name) for name in OperatorAction.__dataclass_fields__}
    return int(connection.execute(insert(_TABLE).values(**values).returning(_TABLE.c.id)).scalar_one())


def rows(connection: Connection, account: str, since: datetime | None = None, limit: int = 1000) -> list[OperatorAction]:
    """The account's operator actions, oldest first (at most `limit`)."""
    columns = [_TABLE.c[name] for name in OperatorAction.__dataclass_fields__]
    query = select(*columns).where(_TABLE.c.account == account)
    if since is not None:
        require_aware("since", since)
        query = query.where(_TABLE.c.requested_at >= since)
    query = query.order_by(_TABLE.c.requested_at, _TABLE.c.id).limit(limit)
    return [OperatorAction(**row._mapping) for row in connection.execute(query)]
