"""`python -m bot run | check-config`: the operator's entry points."""

from __future__ import annotations

import argparse
import json
import sys

from .config import ConfigError, Settings


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="tradewatch trading bot")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the trading loop")
    run.add_argument("--cycles", type=_positive_int, default=None, help="stop after N cycles")
    run.add_argument("--speed", type=_positive_float, default=None,
                     help="simulated seconds per wall second (sim mode; default SIM_SPEED)")
    sub.add_parser("check-config", help="validate the settings and show them (secrets masked)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.stderr.write(f"config error: {exc}\n")
        return 2
    if args.command == "check-config":
        from .engine import load_strategies

        try:
            load_strategies(settings.strategies)
        except ValueError as exc:
            sys.stderr.write(f"config error: STRATEGIES: {exc}\n")
            return 2
        sys.stdout.write(json.dumps(settings.describe(), indent=2, default=str) + "\n")
        return 0
    if args.command == "run":
        from .app import BotApp
        from .telemetry.logging import setup_logging

        setup_logging(settings.log_level, service="bot", env=settings.env, secrets=settings.secrets())
        try:
            app = BotApp(settings, speed=args.speed)
        except ValueError as exc:
            sys.stderr.write(f"config error: {exc}\n")
            return 2
        app.install_signal_handlers()
        return app.run(cycles=args.cycles)
    return 2
