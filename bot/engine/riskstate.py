"""The risk guard's state file: the broker day, its opening equity, the peak and the latched halts.

Why a file beside the store and not the database: the guard must know at the first cycle after a
restart whether the day already went bad, also while the database is away (the bot then trades on
its spool). Written whole (a temporary file renamed over the old one), read leniently: an
unreadable file is said once and the guard starts from the account as it is.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

log = logging.getLogger("bot.engine.risk")


@dataclass
class RiskState:
    account: str | None = None  # whose state it is: another account's is not applied
    day: date | None = None
    day_start_equity: Decimal | None = None
    peak_equity: Decimal | None = None
    latched: dict[str, str] = field(default_factory=dict)  # reason -> since (ISO time)


def load(path: str) -> RiskState | None:
    """The saved state, or None (no file yet, or unreadable: said)."""
    target = Path(path)
    if not target.is_file():
        return None
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
        return RiskState(
            account=str(data["account"]) if data.get("account") is not None else None,
            day=date.fromisoformat(data["day"]) if data.get("day") else None,
            day_start_equity=Decimal(data["day_start_equity"]) if data.get("day_start_equity") else None,
            peak_equity=Decimal(data["peak_equity"]) if data.get("peak_equity") else None,
            latched={str(k): str(v) for k, v in dict(data.get("latched") or {}).items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as exc:
        log.error("risk guard state %s unreadable (%s): starting from the account as it is now", path, exc)
        return None


def save(path: str, state: RiskState) -> None:
    data = {"account": state.account, "day": state.day.isoformat() if state.day else None,
            "day_start_equity": None if state.day_start_equity is None else str(state.day_start_equity),
            "peak_equity": None if state.peak_equity is None else str(state.peak_equity),
            "latched": state.latched}
    temporary = f"{path}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, path)  # whole or not at all
    except OSError as exc:
        log.error("risk guard state not saved to %s: %s", path, exc)


def default_path(database_url: object) -> str:
    """Beside a SQLite store; otherwise under data/, one file per database (named by a hash of its
    URL without the password), so two bots, or two test databases, never share a bad day."""
    import hashlib

    from sqlalchemy.engine import make_url

    url = make_url(str(database_url)) if not hasattr(database_url, "render_as_string") else database_url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return f"{url.database}.risk_state.json"
    name = hashlib.sha256(url.set(password=None).render_as_string(hide_password=True).encode()).hexdigest()[:12]
    return f"data/risk_state.{name}.json"
