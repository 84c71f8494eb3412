"""End-to-end on the native stack (stack/native.py, what `make stack` runs): real Postgres,
Prometheus, Alertmanager, sim bridge, bot and exporter on loopback, from the committed configs.

What is shown: every scrape target comes up; every PromQL expression of every dashboard panel,
dashboard variable and rule evaluates on the live Prometheus, and every panel query returns
series (the one exemption below says why it cannot); stopping the bridge makes
BrokerDisconnected fire, reach Alertmanager and land in the exporter's `alerts` table, and
restarting it resolves the alert there; every SQL panel runs as the Grafana role.
(LogQL: every dashboard and Loki-rule expression is parsed by Grafana's LogQL grammar in
tests/test_monitoring_loki.py; there is no Loki binary to run them against here.)

Why shorter timings: the committed 15 s scrape/evaluation, `for: 1m` and Alertmanager's
group_interval would make this take many minutes; they are overridden ONLY through
stack.configs.Timings (see TIMINGS), which changes nothing else in the rendered configs.
The tests run in file order and share one stack (module fixture); each waits with a deadline.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import monitoring_helpers as mh
import pytest
import yaml
from sqlalchemy import create_engine, text

sys.path.insert(0, str(mh.REPO))  # `stack` is a top-level directory of the repo, not an installed package

from stack.configs import Timings, prometheus_rules, write_alertmanager_config  # noqa: E402
from stack.native import NativeStack, StackSettings  # noqa: E402

SPEED = 600  # simulated seconds per wall second: minutes of trading in seconds
TIMINGS = Timings(scrape_interval="1s", evaluation_interval="1s", alert_for={"BrokerDisconnected": "3s"},
                  group_wait="1s", group_interval="2s")
SCRAPED_JOBS = {"bot", "exporter", "prometheus", "alertmanager"}  # loki: only when LOKI_URL is set

# Panel queries that may stay empty on the live stack, and why. Every other panel query must
# return at least one series.
EXEMPT_PANELS = {
    # An order expires only when it was queued while the terminal was unusable and is stale when
    # replayed. Stopping the bridge cannot provoke that: signals need bars, which come from the
    # same bridge, so no order is decided (hence queued) while it is down. Covered by the order
    # queue's own tests (bot/resilience) instead.
    "bot-health.json: panel 'Reconnects, replays and expiries' (C)",
}
# Panel queries that are empty on a quiet stack by design: they are checked while the bridge is down.
OUTAGE_PANELS = {
    "bot-health.json: panel 'Broker errors by kind' (A)",
    "alerts.json: panel 'Firing now: Prometheus rules' (A)",
    "alerts.json: panel 'Firing alerts by name' (A)",
}

PROMQL = mh.promql_queries()
PANELS = [q for q in PROMQL if q.kind == "panel"]


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """check() until it returns something truthy; fail naming `what` and the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last and not isinstance(last, Pending):  # a non-empty Pending is truthy: keep waiting
            return last
        time.sleep(interval)
    pytest.fail(f"{what} not reached within {timeout:.0f} s; last: {last}", pytrace=False)


class Pending(list):
    """What is still missing (shown in the failure message); wait_for keeps waiting while it gets one."""


def missing_or_done(missing: list[str]) -> Pending | bool:
    return Pending(missing) if missing else True


