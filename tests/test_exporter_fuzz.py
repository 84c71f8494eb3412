"""Hostile input against every exporter endpoint, on SQLite and PostgreSQL: nothing answers 5xx.

Two sources of requests:
- a table of the inputs that answered 500 before issue 13 (out-of-range dates, non-ASCII
  digits, numbers too large for SQLite, deep or huge JSON, NUL bytes, lone surrogates), tried
  in every parameter of every endpoint, in JSON and CSV, and as alert-sink bodies;
- hypothesis (derandomized, no example database: deterministic) generating query strings and
  webhook bodies.
Every 4xx must be JSON with a `parameter` naming what was refused.  Printed per backend:
hostile requests tried / 4xx / 5xx.  CSV cells that could run as spreadsheet formulas are
checked to come out escaped.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_analytics_reference import load, random_book

from db import Repository, init_db
from exporter.app import create_app
from exporter.render import safe_cell

SINK = "fuzz-sink-token-0123456789abcdef"
ACCOUNT = "1001"
READS = {
    "/api/v1/accounts": set(),
    "/api/v1/performance/strategies": {"account", "from", "to", "symbol", "strategy"},
    "/api/v1/performance/symbols": {"account", "from", "to", "symbol", "strategy"},
    "/api/v1/performance/time": {"account", "from", "to", "symbol", "strategy", "bucket"},
    "/api/v1/correlation": {"account", "from", "to", "symbol", "strategy", "by"},
    "/api/v1/drawdown": {"account", "from", "to", "symbol", "strategy", "convention"},
    "/api/v1/report": {"account", "from", "to", "symbol", "strategy", "convention"},
    "/api/v1/daily-summaries": {"account", "from", "to"},
    "/api/v1/trades": {"account", "from", "to", "symbol", "strategy", "status", "limit", "cursor"},
    "/api/v1/signals": {"account", "from", "to", "symbol", "strategy", "signal", "executed", "limit", "cursor"},
    "/api/v1/execution": {"account", "from", "to", "symbol", "strategy"},
    "/api/v1/alerts": {"status", "limit", "cursor"},
    "/metrics": set(),
    "/healthz": set(),
}
HOSTILE_VALUES = [
    "9999-12-31", "0001-01-01", "0000-00-00", "1969-12-31", "1970-01-01", "2999-12-31", "3000-01-01", "2025-02-30", "²⁰²⁵-01-01", "２０２５-01-01",
    "²", "١٢", "𝟗", "1.9999999999999999999", "9" * 19, "9" * 400, "-1", "0", "1e3", " 5", "0x10",
    "9223372036854775808", "-9223372036854775809.1", "99999999999999999.99999999999999999", "1.", ".1",
    "-999999999999999999.1", "\x00", "a\x00b", "%00", "A" * 10_000, "😀", "\u202e", "' OR 1=1 --",
    '=HYPERLINK("http://evil")', "", "*", "null",
]


def deep(depth: int, kind: str = "list") -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


def alert(**overrides) -> dict:
    base = {"status": "firing", "labels": {"alertname": "Fuzz", "severity": "info"}, "annotations": {},
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "fz1"}
    return {**base, **overrides}


def webhook(*alerts) -> str:
    return json.dumps({"version": "4", "status": "firing", "alerts": list(alerts)})


HOSTILE_BODIES = [
    deep(100_000), deep(5_000, "object"), deep(50), deep(9, "object"), "[" * 500_000,
    " " * (2 << 20), "x" * (1 << 20 + 1), "", "{", "null", "1e999", "9" * 5000, '"\\ud800"',
    webhook(alert(fingerprint="a\x00b")), webhook(alert(labels={"alertname": "F", "x": "\x00"})),
    webhook(alert(annotations={"\x00": "v"})), webhook(alert(status="\x00")),
    webhook(alert(labels={"alertname": "\ud800"})).replace("\\\\", "\\"),
    '{"version": "4", "alerts": [{"labels": {"alertname": "\\ud83d"}}]}',
    webhook(alert(startsAt="9999-12-31T23:59:59-23:59")), webhook(alert(startsAt="0001-01-01T00:00:00+14:00")),
    webhook(alert(startsAt="２０２６-01-01T00:00:00Z")), webhook(alert(endsAt="+10000-01-01T00:00:00Z")),
    webhook(alert(status="resolved", endsAt="1999-01-01T00:00:00Z")), webhook(alert(status="resolved")),
    webhook(*[alert(fingerprint=f"f{i}") for i in range(1001)]), webhook(alert(fingerprint="f" * 10_000)),
    webhook(alert(labels={"alertname": "A" * 500})), webhook(alert(labels={"alertname": "a", "v": 10**30})),
    json.dumps({"version": 4, "alerts": []}), json.dumps({"version": "4", "alerts": [None, 1, "x", []]}),
    webhook(alert(startsAt=10**30)), webhook(alert(startsAt=["2026-01-01T00:00:00Z"])),
]


class Tally:
    """Counts answers and checks the rules every answer must follow."""

    def __init__(self) -> None:
        self.codes: Counter[int] = Counter()

    def check(self, response, what) -> None:
        self.codes[response.status_code] += 1
        assert response.status_code < 500, (what, response.status_code, response.get_data(as_text=True)[:300])
        if response.status_code >= 400:
            body = response.get_json(silent=True)
            assert isinstance(body, dict) and isinstance(body.get("parameter"), str) and body.get("error"), (what, body)

    @property
    def line(self) -> str:
        tried = sum(self.codes.values())
        client_errors = sum(n for code, n in self.codes.items() if 400 <= code < 500)
        server_errors = sum(n for code, n in self.codes.items() if code >= 500)
        return f"hostile requests tried {tried} / 4xx {client_errors} / 5xx {server_errors}"


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request, tmp_path):
    url = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    database = init_db(url)
    load(Repository(database), random_book(seed=3, accounts={ACCOUNT: "1000.00"}, trades=20, left_open=2))
    client = create_app(database, clock=lambda: datetime(2026, 6, 1, tzinfo=UTC), sink_token=SINK).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {SINK}"
    client.backend = request.param
    yield client
    database.dispose()


def report(capsys, line: str) -> None:
    with capsys.disabled():
        print(line)  # noqa: T201 - a figure the issue asks the test to print


def hostile_table(client, tally: Tally) -> None:
    for path, names in READS.items():
        for name in sorted(names | {"format", "unknown\x00"}):
            for value in HOSTILE_VALUES:
                for fmt in ("json", "csv"):
                    params = {"account": ACCOUNT, name: value} if "account" in names else {name: value}
                    if name != "format":
                        params["format"] = fmt
                    elif fmt == "csv":
                        continue
                    tally.check(client.get(path, query_string=params), (path, params))
    for body in HOSTILE_BODIES:
        tally.check(client.post("/api/v1/alerts", data=body, content_type="application/json"), body[:80])
    tally.check(client.post("/api/v1/alerts", data=b"\xff\xfe{}", content_type="application/json"), "not utf-8")
    tally.check(client.post("/api/v1/alerts", data=webhook(alert()), content_type="text/plain"), "content type")
    for method in ("put", "delete", "patch"):
        tally.check(getattr(client, method)("/api/v1/alerts"), method)
    tally.check(client.get("/api/v1/\x00"), "NUL path")


PARAM_NAMES = sorted(set().union(*READS.values()) | {"format", "x", ""})
NUMBERS = st.from_regex(r"\A-?[0-9]{1,25}(\.[0-9]{0,25})?\Z")
VALUES = st.one_of(st.text(max_size=40), NUMBERS, st.dates().map(str), st.sampled_from(HOSTILE_VALUES),
                   st.sampled_from(["csv", "json", "closed", "open", "BUY", "true", "day", "week", "symbol", "mt5"]))
QUERIES = st.tuples(st.sampled_from(sorted(READS)), st.dictionaries(st.sampled_from(PARAM_NAMES), VALUES, max_size=5))
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
JSON_DOCUMENTS = st.recursive(JSON_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                   st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                              max_leaves=20)
TIMES = st.one_of(st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()), st.text(max_size=30),
                  JSON_LEAVES)
ALERTS = st.fixed_dictionaries({
    "status": st.one_of(st.sampled_from(["firing", "resolved"]), JSON_LEAVES),
    "labels": st.one_of(st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4), JSON_DOCUMENTS),
    "annotations": st.one_of(st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3), JSON_LEAVES),
    "startsAt": TIMES, "endsAt": TIMES, "fingerprint": st.one_of(st.text(min_size=1, max_size=20), JSON_LEAVES),
})
BODIES = st.one_of(JSON_DOCUMENTS, st.builds(lambda alerts: {"version": "4", "alerts": alerts},
                                             st.lists(ALERTS, max_size=3)))
GENERATED = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def test_no_hostile_request_answers_5xx(client, capsys):
    tally = Tally()
    hostile_table(client, tally)

    @GENERATED
    @given(QUERIES)
    def generated_query(query):
        path, params = query
        tally.check(client.get(path, query_string=params), (path, params))

    @GENERATED
    @given(BODIES)
    def generated_body(body):
        text = json.dumps(body, ensure_ascii=False)
        tally.check(client.post("/api/v1/alerts", data=text.encode("utf-8", "surrogatepass"),
                                content_type="application/json"), text[:200])

    generated_query()
    generated_body()
    report(capsys, f"\nexporter fuzz ({client.backend}): {tally.line}")
    assert tally.codes[200] > 0 and sum(n for c, n in tally.codes.items() if c >= 500) == 0


@pytest.mark.parametrize("text, shown", [
    ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'), ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("+1+1", "'+1+1"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("-12.50", "-12.50"), ("+3", "+3"), ("-1e-05", "-1e-05"), ("EURUSD", "EURUSD"), ("a=b", "a=b"), ("", ""),
])
def test_csv_cells_that_could_run_as_formulas_are_escaped(text, shown):
    assert safe_cell(text) == shown


def test_a_formula_stored_in_an_alert_comes_out_escaped_in_csv(tmp_path):
    database = init_db(f"sqlite:///{tmp_path}/store.db")
    try:
        client = create_app(database, sink_token=SINK).test_client()
        body = webhook(alert(labels={"alertname": "=cmd|' /C calc'!A0", "severity": '@SUM(1+1)*cmd|"/C calc"!A0'},
                             fingerprint="=HYPERLINK(\"http://evil\")"))
        stored = client.post("/api/v1/alerts", data=body, content_type="application/json",
                             headers={"Authorization": f"Bearer {SINK}"})
        assert stored.status_code == 200
        rows = list(csv.DictReader(io.StringIO(client.get("/api/v1/alerts?format=csv").get_data(as_text=True))))
        assert rows[0]["alertname"] == "'=cmd|' /C calc'!A0"
        assert rows[0]["severity"] == "'@SUM(1+1)*cmd|\"/C calc\"!A0"
        assert rows[0]["fingerprint"] == "'=HYPERLINK(\"http://evil\")"
        assert client.get("/api/v1/alerts").get_json()["items"][0]["alertname"] == "=cmd|' /C calc'!A0"  # JSON as is
    finally:
        database.dispose()
