"""Prometheus config and alert rules, checked by Debian's promtool (Prometheus 2.42).

Why 2.42: the native stack runs Debian's Prometheus, and the pinned 3.x image accepts what
2.42 accepts (the configs avoid later-only features), so passing here covers both.
"""

from __future__ import annotations

import re
from collections import defaultdict

import monitoring_helpers as mh
import pytest
import yaml

EXPECTED_ALERTS = {
    "BotDown", "BotLoopStalled", "BrokerDisconnected", "BrokerLatencyHigh", "OrderRejectionsHigh",
    "DrawdownHigh", "DailyLossLimit", "MarginLevelLow", "AccountSnapshotStale", "ExporterDown",
    "LogRecordsDropped", "MemoryGrowing",
}
EXPECTED_ALERTS |= {"AlertSinkDisabled", "ExporterUnauthorizedRequests"}  # issue 13: rules/security.yml
EXPECTED_ALERTS |= {"BrokerClockOffsetOddStep", "BrokerClockUnknown", "OrdersSkippedNotExpressible",
                    "OrdersHaltedTradingDisabled", "CloseFrozenLasting"}  # issue 12: rules/broker-clock.yml
THRESHOLD = re.compile(r"tradewatch:alert_threshold:\w+")
EXPECTED_ALERTS |= {"BrokerRecordsRejected", "BrokerDealConflict", "SymbolSkipped", "NewOrdersHalted"}  # broker-data.yml

EXPECTED_ALERTS |= {"BotWaitingForDatabase", "LogPushFailing", "LogBacklogGrowing"}  # issue 10: startup.yml, logs.yml
EXPECTED_ALERTS |= {"BrokerStopOut", "BrokerPreflightFailed"}  # issue 12: netting.yml, preflight.yml

EXPECTED_ALERTS |= {"RiskGuardHalted", "RiskGuardNoMoney", "RiskGuardCannotCheck"}  # issue 14: risk-guard.yml


def alert_rules() -> dict[str, dict]:
    rules = {}
    for path in mh.prometheus_rule_files():
        for rule in mh.rules_of(path):
            if "alert" in rule:
                assert rule["alert"] not in rules, f"alert {rule['alert']} defined twice"
                rules[rule["alert"]] = rule
    return rules


