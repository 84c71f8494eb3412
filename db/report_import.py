"""Read the terminal's Trade History Report into deal records, and store them idempotently.

Why by position: the report's headers and section titles are in the terminal's UI language,
but its layout is not.  The Deals table is found by the shape of its rows (a time, a ticket,
a deal type and an entry the terminal prints in English in every language, see db.mt5deals),
its columns by their position (DEAL_LAYOUTS: builds with and without the Fee column), the
account by the header value shaped "LOGIN (CURRENCY, SERVER, ...)".

What the report does not carry, and what is stored instead:
- times are the trade server's clock: they are read in `server_timezone` and stored in UTC;
- the Fee column is added to the deal's commission (the deals table has no fee column; both
  are costs of the deal, counted the same way by both conventions);
- magic and reason are not printed: stored as 0 (manual, DEAL_REASON_CLIENT);
- the position of an entry deal is its order (MT5 opens a position with the ticket of the order
  that opened it); the position of an exit deal is inferred first in, first out among the open
  positions of its symbol and opposite side (the MT5-convention figures do not depend on it).

Every row is checked before anything is stored (values, and the Balance column against the
running balance of the rows before it): a bad file stores nothing.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

import confcheck
from db import deal_marks
from db.database import Database
from db.models import DealModel
from db.mt5deals import BUY, BY_WORD, CREDIT_TYPE, ENTRIES, ENTRY_IN, ENTRY_INOUT
from db.records import DealRecord
from db.report_grid import Grid, ReportError, read_grid
from db.upsert import insert_for
from db.vocabulary import ACCOUNT_LEN, COMMENT_LEN, SYMBOL_LEN

DEAL_LAYOUTS = {
    14: ("time", "ticket", "symbol", "type", "direction", "volume", "price", "order",
         "commission", "fee", "swap", "profit", "balance", "comment"),
    13: ("time", "ticket", "symbol", "type", "direction", "volume", "price", "order",
         "commission", "swap", "profit", "balance", "comment"),
}
_TIME = re.compile(r"([0-9]{4})\.([0-9]{2})\.([0-9]{2}) ([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_TICKET = re.compile(r"[0-9]{1,19}")
_LOGIN = re.compile(r"([0-9]{1,20})\s*\(")
_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009")
_MAX_TICKET = 2**63 - 1
STORE_CHUNK = 1_000


@dataclass
class ParsedReport:
    """What a report file holds: its account, its deals (in file order) and its summary pairs."""

    login: str | None
    deals: list[DealRecord]
    summary: list[tuple[str, str]] = field(default_factory=list)  # (label, value) after the Deals table


def server_timezone(raw: str) -> tzinfo:
    """An IANA zone name (Europe/Athens) or a fixed offset (+02:00) of the trade server's clock."""
    value = confcheck.text(64, required=True)(raw)
    match = re.fullmatch(r"([+-])([0-9]{2}):([0-9]{2})", value)
    if match:
        minutes = int(match.group(2)) * 60 + int(match.group(3))
        if minutes > 14 * 60:
            raise ValueError("must be an offset from -14:00 to +14:00")
        return timezone(timedelta(minutes=minutes if match.group(1) == "+" else -minutes))
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as Europe/Athens or an offset such as +02:00") from None


# -- the grid's sections -------------------------------------------------------------------------


def _filled(row: list[str]) -> list[str]:
    return [cell for cell in row if cell]


def _is_title(row: list[str]) -> bool:
    cells = _filled(row)
    return len(cells) == 1 and not cells[0].endswith(":") and not _NUMBER.fullmatch(cells[0].translate(_SPACES))


def _sections(grid: Grid) -> list[tuple[int, int]]:
    """(title row, end row) of every section; the rows before the first title are the header."""
    titles = [i for i, row in enumerate(grid) if _is_title(row)]
    return list(zip(titles, [*titles[1:], len(grid)], strict=True)) if titles else []


def _looks_like_deal(row: list[str]) -> bool:
    return (len(row) >= 5 and bool(_TIME.fullmatch(row[0])) and row[3].lower() in BY_WORD
            and row[4].lower() in ENTRIES)


def _deals_section(grid: Grid) -> tuple[int, int, tuple[str, ...]]:
    """The Deals table: the section whose first timed row is shaped like a deal."""
    found = []
    for start, end in _sections(grid):
        header = next((_filled(row) for row in grid[start + 1:end] if _filled(row)), [])
        timed = [row for row in grid[start + 1:end] if row and _TIME.fullmatch(row[0])]
        if timed and _looks_like_deal(timed[0]):
            if len(header) not in DEAL_LAYOUTS:
                raise ReportError(f"the Deals table has {len(header)} columns; known layouts have "
                                  f"{' or '.join(map(str, sorted(DEAL_LAYOUTS)))}")
            found.append((start, end, DEAL_LAYOUTS[len(header)]))
    if not found:
        raise ReportError("no Deals table found (is this an MT5 Trade History Report?)")
    if len(found) > 1:
        raise ReportError(f"{len(found)} tables look like the Deals table; expected one")
    return found[0]


