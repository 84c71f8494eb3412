"""The committed Prometheus and Alertmanager configs, rendered for a stack on loopback.

Why render instead of separate native configs: the stack must run the SAME routing, rules and
scrape jobs as docker-compose.yml. Only addresses change (compose service names -> 127.0.0.1
ports, via tests/monitoring_helpers.prometheus_config_with_targets and
deploy/render_alertmanager.py --sink-url), plus the explicit `Timings` overrides below, which
default to "as committed" and exist so the end-to-end test can run in minutes.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_RULES_DIR = REPO / "prometheus" / "rules"
ALERTMANAGER_SOURCE = REPO / "alertmanager" / "alertmanager.yml"
RENDER_ALERTMANAGER = REPO / "deploy" / "render_alertmanager.py"
MONITORING_HELPERS = REPO / "tests" / "monitoring_helpers.py"


@dataclass(frozen=True)
class Timings:
    """Overrides of committed durations; every empty field means "as committed".

    scrape_interval / evaluation_interval: Prometheus `global:` (e.g. "2s").
    alert_for: alert name -> `for:` duration, e.g. {"BrokerDisconnected": "10s"}; unknown names
        raise ValueError so a renamed alert cannot silently keep its long `for:`.
    group_wait / group_interval: set on the Alertmanager root route and every child route.
    """

    scrape_interval: str | None = None
    evaluation_interval: str | None = None
    alert_for: Mapping[str, str] = field(default_factory=dict)
    group_wait: str | None = None
    group_interval: str | None = None

    @property
    def rules_changed(self) -> bool:
        return bool(self.alert_for)


def monitoring_helpers() -> ModuleType:
    """tests/monitoring_helpers.py (the one place that knows how to repoint prometheus.yml)."""
    module = sys.modules.get("monitoring_helpers")
    if module is None:
        spec = importlib.util.spec_from_file_location("monitoring_helpers", MONITORING_HELPERS)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["monitoring_helpers"] = module
        spec.loader.exec_module(module)
    return module


def prometheus_config(targets: Mapping[str, Sequence[str]], alertmanager: str, rules_dir: Path,
                      timings: Timings) -> dict[str, Any]:
    """prometheus.yml with loopback targets; jobs missing from `targets` (e.g. loki) are dropped."""
    config = monitoring_helpers().prometheus_config_with_targets(targets, alertmanagers=[alertmanager])
    config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] in targets]
    config["rule_files"] = [str(rules_dir / "*.yml")]
    for key in ("scrape_interval", "evaluation_interval"):
        value = getattr(timings, key)
        if value:
            config["global"][key] = value
    if timings.scrape_interval:
        config["global"]["scrape_timeout"] = timings.scrape_interval
    return config


def prometheus_rules(timings: Timings) -> dict[str, str]:
    """File name -> text of the committed rule files, with the `alert_for` overrides applied."""
    rendered: dict[str, str] = {}
    remaining = dict(timings.alert_for)
    for path in sorted(PROMETHEUS_RULES_DIR.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document.get("groups", []):
            for rule in group.get("rules", []):
                if rule.get("alert") in remaining:
                    rule["for"] = remaining.pop(rule["alert"])
        header = f"# Rendered by stack/configs.py from prometheus/rules/{path.name}. Do not edit.\n"
        rendered[path.name] = header + yaml.safe_dump(document, sort_keys=False)
    if remaining:
        raise ValueError(f"alert_for names unknown alerts: {', '.join(sorted(remaining))}")
    return rendered


def write_alertmanager_config(output: Path, sink_url: str, timings: Timings, python: str = sys.executable,
                              env: Mapping[str, str] | None = None) -> None:
    """Run deploy/render_alertmanager.py (sink -> `sink_url`), then apply the route timings."""
    result = subprocess.run(
        [python, str(RENDER_ALERTMANAGER), "--source", str(ALERTMANAGER_SOURCE), "--output", str(output),
         "--sink-url", sink_url], env=None if env is None else dict(env), capture_output=True, text=True,
        timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"render_alertmanager.py failed: {(result.stderr or result.stdout).strip()}")
    if not (timings.group_wait or timings.group_interval):
        return
    text = output.read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    routes = [config["route"], *config["route"].get("routes", [])]
    for route in routes:
        for key in ("group_wait", "group_interval"):
            value = getattr(timings, key)
            if value:
                route[key] = value
    header = text.splitlines()[0] + " Route timings overridden by stack/configs.py.\n"
    output.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
