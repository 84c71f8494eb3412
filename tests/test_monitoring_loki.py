"""Loki: the LogQL of dashboards and ruler rules through a real LogQL parser, and the config's shape.

The parser is Grafana's own lezer grammar for LogQL (tests/js, installed with `npm ci` from the
committed lock file when node_modules is missing). No Loki binary exists for Debian, so the
config is checked for the settings the issue requires; a live Loki checks it end to end.
"""

from __future__ import annotations

import re

import monitoring_helpers as mh
import pytest
import yaml

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
    ruler = config["ruler"]
    assert ruler["alertmanager_url"] == "http://alertmanager:9093"
    assert ruler["enable_alertmanager_v2"] is True
    assert ruler["storage"] == {"type": "local", "local": {"directory": "/etc/loki/rules"}}


def test_compose_mounts_what_loki_config_expects():
    service = mh.load_yaml(mh.COMPOSE_FILE)["services"]["loki"]
    assert "./loki/rules:/etc/loki/rules:ro" in service["volumes"]
    assert "./loki/loki.yml:/etc/loki/loki.yml:ro" in service["volumes"]
    assert "-config.expand-env=true" in service["command"]
    assert any(v.startswith("loki-data:/loki") for v in service["volumes"])