def test_promtool_accepts_the_config_and_its_rule_files():
    result = mh.run([mh.promtool(), "check", "config", str(mh.PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(mh.prometheus_rule_files())} rule files found" in result.stdout + result.stderr


def test_promtool_accepts_every_rule_file():
    files = [str(p) for p in mh.prometheus_rule_files()]
    assert files, "no rule files under prometheus/rules"
    result = mh.run([mh.promtool(), "check", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alerts_pass():
    tests = sorted(mh.PROMETHEUS_TESTS_DIR.glob("*.yml"))
    assert tests, "no promtool test files under prometheus/tests"
    result = mh.run([mh.promtool(), "test", "rules", *map(str, tests)], cwd=mh.PROMETHEUS_TESTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promtool_unit_tests_catch_a_wrong_threshold(tmp_path):
    """The unit tests would notice a changed limit: they are not vacuous."""
    rules = tmp_path / "rules"
    tests = tmp_path / "tests"
    rules.mkdir()
    tests.mkdir()
    for path in mh.prometheus_rule_files():
        (rules / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    thresholds = rules / "thresholds.yml"
    text = thresholds.read_text(encoding="utf-8")
    assert "expr: vector(0.10)" in text
    thresholds.write_text(text.replace("expr: vector(0.10)", "expr: vector(0.5)"), encoding="utf-8")
    for path in mh.PROMETHEUS_TESTS_DIR.glob("*.yml"):
        (tests / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    result = mh.run([mh.promtool(), "test", "rules", *map(str, sorted(tests.glob("*.yml")))], cwd=tests)
    assert result.returncode != 0
    assert "DrawdownHigh" in result.stdout + result.stderr


EXPECTED_ALERTS |= {"LokiDown", "LokiRejectingLines", "Watchdog"}  # prometheus/rules/loki.yml, watchdog.yml
EXPECTED_ALERTS |= {"StrategyDisabled"}  # issue 14: prometheus/rules/strategies.yml
EXPECTED_ALERTS |= {"PropRuleHeadroomHalfUsed", "PropRuleHeadroomNearlyUsed", "PropRuleBreached"}  # prop-rules.yml
EXPECTED_ALERTS |= {"StoreFsyncFailing"}  # issue 16: prometheus/rules/store.yml (db/walsync.py)
ALWAYS_FIRING = {"Watchdog"}  # the dead man's switch: a quiet case would be the failure it detects


def test_the_issue_lists_exactly_these_alerts():
    assert set(alert_rules()) == EXPECTED_ALERTS


@pytest.mark.parametrize("name", sorted(EXPECTED_ALERTS))
def test_alert_has_severity_summary_description_and_action(name):
    rule = alert_rules()[name]
    assert rule.get("labels", {}).get("severity") in mh.SEVERITIES
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "action"):
        assert annotations.get(key, "").strip(), f"{name} lacks annotation {key}"


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    cases: dict[str, set[str]] = defaultdict(set)
    for path in mh.PROMETHEUS_TESTS_DIR.glob("*.yml"):
        for test in mh.load_yaml(path).get("tests", []):
            for check in test.get("alert_rule_test", []):
                cases[check["alertname"]].add("fires" if check.get("exp_alerts") else "quiet")
    for name in alert_rules():
        expected = {"fires"} if name in ALWAYS_FIRING else {"fires", "quiet"}
        assert cases[name] == expected, f"{name}: unit tests cover only {sorted(cases[name])}"


def test_thresholds_live_in_one_file_and_are_all_used():
    thresholds_file = mh.PROMETHEUS_RULES_DIR / "thresholds.yml"
    recorded = {}
    for rule in mh.rules_of(thresholds_file):
        assert "record" in rule, "thresholds.yml holds only threshold recording rules"
        assert re.fullmatch(r"vector\(-?[0-9.]+\)", rule["expr"]), f"{rule['record']} is not a constant"
        recorded[rule["record"]] = rule["expr"]
    used = {name for rule in alert_rules().values() for name in THRESHOLD.findall(rule["expr"])}
    assert used <= set(recorded), f"undefined thresholds: {sorted(used - set(recorded))}"
    assert set(recorded) <= used, f"unused thresholds: {sorted(set(recorded) - used)}"
    other_files = [p for p in mh.prometheus_rule_files() if p != thresholds_file]
    for path in other_files:
        assert not any("record" in r and THRESHOLD.fullmatch(r["record"]) for r in mh.rules_of(path))


def test_scrape_jobs_cover_the_stack_and_keep_the_account_label():
    config = mh.load_yaml(mh.PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"bot", "exporter", "prometheus", "alertmanager", "loki"}
    for name in ("bot", "exporter"):
        assert jobs[name].get("honor_labels") is True
    text = mh.PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    assert "labeldrop" not in text and "metric_relabel_configs" not in text


def test_alerts_go_to_alertmanager_over_api_v2():
    config = mh.load_yaml(mh.PROMETHEUS_CONFIG)
    (alerting,) = config["alerting"]["alertmanagers"]
    assert alerting["api_version"] == "v2"
    assert alerting["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_every_dashboard_and_rule_promql_parses_with_promtool():
    queries = mh.promql_queries()
    assert len(queries) >= 40
    assert mh.promql_syntax_errors(queries) == []


def test_the_promql_check_reports_a_broken_expression():
    broken = mh.Query("promql", 'sum(rate(tradewatch_cycles_total{account=~"$account"}[5m])', "broken", "panel")
    fine = mh.Query("promql", "up", "fine", "panel")
    errors = mh.promql_syntax_errors([fine, broken])
    assert len(errors) == 1 and errors[0].startswith("broken:")


def test_config_retargeted_for_the_native_stack_is_still_valid(tmp_path):
    config = mh.prometheus_config_with_targets(
        {"bot": ["127.0.0.1:18000"], "exporter": ["127.0.0.1:19108"], "alertmanager": ["127.0.0.1:19093"]},
        alertmanagers=["127.0.0.1:19093"])
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = mh.run([mh.promtool(), "check", "config", "--syntax-only", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["bot"]["static_configs"] == [{"targets": ["127.0.0.1:18000"]}]
    assert jobs["loki"]["static_configs"] == [{"targets": ["loki:3100"]}]
    with pytest.raises(ValueError, match="unknown scrape jobs"):
        mh.prometheus_config_with_targets({"nope": ["x:1"]})
