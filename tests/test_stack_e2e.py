"""End-to-end on the native stack (stack/native.py, what `make stack` runs): real Postgres,
Prometheus, Alertmanager, Loki, sim bridge, bot and exporter on loopback, from the committed configs.

What is shown: every scrape target comes up; every PromQL expression of every dashboard panel,
dashboard variable and rule evaluates on the live Prometheus, and every panel query returns
series (the one exemption below says why it cannot); stopping the bridge makes
BrokerDisconnected fire, reach Alertmanager and land in the exporter's `alerts` table, and
restarting it resolves the alert there; every SQL panel runs as the Grafana role.
Loki (LOKI_BIN or `loki` on PATH; a dependency of make test, scripts/find-loki.sh): after a burst of
rejected orders (the sim's fault injection) has made the bot log WARNINGs and an ERROR, every
LogQL expression of every dashboard (each level, a real account and correlation id) and of
loki/rules runs on the live Loki and returns data where the stack logged such lines; "One
order's story" returns exactly that order's stdout lines and nothing for an empty id, inside the
window the trade-to-logs link opens; every Loki rule fires into the alerts table and resolves;
a 20 s Loki restart while the bot runs loses no line and drops nothing, and fires LokiDown.

Why shorter timings: the committed 15 s scrape/evaluation, `for: 1m` and Alertmanager's
group_interval would make this take many minutes; they are overridden ONLY through
stack.configs.Timings (see TIMINGS), which changes nothing else in the rendered configs. The
Loki rules also get 10 s windows instead of 5-10 min (same thresholds per minute / per window),
so they resolve within the test.
The tests run in file order and share one stack (module fixture); each waits with a deadline.
Why one long module: starting the stack costs ~15 s and minutes of trading; every check uses the
same one (the Loki helpers live in tests/loki_live.py).
"""

from __future__ import annotations

import json
import re
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

import loki_live as ll
import monitoring_helpers as mh
import pytest
import yaml
from sqlalchemy import bindparam, create_engine, text

sys.path.insert(0, str(mh.REPO))  # `stack` is a top-level directory of the repo, not an installed package

from stack.configs import Timings, prometheus_rules, write_alertmanager_config  # noqa: E402
from stack.loki import find_loki_binary, loki_rules  # noqa: E402
from stack.native import NativeStack, StackSettings  # noqa: E402

SPEED = 600  # simulated seconds per wall second: minutes of trading in seconds
LOKI_WINDOW = "10s"
TIMINGS = Timings(scrape_interval="1s", evaluation_interval="1s",
                  alert_for={"BrokerDisconnected": "3s", "LokiDown": "3s"}, group_wait="1s", group_interval="2s",
                  loki_interval="1s", loki_alert_for={"ErrorLogRateHigh": "2s"}, loki_min_ready="0s",
                  loki_ranges={"ErrorLogRateHigh": LOKI_WINDOW, "RejectedOrdersBurst": LOKI_WINDOW})
# The bot in this test: 5 rejected orders open the order circuit (an ERROR line); smaller positions
# and more requote retries keep the orders the accelerated sim rejects by itself (NO_MONEY,
# requotes) well below RejectedOrdersBurst's 5 per window, so the burst's alert can resolve.
# The account risk guard's loss halts are off (this test measures the monitoring, not the limits: a
# halted bot sends no order to reject), and a loose prop-firm challenge feeds the Challenge row.
BOT_ENV = {"ORDER_BREAKER_FAILURES": "5", "ORDER_BREAKER_RESET_SECONDS": "5", "RISK_PER_TRADE": "0.2",
           "REQUOTE_RETRIES": "5", "DAILY_LOSS_LIMIT": "100%", "MAX_DRAWDOWN": "100"}
CHALLENGE = "max_daily_loss: 90%\nmax_loss: 95%\nprofit_target: 10%\nmin_trading_days: 4\nhalt_at: 100%\n"
SCRAPED_JOBS = {"bot", "exporter", "prometheus", "alertmanager"}  # and loki when the stack runs one

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

