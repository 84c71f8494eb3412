"""Grafana Loki in the native stack: which binary, its command line, and its rules for a run.

Why a binary lookup instead of a download: the project must run where no Loki exists (logs then
go to stdout only, said in one line), and must never fetch a prebuilt binary itself. The order is
LOKI_BIN (an explicit choice: a wrong value is an error, not a silent fallback), then `loki` on
PATH. The committed loki/loki.yml is used unmodified; only its ${VAR} defaults are filled in
(ports, data dir, rules dir, Alertmanager, listen addresses, external URL) and, for the
end-to-end test, a few flags and the rule durations named in `stack.configs.Timings`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import yaml

from stack.configs import REPO, Timings

LOKI_CONFIG = REPO / "loki" / "loki.yml"
LOKI_RULES_DIR = REPO / "loki" / "rules"
_RANGE = re.compile(r"\[\s*\d+(?:ms|[smhdwy])\s*\]")


class LokiBinaryError(ValueError):
    """LOKI_BIN names something that is not an executable file (one line, for the user)."""


def find_loki_binary(env: Mapping[str, str] | None = None) -> str | None:
    """Path of the Loki binary to run: $LOKI_BIN, else `loki` on PATH, else None."""
    env = os.environ if env is None else env
    chosen = (env.get("LOKI_BIN") or "").strip()
    if chosen:
        path = Path(chosen)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise LokiBinaryError(f"LOKI_BIN={chosen!r} is not an executable file")
        return str(path.resolve())
    return shutil.which("loki", path=env.get("PATH"))


def loki_rules(timings: Timings) -> dict[str, str]:
    """Relative path (tenant/file) -> text of loki/rules with the Loki overrides of `timings`.

    loki_interval sets every group's `interval`; loki_alert_for an alert's `for`; loki_ranges
    replaces every range selector ([5m], [10m]) of the named alert's expression. Unknown alert
    names raise ValueError so a renamed rule cannot keep its production durations unnoticed.
    """
    remaining_for = dict(timings.loki_alert_for)
    remaining_ranges = dict(timings.loki_ranges)
    rendered: dict[str, str] = {}
    for path in sorted(LOKI_RULES_DIR.rglob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document.get("groups", []):
            if timings.loki_interval:
                group["interval"] = timings.loki_interval
            for rule in group.get("rules", []):
                name = rule.get("alert")
                if name in remaining_for:
                    rule["for"] = remaining_for.pop(name)
                if name in remaining_ranges:
                    window = remaining_ranges.pop(name)
                    rule["expr"] = _RANGE.sub(f"[{window}]", rule["expr"])
        relative = path.relative_to(LOKI_RULES_DIR).as_posix()
        header = f"# Rendered by stack/loki.py from loki/rules/{relative}. Do not edit.\n"
        rendered[relative] = header + yaml.safe_dump(document, sort_keys=False)
    unknown = sorted(set(remaining_for) | set(remaining_ranges))
    if unknown:
        raise ValueError(f"Loki rule overrides name unknown alerts: {', '.join(unknown)}")
    return rendered


def loki_command(binary: str, directory: Path, http_port: int, grpc_port: int, alertmanager_url: str,
                 timings: Timings) -> tuple[list[str], dict[str, str]]:
    """argv and environment of a loopback Loki keeping its data (and rendered rules) in `directory`."""
    rules_dir = LOKI_RULES_DIR
    if timings.loki_rules_changed:
        rules_dir = directory / "rules"
        for relative, text in loki_rules(timings).items():
            target = rules_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    env = dict(os.environ)
    env.update({
        "LOKI_HTTP_PORT": str(http_port), "LOKI_GRPC_PORT": str(grpc_port),
        "LOKI_LISTEN_ADDRESS": "127.0.0.1", "LOKI_DATA_DIR": str(directory / "data"),
        "LOKI_RULES_DIR": str(rules_dir), "ALERTMANAGER_URL": alertmanager_url,
    })  # LOKI_EXTERNAL_URL (alert links) passes through from the caller's environment
    argv = [binary, f"-config.file={LOKI_CONFIG}", "-config.expand-env=true"]
    if timings.loki_interval:
        # How often the ruler evaluates and re-sends firing alerts (production: 1m each).
        argv += [f"-ruler.evaluation-interval={timings.loki_interval}",
                 f"-ruler.resend-delay={timings.loki_interval}"]
    if timings.loki_min_ready:
        argv.append(f"-ingester.min-ready-duration={timings.loki_min_ready}")
    return argv, env
