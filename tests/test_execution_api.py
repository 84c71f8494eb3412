"""GET /api/v1/execution on SQLite and PostgreSQL: execution quality per symbol and strategy.

Orders with chosen figures are stored through the repository; every figure the endpoint answers is
computed by hand below, and on PostgreSQL the percentiles equal percentile_cont (what the Grafana
SQL panels use).
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import monitoring_helpers as mh
import pytest

from db import OrderIntent, OrderOutcome, Repository, init_db
from exporter.app import create_app

API = "api-token-for-the-execution-tests-0123"
DAY = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # inside the window tests/monitoring_helpers gives SQL panels
# (symbol, strategy, status, sent_at, slip_decision, slip_send, spread, decision_to_send, send_to_fill, requotes)
ORDERS = [
    ("EURUSD", "a", "filled", DAY, "-2", "0", "10", "0.01", "0.1", 0),
    ("EURUSD", "a", "filled", DAY, "0", "0", "12", "0.02", "0.2", 1),
    ("EURUSD", "a", "filled", DAY, "1", "1", "10", "0.03", "0.1", 0),
    ("EURUSD", "a", "filled", DAY, "3", "1", "14", "0.04", "0.2", 0),
    ("EURUSD", "a", "filled", DAY, "10", "4", "9", "0.05", "0.4", 2),
    ("EURUSD", "a", "rejected", DAY, None, None, "11", "0.02", None, 1),
    ("XAUUSD", "b", "filled", DAY, "30", "20", "25", "0.5", "1.0", 0),
    ("EURUSD", "a", "filled", datetime(2025, 12, 1, tzinfo=UTC), "1000", "1000", "99", "9", "9", 5),  # before `from`
    ("EURUSD", "a", "expired", None, None, None, None, None, None, None),  # never sent: not in the figures
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request, tmp_path_factory):
    name = f"execq_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('execq')}/store.db"
    else:
        url = request.getfixturevalue("pg_cluster").create_database(name)
    database = init_db(url)
    repo = Repository(database)
    for k, (symbol, strategy, status, sent_at, slip_d, slip_s, spread, d2s, s2f, requotes) in enumerate(ORDERS):
        for account in ("1001", "1002"):  # the other account's copy must never be counted
            cid = f"tw{account}{k:06d}"
            repo.record_order_intent(OrderIntent(
                client_order_id=cid, account=account, correlation_id=cid, signal_id=None, symbol=symbol,
                strategy=strategy, side="BUY", purpose="open", position_ticket=None, volume=Decimal("0.10"),
                requested_price=Decimal("1.1"), sl=None, tp=None, deviation=10, magic=1, comment=cid,
                created_at=DAY))
            if account == "1002" and k:
                continue
            filled = status == "filled"
            repo.record_order_outcome(OrderOutcome(
                client_order_id=cid, status=status, retcode=10009 if filled else None,
                broker_order=k + 1 if filled else None, broker_deal=k + 1 if filled else None,
                fill_price=Decimal("1.1") if filled else None, fill_volume=Decimal("0.10") if filled else None,
                message="", resolved_at=DAY, sent_at=sent_at, requotes=requotes,
                slippage_decision_points=_d(slip_d), slippage_send_points=_d(slip_s), spread_points=_d(spread),
                decision_to_send_seconds=_d(d2s), send_to_fill_seconds=_d(s2f)))
    yield database
    database.dispose()
    if request.param == "postgresql":
        request.getfixturevalue("pg_cluster").drop_database(name)


def _d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@pytest.fixture(scope="module")
def client(database):
    client = create_app(database, api_token=API).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {API}"
    return client


def get(client, **params):
    response = client.get("/api/v1/execution", query_string={"account": "1001", "from": "2026-01-01",
                                                              "to": "2026-01-01", **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["items"]


def numbers(line: dict) -> dict:
    return {k: (Decimal(v) if isinstance(v, str) and k not in ("symbol", "strategy") else v) for k, v in line.items()}


# By hand, EURUSD/a in range: 6 sent, 5 filled; requotes 0+1+0+0+2+1 = 4 over 3 of 6 orders.
# slippage vs decision sorted [-2, 0, 1, 3, 10]: mean 12/5 = 2.40, p50 = 1, p95 at rank 0.95*4 = 3.8:
# 3 + (10 - 3) * 0.8 = 8.60; vs send [0, 0, 1, 1, 4]: mean 1.20, p50 1, p95 1 + 3 * 0.8 = 3.40.
# spread over the fills (55 / 5) 11.00; latencies 0.15 / 5 = 0.03 and 1.0 / 5 = 0.2.
EURUSD_A = {
    "symbol": "EURUSD", "strategy": "a", "orders": 6, "fills": 5, "requotes": 4, "requote_rate": Decimal("0.5"),
    "slippage_decision_mean_points": Decimal("2.4"), "slippage_decision_p50_points": Decimal(1),
    "slippage_decision_p95_points": Decimal("8.6"), "slippage_send_mean_points": Decimal("1.2"),
    "slippage_send_p50_points": Decimal(1), "slippage_send_p95_points": Decimal("3.4"),
    "spread_mean_points": Decimal(11), "decision_to_send_mean_seconds": Decimal("0.03"),
    "send_to_fill_mean_seconds": Decimal("0.2"),
}
XAUUSD_B = {
    "symbol": "XAUUSD", "strategy": "b", "orders": 1, "fills": 1, "requotes": 0, "requote_rate": Decimal(0),
    "slippage_decision_mean_points": Decimal(30), "slippage_decision_p50_points": Decimal(30),
    "slippage_decision_p95_points": Decimal(30), "slippage_send_mean_points": Decimal(20),
    "slippage_send_p50_points": Decimal(20), "slippage_send_p95_points": Decimal(20),
    "spread_mean_points": Decimal(25), "decision_to_send_mean_seconds": Decimal("0.5"),
    "send_to_fill_mean_seconds": Decimal(1),
}


def test_figures_per_symbol_and_strategy_equal_the_hand_computed_ones(client, database):
    assert [numbers(line) for line in get(client)] == [EURUSD_A, XAUUSD_B]
    if database.backend == "postgresql":
        assert_the_grafana_table_agrees(database)


def assert_the_grafana_table_agrees(database):
    """The dashboard's summary table (percentile_cont, avg in SQL) gives the API's figures."""
    dashboard = mh.load_dashboard(mh.DASHBOARDS_DIR / "execution-quality.json")
    (panel,) = [p for p in mh.iter_panels(dashboard) if p["title"] == "Execution quality by symbol and strategy"]
    statement = mh.resolve_sql(panel["targets"][0]["rawSql"], {"account": ["1001"]})
    with database.engine.connect() as connection:
        rows = [dict(r._mapping) for r in connection.exec_driver_sql(statement)]
    same = {"orders": "orders", "fills": "fills", "requotes": "requotes", "requote_rate": "requote_rate",
            "slippage_decision_mean": "slippage_decision_mean_points", "slippage_decision_p50": "slippage_decision_p50_points",
            "slippage_decision_p95": "slippage_decision_p95_points", "slippage_send_mean": "slippage_send_mean_points",
            "slippage_send_p95": "slippage_send_p95_points", "spread_mean": "spread_mean_points",
            "decision_to_send_mean": "decision_to_send_mean_seconds", "send_to_fill_mean": "send_to_fill_mean_seconds"}
    assert [(r["symbol"], r["strategy"]) for r in rows] == [("EURUSD", "a"), ("XAUUSD", "b")]
    for row, expected in zip(rows, (EURUSD_A, XAUUSD_B), strict=True):
        for column, field in same.items():
            assert Decimal(str(row[column])).quantize(Decimal("0.000001")) == expected[field], (column, row[column])


def test_symbol_and_strategy_select_one_line_and_the_range_bounds_it(client):
    assert [numbers(line) for line in get(client, symbol="XAUUSD")] == [XAUUSD_B]
    assert [numbers(line) for line in get(client, strategy="a")] == [EURUSD_A]
    everything = [numbers(line) for line in get(client, **{"from": "", "to": ""})]
    assert everything[0]["orders"] == 7 and everything[0]["slippage_decision_p95_points"] > Decimal(100)
    assert get(client, **{"from": "2026-01-02", "to": "2026-01-03"}) == []
    other = client.get("/api/v1/execution", query_string={"account": "1002"}).get_json()["items"]
    assert [(line["orders"], line["fills"]) for line in other] == [(1, 1)]


def test_csv_has_the_same_lines(client):
    response = client.get("/api/v1/execution", query_string={"account": "1001", "from": "2026-01-01",
                                                              "to": "2026-01-01", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["symbol"], r["strategy"], r["fills"], Decimal(r["slippage_decision_p95_points"])) for r in rows] == [
        ("EURUSD", "a", "5", Decimal("8.6")), ("XAUUSD", "b", "1", Decimal(30))]


@pytest.mark.parametrize(("params", "parameter"), [
    ({}, "account"), ({"account": "1001", "from": "01-01-2026"}, "from"),
    ({"account": "1001", "from": "2026-01-30", "to": "2026-01-01"}, "from"),
    ({"account": "1001", "symbol": "X" * 200}, "symbol"), ({"account": "1001", "reference": "send"}, "reference"),
])
def test_bad_parameters_are_a_400_naming_them(client, params, parameter):
    response = client.get("/api/v1/execution", query_string=params)
    assert response.status_code == 400
    assert response.get_json()["parameter"] == parameter


def test_the_api_token_guards_it(database):
    response = create_app(database, api_token=API).test_client().get("/api/v1/execution?account=1001")
    assert response.status_code == 401
