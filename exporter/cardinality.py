"""Every family on the exporter's /metrics, its labels, and how many series it has on a fleet.

Why a table: the series count is what Prometheus (and a remote_write backend) pays for on every
scrape, so it must stay a known, bounded function of the fleet's shape.  README ("Exporter
cardinality") prints this table; tests/test_bench_fleet.py checks every formula against a real
scrape of a small fleet, and `python -m bench fleet` prints it at 100 accounts x 4 strategies x
8 symbols.  Only tradewatch_realized_profit multiplies account x strategy x symbol (the by-symbol
and by-strategy profit panels both sum it); the closed-trade counts are per strategy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FleetShape:
    """What the series count depends on: A accounts, each trading S strategies on Y symbols."""

    accounts: int  # A
    strategies: int  # S, each trading every symbol and having both wins and losses
    symbols: int  # Y
    open_symbols: int  # O: symbols with an open trade, per account (<= Y)
    signal_kinds: int  # G: distinct signals stored per strategy (BUY, SELL, HOLD, ...)
    executed_kinds: int  # E: distinct signals an order was filled for, per strategy (HOLD never: G - 1)
    deal_accounts: int = 0  # D: accounts with broker deals (the MT5-report figures)
    refused_codes: int = 0  # C: distinct 4xx codes answered since the exporter started


@dataclass(frozen=True, slots=True)
class Family:
    name: str  # as the scrape shows it (counters with their _total)
    labels: tuple[str, ...]
    formula: str  # in the letters of FleetShape
    series: Callable[[FleetShape], int]


def _per_account(name: str) -> Family:
    return Family(name, ("account",), "A", lambda f: f.accounts)


MT5_FAMILIES = (
    "tradewatch_mt5_net_profit", "tradewatch_mt5_gross_profit", "tradewatch_mt5_gross_loss", "tradewatch_mt5_trades",
    "tradewatch_mt5_balance_drawdown_absolute", "tradewatch_mt5_balance_drawdown_maximal",
    "tradewatch_mt5_balance_drawdown_relative_ratio", "tradewatch_mt5_profit_factor",
)

FAMILIES: tuple[Family, ...] = (
    Family("tradewatch_realized_profit", ("account", "strategy", "symbol"), "A·S·Y",
           lambda f: f.accounts * f.strategies * f.symbols),
    Family("tradewatch_trades_closed_total", ("account", "strategy", "result"), "A·S·3",
           lambda f: f.accounts * f.strategies * 3),
    Family("tradewatch_win_ratio", ("account", "strategy"), "A·S", lambda f: f.accounts * f.strategies),
    Family("tradewatch_profit_factor", ("account", "strategy"), "A·S", lambda f: f.accounts * f.strategies),
    *(_per_account(name) for name in (
        "tradewatch_drawdown_ratio", "tradewatch_max_drawdown_ratio", "tradewatch_daily_profit",
        "tradewatch_stopped_out_trades_total",
        "tradewatch_snapshot_equity", "tradewatch_snapshot_balance", "tradewatch_snapshot_margin_level_ratio",
        "tradewatch_snapshot_age_seconds", "tradewatch_last_trade_timestamp_seconds")),
    Family("tradewatch_open_trades", ("account", "symbol"), "A·O", lambda f: f.accounts * f.open_symbols),
    Family("tradewatch_signals_recorded_total", ("account", "strategy", "signal"), "A·S·G",
           lambda f: f.accounts * f.strategies * f.signal_kinds),
    Family("tradewatch_signals_executed_total", ("account", "strategy", "signal"), "A·S·E",
           lambda f: f.accounts * f.strategies * f.executed_kinds),
    *(Family(name, ("account",), "D", lambda f: f.deal_accounts) for name in MT5_FAMILIES),
    Family("tradewatch_exporter_database_up", (), "1", lambda f: 1),
    Family("tradewatch_exporter_scrape_duration_seconds", (), "1", lambda f: 1),
    Family("tradewatch_exporter_figures_age_seconds", (), "1", lambda f: 1),
    Family("tradewatch_exporter_unauthorized_requests_total", ("endpoint",), "2 (+2 _created)", lambda f: 4),
    Family("tradewatch_exporter_requests_refused_total", ("code",), "C (+C _created)",
           lambda f: 2 * f.refused_codes),
    Family("tradewatch_exporter_alert_sink_enabled", (), "1", lambda f: 1),
)


def expected_series(shape: FleetShape) -> dict[str, int]:
    """Series per family (a counter's _created samples counted with it), as the formulas give."""
    return {family.name: family.series(shape) for family in FAMILIES}


def family_of(sample_name: str) -> str:
    """The FAMILIES name a scraped sample belongs to (a counter's _created goes with its _total)."""
    if sample_name.endswith("_created"):
        return sample_name[: -len("_created")] + "_total"
    return sample_name
