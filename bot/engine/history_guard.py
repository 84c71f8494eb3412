"""Refuse a broker whose history went back in time relative to the store.

Why: the store trusts deal tickets as identities. A broker that lost its history (a simulator
started again without its state file, a demo account reset, a restored terminal) hands out the same
tickets again for other deals; the store would take them for deals it already has and record
nothing, and its snapshots would interleave two different accounts' pasts. Nothing later can
untangle that, so the bot stops at start with one line saying what it saw, before any order.

Two signs, either enough:
- the broker's clock is more than REWIND_TOLERANCE behind the newest deal or snapshot stored for
  the account (a little slack: a trade server's clock shifts by an hour at a daylight-saving
  change, and a simulator restored from its state file resumes from its last save);
- a deal ticket the store knows is at the broker with other content (time, symbol, side, volume,
  price or position).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from db import DealRecord, Repository
from db.types import price_type, volume_type

from ..gateway import Deal, Gateway

log = logging.getLogger("bot.engine")

REWIND_TOLERANCE = timedelta(hours=2)
#: Deals are compared over the window the books look at, with the books' own overlap.
WINDOW_OVERLAP = timedelta(hours=1)
FAR_AHEAD = timedelta(days=7)
_SAME = ("time", "symbol", "type", "entry", "volume", "price", "position_id")
#: A broker figure as the store holds it (a 0.001-lot volume is kept at the column's scale): compared so,
#: or every restart on a broker with finer steps than the column would look like a rewound history.
_AS_STORED = {"volume": volume_type(), "price": price_type()}
HOW_TO_FIX = ("point the bot at the broker history this store was written from "
              "(for the simulator: its state file, SIM_STATE_PATH), or use a new store")


class BrokerHistoryRewound(RuntimeError):
    """The broker's history is behind the store's: trading on would corrupt the books. Fatal at start."""


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def check_broker_history(gateway: Gateway, repo: Repository, account: str, broker_now: datetime,
                         history_days: int) -> None:
    """Raise BrokerHistoryRewound if the broker's history is behind what the store holds for `account`."""
    last_deal = _aware(repo.last_deal_time(account))
    snapshot = repo.last_account_snapshot(account)
    newest = max((t for t in (last_deal, _aware(snapshot.time) if snapshot else None) if t is not None),
                 default=None)
    if newest is None:
        return  # nothing stored for this account: any broker history is new to us
    if broker_now < newest - REWIND_TOLERANCE:
        behind = (newest - broker_now).total_seconds() / 3600
        raise BrokerHistoryRewound(
            f"broker history rewound for account {account}: the broker's clock ({broker_now.isoformat()}) is "
            f"{behind:.1f} h behind the newest record in the store ({newest.isoformat()}); {HOW_TO_FIX}"
        )
    since = min(broker_now, newest) - timedelta(days=history_days) - WINDOW_OVERLAP
    stored = {d.ticket: d for d in repo.deals_since(account, since)}
    if not stored:
        return
    for deal in gateway.deals(since, broker_now + FAR_AHEAD):
        known = stored.get(deal.ticket)
        if known is not None and not _same_deal(known, deal):
            raise BrokerHistoryRewound(
                f"broker history rewound for account {account}: deal ticket {deal.ticket} is at the broker as "
                f"{_describe(deal)} but stored as {_describe(known)}; {HOW_TO_FIX}"
            )


def _same_deal(stored: DealRecord, broker: Deal) -> bool:
    for name in _SAME:
        ours, theirs = getattr(stored, name), getattr(broker, name)
        if name == "time":
            ours, theirs = _aware(ours), _aware(theirs)
        elif name in _AS_STORED and theirs is not None:
            theirs = _AS_STORED[name].quantize(theirs)
        if ours != theirs:
            return False
    return True


def _describe(deal: DealRecord | Deal) -> str:
    return (f"{deal.symbol} type {deal.type} entry {deal.entry} {deal.volume} at {deal.price} "
            f"(position {deal.position_id}, {_aware(deal.time).isoformat()})")


def seed_server_clock(gateway: Gateway, repo: Repository, account: str) -> None:
    """Give the gateway the server offset an earlier run stored (bot.gateway.clock.BrokerClock.seed).

    Why here: restarted on a weekend, the terminal has only Friday's frozen ticks, which cannot
    measure the offset; one of them may pass for fresh and give a wrong one, and the broker's clock
    would then look hours behind the store (a rewound history above) - or stay unknown until Monday.
    A store that cannot answer leaves the clock to be measured from ticks, as on a first start.
    """
    latest = getattr(repo, "latest_broker_offset", None)
    if latest is None:
        return
    try:
        offset = latest(account)
    except Exception as exc:  # noqa: BLE001 - a missing seed only means measuring from ticks
        log.info("no stored broker clock offset read (%s): measured from ticks", exc)
        return
    if offset is not None:
        gateway.remember_server_offset(offset)
