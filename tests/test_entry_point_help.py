"""Every entry point answers --help with its usage and exit 0, without starting anything.

Run as real subprocesses with settings that would make a start visible: ports already taken and
no token, so anything that went past --help would fail, hang or print a server line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ["exporter", "bench", "bot", "db", "stack", "mt5bridge.server"]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_prints_usage_and_exits_0(module, tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}", "STACK_DIR": str(tmp_path / "stack")}
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {module}")
    assert "Traceback" not in result.stderr and "listening" not in result.stdout + result.stderr
    assert not (tmp_path / "never.db").exists() and not (tmp_path / "stack").exists()  # nothing started