RUN: dict[str, Any] = {"figures": {}}  # shared by the Loki tests below; figures printed by the last one
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
    loki_bin = find_loki_binary()
    if loki_bin is None:  # a dependency of make test (scripts/find-loki.sh), never a skip
        pytest.fail("no Loki binary (LOKI_BIN unset, no `loki` on PATH); make test finds it with "
                    "scripts/find-loki.sh (LOKI_BIN, the workspace's shared/bin/unpack-loki, PATH)", pytrace=False)
    rules = root / "challenge.yml"
    rules.write_text(CHALLENGE)
    rules.chmod(0o644)
    native = NativeStack(StackSettings(root=root, speed=SPEED, ports={}, timings=TIMINGS, loki_bin=loki_bin,
                                       bot_env={**BOT_ENV, "RULES_FILE": str(rules)}))
    RUN["started_ns"] = time.time_ns()
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
        missing = [f"{job}: {jobs.get(job, 'absent')}" for job in sorted(expected) if jobs.get(job) != "up"]
        return Pending(missing) if missing else jobs

    expected = SCRAPED_JOBS | ({"loki"} if stack.runs_loki else set())
    jobs = wait_for("every target up", unhealthy, timeout=45)
    assert set(jobs) == expected


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
    assert changed == [("alerts.yml", "BrokerDisconnected"), ("loki.yml", "LokiDown")]
    with pytest.raises(ValueError, match="NoSuchAlert"):
        prometheus_rules(Timings(alert_for={"NoSuchAlert": "1s"}))

    write_alertmanager_config(tmp_path / "am.yml", "http://127.0.0.1:1/api/v1/alerts", Timings())
    as_committed = mh.load_yaml(tmp_path / "am.yml")
    assert as_committed["route"] == mh.load_yaml(mh.ALERTMANAGER_CONFIG)["route"]
    result = mh.run([mh.amtool(), "check-config", str(tmp_path / "am.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


# --- Loki ------------------------------------------------------------------------------------

LOKI_RULES = [q for q in mh.logql_queries() if q.kind == "rule"]
LOKI_PANELS = [q for q in mh.logql_queries() if q.kind == "panel"]
LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")  # the Logs dashboard's `level` options
STORY = "logs.json: panel \"One order's story (correlation_id)\" (A)"
REJECTIONS = 5  # = ORDER_BREAKER_FAILURES: the fifth opens the order circuit, an ERROR line
REJECT_RETCODE = 10006  # TRADE_RETCODE_REJECT: the sending path failed, it counts against the breaker


@pytest.fixture(scope="module")
def loki(stack):
    """The stack's Loki; a failure naming why when the stack runs none (never a skip)."""
    if not stack.runs_loki:
        pytest.fail("the stack runs no Loki: set LOKI_BIN or put `loki` on PATH", pytrace=False)
    stack.wait_ready("loki")
    return ll.LokiClient(stack.loki_url)


def stdout_of(stack, service: str = "bot") -> list[ll.StdoutLine]:
    return ll.stdout_lines(stack.log_file(service), service)


@pytest.fixture(scope="module")
def provoked(stack, loki):
    """A burst (see provoke) early enough for the LogQL checks to find its lines."""
    return provoke(stack)


def provoke(stack) -> list[ll.StdoutLine]:
    """REJECTIONS orders refused by the sim (WARNING lines), which opens the order circuit (ERROR)."""
    seen = len(stdout_of(stack))
    stack.sim_control("fault_reject_next", count=REJECTIONS, retcode=REJECT_RETCODE)

    def burst() -> Pending | list[ll.StdoutLine]:
        new = stdout_of(stack)[seen:]
        # The injected refusals, by their retcode: the demo trades a live (wall-clock) market, so a
        # refusal of the broker's own (10016 stops too close, a requote) can land in the same window.
        rejected = [line for line in new if ll.is_rejection(line) and line.record.get("retcode") == REJECT_RETCODE]
        opened = [line for line in new if line.record["level"] == "ERROR"
                  and line.record["message"].startswith("circuit orders opened")]
        missing = ([] if len(rejected) >= REJECTIONS else [f"{len(rejected)} of {REJECTIONS} rejections"]) + (
            [] if opened else ["the ERROR line of the order circuit opening"])
        return Pending(missing) if missing else rejected

    rejected = wait_for("a burst of rejected orders in the bot's stdout", burst, timeout=60)
    assert all(line.record["level"] == "WARNING" and line.record["retcode"] == REJECT_RETCODE for line in rejected)
    assert all(line.record["message"].endswith(f"rejected, retcode {REJECT_RETCODE} REJECT") for line in rejected)
    return rejected


def a_story(stack) -> tuple[str, dict[str, Any]]:
    """A closed trade with a time-carrying correlation id, and its Recent trades row (as Grafana's role)."""
    (query,) = [q for q in mh.sql_queries() if "'Recent trades'" in q.origin]
    engine = create_engine(stack.database_url("tradewatch_grafana"))
    try:
        with engine.connect() as connection:
            accounts = [row[0] for row in connection.execute(text("SELECT DISTINCT account FROM trades"))]
            statement = mh.resolve_sql(query.expr, {"account": accounts}, time_from="1970-01-01T00:00:00Z",
                                       time_to="2100-01-01T00:00:00Z")
            rows = [dict(row._mapping) for row in connection.exec_driver_sql(statement)]
    finally:
        engine.dispose()
    closed = [r for r in rows if r["status"] == "closed" and re.fullmatch(r"[0-9a-f]{16}", r["correlation_id"] or "")]
    assert closed, f"no closed trade with a 16-hex correlation id among {len(rows)} rows"
    row = closed[len(closed) // 2]
    return row["correlation_id"], row


def test_every_loki_rule_fires_into_the_alerts_table_and_resolves(stack, loki):
    provoke(stack)  # its own burst: the rules look back only LOKI_WINDOW
    names = sorted(q.origin.rsplit(": ", 1)[1] for q in LOKI_RULES)
    engine = create_engine(stack.database_url("tradewatch"))
    episodes = text("SELECT alertname, fingerprint, starts_at, status FROM alerts WHERE alertname IN :names"
                    ).bindparams(bindparam("names", expanding=True))

    def stored() -> dict[tuple[str, str, Any], str]:
        """(alertname, fingerprint, starts_at) -> status: one row per firing episode, updated on resolve."""
        with engine.connect() as connection:
            return {(r.alertname, r.fingerprint, r.starts_at): r.status
                    for r in connection.execute(episodes, {"names": names})}

    def in_alertmanager() -> Pending | list[dict[str, Any]]:
        found = [a for a in get_json(stack.urls["alertmanager"] + "/api/v2/alerts") if a["labels"]["alertname"] in names]
        missing = sorted(set(names) - {a["labels"]["alertname"] for a in found})
        return Pending(missing) if missing else found

    def firing_episodes() -> Pending | dict[str, tuple[str, str, Any]]:
        found = {key[0]: key for key, status in sorted(stored().items(), key=lambda item: item[0][2])
                 if status == "firing"}
        missing = sorted(set(names) - set(found))
        return Pending(missing) if missing else found

    try:
        wait_for("every Loki rule firing in the ruler", lambda: missing_or_done(sorted(
            set(names) - {a["labels"]["alertname"] for a in loki.ruler_alerts() if a["state"] == "firing"})),
            timeout=60)
        in_manager = wait_for("every Loki alert in Alertmanager", in_alertmanager, timeout=30)
        assert all(a["generatorURL"].startswith("http") for a in in_manager), "ruler.external_url makes links absolute"
        fired = wait_for("a firing row per Loki rule in the alerts table", firing_episodes, timeout=30)
        # The burst's episode of each rule must end; a later, unrelated episode would be another row.
        wait_for("the burst's episode of every Loki rule resolved in the alerts table", lambda: missing_or_done(
            [name for name, key in fired.items() if stored().get(key) != "resolved"]), timeout=90, interval=2)
    finally:
        engine.dispose()
    RUN["figures"]["log rules fired / resolved"] = f"{len(fired)} / {len(fired)} (of {len(names)} rules in loki/rules)"


def test_every_logql_expression_returns_data_where_the_stack_logged_such_lines(stack, loki, provoked):
    now = time.time_ns()
    start = RUN["started_ns"]
    services = loki.label_values("service", start, now)
    accounts = [a for a in loki.label_values("account", start, now) if a != "unknown"]
    assert {"bot", "exporter"} <= set(services) and accounts, (services, accounts)
    correlation_id, _ = a_story(stack)
    logged_levels = {line.record["level"] for service, path in ll.iter_log_files(stack.root)
                     for line in ll.stdout_lines(path, service)}
    assert {"INFO", "WARNING", "ERROR"} <= logged_levels
    base = {"service": "|".join(services), "account": accounts[0], "correlation_id": correlation_id, "search": ""}
    runs = []  # (origin with values, resolved expression, data expected)
    for query in LOKI_PANELS:
        for level in LEVELS if "$level" in query.expr else (None,):
            values = base | ({"level": level} if level else {})
            expr = query.resolved(values)
            runs.append((f"{query.origin} level={level}" if level else query.origin, expr,
                         ll.levels_matched(expr, logged_levels)))
    for query in LOKI_RULES:  # as the stack's ruler runs them (short windows), right after the burst
        (rendered,) = [r["expr"] for text_ in loki_rules(TIMINGS).values() for g in yaml.safe_load(text_)["groups"]
                       for r in g["rules"] if r["alert"] == query.origin.rsplit(": ", 1)[1]]
        runs.append((query.origin, ll.without_threshold(rendered), True))

    def results():
        found = {}
        for origin, expr, _ in runs:
            result = loki.query_range(expr, start, time.time_ns())
            found[origin] = result.has_data
        return found

    def missing():
        found = results()
        RUN["logql"] = found
        return missing_or_done([origin for origin, _, expected in runs if expected and not found[origin]])

    wait_for("data for every LogQL expression whose lines the stack logged", missing, timeout=30, interval=2)
    found = RUN["logql"]
    unexpected = [origin for origin, _, expected in runs if not expected and found[origin]]
    assert unexpected == [], "data for levels the stack never logged"
    assert {origin.split(": ", 1)[0] for origin, _, _ in runs} >= {"logs.json", "loki/rules/fake/tradewatch-logs.yml"}
    RUN["figures"]["LogQL expressions run / returned data"] = f"{len(runs)} / {sum(found.values())}"


def test_one_orders_story_is_exactly_its_lines_inside_the_window_of_the_trade_link(stack, loki):
    (query,) = [q for q in LOKI_PANELS if q.origin == STORY]
    correlation_id, row = a_story(stack)
    ours = [line for line in stdout_of(stack) if line.record.get("correlation_id") == correlation_id]
    assert len(ours) >= 3, f"{correlation_id}: only {len(ours)} stdout lines"
    start, end = RUN["started_ns"], time.time_ns()

    def story():
        lines = loki.query_range(query.resolved({"correlation_id": correlation_id}), start, end).lines
        return lines if len(lines) >= len(ours) else Pending([f"{len(lines)} of {len(ours)} lines in Loki"])

    lines = wait_for(f"the story of {correlation_id} in Loki", story, timeout=30)
    assert sorted(json.loads(line)["message"] for _, line, _ in lines) == sorted(o.record["message"] for o in ours)
    assert all(labels.get("correlation_id") == correlation_id for _, _, labels in lines)
    assert loki.query_range(query.resolved({"correlation_id": ""}), start, end).lines == []
    # The trade-to-logs link (Recent trades) opens a window holding the whole story, by wall clock.
    first, last = lines[0][0] // ll.NS_PER_MS, lines[-1][0] // ll.NS_PER_MS
    assert row["logs_from"] <= first and last <= row["logs_to"], (row["logs_from"], first, last, row["logs_to"])
    RUN["figures"]["One order's story"] = f"{correlation_id}: {len(lines)} lines in Loki = {len(ours)} on stdout"


def test_a_20s_loki_restart_loses_no_line_drops_nothing_and_fires_loki_down(stack, loki):
    def dropped() -> float:
        with urllib.request.urlopen(stack.urls["bot"] + "/metrics", timeout=10) as response:
            body = response.read().decode()
        return sum(float(m) for m in re.findall(r"^tradewatch_log_records_dropped_total\{[^}]*\} (\S+)$", body, re.M))

    drops_before = dropped()
    stopped_ms = time.time_ns() // ll.NS_PER_MS
    start = ll.boundary_after(stdout_of(stack), stopped_ms - 5000)
    stack.stop_service("loki")
    outage_began = time.monotonic()
    wait_for("LokiDown firing while Loki is down", lambda: promql(
        stack, 'ALERTS{alertname="LokiDown", alertstate="firing"}')[1], timeout=18)
    time.sleep(max(0.0, 20 - (time.monotonic() - outage_began)))  # the outage itself: 20 s, as the issue says
    stack.start_service("loki")
    stack.wait_ready("loki")
    restarted_ms = time.time_ns() // ll.NS_PER_MS
    wait_for("lines logged after the restart", lambda: stdout_of(stack)[-1].ms > restarted_ms + 5000, timeout=30)
    end = ll.boundary_after(stdout_of(stack), restarted_ms + 3000)
    logged = ll.count_between(stdout_of(stack), start, end)

    def in_loki() -> int | Pending:
        count = loki.count_lines('{service="bot"}', start, end)
        return count if count == logged else Pending([f"{count} of {logged} lines in Loki"])

    stored = wait_for("every line of the outage window in Loki", in_loki, timeout=90, interval=2)
    assert dropped() == drops_before
    RUN["figures"]["lines logged vs lines in Loki across a 20 s Loki restart"] = (
        f"{logged} vs {stored} (drop counter {drops_before:g} -> {dropped():g}; LokiDown fired during the outage)")


def test_print_the_loki_figures(loki, capsys):
    """The figures the issue asks for (printed even under -q)."""
    with capsys.disabled():
        sys.stdout.write("\n--- Loki figures (tests/test_stack_e2e.py) ---\n")
        for name, value in RUN["figures"].items():
            sys.stdout.write(f"{name}: {value}\n")
    assert RUN["figures"], "no Loki check ran"
