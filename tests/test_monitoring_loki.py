"""Loki: the LogQL of dashboards and ruler rules through a real LogQL parser, and the config's shape.

The parser is Grafana's own lezer grammar for LogQL (tests/js, installed with `npm ci` from the
committed lock file when node_modules is missing). The config is checked here for the settings
the issue requires, and stack/loki.py (binary lookup, rule overrides) on its own; the live Loki
of tests/test_stack_e2e.py runs every expression and rule end to end.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys

import monitoring_helpers as mh
import pytest
import yaml

from stack.configs import Timings
from stack.loki import LokiBinaryError, find_loki_binary, loki_command, loki_rules

ENV_DEFAULT = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def loki_config_as_started_by_compose() -> dict:
    """loki.yml as Loki reads it with -config.expand-env=true and no variables set."""
    text = mh.LOKI_CONFIG.read_text(encoding="utf-8")
    missing_default = [m.group(1) for m in ENV_DEFAULT.finditer(text) if m.group(2) is None]
    assert not missing_default, f"variables without a default in loki.yml: {missing_default}"
    return yaml.safe_load(ENV_DEFAULT.sub(lambda m: m.group(2), text))


def test_every_logql_expression_parses():
    queries = mh.logql_queries()
    origins = {q.origin.split(":")[0] for q in queries}
    assert {"logs.json", "loki/rules/fake/tradewatch-logs.yml"} <= origins
    assert mh.logql_syntax_errors(queries) == []


@pytest.mark.parametrize("broken", [
    '{service="bot"',
    'sum by (account) (rate({service="bot"}))',
    '{service="bot"} |= ',
    'count_over_time({service="bot"} [5m]) >',
])
def test_the_logql_check_reports_broken_expressions(broken):
    errors = mh.logql_syntax_errors([mh.Query("logql", broken, "broken", "panel")])
    assert len(errors) == 1 and errors[0].startswith("broken:")


def test_structured_metadata_filter_by_correlation_id_is_used():
    exprs = [q.expr for q in mh.logql_queries()]
    assert any(re.search(r'\| correlation_id="\$correlation_id"', e) for e in exprs)


@pytest.mark.parametrize("path", mh.loki_rule_files(), ids=lambda p: p.name)
def test_loki_rules_are_in_ruler_format_with_texts(path):
    assert path.parent == mh.LOKI_RULES_DIR / "fake", "with auth off Loki reads rules of tenant 'fake' only"
    rules = mh.rules_of(path)
    assert {r["alert"] for r in rules} >= {"ErrorLogRateHigh", "RejectedOrdersBurst"}
    for rule in rules:
        assert rule["labels"]["severity"] in mh.SEVERITIES
        for key in ("summary", "description", "action"):
            assert rule["annotations"][key].strip()


def test_loki_config_has_tsdb_v13_filesystem_retention_and_ruler():
    config = loki_config_as_started_by_compose()
    assert config["auth_enabled"] is False
    (schema,) = config["schema_config"]["configs"]
    assert (schema["store"], schema["schema"], schema["object_store"]) == ("tsdb", "v13", "filesystem")
    assert schema["index"]["period"] == "24h"
    assert "filesystem" in config["common"]["storage"]
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"
    assert re.fullmatch(r"[0-9]+[hd]", config["limits_config"]["retention_period"])
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["server"]["http_listen_address"] == config["server"]["grpc_listen_address"] == "127.0.0.1"
    ruler = config["ruler"]
    assert ruler["external_url"].startswith("http"), "absolute links in the alerts the ruler sends"
    assert ruler["alertmanager_url"] == "http://alertmanager:9093"
    assert ruler["enable_alertmanager_v2"] is True
    assert ruler["storage"] == {"type": "local", "local": {"directory": "/etc/loki/rules"}}


def test_compose_mounts_what_loki_config_expects():
    service = mh.load_yaml(mh.COMPOSE_FILE)["services"]["loki"]
    assert "./loki/rules:/etc/loki/rules:ro" in service["volumes"]
    assert "./loki/loki.yml:/etc/loki/loki.yml:ro" in service["volumes"]
    assert "-config.expand-env=true" in service["command"]
    assert any(v.startswith("loki-data:/loki") for v in service["volumes"])


def test_compose_listens_on_the_container_network_and_checks_health_on_the_same_port():
    service = mh.load_yaml(mh.COMPOSE_FILE)["services"]["loki"]
    environment = service["environment"]
    assert environment["LOKI_LISTEN_ADDRESS"] == "0.0.0.0"
    port = environment["LOKI_HTTP_PORT"]
    assert port == "${LOKI_HTTP_PORT:-3100}"
    assert f"-health.url=http://127.0.0.1:{port}/ready" in service["healthcheck"]["test"]
    assert environment["LOKI_EXTERNAL_URL"] == "${GRAFANA_ROOT_URL:-http://localhost:3000}"


def _executable(path):
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_loki_binary_is_loki_bin_else_loki_on_path_else_none(tmp_path):
    chosen = _executable(tmp_path / "my-loki")
    on_path = tmp_path / "bin"
    on_path.mkdir()
    _executable(on_path / "loki")
    assert find_loki_binary({"LOKI_BIN": str(chosen), "PATH": str(on_path)}) == str(chosen)
    assert find_loki_binary({"PATH": str(on_path)}) == str(on_path / "loki")
    assert find_loki_binary({"PATH": str(tmp_path / "empty")}) is None
    with pytest.raises(LokiBinaryError, match="LOKI_BIN='/nowhere/loki' is not an executable file"):
        find_loki_binary({"LOKI_BIN": "/nowhere/loki", "PATH": str(on_path)})


def test_make_stack_refuses_a_bad_loki_bin_in_one_line(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "LOKI_URL"}
    env |= {"STACK_DIR": str(tmp_path / "s"), "LOKI_BIN": str(tmp_path / "nope")}
    result = subprocess.run([sys.executable, "-m", "stack", "up"], cwd=mh.REPO, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode in (1, 2)  # a refused start (the config-validation work may make it 2)
    assert result.stderr.strip().splitlines() == [
        f"ERROR stack: LOKI_BIN={str(tmp_path / 'nope')!r} is not an executable file"]
    assert not (tmp_path / "s" / "run").exists(), "nothing was started"


def test_without_a_loki_binary_the_stack_says_so_once_and_runs_without_loki(tmp_path, monkeypatch, caplog):
    from stack.native import NativeStack, StackSettings

    monkeypatch.delenv("LOKI_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    stack = NativeStack(StackSettings(root=tmp_path / "t"))
    stack._choose_loki()  # noqa: SLF001 - the decision `up` makes first
    assert not stack.runs_loki and stack.loki_url is None and "loki" not in stack.services
    assert [r.getMessage() for r in caplog.records if r.name == "stack"] == [
        "no Loki binary (set LOKI_BIN or put `loki` on PATH): logs go to stdout only"]


def test_rule_overrides_change_only_what_they_name_and_reject_unknown_alerts():
    committed = {p.relative_to(mh.LOKI_RULES_DIR).as_posix(): mh.load_yaml(p) for p in mh.loki_rule_files()}
    assert {name: yaml.safe_load(text) for name, text in loki_rules(Timings()).items()} == committed
    timings = Timings(loki_interval="1s", loki_alert_for={"ErrorLogRateHigh": "2s"},
                      loki_ranges={"RejectedOrdersBurst": "30s"})
    rendered = {name: yaml.safe_load(text) for name, text in loki_rules(timings).items()}
    (group,) = rendered["fake/tradewatch-logs.yml"]["groups"]
    rules = {rule["alert"]: rule for rule in group["rules"]}
    assert group["interval"] == "1s" and rules["ErrorLogRateHigh"]["for"] == "2s"
    assert "[30s]" in rules["RejectedOrdersBurst"]["expr"] and "[10m]" not in rules["RejectedOrdersBurst"]["expr"]
    assert "[5m]" in rules["ErrorLogRateHigh"]["expr"]
    for name in ("ErrorLogRateHigh", "RejectedOrdersBurst"):
        assert rules[name]["labels"] == {r["alert"]: r for r in mh.rules_of(
            mh.LOKI_RULES_DIR / "fake" / "tradewatch-logs.yml")}[name]["labels"]
    with pytest.raises(ValueError, match="NoSuchRule"):
        loki_rules(Timings(loki_ranges={"NoSuchRule": "1s"}))


def test_the_native_loki_runs_the_committed_config_on_loopback(tmp_path):
    argv, env = loki_command("/opt/loki", tmp_path, 3101, 9096, "http://127.0.0.1:9093", Timings())
    assert argv == ["/opt/loki", f"-config.file={mh.LOKI_CONFIG}", "-config.expand-env=true"]
    assert (env["LOKI_LISTEN_ADDRESS"], env["LOKI_HTTP_PORT"], env["LOKI_GRPC_PORT"]) == ("127.0.0.1", "3101", "9096")
    assert env["LOKI_RULES_DIR"] == str(mh.LOKI_RULES_DIR) and env["LOKI_DATA_DIR"] == str(tmp_path / "data")
    assert env["ALERTMANAGER_URL"] == "http://127.0.0.1:9093"
