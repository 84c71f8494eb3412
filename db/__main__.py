"""Operator commands for the trade store's schema, against $DATABASE_URL (or the SQLite default).

python -m db upgrade [REVISION]    # default: head
python -m db downgrade REVISION    # e.g. base, or 0001
python -m db current               # the database's revision, and the code's head
python -m db seed-demo --trades N --accounts K   # demo trades for dashboards and benchmarks
python -m db verify-rollups        # compare the analytics rollups with the raw trades
python -m db import-mt5-report FILE [--account LOGIN] [--server-timezone TZ]   # the terminal's report
python -m db verify-report FILE [--account LOGIN] [--server-timezone TZ]       # its summary beside ours
"""

import argparse
import logging
import os
import re
import sys
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

import confcheck
from db import migrate, rollups
from db.database import Database
from db.mt5report import figures_between
from db.report_grid import ReportError
from db.report_import import parse_report, server_timezone, store_report
from db.report_summary import compare, render
from db.seed import seed_demo
from db.url import checked_url, redact_url
from db.vocabulary import ACCOUNT_LEN

_RELATIVE = re.compile(r"([A-Za-z0-9_]*)(?:[+-][0-9]+)?", re.ASCII)

log = logging.getLogger("db")


def _parser() -> argparse.ArgumentParser:
    parser = confcheck.OneLineParser(prog="python -m db", description="Manage the trade store's schema.")
    parser.add_argument(
        "--url", help="database URL (default: $DATABASE_URL, else sqlite:///data/tradewatch.db)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    upgrade = commands.add_parser("upgrade", help="migrate the schema forward")
    upgrade.add_argument("revision", nargs="?", default="head", type=confcheck.arg(_revision))
    downgrade = commands.add_parser("downgrade", help="migrate the schema back")
    downgrade.add_argument("revision", type=confcheck.arg(_revision))
    commands.add_parser("current", help="show the schema revision")
    seed = commands.add_parser("seed-demo", help="fill the store with realistic demo trades")
    seed.add_argument("--trades", type=_positive_int, default=10_000, help="closed trades in total")
    seed.add_argument("--accounts", type=confcheck.arg(confcheck.integer(1, 1000)), default=2,
                      help="demo accounts to spread them over")
    seed.add_argument("--years", type=confcheck.arg(confcheck.number(0, 50, above=True)), default=3.0,
                      help="how many years of history")
    seed.add_argument("--seed", type=confcheck.arg(confcheck.integer(0, 2**31 - 1)), default=7,
                      help="random seed (same seed, same data)")
    commands.add_parser("verify-rollups", help="check the analytics rollups against the raw trades")
    for name, purpose in (("import-mt5-report", "store the deals of the terminal's Trade History Report"),
                          ("verify-report", "print the report's summary beside ours; exit 1 if they differ")):
        report = commands.add_parser(name, help=f"{purpose} (.xlsx or .html, any UI language)")
        report.add_argument("file", type=Path, help="the report file as the terminal saved it")
        report.add_argument("--account", type=confcheck.arg(confcheck.text(ACCOUNT_LEN)),
                            help="store account (default: the login in the report's header)")
        report.add_argument("--server-timezone", type=confcheck.arg(server_timezone), default=UTC,
                            help="the trade server's clock the report's times are in (default UTC), "
                                 "e.g. Europe/Athens or +02:00")
    return parser


_positive_int = confcheck.arg(confcheck.integer(1, 10_000_000))


def _revision(raw: str) -> str:
    """head, heads, base, a known revision id, or one of them with a relative step (+1, head-1)."""
    value = confcheck.text(64, required=True)(raw)
    match = _RELATIVE.fullmatch(value)
    if match is None:
        raise ValueError("must be head, base, a revision id such as 0001, or a relative step such as -1")
    anchor = match.group(1)
    if anchor and anchor not in ("head", "heads", "base"):
        script = migrate.ScriptDirectory.from_config(migrate.alembic_config())
        known = sorted(rev.revision for rev in script.walk_revisions())
        if anchor not in known:
            raise ValueError(f"unknown revision (known: {', '.join(known)}, head, base)")
    return value


def _database_url(given: str | None) -> str:
    """--url, else $DATABASE_URL, checked; the default SQLite file when neither is set."""
    if given is not None:
        confcheck.read("--url", given, checked_url, secret=True)
        return given
    raw = os.environ.get("DATABASE_URL", "")
    if raw.strip():
        confcheck.read("DATABASE_URL", raw, checked_url, secret=True)
        return raw.strip()
    return "sqlite:///data/tradewatch.db"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        url = _database_url(args.url)
    except confcheck.SettingError as exc:
        parser.exit(2, f"{parser.prog}: config error: {exc}\n")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    report = None
    if args.command in ("import-mt5-report", "verify-report"):
        try:  # the file first: a bad report is refused before any database is touched
            report = parse_report(args.file, args.account, args.server_timezone)
        except ReportError as exc:
            parser.exit(2, f"{parser.prog} {args.command}: {args.file.name}: {exc}\n")
    try:
        with Database(url) as database:
            where = redact_url(database.url)
            if args.command == "upgrade":
                migrate.upgrade(database.engine, args.revision)
                log.info("%s upgraded to %s", where, migrate.current_revision(database.engine))
            elif args.command == "downgrade":
                migrate.downgrade(database.engine, args.revision)
                log.info("%s downgraded to %s", where, migrate.current_revision(database.engine) or "base")
            elif args.command == "seed-demo":
                migrate.upgrade(database.engine, "head")
                summary = seed_demo(database, args.trades, args.accounts, args.years, args.seed)
                log.info(
                    "%s seeded: %d closed and %d open trades, %d signals, %d snapshots in accounts %s",
                    where, summary.closed_trades, summary.open_trades, summary.signals, summary.snapshots,
                    ", ".join(summary.accounts),
                )
            elif args.command == "verify-rollups":
                return _verify_rollups(database)
            elif args.command == "import-mt5-report":
                migrate.upgrade(database.engine, "head")
                return _import_report(database, args.file, report)
            elif args.command == "verify-report":
                return _verify_report(database, parser, args.file, report)
            else:
                current = migrate.current_revision(database.engine)
                head = migrate.head_revision()
                state = "up to date" if current == head else f"head is {head}"
                sys.stdout.write(f"{current or 'base'} ({state})\n")
    except CommandError as exc:  # a revision Alembic cannot go to from here
        parser.exit(2, f"{parser.prog}: config error: revision: {' '.join(str(exc).split())}\n")
    except (ValueError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        log.error("%s failed: %s", args.command, reason)
        return 1
    return 0


def _verify_rollups(database: Database) -> int:
    with database.engine.connect() as connection:
        problems = {
            account: rollups.verify(connection, account) for account in rollups.accounts_with_closed_trades(connection)
        }
    for account, found in problems.items():
        for problem in found[:20]:
            log.error("account %s: %s", account, problem)
    bad = [account for account, found in problems.items() if found]
    if bad:
        log.error("rollups disagree with the trades of %d account(s): %s", len(bad), ", ".join(bad))
        return 1
    log.info("rollups agree with the trades of %d account(s)", len(problems))
    return 0


def _import_report(database: Database, path: Path, report) -> int:
    result = store_report(database, report)
    if result.differing:
        shown = ", ".join(map(str, result.differing[:5]))
        log.warning("%d deal(s) of the report differ from the stored deals with the same ticket (%s%s); "
                    "the stored ones are kept", len(result.differing), shown, ", ..." if len(result.differing) > 5 else "")
    sys.stdout.write(f"{path.name}: account {result.account}: {result.read} deals read, {result.stored} stored, "
                     f"{result.known} already stored, {len(result.differing)} differing\n")
    return 0


def _verify_report(database: Database, parser, path: Path, report) -> int:
    account = report.deals[0].account if report.deals else (report.login or "")
    since = min((deal.time for deal in report.deals), default=None)
    until = max((deal.time for deal in report.deals), default=None)
    end = None if until is None else until + timedelta(microseconds=1)
    # Ratios unrounded (10 places): compare() rounds them to what the report printed, once.
    mt5, positions = figures_between(database, account, since, end, step=Decimal("1e-10"))
    try:
        lines = compare(report.summary, mt5, positions)
    except ReportError as exc:
        parser.exit(2, f"{parser.prog} verify-report: {path.name}: {exc}\n")
    sys.stdout.write(f"{path.name}: account {account}, {mt5.deals} stored deals in the report's period\n")
    sys.stdout.write(render(lines) + "\n")
    compared = [line for line in lines if line.equal is not None]
    differing = [line.label for line in compared if not line.equal]
    sys.stdout.write(f"{len(compared) - len(differing)}/{len(compared)} report figures equal ours (MT5 convention)\n")
    if differing:
        log.error("the report and the store differ on %d figure(s): %s", len(differing), ", ".join(differing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