def _login(grid: Grid, before: int) -> str | None:
    for row in grid[:min(before, 12)]:  # the header block: title, name, account, company, date
        for cell in row:
            match = _LOGIN.match(cell)
            if match:
                return match.group(1)
    return None


def summary_pairs(rows: Grid) -> list[tuple[str, str]]:
    """(label, value) pairs of the summary block: a cell ending in ':' and the next filled cell."""
    pairs = []
    for row in rows:
        cells = _filled(row)
        for i, cell in enumerate(cells):
            if cell.endswith(":") and i + 1 < len(cells) and not cells[i + 1].endswith(":"):
                pairs.append((cell[:-1].strip(), cells[i + 1]))
    return pairs


# -- one deal row ----------------------------------------------------------------------------------


class _Row:
    """Typed reads of one Deals row; every failure names the row, the column and the value."""

    def __init__(self, line: int, cells: dict[str, str]) -> None:
        self.line, self.cells = line, cells

    def fail(self, column: str, reason: str) -> ReportError:
        value = self.cells.get(column, "")
        return ReportError(f"Deals row {self.line}, column {column}: {reason}, got {value[:40]!r}")

    def text(self, column: str, limit: int) -> str:
        value = self.cells.get(column, "")
        if len(value) > limit or not value.isprintable():
            raise self.fail(column, f"must be printable text of at most {limit} characters")
        return value

    def ticket(self, column: str, required: bool = True) -> int:
        value = self.cells.get(column, "")
        if not value and not required:
            return 0
        if not _TICKET.fullmatch(value) or int(value) > _MAX_TICKET:
            raise self.fail(column, "must be a ticket number")
        return int(value)

    def number(self, column: str, places: int) -> Decimal:
        value = self.cells.get(column, "").translate(_SPACES)
        if not value:
            return Decimal(0)
        try:
            if not _NUMBER.fullmatch(value):
                raise InvalidOperation
            number = Decimal(value)
        except InvalidOperation:
            raise self.fail(column, "must be a number") from None
        if number != number.quantize(Decimal(1).scaleb(-places)) or abs(number) >= Decimal(10) ** 15:
            raise self.fail(column, f"must be a number with at most {places} decimals")
        return number

    def time(self, zone: tzinfo) -> datetime:
        match = _TIME.fullmatch(self.cells.get("time", ""))
        try:
            if match is None:
                raise ValueError
            y, mo, d, h, mi, s = (int(part or 0) for part in match.groups())
            return datetime(y, mo, d, h, mi, s, tzinfo=zone).astimezone(UTC)
        except (ValueError, OverflowError):
            raise self.fail("time", "must be a time as YYYY.MM.DD HH:MM:SS") from None


class _Positions:
    """Which position each deal belongs to: entries open one (id = order), exits close FIFO."""

    def __init__(self) -> None:
        self._open: dict[str, deque[list]] = {}

    def assign(self, symbol: str, deal_type: int, entry: int, volume: Decimal, order: int, ticket: int) -> int:
        own = order or ticket
        side = 1 if deal_type == BUY else -1
        lots = self._open.setdefault(symbol, deque())
        if entry == ENTRY_IN:
            lots.append([own, side, volume])
            return own
        lot = next((lot for lot in lots if lot[1] == -side), None)
        if lot is None:  # opened before the report's first deal
            return own
        left = lot[2] - volume
        if left <= 0:
            lots.remove(lot)
            if entry == ENTRY_INOUT and left < 0:  # a reversal: the rest opens the other way, same id
                lots.append([lot[0], side, -left])
        else:
            lot[2] = left
        return lot[0]


