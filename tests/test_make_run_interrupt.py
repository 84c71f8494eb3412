"""`make run` on a terminal: Ctrl-C stops the bot cleanly and make exits 0 (not 130, "Interrupt").

A real pseudo-terminal: make runs as the leader of a new session with the pty as its controlling
terminal, exactly as under a shell; ^C is typed into the pty, so the line discipline sends SIGINT
to the terminal's foreground process group. Also checks LOG_FORMAT=auto picks the console lines
on a terminal, SIM_START=now (the sim clock near the wall clock) and the run summary at exit.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import termios
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _read_until(master: int, pattern: str, seen: bytearray, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, seen.decode("utf-8", "replace")):
            return True
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return bool(re.search(pattern, seen.decode("utf-8", "replace")))
            if not chunk:
                break
            seen.extend(chunk)
    return bool(re.search(pattern, seen.decode("utf-8", "replace")))


def test_ctrl_c_in_make_run_exits_0_with_a_summary(tmp_path):
    master, slave = os.openpty()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}", "METRICS_PORT": "0",
           "SIM_SPEED": "600", "CYCLE_SECONDS": "30", "TERM": "xterm"}
    env.pop("LOG_FORMAT", None)
    env.pop("SIM_START", None)
    started = datetime.now(UTC)
    make = subprocess.Popen(["make", "-s", "-C", str(ROOT), "run"], stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True, preexec_fn=_controlling_tty)
    os.close(slave)
    seen = bytearray()
    try:
        assert _read_until(master, r"cycle 3 ok", seen, 180), seen.decode("utf-8", "replace")[-3000:]
        os.write(master, b"\x03")  # Ctrl-C
        assert _read_until(master, r"bot stopped", seen, 60), seen.decode("utf-8", "replace")[-3000:]
        status = make.wait(timeout=60)
    finally:
        if make.poll() is None:
            make.kill()
            make.wait()
        os.close(master)
    text = seen.decode("utf-8", "replace")
    assert status == 0, text[-3000:]
    for bad in ("Interrupt", "Traceback", "Logging error"):
        at = text.find(bad)
        assert at < 0, text[max(0, at - 1500):at + 4000]  # the whole traceback, to find its cause
    assert not re.search(r'^\{"timestamp"', text, re.M)  # a terminal: console lines, not JSON
    assert re.search(r"^\d\d:\d\d:\d\d .*INFO .*bot\.engine +cycle 1 ok", text, re.M)
    summary = re.search(r"run summary: (\d+) cycles \((\d+) failed\); orders: .*; trades \d+ opened, \d+ closed; P&L ", text)
    assert summary and int(summary.group(1)) >= 3 and summary.group(2) == "0"
    # SIM_START=now: the broker time of the run is the wall clock (plus the accelerated minutes)
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    with create_engine(f"sqlite:///{tmp_path / 'run.db'}").connect() as connection:
        first = connection.execute(sql("SELECT min(time) FROM account_snapshots")).scalar()
    first = datetime.fromisoformat(str(first)).replace(tzinfo=UTC)
    assert abs((first - started).total_seconds()) < 3600
