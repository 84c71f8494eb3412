"""The exporter's `convention` parameter: /api/v1/report and /api/v1/drawdown in our and MT5's convention."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from test_analytics_reference import load, random_book

from db import Repository, analytics, init_db
from db.analytics import Selection
from exporter.app import create_app
from tests.mt5_history import ACCOUNT, EXPECTED_MT5, deals

TRADER = "1001"


def _text(value) -> object:
    return str(value) if isinstance(value, D) else value


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app(request, tmp_path_factory):
    name = f"mt5api_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api')}/store.db"
    else:
        url = request.getfixturevalue("pg_cluster").create_database(name)
    database = init_db(url)
    repo = Repository(database)
    for record in deals():
        repo.record_deal(record)
    load(repo, random_book(seed=5, accounts={TRADER: "1000.00"}, trades=30, left_open=2))
    client = create_app(database, clock=lambda: datetime(2026, 6, 1, tzinfo=UTC)).test_client()
    yield client, database
    database.dispose()
    if request.param == "postgresql":
        request.getfixturevalue("pg_cluster").drop_database(name)


def test_mt5_convention_answers_the_report_figures(app):
    client, _ = app
    body = client.get("/api/v1/report", query_string={"account": ACCOUNT, "convention": "mt5"}).get_json()
    assert body == {"convention": "mt5", **{name: _text(value) for name, value in EXPECTED_MT5.items()}}


def test_mt5_convention_in_csv(app):
    client, _ = app
    response = client.get("/api/v1/report", query_string={"account": ACCOUNT, "convention": "mt5", "format": "csv"})
    header, row = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert dict(zip(header, row, strict=True)) == {name: str(value) for name, value in EXPECTED_MT5.items()}


def test_mt5_drawdown_is_on_the_balance_after_every_deal(app):
    client, _ = app
    body = client.get("/api/v1/drawdown", query_string={"account": ACCOUNT, "convention": "mt5"}).get_json()
    assert body == {
        "initial_deposit": "10000.00", "balance": "10594.55", "balance_drawdown_absolute": "679.75",
        "balance_drawdown_maximal": "140.00", "balance_drawdown_maximal_percent": "1.40",
        "balance_drawdown_relative_percent": "1.44", "balance_drawdown_relative": "135.80",
    }


def test_position_convention_is_the_default_and_matches_the_analytics(app):
    client, database = app
    default = client.get("/api/v1/report", query_string={"account": TRADER}).get_json()
    assert default == client.get("/api/v1/report", query_string={"account": TRADER, "convention": "position"}).get_json()
    lines = analytics.strategy_performance(database, Selection(TRADER))
    drawdown = analytics.drawdown(database, Selection(TRADER))
    assert default["convention"] == "position"
    assert default["trades"] == sum(line.trades for line in lines) == 28  # 30, 2 left open
    assert D(default["total_net_profit"]) == sum(line.total_profit for line in lines)
    assert D(default["gross_loss"]) == sum(line.gross_loss for line in lines)
    assert D(default["max_drawdown"]) == drawdown.max_drawdown
    assert client.get("/api/v1/drawdown", query_string={"account": TRADER}).get_json()["max_drawdown"] == str(
        drawdown.max_drawdown)


@pytest.mark.parametrize("params, parameter", [
    ({"account": ACCOUNT, "convention": "terminal"}, "convention"),
    ({"account": ACCOUNT, "convention": "mt5", "symbol": "EURUSD"}, "symbol"),
    ({"account": ACCOUNT, "convention": "mt5", "strategy": "trend"}, "strategy"),
    ({"convention": "mt5"}, "account"),
])
@pytest.mark.parametrize("path", ["/api/v1/report", "/api/v1/drawdown"])
def test_a_bad_convention_request_is_a_400_naming_the_parameter(app, path, params, parameter):
    client, _ = app
    response = client.get(path, query_string=params)
    assert response.status_code == 400
    body = response.get_json()
    assert body["parameter"] == parameter and parameter in body["error"]


def _scrape(client) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").get_data(as_text=True)
    return {(sample.name, sample.labels.get("account", "")): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples
            if sample.name.startswith("tradewatch_mt5_")}


def test_metrics_carry_the_mt5_figures_per_account_and_follow_new_deals(app):
    client, _ = app
    series = _scrape(client)
    assert {name for name, account in series if account == ACCOUNT} == {
        "tradewatch_mt5_net_profit", "tradewatch_mt5_gross_profit", "tradewatch_mt5_gross_loss",
        "tradewatch_mt5_trades", "tradewatch_mt5_balance_drawdown_absolute",
        "tradewatch_mt5_balance_drawdown_maximal", "tradewatch_mt5_balance_drawdown_relative_ratio",
        "tradewatch_mt5_profit_factor"}
    assert {account for _, account in series} == {ACCOUNT}, "one series per figure and account with deals"
    assert series[("tradewatch_mt5_net_profit", ACCOUNT)] == 94.55
    assert series[("tradewatch_mt5_gross_loss", ACCOUNT)] == -286.50
    assert series[("tradewatch_mt5_trades", ACCOUNT)] == 9
    assert series[("tradewatch_mt5_balance_drawdown_maximal", ACCOUNT)] == 140.0
    assert series[("tradewatch_mt5_balance_drawdown_relative_ratio", ACCOUNT)] == pytest.approx(0.0144)
    assert series[("tradewatch_mt5_profit_factor", ACCOUNT)] == 1.33


def test_the_metrics_cache_follows_a_new_deal(url):
    """On both backends: PostgreSQL's scrape reuses figures while the store is unchanged (exporter/figures.py)."""
    import dataclasses

    database = init_db(url)
    repo = Repository(database)
    history = deals()
    for record in history:
        repo.record_deal(record)
    client = create_app(database, clock=lambda: datetime(2026, 6, 1, tzinfo=UTC)).test_client()
    assert _scrape(client)[("tradewatch_mt5_trades", ACCOUNT)] == 9
    last = history[-1]  # the open GBPUSD position closes at a 10.00 profit (commission -0.70)
    repo.record_deal(dataclasses.replace(last, ticket=last.ticket + 1, type=1, entry=1, profit=D("10.00"),
                                         time=last.time.replace(hour=15)))
    series = _scrape(client)
    assert series[("tradewatch_mt5_trades", ACCOUNT)] == 10
    assert series[("tradewatch_mt5_net_profit", ACCOUNT)] == pytest.approx(94.55 + 9.30)
    database.dispose()
