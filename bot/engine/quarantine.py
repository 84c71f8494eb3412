"""Where the gateway's refused broker records go: stored raw, counted, said once, alerted.

The gateway's guard decides what is refused and reports each record once (bot.gateway.guard);
this sink does the rest. The quarantine row goes through the store like any write, so it is
spooled while the database is down; its stable key keeps it one row. A record of a deal ticket
seen before with other content is a conflict: an ERROR line and its own counter (an alert), the
first version stays the one stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from db import QuarantineRecord

from ..gateway import Rejection

log = logging.getLogger("bot.quarantine")


class Quarantine:
    def __init__(self, repo: Any, account: Callable[[], str], observer: Callable[[], Any]):
        self.repo = repo
        self.account = account
        self.observer = observer
        self.rejected = 0  # records reported in this process
        self.stored = 0  # of which the store took a new row

    def __call__(self, rejection: Rejection) -> None:
        self.rejected += 1
        fields = {"record_kind": rejection.kind, "key": rejection.key, "reason": rejection.reason,
                  "field": rejection.field, "symbol": rejection.symbol, "fingerprint": rejection.fingerprint}
        if rejection.conflict:
            log.error("broker deal ticket conflict: %s %s seen again with other content, the first is kept: %s",
                      rejection.kind, rejection.key, rejection.detail, extra=fields)
        else:
            log.warning("broker %s %s refused (%s) and quarantined: %s", rejection.kind, rejection.key,
                        rejection.reason, rejection.detail, extra=fields)
        observer = self.observer()
        observer.broker_record_rejected(rejection.kind, rejection.reason)
        if rejection.conflict:
            observer.deal_conflict()
        record = QuarantineRecord(
            account=self.account(), record_kind=rejection.kind, record_key=rejection.key,
            reject_reason=rejection.reason, reject_field=rejection.field, detail=rejection.detail,
            raw=rejection.raw, fingerprint=rejection.fingerprint, broker_time=rejection.broker_time,
            received_at=datetime.now(UTC),
        )
        try:
            self.stored += bool(self.repo.record_quarantine(record))
        except Exception as exc:  # noqa: BLE001 - a store refusal must not stop the broker call; said once here
            log.warning("quarantined %s %s not stored: %s: %s", rejection.kind, rejection.key, type(exc).__name__,
                        exc, extra=fields)