def _deal(row: _Row, account: str, zone: tzinfo, positions: _Positions) -> DealRecord:
    deal_type = BY_WORD.get(row.cells.get("type", "").lower())
    if deal_type is None:
        raise row.fail("type", "is not an MT5 deal type")
    entry = ENTRIES.get(row.cells.get("direction", "").lower())
    if entry is None:
        raise row.fail("direction", "must be in, out, in/out or out by")
    symbol = row.text("symbol", SYMBOL_LEN)
    volume, order, ticket = row.number("volume", 8), row.ticket("order", required=False), row.ticket("ticket")
    if deal_type.kind == "trade" and (not symbol or volume <= 0):
        raise row.fail("volume", "a buy or sell deal needs a symbol and a volume above 0")
    position = positions.assign(symbol, deal_type.value, entry, volume, order, ticket) if deal_type.kind == "trade" else 0
    return DealRecord(
        account=account,
        ticket=ticket,
        order_ticket=order,
        position_id=position,
        symbol=symbol,
        type=deal_type.value,
        entry=entry,
        volume=volume,
        price=row.number("price", 6),
        profit=row.number("profit", 2),
        commission=row.number("commission", 2) + row.number("fee", 2),
        swap=row.number("swap", 2),
        magic=0,
        comment=row.text("comment", COMMENT_LEN),
        reason=0,
        time=row.time(zone),
    )


def parse_report(path: Path, account: str | None = None, zone: tzinfo = UTC) -> ParsedReport:
    """The report's deals for `account` (default: the login in its header); ReportError when unreadable."""
    grid = read_grid(path)
    start, end, layout = _deals_section(grid)
    login = _login(grid, start)
    account = account or login
    if not account:
        raise ReportError("the report names no account: give --account")
    if len(account) > ACCOUNT_LEN:
        raise ReportError(f"account must be at most {ACCOUNT_LEN} characters")
    positions, deals, balance = _Positions(), [], None
    last = end
    for index in range(start + 1, end):
        cells = grid[index]
        if not cells or not cells[0] or not _TIME.fullmatch(cells[0]) and not deals:
            continue  # the header (before the first deal), the totals row, spacer rows
        if not _TIME.fullmatch(cells[0]):
            last = index
            break
        row = _Row(len(deals) + 1, dict(zip(layout, cells, strict=False)))
        try:
            deal = _deal(row, account, zone, positions)
        except ReportError:
            raise
        except ValueError as exc:  # the record's own checks (db.validation)
            raise ReportError(f"Deals row {row.line}: {exc}") from None
        if deal.type != CREDIT_TYPE:
            amount = deal.profit + deal.commission + deal.swap
            stated = row.number("balance", 2)
            balance = (stated - amount) if balance is None else balance
            if stated != balance + amount:
                raise row.fail("balance", f"does not follow from the rows before it (expected {balance + amount})")
            balance = stated
        deals.append(deal)
    seen: set[int] = set()
    for number, deal in enumerate(deals, start=1):
        if deal.ticket in seen:
            raise ReportError(f"Deals row {number}: deal ticket {deal.ticket} is listed twice")
        seen.add(deal.ticket)
    return ParsedReport(login=login, deals=deals, summary=summary_pairs(grid[last:]))


# -- storing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    account: str
    read: int
    stored: int  # new deals
    known: int  # already stored, identical
    differing: list[int]  # already stored with other values: kept as stored


# What the report itself prints: a stored deal (e.g. recorded by the bot, with its magic, reason
# and position) differs from the report's only if one of these does.
REPORT_FIELDS = ("order_ticket", "symbol", "type", "entry", "volume", "price", "profit", "commission", "swap",
                 "comment", "time")


def _key(values: dict) -> tuple:
    return tuple(values[name] for name in REPORT_FIELDS)


def store_report(database: Database, report: ParsedReport) -> ImportResult:
    """Insert the report's deals that the store does not have, in one transaction; never overwrite.
    The account's deal mark (db.deal_marks) moves with the deals inserted, in that transaction."""
    table = DealModel.__table__
    account = report.deals[0].account if report.deals else ""
    rows = [{name: getattr(deal, name) for name in DealRecord.__dataclass_fields__} for deal in report.deals]
    with database.session() as session:
        known = {}
        tickets = [row["ticket"] for row in rows]
        for chunk in range(0, len(tickets), STORE_CHUNK):
            query = select(table).where(table.c.account == account,
                                        table.c.ticket.in_(tickets[chunk:chunk + STORE_CHUNK]))
            known.update({row.ticket: dict(row._mapping) for row in session.execute(query)})
        new = [row for row in rows if row["ticket"] not in known]
        inserted = 0  # what the INSERTs really inserted: the account's deal mark moves by that
        for chunk in range(0, len(new), STORE_CHUNK):
            inserted += session.execute(insert_for(session, table).on_conflict_do_nothing(
                index_elements=["account", "ticket"]), new[chunk:chunk + STORE_CHUNK]).rowcount
        deal_marks.stored(session.connection(), account, new, inserted)
    differing = [row["ticket"] for row in rows if row["ticket"] in known and _key(known[row["ticket"]]) != _key(row)]
    return ImportResult(account, len(rows), len(new), len(known) - len(differing), differing)
