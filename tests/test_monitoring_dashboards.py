"""Grafana: provisioned datasources with pinned uids, and dashboards that only reference them.

Every dashboard is also type-checked against Grafana's own schema (@grafana/schema, the types
Grafana generates from its CUE schema, pinned to the image version docker-compose.yml runs):
unknown keys and wrong values in the dashboard, its variables, panels and each panel plugin's
options are errors. The checks target what breaks provisioned dashboards in practice: unknown datasource uids
("datasource ${DS_PROMETHEUS} was not found"), duplicate uids, numbers without units,
variables used but never defined, and links to dashboards that do not exist.
"""

from __future__ import annotations

import json
import re
import time

import monitoring_helpers as mh
import pytest

# What Grafana 12.x writes; older versions are migrated on load, newer ones confuse it.
SCHEMA_VERSIONS = range(41, 43)
QUANTITY_PANELS = {"timeseries", "stat", "gauge", "bargauge", "barchart", "piechart", "histogram",
                   "state-timeline", "status-history", "heatmap", "table"}
EXPECTED_DATASOURCES = {
    "prometheus": "prometheus",
    "loki": "loki",
    "postgres": "grafana-postgresql-datasource",
    "alertmanager": "alertmanager",
}
DASHBOARDS = mh.dashboard_files()


