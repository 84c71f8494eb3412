"""What a fresh native stack (`make stack`) alerts on in its first minutes of accelerated sim time.

Shared by the short check in make test (tests/test_fresh_stack_alerts.py) and the 30-minute one
in make bench (bench/fresh_stack.py). The real stack: Postgres, Prometheus with the committed
rules (prometheus/rules/*.yml), Alertmanager, the sim bridge (clock from the wall clock, as
`make stack` starts it), the bot and the exporter. Every rule's `for:` is divided by the sim's
speed (a 5 min `for:` is 5 simulated minutes), so SIM minutes of trading are judged by the rules
as a real account would be over the same minutes; range windows stay as committed (wider in sim
time, so stricter). Every alert seen pending or firing on any poll is collected.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import monitoring_helpers as mh

sys.path.insert(0, str(mh.REPO))

from stack.configs import Timings  # noqa: E402
from stack.native import NativeStack, StackSettings  # noqa: E402

# A healthy real account raises these too: the dead man's switch fires always, by design.
HEALTHY = {"Watchdog"}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(duration: str) -> float:
    return sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", duration))


# Rules about the process on the wall clock (memory per wall hour), not about trading: their
# `for:` is kept, since dividing it by the sim's speed would judge start-up growth as a leak.
WALL_CLOCK_RULES = {"MemoryGrowing"}


def scaled_for(speed: float) -> dict[str, str]:
    scaled = {}
    for path in mh.prometheus_rule_files():
        for rule in mh.rules_of(path):
            if rule.get("alert") and rule.get("for") and rule["alert"] not in WALL_CLOCK_RULES:
                scaled[rule["alert"]] = f"{max(1, round(_seconds(str(rule['for'])) / speed))}s"
    return scaled


def _alerts(prometheus: str) -> list[dict]:
    with urllib.request.urlopen(prometheus + "/api/v1/alerts", timeout=10) as response:
        return json.load(response)["data"]["alerts"]


def _bot_cycles(prometheus: str) -> float:
    query = urllib.parse.urlencode({"query": "sum(tradewatch_cycles_total)"})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}", timeout=10) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def observe(sim_minutes: float, speed: float = 60.0) -> dict:
    """Start a fresh stack, let it trade `sim_minutes`, return what alerted (name -> states, labels)."""
    root = Path(tempfile.mkdtemp(prefix="tradewatch-fresh-"))
    timings = Timings(scrape_interval="1s", evaluation_interval="1s", alert_for=scaled_for(speed))
    native = NativeStack(StackSettings(root=root, speed=speed, ports={}, timings=timings))
    seen: dict[str, dict] = {}
    try:
        native.up()
        prometheus = native.urls["prometheus"]
        deadline = time.monotonic() + 120
        while _bot_cycles(prometheus) < 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        began = time.monotonic()
        end = began + sim_minutes * 60 / speed
        polls = 0
        while time.monotonic() < end:
            for alert in _alerts(prometheus):
                entry = seen.setdefault(alert["labels"]["alertname"], {"states": set(), "labels": alert["labels"],
                                                                        "value": alert.get("value")})
                entry["states"].add(alert["state"])
            polls += 1
            time.sleep(1.0)
        cycles = _bot_cycles(prometheus)
    finally:
        native.down()
        shutil.rmtree(root, ignore_errors=True)
    return {"alerts": seen, "polls": polls, "cycles": cycles, "sim_minutes": sim_minutes}


# Alerts about money really lost: the sim's clock starts at the wall clock, so which stretch of its
# market the demo trades (and whether it loses over DAILY_LOSS_LIMIT in 30 minutes) differs from run
# to run. A healthy real account that loses that much raises them too: they are the truth, not noise.
EARNED_BY_LOSSES = {"DailyLossLimit", "DrawdownHigh"}
LOSS_HALT_REASONS = {"daily_loss", "drawdown"}  # RiskGuardHalted{reason}: the guard halting on real losses


def _earned(name: str, entry: dict) -> bool:
    if name in EARNED_BY_LOSSES:
        return True
    return name == "RiskGuardHalted" and entry["labels"].get("reason") in LOSS_HALT_REASONS


def unhealthy(result: dict) -> dict[str, dict]:
    """The alerts that fired and that a healthy account would not raise."""
    return {name: entry for name, entry in result["alerts"].items()
            if name not in HEALTHY and not _earned(name, entry) and "firing" in entry["states"]}


def describe(result: dict) -> str:
    bad = unhealthy(result)
    pending = sorted(n for n, e in result["alerts"].items() if n not in HEALTHY and n not in bad
                     and not (_earned(n, e) and "firing" in e["states"]))
    earned = sorted(n for n, e in result["alerts"].items() if _earned(n, e) and "firing" in e["states"])
    listed = ", ".join(f"{n} (value {e['value']}, labels {e['labels']})" for n, e in sorted(bad.items()))
    return (f"fresh stack, {result['sim_minutes']:g} simulated minutes ({result['cycles']:g} bot cycles, "
            f"{result['polls']} polls): {len(bad)} alerts fired that a healthy account would not raise"
            + (f": {listed}" if listed else "") + f"; pending only: {', '.join(pending) or 'none'}"
            + f"; earned by real losses: {', '.join(earned) or 'none'}")
