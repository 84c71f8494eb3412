"""`python -m bot run | check-config | history import | ...`: the operator's entry points."""

from __future__ import annotations

import argparse
import inspect
import json
import signal
import sys
from datetime import UTC, date, datetime

import confcheck

from .config import ConfigError, Settings

_positive_int = confcheck.arg(confcheck.integer(1, 10**9))
_positive_float = confcheck.arg(confcheck.number(0, 1_000_000, above=True))
_account = confcheck.arg(confcheck.label(32))


def _out_file(raw: str) -> str:
    if raw.strip() == "-":
        return "-"
    return str(confcheck.arg(confcheck.writable_file)(raw))


def build_parser() -> argparse.ArgumentParser:
    parser = confcheck.OneLineParser(prog="python -m bot", description="tradewatch trading bot")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the trading loop")
    run.add_argument("--cycles", type=_positive_int, default=None, help="stop after N cycles")
    run.add_argument("--speed", type=_positive_float, default=None,
                     help="simulated seconds per wall second (sim mode; default SIM_SPEED)")
    sub.add_parser("check-config", help="validate the settings and show them (secrets masked)")

    metrics = sub.add_parser("metrics", help="the stored metrics history")
    metrics_sub = metrics.add_subparsers(dest="metrics_command", required=True)
    export = metrics_sub.add_parser("export", help="write the metrics history to a file")
    export.add_argument("--format", choices=("json", "csv"), default="json")
    export.add_argument("--since", type=_moment, default=None, help="ISO date or time (UTC), inclusive")
    export.add_argument("--until", type=_moment, default=None, help="ISO date or time (UTC), exclusive")
    export.add_argument("--account", type=_account, default=None, help="trading account (default: MT5_LOGIN, or the sim's)")
    export.add_argument("--out", type=_out_file, required=True, help="output file ('-' for stdout)")

    report = sub.add_parser("report", help="trading reports")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    daily = report_sub.add_parser("daily", help="the day's summary; also stores its daily_performance row")
    daily.add_argument("--date", type=_day, default=None, help="YYYY-MM-DD, a broker day (from the trade server's midnight; UTC days while the "
                       "server's offset is unknown); default: the last day with stored deals or snapshots")
    daily.add_argument("--account", type=_account, default=None, help="trading account (default: MT5_LOGIN, or the sim's)")
    _ctl_parser(sub)

    history = sub.add_parser("history", help="the account's whole deal history")
    history_sub = history.add_subparsers(dest="history_command", required=True)
    backfill = history_sub.add_parser("import", help="import every deal of the account from the terminal")
    backfill.add_argument("--since", type=_moment, default=None,
                          help="ISO date or time (UTC); default: where the last import stopped, else the first deal")
    return parser


def _ctl_parser(sub) -> None:
    """`ctl status | pause | resume | close-all [--symbol S] [--strategy N] | reload-strategies` (bot.control)."""
    ctl = sub.add_parser("ctl", help="control the running bot (token from CONTROL_TOKEN_FILE)")
    ctl.add_argument("--url", type=confcheck.arg(confcheck.url()), default=None,
                     help="the bot's control endpoint (default: http://CONTROL_HOST:CONTROL_PORT)")
    commands = ctl.add_subparsers(dest="ctl_command", required=True)
    commands.add_parser("status", help="what the bot and its risk guard are doing")
    commands.add_parser("pause", help="stop new entries (exits go on) until resume")
    commands.add_parser("resume", help="lift the pause and any risk halt")
    close = commands.add_parser("close-all", help="close this bot's positions through the order path")
    close.add_argument("--symbol", type=confcheck.arg(confcheck.label(32)), default=None, help="only this symbol")
    close.add_argument("--strategy", type=confcheck.arg(confcheck.label(64)), default=None, help="only this strategy's")
    commands.add_parser("reload-strategies", help="re-read the strategy settings and rebuild the strategies")


