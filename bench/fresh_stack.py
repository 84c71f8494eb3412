"""Alerts of a fresh native stack over 2 simulated hours (target: none a healthy account would not raise).

The long version of tests/test_fresh_stack_alerts.py (which judges the first 30 simulated minutes
in make test): the same stack, rules and `for:` scaling (tests/fresh_stack_alerts.py), 4 times
longer, so alerts that need more history (drawdown, rejections over 5 minutes) get their chance.
"""

from __future__ import annotations

import sys
from pathlib import Path

SIM_MINUTES = 120


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import fresh_stack_alerts as fsa

    result = fsa.observe(sim_minutes=SIM_MINUTES)
    sys.stdout.write(f"{fsa.describe(result)}\n")
    sys.stdout.write(f"alerts fired in a fresh stack (target 0): {len(fsa.unhealthy(result))}\n")
    return 1 if fsa.unhealthy(result) else 0
