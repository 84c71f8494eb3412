"""Background processes that outlive the command that started them, stopped by pid file only.

Why pid files with a start time: `make stack` starts the services and exits; `make stack-down`
is a different process that must stop exactly those services. A pid alone can be reused by an
unrelated process after a reboot or a crash, so each record also keeps the process' creation
time (psutil), and a record that no longer matches is treated as already stopped. Each service
runs in its own session (process group), so stopping it also stops anything it spawned; nothing
is ever looked up or killed by name.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger("stack.processes")

STOP_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file holds: enough to find the very process again, and nothing secret."""

    name: str
    pid: int
    create_time: float
    argv: tuple[str, ...]

    def matching_process(self) -> psutil.Process | None:
        """The live process this record describes, or None (gone, or the pid was reused)."""
        try:
            process = psutil.Process(self.pid)
            if abs(process.create_time() - self.create_time) > 0.01:
                return None
            if process.status() == psutil.STATUS_ZOMBIE:
                process.wait(timeout=0)  # our own child: reap it
                return None
            return process
        except (psutil.NoSuchProcess, psutil.TimeoutExpired, ChildProcessError):
            return None


class ProcessTable:
    """Pid files of one stack, one `<name>.pid` (JSON) per service under `run_dir`."""

    def __init__(self, run_dir: Path, log_dir: Path) -> None:
        self.run_dir = run_dir
        self.log_dir = log_dir
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # started by this very process

    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def record(self, name: str) -> ProcessRecord | None:
        path = self.pid_file(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return ProcessRecord(data["name"], int(data["pid"]), float(data["create_time"]), tuple(data["argv"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.run_dir.glob("*.pid")) if self.run_dir.is_dir() else []

    def running(self, name: str) -> bool:
        record = self.record(name)
        return record is not None and record.matching_process() is not None

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> ProcessRecord:
        """Start `argv` in a new session, output appended to logs/<name>.log, and record it."""
        if self.running(name):
            raise RuntimeError(f"{name} is already running (pid file {self.pid_file(name)})")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file(name), "ab") as output:
            process = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        record = ProcessRecord(name, process.pid, psutil.Process(process.pid).create_time(), tuple(argv))
        self.pid_file(name).write_text(json.dumps(record.__dict__ | {"argv": list(argv)}), encoding="utf-8")
        self._children[name] = process
        log.debug("started %s (pid %d)", name, process.pid)
        return record

    def stop(self, name: str, grace: float = STOP_GRACE_SECONDS) -> bool:
        """SIGTERM the process group of `name`, SIGKILL after `grace` s; True when something was stopped."""
        record = self.record(name)
        self.pid_file(name).unlink(missing_ok=True)
        process = record.matching_process() if record else None
        if process is None:
            child = self._children.pop(name, None)
            if child is not None:
                child.wait(timeout=grace)
            return False
        _signal_group(record.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except psutil.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: killing it", name, grace)
            _signal_group(record.pid, signal.SIGKILL)
            process.wait(timeout=grace)
        _signal_group(record.pid, signal.SIGKILL)  # leftovers of the group, if any
        child = self._children.pop(name, None)
        if child is not None:
            child.wait(timeout=grace)
        return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