def _moment(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(confcheck.text(40)(raw))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {raw!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(confcheck.text(40)(raw))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {raw!r}") from None


def _default_account(settings: Settings, given: str | None) -> str:
    if given:
        return given
    if settings.mt5_login:
        return str(settings.mt5_login)
    if settings.mt5_mode == "sim":
        from mt5bridge.sim import SimTerminal

        return str(inspect.signature(SimTerminal).parameters["login"].default)
    raise ConfigError("--account: required when MT5_LOGIN is not set")


def _store_command(args: argparse.Namespace, settings: Settings) -> int:
    from db import Repository, init_db

    from .reports import daily_report, export_metrics, format_daily, has_data, last_day_with_data

    account = _default_account(settings, args.account)
    database = init_db(settings.database_url)
    try:
        repo = Repository(database)
        if args.command == "metrics":
            text = export_metrics(repo.metrics_history(account, args.since, args.until), args.format)
            if args.out == "-":
                sys.stdout.write(text)
            else:
                with open(args.out, "w", encoding="utf-8") as handle:
                    handle.write(text)
            return 0
        day = args.date or last_day_with_data(database, repo, account)
        if day is None:
            sys.stderr.write(f"no deals or account snapshots stored for account {account}: nothing to report\n")
            return 1
        result = daily_report(database, repo, account, day)
        sys.stdout.write(format_daily(result))
        if not has_data(result):
            sys.stdout.write("(no closed trade and no account snapshot that day: nothing stored)\n")
        return 0
    finally:
        database.dispose()


def _check_strategies(settings: Settings) -> None:
    from .strategies import StrategyConfigError, from_settings

    try:
        from_settings(settings)  # plugins imported, parameters checked: one line naming file, strategy, parameter
    except StrategyConfigError as exc:
        raise ConfigError(str(exc), exc.setting) from None


def _check_sim_symbols(settings: Settings) -> None:
    """check-config in sim mode asks the simulated terminal, as `run` asks any terminal at start."""
    if settings.mt5_mode != "sim":
        return
    from .engine.symbols import symbol_specs
    from .gateway.factory import make_gateway

    gateway = make_gateway(settings)
    try:
        gateway.connect()
        symbol_specs(gateway, settings.symbols, settings.symbol_suffix)
    finally:
        gateway.close()


def _check_can_listen(settings: Settings) -> None:
    """The telemetry port is free now (it is bound after the migrations and the first connect)."""
    try:
        confcheck.free_to_listen(settings.metrics_host, settings.metrics_port)
    except ValueError as exc:
        raise ConfigError(f"METRICS_PORT: {exc}") from None


def _stopped_before_start(*_: object) -> None:
    sys.stderr.write("stopped before the first cycle\n")
    raise SystemExit(0)


def _config_error(exc: ConfigError) -> int:
    sys.stderr.write(f"config error: {' '.join(str(exc).split())}\n")
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        _check_strategies(settings)
        if args.command == "run":
            _check_can_listen(settings)
        if args.command == "check-config":
            _check_sim_symbols(settings)
    except ConfigError as exc:
        return _config_error(exc)
    if args.command == "check-config":
        sys.stdout.write(json.dumps(settings.describe(), indent=2, default=str) + "\n")
        return 0
    if args.command == "ctl":
        from .control.client import main as ctl_main

        return ctl_main(args, settings)
    if args.command == "history":
        from .account_history import import_command

        try:
            return import_command(settings, args.since)
        except (ConfigError, ValueError, OSError) as exc:
            sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
            return 2
    if args.command in ("metrics", "report"):
        try:
            return _store_command(args, settings)
        except (ConfigError, ValueError, OSError) as exc:
            sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
            return 2
    if args.command == "run":
        from .app import BotApp
        from .foreground import take_terminal

        take_terminal()  # `make run`: Ctrl-C reaches the bot alone, which exits 0 (see foreground.py)
        signal.signal(signal.SIGINT, _stopped_before_start)  # until the loop's own handler is installed
        from .telemetry.logging import setup_logging

        setup_logging(settings.log_level, service="bot", env=settings.env, secrets=settings.secrets(),
                      log_format=settings.log_format)
        try:
            app = BotApp(settings, speed=args.speed)
        except ValueError as exc:
            sys.stderr.write(f"config error: {' '.join(str(exc).split())}\n")
            return 2
        app.install_signal_handlers()
        from .engine.history_guard import BrokerHistoryRewound

        try:
            return app.run(cycles=args.cycles)
        except ConfigError as exc:  # found at start against the terminal (an unknown symbol)
            return _config_error(exc)
        except BrokerHistoryRewound as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
    return 2
