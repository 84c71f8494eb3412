"""The committed Prometheus and Alertmanager configs, rendered for a stack on loopback.

Why render instead of separate native configs: the stack must run the SAME routing, rules and
scrape jobs as docker-compose.yml. Only addresses change (compose service names -> 127.0.0.1
ports, via prometheus_config_with_targets and
deploy/render_alertmanager.py --sink-url), plus the explicit `Timings` overrides below, which
default to "as committed" and exist so the end-to-end test can run in minutes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_RULES_DIR = REPO / "prometheus" / "rules"
ALERTMANAGER_SOURCE = REPO / "alertmanager" / "alertmanager.yml"
RENDER_ALERTMANAGER = REPO / "deploy" / "render_alertmanager.py"
PROMETHEUS_CONFIG = REPO / "prometheus" / "prometheus.yml"


@dataclass(frozen=True)
class Timings:
    """Overrides of committed durations; every empty field means "as committed".

    scrape_interval / evaluation_interval: Prometheus `global:` (e.g. "2s").
    alert_for: alert name -> `for:` duration, e.g. {"BrokerDisconnected": "10s"}; unknown names
        raise ValueError so a renamed alert cannot silently keep its long `for:`.
    group_wait / group_interval: set on the Alertmanager root route and every child route.
    loki_interval: Loki rule groups' `interval` and the ruler's evaluation/resend period.
    loki_alert_for / loki_ranges: Loki alert name -> `for:` / the window replacing every range
        selector of its expression (see stack/loki.py); unknown names raise ValueError.
    loki_min_ready: Loki's ingester min-ready duration (production 15s: a slower start).
    """

    scrape_interval: str | None = None
    evaluation_interval: str | None = None
    alert_for: Mapping[str, str] = field(default_factory=dict)
    group_wait: str | None = None
    group_interval: str | None = None
    loki_interval: str | None = None
    loki_alert_for: Mapping[str, str] = field(default_factory=dict)
    loki_ranges: Mapping[str, str] = field(default_factory=dict)
    loki_min_ready: str | None = None

    @property
    def rules_changed(self) -> bool:
        return bool(self.alert_for)

    @property
    def loki_rules_changed(self) -> bool:
        return bool(self.loki_interval or self.loki_alert_for or self.loki_ranges)


def prometheus_config_with_targets(targets: Mapping[str, Sequence[str]],
                                   alertmanagers: Sequence[str] | None = None) -> dict[str, Any]:
    """The committed prometheus.yml with the static targets of the named jobs replaced.

    prometheus_config_with_targets({"bot": ["127.0.0.1:8000"], ...}, alertmanagers=["127.0.0.1:9093"]).
    Unknown job names raise ValueError.
    """
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    unknown = sorted(set(targets) - set(jobs))
    if unknown:
        raise ValueError(f"unknown scrape jobs {unknown}; known: {sorted(jobs)}")
    for name, addresses in targets.items():
        jobs[name]["static_configs"] = [{"targets": list(addresses)}]
    if alertmanagers is not None:
        for alerting in config.get("alerting", {}).get("alertmanagers", []):
            alerting["static_configs"] = [{"targets": list(alertmanagers)}]
    return config


def prometheus_config(targets: Mapping[str, Sequence[str]], alertmanager: str, rules_dir: Path,
                      timings: Timings) -> dict[str, Any]:
    """prometheus.yml with loopback targets; jobs missing from `targets` (e.g. loki) are dropped."""
    config = prometheus_config_with_targets(targets, alertmanagers=[alertmanager])
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
                              env: Mapping[str, str] | None = None, sink_token_file: Path | None = None) -> None:
    """Run deploy/render_alertmanager.py (sink -> `sink_url`, its token from `sink_token_file`),
    then apply the route timings."""
    token_args = ["--sink-token-file", str(sink_token_file)] if sink_token_file else []
    result = subprocess.run(
        [python, str(RENDER_ALERTMANAGER), "--source", str(ALERTMANAGER_SOURCE), "--output", str(output),
         "--sink-url", sink_url, *token_args], env=None if env is None else dict(env), capture_output=True,
        text=True, timeout=60, check=False)
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