def get_json(url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def promql(stack: NativeStack, expr: str) -> tuple[str | None, int]:
    """(error or None, number of series) of an instant query on the live Prometheus."""
    try:
        body = get_json(stack.urls["prometheus"] + "/api/v1/query", {"query": expr})
    except urllib.error.HTTPError as exc:  # 400/422: bad expression or failed evaluation
        return json.loads(exc.read() or b"{}").get("error", str(exc)), 0
    data = body["data"]
    count = 1 if data["resultType"] in ("scalar", "string") else len(data["result"])
    return None, count


@pytest.fixture(scope="module")
def stack():
    # Not tmp_path: the cluster runs as `postgres`, which cannot enter pytest's private temp root.
    root = Path(tempfile.mkdtemp(prefix="tradewatch-stack-"))
    native = NativeStack(StackSettings(root=root, speed=SPEED, ports={}, timings=TIMINGS))
    try:
        native.up()  # stops whatever it started when it fails
        yield native
        stopped = native.down()
        assert "postgres" in stopped and "bot" in stopped, stopped
        assert native.processes.names() == [], "pid files left behind"
    finally:
        native.down()
        shutil.rmtree(root, ignore_errors=True)


def test_every_scrape_target_comes_up(stack):
    def unhealthy():
        targets = get_json(stack.urls["prometheus"] + "/api/v1/targets")["data"]["activeTargets"]
        jobs = {t["labels"]["job"]: t["health"] for t in targets}
        missing = [f"{job}: {jobs.get(job, 'absent')}" for job in sorted(SCRAPED_JOBS) if jobs.get(job) != "up"]
        return Pending(missing) if missing else jobs

    jobs = wait_for("every target up", unhealthy, timeout=45)
    assert set(jobs) == SCRAPED_JOBS


def test_every_rule_is_loaded_and_evaluates_without_error(stack):
    expected = {q.origin.split(": ", 1)[1] for q in PROMQL if q.kind == "rule"}

    def rules():
        groups = get_json(stack.urls["prometheus"] + "/api/v1/rules")["data"]["groups"]
        found = [r for g in groups for r in g["rules"]]
        evaluated = all(not r.get("lastEvaluation", "0001").startswith("0001") for r in found)
        return found if found and evaluated else None

    found = wait_for("every rule evaluated once", rules, timeout=20)
    assert {r["name"] for r in found} == expected
    assert [(r["name"], r.get("lastError")) for r in found if r["health"] != "ok"] == []


@pytest.mark.parametrize("query", PROMQL, ids=lambda q: q.origin)
def test_every_promql_expression_evaluates(stack, query):
    error, _ = promql(stack, query.resolved())
    assert error is None, f"{query.origin}: {error}"


def test_every_panel_query_returns_series_once_the_bot_has_traded(stack):
    expected = [q for q in PANELS if q.origin not in EXEMPT_PANELS and q.origin not in OUTAGE_PANELS]

    def empty():
        return missing_or_done([q.origin for q in expected if promql(stack, q.resolved())[1] == 0])

    wait_for("series for every panel query", empty, timeout=90, interval=2)


def test_bridge_outage_fires_broker_disconnected_into_the_alerts_table_and_recovery_resolves_it(stack):
    engine = create_engine(stack.database_url("tradewatch"))
    notifications = text("SELECT status FROM alerts WHERE alertname = 'BrokerDisconnected' ORDER BY received_at")
    try:
        stack.stop_service("bridge")
        wait_for("BrokerDisconnected firing in Prometheus", lambda: promql(
            stack, 'ALERTS{alertname="BrokerDisconnected", alertstate="firing"}')[1], timeout=30)
        wait_for("BrokerDisconnected in Alertmanager", lambda: [
            a for a in get_json(stack.urls["alertmanager"] + "/api/v2/alerts")
            if a["labels"]["alertname"] == "BrokerDisconnected" and a["status"]["state"] == "active"], timeout=20)

        def stored() -> list[str]:
            with engine.connect() as connection:
                return [row.status for row in connection.execute(notifications)]

        wait_for("a firing BrokerDisconnected row in the alerts table", lambda: "firing" in stored(), timeout=30)
        outage_panels = [q for q in PANELS if q.origin in OUTAGE_PANELS]
        assert len(outage_panels) == len(OUTAGE_PANELS)
        wait_for("series for the outage panels", lambda: missing_or_done(
            [q.origin for q in outage_panels if promql(stack, q.resolved())[1] == 0]), timeout=20)

        stack.start_service("bridge")
        stack.wait_ready("bridge")
        wait_for("BrokerDisconnected resolved in the alerts table", lambda: stored()[-1:] == ["resolved"],
                 timeout=45)
        assert promql(stack, 'ALERTS{alertname="BrokerDisconnected"}')[1] == 0
    finally:
        engine.dispose()


def test_every_sql_panel_runs_as_the_grafana_role(stack):
    engine = create_engine(stack.database_url("tradewatch_grafana"))
    values = {"account": [], "severity": list(mh.SEVERITIES)}
    try:
        with engine.connect() as connection:
            values["account"] = [row[0] for row in connection.execute(text("SELECT DISTINCT account FROM trades"))]
            assert connection.execute(text("SHOW default_transaction_read_only")).scalar() == "on"
            today = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 86400))
            tomorrow = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() + 86400))
            results = {}
            for query in mh.sql_queries():
                statement = mh.resolve_sql(query.expr, values, time_from=today, time_to=tomorrow)
                results[query.origin] = connection.exec_driver_sql(statement).fetchall()
                connection.rollback()
    finally:
        engine.dispose()
    assert values["account"], "the bot closed no trade"
    history = [origin for origin in results if "'History'" in origin]
    assert history and results[history[0]], "the alert history panel shows the stored notifications"


def test_exempt_and_outage_panels_name_real_panels():
    panels = {q.origin for q in PANELS}
    assert EXEMPT_PANELS <= panels
    assert OUTAGE_PANELS <= panels


def test_timing_overrides_change_only_what_they_name(tmp_path):
    def rules(document):
        return [rule for group in document["groups"] for rule in group["rules"]]

    committed = {p.name: mh.load_yaml(p) for p in mh.prometheus_rule_files()}
    rendered = {name: yaml.safe_load(text_) for name, text_ in prometheus_rules(TIMINGS).items()}
    changed = [(name, r.get("alert")) for name in committed
               for r, c in zip(rules(rendered[name]), rules(committed[name]), strict=True) if r != c]
    assert changed == [("alerts.yml", "BrokerDisconnected")]
    with pytest.raises(ValueError, match="NoSuchAlert"):
        prometheus_rules(Timings(alert_for={"NoSuchAlert": "1s"}))

    write_alertmanager_config(tmp_path / "am.yml", "http://127.0.0.1:1/api/v1/alerts", Timings())
    as_committed = mh.load_yaml(tmp_path / "am.yml")
    assert as_committed["route"] == mh.load_yaml(mh.ALERTMANAGER_CONFIG)["route"]
    result = mh.run([mh.amtool(), "check-config", str(tmp_path / "am.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
