"""The exporter's Flask app through its test client, on SQLite and PostgreSQL.

/metrics parses with prometheus_client's own parser and every figure matches a
recomputation from the raw rows; every API endpoint answers in JSON and CSV with the same
content; every bad parameter is a 400 naming it, and no request answers 500; the alert
sink stores Alertmanager's payloads idempotently.
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from test_analytics_reference import (
    START,
    closed_rows,
    expected_base,
    expected_buckets,
    expected_drawdown,
    expected_strategies,
    expected_symbols,
    load,
    random_book,
    same,
    strategy_of,
)

from db import Database, Repository, SignalRecord, init_db
from db.analytics import Selection, drawdown
from db.daily_results import daily_performance
from db.migrate import head_revision
from db.models import AlertModel
from exporter.app import create_app

ACCOUNTS = {"1001": "10000.00", "1002": "2500.00"}
ENDPOINTS = [
    "/api/v1/performance/strategies",
    "/api/v1/performance/symbols",
    "/api/v1/performance/time",
    "/api/v1/correlation",
    "/api/v1/drawdown",
    "/api/v1/daily-summaries",
    "/api/v1/trades",
    "/api/v1/signals",
]


class Store:
    def __init__(self, database: Database, repo: Repository, book, now: datetime, signals: list[SignalRecord],
                 executed: set[int]):
        self.database, self.repo, self.book, self.now = database, repo, book, now
        self.signals, self.executed = signals, executed


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    name = f"exporter_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('exporter')}/store.db"
    else:
        url = request.getfixturevalue("pg_cluster").create_database(name)
    database = init_db(url)
    repo = Repository(database)
    book = random_book(seed=8, accounts=ACCOUNTS, trades=70, days=70, left_open=4)
    load(repo, book)
    rng = random.Random(2)
    signals, executed = [], set()
    for k in range(40):
        record = SignalRecord(
            account=rng.choice(list(ACCOUNTS)), time=START + timedelta(hours=k), cycle_id=f"c{k}",
            correlation_id=f"x{k}", symbol=rng.choice(("EURUSD", "USDJPY")), strategy=rng.choice(("a", "b")),
            signal=rng.choice(("BUY", "SELL", "HOLD")), confidence=0.5, reason="r", price=None,
        )
        signal_id = repo.record_signal(record)
        signals.append(record)
        if rng.random() < 0.4:
            repo.mark_signal_executed(signal_id)
            executed.add(k)
    last_exit = max(c.exit_time for c in book.closes).astimezone(UTC)
    yield Store(database, repo, book, last_exit + timedelta(minutes=5), signals, executed)
    database.dispose()
    if request.param == "postgresql":
        request.getfixturevalue("pg_cluster").drop_database(name)


SINK_TOKEN = "sink-token-for-the-tests-0123456789"


@pytest.fixture(scope="module")
def client(store):
    """A client that sends the sink token (the sink refuses writes without it: test_exporter_auth.py)."""
    client = create_app(store.database, clock=lambda: store.now, sink_token=SINK_TOKEN).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {SINK_TOKEN}"
    return client


# -- /metrics ----------------------------------------------------------------------------------------


def scrape(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def labels(**values) -> frozenset:
    return frozenset(values.items())


def test_metrics_match_the_raw_rows(client, store):
    samples = scrape(client)
    assert samples[("tradewatch_exporter_database_up", labels())] == 1.0
    for name, sample_labels in samples:
        if name.startswith("tradewatch_") and not name.startswith("tradewatch_exporter_"):
            assert "account" in dict(sample_labels), name
    for account in ACCOUNTS:
        rows = closed_rows(store.repo, account)
        by_pair = defaultdict(list)
        for r in rows:
            by_pair[(strategy_of(r), r.symbol)].append(r.profit)
        for (strategy, symbol), profits in by_pair.items():
            key = labels(account=account, strategy=strategy, symbol=symbol)
            assert samples[("tradewatch_realized_profit", key)] == pytest.approx(float(sum(profits)), abs=1e-9)
        by_strategy = defaultdict(list)
        for r in rows:
            by_strategy[strategy_of(r)].append(r.profit)
        for strategy, profits in by_strategy.items():  # closed trades are counted per strategy, not per pair
            key = labels(account=account, strategy=strategy)
            for result, count in (("win", sum(p > 0 for p in profits)), ("loss", sum(p < 0 for p in profits)),
                                  ("breakeven", sum(p == 0 for p in profits))):
                assert samples[("tradewatch_trades_closed_total", key | {("result", result)})] == count
        for line in expected_strategies(rows):
            key = labels(account=account, strategy=line["strategy"])
            same(samples[("tradewatch_win_ratio", key)], line["win_rate"])
            if line["profit_factor"] is None:
                assert samples[("tradewatch_profit_factor", key)] == float("inf")
            else:
                same(samples[("tradewatch_profit_factor", key)], line["profit_factor"])
        curve = expected_drawdown(rows, expected_base(store.book.snapshots, rows, account))
        same(samples[("tradewatch_drawdown_ratio", labels(account=account))], curve["current_drawdown_ratio"])
        same(samples[("tradewatch_max_drawdown_ratio", labels(account=account))], curve["max_drawdown_ratio"])
        today = sum((r.profit for r in rows if r.exit_time.astimezone(UTC).date() == store.now.date()), Decimal(0))
        assert samples[("tradewatch_daily_profit", labels(account=account))] == pytest.approx(float(today), abs=1e-9)
        assert samples[("tradewatch_last_trade_timestamp_seconds", labels(account=account))] == pytest.approx(
            max(r.exit_time for r in rows).timestamp(), abs=1e-6
        )
        last = max((s for s in store.book.snapshots if s.account == account), key=lambda s: s.time)
        assert samples[("tradewatch_snapshot_balance", labels(account=account))] == float(last.balance)
        assert samples[("tradewatch_snapshot_equity", labels(account=account))] == float(last.equity)
        assert samples[("tradewatch_snapshot_age_seconds", labels(account=account))] == pytest.approx(
            (store.now - last.time).total_seconds(), abs=1e-3
        )
        open_by_symbol = Counter(t.symbol for t in store.repo.open_trades(account))
        for symbol, count in open_by_symbol.items():
            assert samples[("tradewatch_open_trades", labels(account=account, symbol=symbol))] == count
        assert sum(v for (n, key), v in samples.items()
                   if n == "tradewatch_open_trades" and ("account", account) in key) == sum(open_by_symbol.values())
        recorded = Counter((s.strategy, s.signal) for s in store.signals if s.account == account)
        executed = Counter((s.strategy, s.signal) for k, s in enumerate(store.signals)
                           if s.account == account and k in store.executed)
        assert executed and sum(executed.values()) < sum(recorded.values())  # both series are exercised
        for (strategy, signal), count in recorded.items():
            key = labels(account=account, strategy=strategy, signal=signal)
            assert samples[("tradewatch_signals_recorded_total", key)] == count
            assert samples.get(("tradewatch_signals_executed_total", key), 0) == executed[strategy, signal]


def test_margin_level_is_a_ratio_and_missing_one_is_not_invented(client, store):
    store.repo.record_account_snapshot(
        store.book.snapshots[0].__class__(
            account="1002", time=store.now - timedelta(seconds=30), balance=Decimal("2600.00"),
            equity=Decimal("2590.00"), profit=Decimal("-10.00"), margin=Decimal("100.00"),
            free_margin=Decimal("2490.00"), margin_level=Decimal("2590.00"), open_positions=1,
        )
    )
    samples = scrape(client)
    assert samples[("tradewatch_snapshot_margin_level_ratio", labels(account="1002"))] == 25.9
    assert samples[("tradewatch_snapshot_age_seconds", labels(account="1002"))] == pytest.approx(30, abs=1e-3)
    assert ("tradewatch_snapshot_margin_level_ratio", labels(account="1001")) not in samples


# -- the REST API ------------------------------------------------------------------------------------


def get_json(client, path, **params):
    response = client.get(path, query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def get_csv(client, path, **params):
    response = client.get(path, query_string={**params, "format": "csv"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(response.get_data(as_text=True)))), response


def as_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def assert_csv_matches_json(table: list[list[str]], items: list[dict]) -> None:
    header, *rows = table
    assert len(rows) == len(items)
    for row, item in zip(rows, items, strict=True):
        assert header == list(item)
        assert row == [as_cell(v) for v in item.values()]


def money(items: list[dict], expected: list[dict]) -> list[dict]:
    """JSON items with their money strings turned back into Decimals where the reference has Decimals."""
    converted = []
    for item, reference in zip(items, expected, strict=False):
        converted.append({k: Decimal(v) if isinstance(reference.get(k), Decimal) and v is not None else v
                          for k, v in item.items()})
    return converted


SELECTION = {"account": "1001", "from": "2025-02-10", "to": "2025-03-20"}


def test_performance_endpoints_in_json_and_csv(client, store):
    rows = [r for r in closed_rows(store.repo, "1001") if date(2025, 2, 10) <= r.exit_time.astimezone(UTC).date()
            <= date(2025, 3, 20)]
    for path, expected in (("/api/v1/performance/strategies", expected_strategies(rows)),
                           ("/api/v1/performance/symbols", expected_symbols(rows))):
        items = get_json(client, path, **SELECTION)["items"]
        same(money(items, expected), expected, path)
        table, _ = get_csv(client, path, **SELECTION)
        assert_csv_matches_json(table, items)


@pytest.mark.parametrize("bucket", ["hour", "weekday", "day", "week", "month"])
def test_time_endpoint_in_json_and_csv(client, store, bucket):
    rows = closed_rows(store.repo, "1002")
    body = get_json(client, "/api/v1/performance/time", account="1002", bucket=bucket)
    assert body["bucket"] == bucket
    got = [(item["key"], item["trades"], Decimal(item["profit"])) for item in body["items"]]
    assert got == expected_buckets(rows, bucket)
    table, _ = get_csv(client, "/api/v1/performance/time", account="1002", bucket=bucket)
    assert_csv_matches_json(table, body["items"])


def test_correlation_endpoint_in_json_and_csv(client):
    body = get_json(client, "/api/v1/correlation", account="1001", by="strategy")
    assert body["by"] == "strategy" and len(body["matrix"]) == len(body["names"]) > 1
    assert all(body["matrix"][i][i] in (1.0, None) for i in range(len(body["names"])))
    table, _ = get_csv(client, "/api/v1/correlation", account="1001", by="strategy")
    assert table[0] == ["strategy", *body["names"]]
    for row, name, line in zip(table[1:], body["names"], body["matrix"], strict=True):
        assert row == [name, *(as_cell(v) for v in line)]
    assert get_json(client, "/api/v1/correlation", account="1001")["by"] == "symbol"


def test_drawdown_endpoint_in_json_and_csv(client, store):
    expected = drawdown(store.database, Selection("1001", date(2025, 2, 10), date(2025, 3, 20)))
    body = get_json(client, "/api/v1/drawdown", **SELECTION)
    assert Decimal(body["max_drawdown"]) == expected.max_drawdown
    assert Decimal(body["equity"]) == expected.equity and body["trades"] == expected.trades
    same(body["max_drawdown_ratio"], expected.max_drawdown_ratio)
    table, _ = get_csv(client, "/api/v1/drawdown", **SELECTION)
    assert_csv_matches_json(table, [body])


def test_daily_summaries_endpoint_in_json_and_csv(client, store):
    for day in (date(2025, 2, 11), date(2025, 2, 12)):
        store.repo.upsert_daily_performance(daily_performance(store.database, "1001", day))
    items = get_json(client, "/api/v1/daily-summaries", account="1001", **{"from": "2025-02-12"})["items"]
    assert [i["date"] for i in items] == ["2025-02-12"]
    assert Decimal(items[0]["profit"]) == daily_performance(store.database, "1001", date(2025, 2, 12)).profit
    table, _ = get_csv(client, "/api/v1/daily-summaries", account="1001", **{"from": "2025-02-12"})
    assert_csv_matches_json(table, items)


def test_trades_pages_cover_every_trade_once_newest_first(client, store):
    expected = closed_rows(store.repo, "1001")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"account": "1001", "limit": 7, **({"cursor": cursor} if cursor else {})}
        body = get_json(client, "/api/v1/trades", **params)
        table, response = get_csv(client, "/api/v1/trades", **params)
        assert_csv_matches_json(table, body["items"])
        assert response.headers.get("X-Next-Cursor") == body["next_cursor"]
        seen.extend(body["items"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == -(-len(expected) // 7)
    assert [t["ticket"] for t in seen] == [r.ticket for r in reversed(expected)]
    assert Decimal(seen[0]["profit"]) == expected[-1].profit
    opened = get_json(client, "/api/v1/trades", account="1001", status="open")["items"]
    assert sorted(t["ticket"] for t in opened) == sorted(t.ticket for t in store.repo.open_trades("1001"))
    only = get_json(client, "/api/v1/trades", account="1001", symbol="XAUUSD", strategy="breakout", limit=1000)
    assert {(t["symbol"], t["strategy_name"]) for t in only["items"]} <= {("XAUUSD", "breakout")}
    assert len(only["items"]) == sum(1 for r in expected if r.symbol == "XAUUSD" and r.strategy_name == "breakout")
    dated = get_json(client, "/api/v1/trades", account="1001", limit=1000, **{"from": "2025-03-01", "to": "2025-03-01"})
    assert all(t["exit_time"].startswith("2025-03-01") for t in dated["items"])


def test_signals_endpoint_filters_and_pages(client, store):
    mine = [(k, s) for k, s in enumerate(store.signals) if s.account == "1001"]
    body = get_json(client, "/api/v1/signals", account="1001", limit=1000)
    assert len(body["items"]) == len(mine) and body["next_cursor"] is None
    executed = get_json(client, "/api/v1/signals", account="1001", executed="true", signal="BUY", limit=1000)
    assert len(executed["items"]) == sum(1 for k, s in mine if k in store.executed and s.signal == "BUY")
    first = get_json(client, "/api/v1/signals", account="1001", limit=2)
    second = get_json(client, "/api/v1/signals", account="1001", limit=2, cursor=first["next_cursor"])
    assert [s["cycle_id"] for s in first["items"] + second["items"]] == [s["cycle_id"] for s in body["items"][:4]]
    table, _ = get_csv(client, "/api/v1/signals", account="1001", limit=5)
    assert_csv_matches_json(table, get_json(client, "/api/v1/signals", account="1001", limit=5)["items"])


def test_accounts_endpoint(client):
    names = get_json(client, "/api/v1/accounts")["items"]
    assert set(names) >= set(ACCOUNTS)
    table, _ = get_csv(client, "/api/v1/accounts")
    assert table == [["account"], *([name] for name in names)]


# -- refusals ----------------------------------------------------------------------------------------


BAD = [
    ("/api/v1/performance/time", {"account": "1001", "bucket": "minute"}, "bucket"),
    ("/api/v1/performance/strategies", {"account": "1001", "from": "2025-02-30"}, "from"),
    ("/api/v1/performance/strategies", {"account": "1001", "to": "yesterday"}, "to"),
    ("/api/v1/performance/symbols", {"account": "1001", "from": "2025-03-02", "to": "2025-03-01"}, "from"),
    ("/api/v1/trades", {"account": "1001", "limit": "0"}, "limit"),
    ("/api/v1/trades", {"account": "1001", "limit": "1001"}, "limit"),
    ("/api/v1/trades", {"account": "1001", "limit": "ten"}, "limit"),
    ("/api/v1/trades", {"account": "1001", "cursor": "not-a-cursor"}, "cursor"),
    ("/api/v1/trades", {"account": "1001", "cursor": "99999999999999999999999.1"}, "cursor"),
    ("/api/v1/trades", {"account": "1001", "status": "pending"}, "status"),
    ("/api/v1/signals", {"account": "1001", "executed": "yes"}, "executed"),
    ("/api/v1/signals", {"account": "1001", "signal": "buy"}, "signal"),
    ("/api/v1/correlation", {"account": "1001", "by": "hour"}, "by"),
    ("/api/v1/drawdown", {}, "account"),
    ("/api/v1/drawdown", {"account": "1001", "format": "xml"}, "format"),
    ("/api/v1/drawdown", {"account": "1001", "symbol": "S" * 33}, "symbol"),
    ("/api/v1/drawdown", {"account": "1001", "strategy": "*"}, "strategy"),
    ("/api/v1/drawdown", {"account": "1001", "form": "2025-01-01"}, "form"),
    ("/api/v1/daily-summaries", {"account": "1001", "symbol": "EURUSD"}, "symbol"),
    ("/api/v1/alerts", {"status": "open"}, "status"),
    ("/api/v1/alerts", {"cursor": "abc"}, "cursor"),
]


@pytest.mark.parametrize("path, params, parameter", BAD, ids=[f"{p.split('/')[-1]}-{n}" for p, _, n in BAD])
def test_bad_parameters_answer_400_naming_them(client, path, params, parameter):
    response = client.get(path, query_string=params)
    assert response.status_code == 400
    body = response.get_json()
    assert body["parameter"] == parameter and parameter in body["error"]


def test_a_repeated_parameter_is_refused(client):
    response = client.get("/api/v1/drawdown?account=1001&account=1002")
    assert response.status_code == 400 and response.get_json()["parameter"] == "account"


def test_nothing_answers_500(client):
    rng = random.Random(13)
    junk = ["", "'", "' OR 1=1 --", "%00", "2025-02-30", "-1", "1e9", "9" * 30, "ü", "*", "null", "true",
            "1001", "2025-01-01", "csv", "json", "hour", "symbol", "closed", "1.2", "..", "😀"]
    names = ["account", "from", "to", "symbol", "strategy", "bucket", "by", "limit", "cursor", "status", "signal",
             "executed", "format", "x"]
    for _ in range(400):
        path = rng.choice(ENDPOINTS + ["/api/v1/alerts", "/api/v1/accounts", "/metrics", "/healthz", "/nope"])
        params = {rng.choice(names): rng.choice(junk) for _ in range(rng.randrange(0, 5))}
        response = client.get(path, query_string=params)
        assert response.status_code in (200, 400, 404), (path, params, response.get_data(as_text=True))
        assert response.is_json or path == "/metrics" or params.get("format") == "csv"
    assert client.post("/api/v1/trades").status_code == 405
    assert client.get("/api/v1/unknown").get_json() == {"error": "The requested URL was not found on the server. "
                                                                  "If you entered the URL manually please check your "
                                                                  "spelling and try again.", "parameter": "path"}


# -- health ------------------------------------------------------------------------------------------


def test_healthz_reflects_the_database(client, tmp_path):
    assert client.get("/healthz").get_json() == {"status": "ok", "database": "reachable", "schema": head_revision()}
    unreachable = Database("postgresql://nobody:secret@127.0.0.1:9/none")
    try:
        broken = create_app(unreachable).test_client()
        response = broken.get("/healthz")
        assert response.status_code == 503 and response.get_json()["database"] == "unreachable"
        samples = scrape(broken)
        assert samples[("tradewatch_exporter_database_up", labels())] == 0.0
        assert not any(name == "tradewatch_realized_profit" for name, _ in samples)
        api = broken.get("/api/v1/drawdown", query_string={"account": "1001"})
        assert api.status_code == 503 and "secret" not in api.get_data(as_text=True)
    finally:
        unreachable.dispose()
    empty = Database(f"sqlite:///{tmp_path}/empty.db")
    try:
        response = create_app(empty).test_client().get("/healthz")
        assert response.status_code == 503
    finally:
        empty.dispose()


# -- the alert sink ----------------------------------------------------------------------------------


def webhook(*alerts, status="firing") -> dict:
    return {"version": "4", "groupKey": "{}:{alertname=\"DrawdownHigh\"}", "status": status, "receiver": "warning",
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
            "truncatedAlerts": 0, "alerts": list(alerts)}


def alert(fingerprint: str, status: str = "firing", starts="2026-01-01T10:00:00.123456789Z",
          ends="0001-01-01T00:00:00Z", **label_values) -> dict:
    return {"status": status, "labels": {"alertname": "DrawdownHigh", "severity": "warning", "account": "1001",
                                         **label_values},
            "annotations": {"summary": "Drawdown of account 1001 is 12%", "action": "look"},
            "startsAt": starts, "endsAt": ends, "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint}


def alert_rows(store) -> list:
    table = AlertModel.__table__
    with store.database.engine.connect() as connection:
        return connection.execute(select(table).order_by(table.c.fingerprint, table.c.starts_at)).all()


def test_the_alert_sink_is_idempotent_and_a_resolve_updates_the_row(client, store):
    before = len(alert_rows(store))
    payload = webhook(alert("f1aaa"), alert("f2bbb", severity="critical"))
    for _ in range(2):
        response = client.post("/api/v1/alerts", json=payload)
        assert response.status_code == 200 and response.get_json() == {"stored": 2}
    rows = [r for r in alert_rows(store) if r.fingerprint in ("f1aaa", "f2bbb")]
    assert len(alert_rows(store)) == before + 2
    assert [(r.status, r.severity, r.ends_at) for r in rows] == [("firing", "warning", None), ("firing", "critical", None)]
    assert rows[0].labels["account"] == "1001" and rows[0].annotations["action"] == "look"
    assert rows[0].starts_at == datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)
    resolved = webhook(alert("f1aaa", status="resolved", ends="2026-01-01T11:00:00Z"), status="resolved")
    assert client.post("/api/v1/alerts", json=resolved).status_code == 200
    row = next(r for r in alert_rows(store) if r.fingerprint == "f1aaa")
    assert (row.status, row.ends_at) == ("resolved", datetime(2026, 1, 1, 11, tzinfo=UTC))
    older = webhook(alert("f1aaa", status="resolved", ends="2026-01-01T10:30:00Z"), status="resolved")
    assert client.post("/api/v1/alerts", json=older).status_code == 200  # older than the stored resolve: ignored
    row = next(r for r in alert_rows(store) if r.fingerprint == "f1aaa")
    assert (row.status, row.ends_at) == ("resolved", datetime(2026, 1, 1, 11, tzinfo=UTC))
    refire = webhook(alert("f1aaa"))  # Alertmanager still says firing: the episode re-opens
    assert client.post("/api/v1/alerts", json=refire).status_code == 200
    row = next(r for r in alert_rows(store) if r.fingerprint == "f1aaa")
    assert (row.status, row.ends_at) == ("firing", None)
    assert client.post("/api/v1/alerts", json=resolved).status_code == 200
    row = next(r for r in alert_rows(store) if r.fingerprint == "f1aaa")
    assert (row.status, row.ends_at) == ("resolved", datetime(2026, 1, 1, 11, tzinfo=UTC))
    again = webhook(alert("f1aaa", starts="2026-01-02T08:00:00Z"))  # fires again: a new episode
    assert client.post("/api/v1/alerts", json=again).status_code == 200
    assert [r.status for r in alert_rows(store) if r.fingerprint == "f1aaa"] == ["resolved", "firing"]
    listed = get_json(client, "/api/v1/alerts", status="firing", limit=1000)["items"]
    assert {"f2bbb", "f1aaa"} <= {a["fingerprint"] for a in listed}
    assert all(a["status"] == "firing" for a in listed)
    table, _ = get_csv(client, "/api/v1/alerts", limit=3)
    assert_csv_matches_json(table, get_json(client, "/api/v1/alerts", limit=3)["items"])
    page = get_json(client, "/api/v1/alerts", limit=1)
    following = get_json(client, "/api/v1/alerts", limit=1, cursor=page["next_cursor"])
    assert following["items"][0]["id"] < page["items"][0]["id"]


@pytest.mark.parametrize(
    "body, field",
    [
        ([], "body"),
        ({"alerts": []}, "version"),
        ({"version": "3", "alerts": []}, "version"),
        ({"version": "4", "alerts": {}}, "alerts"),
        ({"version": "4", "alerts": ["x"]}, "alerts[0]"),
        ({"version": "4", "alerts": [{**alert("f"), "startsAt": None}]}, "alerts[0].startsAt"),
        ({"version": "4", "alerts": [{**alert("f"), "startsAt": "yesterday"}]}, "alerts[0].startsAt"),
        ({"version": "4", "alerts": [{**alert("f"), "startsAt": "2026-01-01T10:00:00"}]}, "alerts[0].startsAt"),
        ({"version": "4", "alerts": [{**alert("f"), "endsAt": 5}]}, "alerts[0].endsAt"),
        ({"version": "4", "alerts": [alert("ok"), {**alert("f"), "status": "pending"}]}, "alerts[1]"),
        ({"version": "4", "alerts": [{**alert("f"), "labels": {"a": 1}}]}, "alerts[0]"),
        ({"version": "4", "alerts": [{**alert("f"), "fingerprint": ""}]}, "alerts[0]"),
        ({"version": "4", "alerts": [alert("f", status="resolved")]}, "alerts[0].endsAt"),
        ({"version": "4", "alerts": [alert("f", status="resolved", ends="2025-12-31T00:00:00Z")]},
         "alerts[0].endsAt"),
        ({"version": "4", "alerts": [alert("f", summary="a\x00b")]}, "alerts[0].labels.summary"),
        ({"version": "4", "alerts": [alert("f", summary="\ud800")]}, "alerts[0].labels.summary"),
    ],
)
def test_a_malformed_webhook_answers_400_naming_the_field(client, store, body, field):
    before = len(alert_rows(store))
    response = client.post("/api/v1/alerts", json=body)
    assert response.status_code == 400
    assert response.get_json()["field"] == field == response.get_json()["parameter"]
    assert len(alert_rows(store)) == before


def test_non_json_and_oversized_bodies_are_refused(client):
    assert client.post("/api/v1/alerts", data="{not json", content_type="application/json").status_code == 400
    assert client.post("/api/v1/alerts", data=b"x" * (2 << 20), content_type="application/json").status_code == 413


def test_the_rows_grafana_reads_are_there(client, store):
    """The dashboard's 'firing now' query: latest row per fingerprint (run here on either backend)."""
    assert client.post("/api/v1/alerts", json=webhook(alert("f9grafana"))).status_code == 200  # its own row
    table = AlertModel.__table__
    with store.database.engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(table).where(table.c.status == "firing")).scalar()
    assert count >= 1