def datasource_references(node):
    """Every {"type": ..., "uid": ...} under a "datasource" key, anywhere in a dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value
            else:
                yield from datasource_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_references(item)


def test_five_dashboards_with_unique_uids_and_titles():
    dashboards = [mh.load_dashboard(p) for p in DASHBOARDS]
    uids = [d["uid"] for d in dashboards]
    assert sorted(uids) == ["tradewatch-alerts", "tradewatch-bot-health", "tradewatch-execution", "tradewatch-logs",
                            "tradewatch-trading"]
    assert len({d["title"] for d in dashboards}) == len(dashboards)


def test_provisioned_datasources_have_the_pinned_uids():
    datasources = mh.provisioned_datasources()
    assert {uid: ds["type"] for uid, ds in datasources.items()} == EXPECTED_DATASOURCES
    postgres = datasources["postgres"]
    assert postgres["user"] == "tradewatch_grafana", "Grafana must use the read-only role"
    assert postgres["secureJsonData"]["password"] == "$GRAFANA_DB_PASSWORD"
    assert postgres["jsonData"]["database"] == "tradewatch"


def test_provisioning_has_no_secret_and_no_inputs():
    for path in (mh.GRAFANA_DIR / "provisioning").rglob("*.yml"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"password:\s*(?!\$)\S", text, re.I), f"literal password in {path}"
    for path in DASHBOARDS:
        text = path.read_text(encoding="utf-8")
        assert "${DS_" not in text and "__inputs" not in text, path.name


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
class TestDashboard:
    def test_is_json_with_a_current_schema_version(self, path):
        dashboard = mh.load_dashboard(path)
        assert dashboard["schemaVersion"] in SCHEMA_VERSIONS
        assert dashboard["description"].strip()
        assert "tradewatch" in dashboard["tags"]
        assert "id" not in dashboard or dashboard["id"] is None

    def test_references_only_provisioned_datasources_by_uid(self, path):
        datasources = mh.provisioned_datasources()
        references = list(datasource_references(mh.load_dashboard(path)))
        assert references
        for reference in references:
            uid = reference.get("uid")
            if uid in mh.BUILTIN_DATASOURCE_UIDS:
                continue
            assert uid in datasources, f"unknown datasource uid {uid!r}"
            assert reference.get("type") == datasources[uid]["type"], f"type of {uid!r}"

    def test_panel_ids_are_unique_and_panels_fit_without_overlap(self, path):
        panels = list(mh.iter_panels(mh.load_dashboard(path)))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids))
        cells = {}
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = panel["title"]

    def test_every_panel_has_a_description_and_quantities_have_a_unit(self, path):
        for panel in mh.iter_panels(mh.load_dashboard(path)):
            if panel["type"] == "row":
                continue  # a row only groups panels; Grafana's schema gives it no description
            assert panel.get("description", "").strip(), f"{panel['title']!r} has no description"
            if panel["type"] in QUANTITY_PANELS:
                unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
                assert unit.strip(), f"{panel['title']!r} shows numbers without a unit"

    def test_every_variable_used_is_defined(self, path):
        dashboard = mh.load_dashboard(path)
        defined = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
        defined |= set(mh.BUILTIN_VARIABLES)
        for query in mh.dashboard_queries([path]):
            assert mh.variables_used(query.expr) <= defined, f"{query.origin}: {query.expr}"
        text = path.read_text(encoding="utf-8")
        for name in re.findall(r"var-(\w+)=", text):
            assert name in {"correlation_id"} | defined

    def test_links_point_at_existing_dashboards(self, path):
        uids = {mh.load_dashboard(p)["uid"] for p in DASHBOARDS}
        text = path.read_text(encoding="utf-8")
        targets = set(re.findall(r"/d/([\w-]+)", text))
        assert targets and targets <= uids


def test_trading_overview_links_trades_to_their_logs():
    dashboard = mh.load_dashboard(mh.DASHBOARDS_DIR / "trading-overview.json")
    (table,) = [p for p in mh.iter_panels(dashboard) if p["title"] == "Recent trades"]
    assert table["datasource"]["uid"] == "postgres"
    assert "FROM trades" in table["targets"][0]["rawSql"]
    links = [prop["value"] for o in table["fieldConfig"]["overrides"] for prop in o["properties"]
             if prop["id"] == "links"]
    assert links and "/d/tradewatch-logs?var-correlation_id=${__value.raw}" in links[0][0]["url"]


def test_bot_health_shows_cycle_percentiles_and_broker_latency_per_call():
    dashboard = mh.load_dashboard(mh.DASHBOARDS_DIR / "bot-health.json")
    exprs = " ".join(t["expr"] for p in mh.iter_panels(dashboard) for t in p.get("targets", []))
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(tradewatch_cycle_duration_seconds_bucket" in exprs
    assert "sum by (call, le) (rate(tradewatch_broker_request_duration_seconds_bucket" in exprs
    for metric in ("tradewatch_broker_errors_total", "tradewatch_broker_connected", "tradewatch_orders_total",
                   "process_resident_memory_bytes", "tradewatch_process_cpu_percent",
                   "tradewatch_log_records_dropped_total"):
        assert metric in exprs


def test_logs_dashboard_puts_errors_first_and_has_a_correlation_id_variable():
    dashboard = mh.load_dashboard(mh.DASHBOARDS_DIR / "logs.json")
    log_panels = [p for p in mh.iter_panels(dashboard) if p["type"] == "logs"]
    assert "ERROR" in log_panels[0]["targets"][0]["expr"]
    names = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert names["correlation_id"]["type"] == "textbox"


def test_alerts_dashboard_shows_firing_now_and_the_history_table():
    dashboard = mh.load_dashboard(mh.DASHBOARDS_DIR / "alerts.json")
    sql = " ".join(t.get("rawSql", "") for p in mh.iter_panels(dashboard) for t in p.get("targets", []))
    promql = " ".join(t.get("expr", "") for p in mh.iter_panels(dashboard) for t in p.get("targets", []))
    assert "FROM alerts" in sql and "status = 'firing'" in sql
    assert 'ALERTS{alertstate="firing"' in promql


def test_dashboards_provider_and_home_dashboard_match_the_compose_mounts():
    grafana = mh.load_yaml(mh.COMPOSE_FILE)["services"]["grafana"]
    (provider,) = mh.load_yaml(mh.DASHBOARD_PROVIDERS_FILE)["providers"]
    mount = f"./grafana/dashboards:{provider['options']['path']}:ro"
    assert mount in grafana["volumes"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (mh.DASHBOARDS_DIR / home.rsplit("/", 1)[1]).is_file()
    assert provider["allowUiUpdates"] is False


def test_every_dashboard_matches_grafanas_own_schema():
    assert mh.dashboard_schema_errors(DASHBOARDS) == []


def test_the_schema_check_reports_each_broken_part(tmp_path):
    dashboard = mh.load_dashboard(mh.DASHBOARDS_DIR / "logs.json")
    dashboard["refresh_every"] = "5s"  # not a dashboard key
    panels = [p for p in dashboard["panels"] if p["type"] == "timeseries"]
    panels[0]["options"]["legend"]["displayMode"] = "lisst"  # not a legend mode
    panels[1]["fieldConfig"]["defaults"]["custom"]["drawStyle"] = "bar"  # "bars"
    logs = [p for p in dashboard["panels"] if p["type"] == "logs"]
    logs[0]["gridPos"]["w"] = "24"  # a string
    dashboard["templating"]["list"][0]["refresh"] = "sometimes"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(dashboard), encoding="utf-8")
    errors = mh.dashboard_schema_errors([path])
    where = [e.split(": ", 2)[1] for e in errors]
    assert where == ["dashboard", "variable 'service'".replace("'", '"'),
                     f'panel {panels[0]["id"]} "{panels[0]["title"]}" (timeseries) options',
                     f'panel {panels[1]["id"]} "{panels[1]["title"]}" (timeseries) fieldConfig.defaults.custom',
                     f'panel {logs[0]["id"]} "{logs[0]["title"]}" (logs)'], errors
    assert "refresh_every" in errors[0] and '"lisst"' in errors[2] and '"bars"' in errors[3]


def test_the_schema_package_is_the_grafana_version_compose_runs():
    image = mh.load_yaml(mh.COMPOSE_FILE)["services"]["grafana"]["image"]
    package = json.loads((mh.JS_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"]
    assert image == f"grafana/grafana:{package['@grafana/schema']}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", package["typescript"]), "pinned exactly"


def test_the_trade_link_window_comes_from_the_wall_clock_second_in_the_correlation_id():
    from bot.telemetry.context import new_correlation_id

    before = int(time.time())
    ids = {new_correlation_id() for _ in range(1000)}
    after = int(time.time())
    assert len(ids) == 1000 and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert all(before <= int(i[:8], 16) <= after for i in ids)
    dashboard = mh.load_dashboard(mh.DASHBOARDS_DIR / "trading-overview.json")
    (table,) = [p for p in mh.iter_panels(dashboard) if p["title"] == "Recent trades"]
    sql = table["targets"][0]["rawSql"]
    assert "('x' || substr(correlation_id, 1, 8))::bit(32)::bigint * 1000" in sql
    assert "logged.ms - 60000 AS logs_from" in sql
