"""Operator commands for the trade store's schema, against $DATABASE_URL (or the SQLite default).

python -m db upgrade [REVISION]    # default: head
python -m db downgrade REVISION    # e.g. base, or 0001
python -m db current               # the database's revision, and the code's head
"""

import argparse
import logging
import sys

from sqlalchemy.exc import SQLAlchemyError

from db import migrate
from db.database import Database
from db.url import redact_url

log = logging.getLogger("db")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m db", description="Manage the trade store's schema.")
    parser.add_argument(
        "--url", help="database URL (default: $DATABASE_URL, else sqlite:///data/tradewatch.db)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    upgrade = commands.add_parser("upgrade", help="migrate the schema forward")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = commands.add_parser("downgrade", help="migrate the schema back")
    downgrade.add_argument("revision")
    commands.add_parser("current", help="show the schema revision")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with Database(args.url) as database:
            where = redact_url(database.url)
            if args.command == "upgrade":
                migrate.upgrade(database.engine, args.revision)
                log.info("%s upgraded to %s", where, migrate.current_revision(database.engine))
            elif args.command == "downgrade":
                migrate.downgrade(database.engine, args.revision)
                log.info("%s downgraded to %s", where, migrate.current_revision(database.engine) or "base")
            else:
                current = migrate.current_revision(database.engine)
                head = migrate.head_revision()
                state = "up to date" if current == head else f"head is {head}"
                sys.stdout.write(f"{current or 'base'} ({state})\n")
    except (ValueError, SQLAlchemyError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        log.error("%s failed: %s", args.command, reason)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
