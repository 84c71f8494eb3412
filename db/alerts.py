"""The alert sink's table: every alert Alertmanager delivered, stored idempotently.

Why (fingerprint, starts_at) is the key: Alertmanager's fingerprint names an alert's
label set, and each time it starts firing again it has a new startsAt.  So one row is
one episode: a repeated delivery rewrites the same row, and Alertmanager is the source of
truth for its state:
- a firing delivery always applies, and re-opens an episode stored as resolved (after a
  wrong resolve, Alertmanager's next notification of the still-firing alert undoes it;
  Alertmanager sends one group's notifications in order, so this is not a stale retry);
- a resolve applies only when it is newer than the stored state: its endsAt is not before
  the episode's startsAt, nor before the endsAt of a resolve already stored.
The sink accepts deliveries only with its token (exporter.app).  Grafana's Alerts
dashboard reads this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from db.database import Database
from db.models import ALERT_STATUSES, AlertModel
from db.reading import reading
from db.upsert import insert_for
from db.validation import require_aware
from db.vocabulary import ID_LEN, NAME_LEN

_TABLE = AlertModel.__table__
ALERTNAME_LEN = NAME_LEN * 2


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert of a webhook delivery."""

    fingerprint: str
    status: str  # firing | resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None

    def __post_init__(self) -> None:
        if not isinstance(self.fingerprint, str) or not 0 < len(self.fingerprint) <= ID_LEN:
            raise ValueError(f"fingerprint must be a non-empty string of at most {ID_LEN} characters")
        if self.status not in ALERT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ALERT_STATUSES)}, got {self.status!r}")
        for name in ("labels", "annotations"):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ValueError(f"{name} must map strings to strings")
        require_aware("startsAt", self.starts_at)
        if self.ends_at is not None:
            require_aware("endsAt", self.ends_at)
        if len(self.alertname) > ALERTNAME_LEN or len(self.severity or "") > NAME_LEN:
            raise ValueError("the alertname or severity label is too long")

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str | None:
        return self.labels.get("severity")


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    fingerprint: str
    status: str
    alertname: str
    severity: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    received_at: datetime


def store_alerts(database: Database, alerts: list[AlertRecord], received_at: datetime) -> None:
    """Insert or update each alert's episode row, all in one transaction."""
    require_aware("received_at", received_at)
    if not alerts:
        return
    with database.session() as session:
        for alert in alerts:
            statement = insert_for(session, _TABLE).values(
                fingerprint=alert.fingerprint,
                status=alert.status,
                alertname=alert.alertname,
                severity=alert.severity,
                labels=alert.labels,
                annotations=alert.annotations,
                starts_at=alert.starts_at,
                ends_at=alert.ends_at,
                received_at=received_at,
            )
            new = statement.excluded
            statement = statement.on_conflict_do_update(
                index_elements=["fingerprint", "starts_at"],
                set_={
                    name: new[name]
                    for name in ("status", "alertname", "severity", "labels", "annotations", "ends_at", "received_at")
                },
                where=or_(
                    new.status == "firing",  # firing re-opens
                    _newer_resolve(new),
                ),
            )
            session.execute(statement)


def _newer_resolve(new):
    """A resolve newer than the stored state: ends no earlier than the episode started or was last resolved."""
    return (new.ends_at >= _TABLE.c.starts_at) & (
        (_TABLE.c.status == "firing") | _TABLE.c.ends_at.is_(None) | (new.ends_at >= _TABLE.c.ends_at)
    )


def list_alerts(
    database: Database, status: str | None = None, limit: int = 100, before_id: int | None = None
) -> list[AlertRow]:
    """Stored alert episodes, newest row first (by id), optionally of one status."""
    query = select(*(_TABLE.c[name] for name in AlertRow.__dataclass_fields__))
    if status is not None:
        query = query.where(_TABLE.c.status == status)
    if before_id is not None:
        query = query.where(_TABLE.c.id < before_id)
    query = query.order_by(_TABLE.c.id.desc()).limit(limit)
    with reading(database) as connection:
        return [AlertRow(**row._mapping) for row in connection.execute(query)]
