"""Operator reports: the daily summary and the metrics-history export.

Both read the store only through `db` (the repository and `db.analytics`); the CLI prints what
they return.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from db import DailyPerformance, Repository, brokerday
from db.brokerday import BrokerDay
from db.metrics_history import MetricsMinute


def daily_report(database: Any, repo: Repository, account: str, day: date) -> DailyPerformance:
    """Compute the day's figures from the closed trades and store them as its `daily_performance` row.

    A day without a closed trade and without an account snapshot is not stored: nothing happened
    on it that the store knows, and a row of zeros would be a day we invented.
    """
    from db.daily_results import daily_performance

    result = daily_performance(database, account, day)
    if has_data(result):
        repo.upsert_daily_performance(result)
    return result


def has_data(d: DailyPerformance) -> bool:
    return bool(d.trades) or d.end_balance is not None


def last_day_with_data(database: Any, repo: Repository, account: str) -> date | None:
    """The last broker day with a stored deal or account snapshot: `report daily`'s default.

    Not today's wall date: a simulated clock, a weekend or a stopped bot leave today empty.
    """
    snapshot = repo.last_account_snapshot(account)
    moments = [m for m in (repo.last_deal_time(account), snapshot.time if snapshot else None) if m is not None]
    return brokerday.day_of(database, account, max(moments)).date if moments else None


def day_label(d: DailyPerformance) -> str:
    """Which day a report covers, said as such: 'broker day 2026-03-02 (server GMT+2, starts ...)'."""
    return BrokerDay(d.date, d.server_offset_seconds).label()


def format_daily(d: DailyPerformance) -> str:
    win_rate = f"{Decimal(str(d.win_rate)) * 100:.1f} %" if d.win_rate is not None else "n/a"
    rows = [
        ("date", d.date.isoformat()),
        ("day", day_label(d)),
        ("account", d.account),
        ("trades", d.trades),
        ("winners", d.winners),
        ("losers", d.losers),
        ("win rate", win_rate),
        ("profit", d.profit),
        ("pips", d.pips),
        ("largest win", d.largest_win),
        ("largest loss", d.largest_loss),
        ("max drawdown", d.max_drawdown),
        ("end balance", d.end_balance),
        ("end equity", d.end_equity),
    ]
    return "\n".join(f"{name:<13} {'' if value is None else value}" for name, value in rows) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def export_metrics(minutes: list[MetricsMinute], fmt: str) -> str:
    """The metrics history as JSON (a list of objects) or CSV (a header row, then one row a minute)."""
    records = [{k: _plain(v) for k, v in asdict(m).items()} for m in minutes]
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(MetricsMinute)], lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return out.getvalue()
    raise ValueError(f"unknown format {fmt!r}: use json or csv")
