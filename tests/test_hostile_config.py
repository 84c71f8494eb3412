"""Hostile configuration, every entry point: each bad value exits 2 with one line naming the setting.

The table (tests/hostile_config_cases.py) is the suite: the bot (`check-config`, `run` and its
other sub-commands), the exporter, the bridge server, `python -m db` and `python -m stack`, fed the values of issue 10
(URLs without a host or with port 99999, unbindable or empty hosts, busy ports, unwritable
files, native mode on Linux, Unicode or underscored digits, control characters, over-long
tokens, contradicting settings, unknown symbols) plus, generated from the bot's settings table,
every numeric setting non-numeric, in non-ASCII digits and out of range on both sides, and every
setting with a control character inside.

Cases run in-process through each entry point's `main()` (fast); a sample runs as real
subprocesses, at least one per entry point, to prove the exit status and a stderr without a
traceback. Where a case would start serving, the serving call is replaced by one that raises,
so a value that is wrongly accepted fails its case instead of hanging the suite.
At the end the figures are printed: configs tried / exited 2 with the setting named.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from dataclasses import fields
from pathlib import Path

import pytest
from hostile_config_cases import CASES, ENTRY_POINTS, TOKEN, Case

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES: Counter = Counter()


# --- running one case -----------------------------------------------------------------------------


class Accepted(Exception):
    """Raised where a wrongly accepted configuration would start serving."""


def _environment_names() -> set[str]:
    names = {f.metadata["env"] for f in fields(Settings)}
    return names | {"EXPORTER_HOST", "EXPORTER_PORT", "MT5_BRIDGE_TOKEN", "MT5_BRIDGE_TIMEOUT", "SIM_SPEED",
                    "STACK_DIR", "LOKI_URL", "DATABASE_URL"}


@pytest.fixture
def busy_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield listener.getsockname()[1]


def _fill(text: str, tmp: Path, busy: int) -> str:
    regular = tmp / "regular-file"
    regular.write_text("not a folder")
    corrupt = tmp / "corrupt-state.json"
    corrupt.write_text("{not json")
    return (text.replace("{tmp}", str(tmp)).replace("{file}", str(regular)).replace("{busy}", str(busy))
            .replace("{corrupt}", str(corrupt)))


def _environment(case: Case, tmp: Path, busy: int) -> dict[str, str]:
    """The case's settings over a minimal valid base (loopback, free ports, files under tmp)."""
    base = {
        "bot": {"DATABASE_URL": f"sqlite:///{tmp}/bot.db", "METRICS_HOST": "127.0.0.1", "METRICS_PORT": "0",
                "LOG_LEVEL": "WARNING", "SIM_SPEED": "1000"},
        "exporter": {"DATABASE_URL": f"sqlite:///{tmp}/store.db", "EXPORTER_HOST": "127.0.0.1", "EXPORTER_PORT": "0"},
        "bridge": {"MT5_BRIDGE_TOKEN": TOKEN},
        "db": {},
        "stack": {"STACK_DIR": str(tmp / "stack")},
    }[case.entry]
    return {key: _fill(value, tmp, busy) for key, value in {**base, **case.env}.items()}


def _argv(case: Case, tmp: Path, busy: int) -> list[str]:
    argv = [_fill(arg, tmp, busy) for arg in case.argv]
    if case.entry == "bridge" and "--port" not in argv:
        argv += ["--port", "0"]
    return argv


def _in_process(case: Case, argv: list[str], monkeypatch) -> int:
    """Call the entry point's main(); what would start serving raises Accepted instead."""
    if case.entry == "bot":
        from bot.cli import main

        return main(argv)
    if case.entry == "exporter":
        import exporter.__main__ as entry

        monkeypatch.setattr(entry, "create_bounded_server", _accepted)
        return entry.main()
    if case.entry == "bridge":
        import mt5bridge.server as entry

        monkeypatch.setattr(entry.BridgeServer, "start", _accepted)
        return entry.main(argv)
    if case.entry == "db":
        import db.__main__ as entry

        return entry.main(argv)
    import stack.__main__ as entry

    monkeypatch.setattr(entry.NativeStack, "up", _accepted)
    return entry.main(argv)


def _accepted(*_args, **_kwargs):
    raise Accepted("the configuration was accepted")


def _exit_status(call) -> int:
    try:
        return call()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No inherited settings, no .env, the logging and signal handlers restored afterwards."""
    for name in _environment_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    handlers_before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield tmp_path
    root.handlers[:] = handlers
    root.setLevel(level)
    for sig, handler in handlers_before.items():
        signal.signal(sig, handler)


def _judge(case: Case, status: int, stdout: str, stderr: str) -> list[str]:
    """What is wrong with the outcome (empty: exit 2, one stderr line naming the setting)."""
    problems = []
    lines = stderr.strip().splitlines()
    if status != 2:
        problems.append(f"exit status {status}")
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines")
    if "Traceback" in stderr:
        problems.append("a traceback")
    if not lines or not re.search(rf"(?<![\w-]){re.escape(case.setting)}(?![\w-])", lines[-1]):
        problems.append(f"{case.setting} not named")
    if case.secret and case.secret in stdout + stderr:
        problems.append("the secret is shown")
    return problems


@pytest.fixture(scope="module", autouse=True)
def figures(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    by_entry = ", ".join(f"{e} {OUTCOMES['tried-' + e]}" for e in ENTRY_POINTS)
    line = (f"hostile config figures: {OUTCOMES['tried']} configs tried / {OUTCOMES['named']} exited 2 with "
            f"the setting named / {OUTCOMES['tracebacks']} tracebacks ({by_entry}); as real processes: "
            f"{OUTCOMES['tried-subprocess']} tried / {OUTCOMES['named-subprocess']} exited 2 with the setting named")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown under `pytest -q` too, not captured
            reporter.write("\n")
            reporter.write_line(line)


def _record(case: Case, problems: list[str], stderr: str, kind: str) -> None:
    if kind == "subprocess":
        OUTCOMES["tried-subprocess"] += 1
        OUTCOMES["named-subprocess"] += not problems
    else:
        OUTCOMES["tried"] += 1
        OUTCOMES[f"tried-{case.entry}"] += 1
        OUTCOMES["named"] += not problems
    OUTCOMES["tracebacks"] += "Traceback" in stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_config_exits_2_with_one_line_naming_the_setting(case, isolated, busy_port, monkeypatch, capsys):
    for key, value in _environment(case, isolated, busy_port).items():
        monkeypatch.setenv(key, value)
    status = _exit_status(lambda: _in_process(case, _argv(case, isolated, busy_port), monkeypatch))
    out = capsys.readouterr()
    problems = _judge(case, status, out.out, out.err)
    _record(case, problems, out.err, "in-process")
    assert not problems, f"{case.id}: {', '.join(problems)}; stderr: {out.err.strip()[:500]!r}"


SUBPROCESS_CASES = [c for c in CASES if c.subprocess] + [
    Case("bridge", "--port", {}, ("--backend", "sim", "--port", "70000"), subprocess=True),  # python -m mt5bridge
]
MODULES = {"bot": "bot", "exporter": "exporter", "bridge": "mt5bridge.server", "db": "db", "stack": "stack"}


@pytest.mark.parametrize("number", range(len(SUBPROCESS_CASES)))
def test_bad_config_as_a_real_process(number, tmp_path, busy_port):
    case = SUBPROCESS_CASES[number]
    module = MODULES[case.entry] if number < len(SUBPROCESS_CASES) - 1 else "mt5bridge"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
           **_environment(case, tmp_path, busy_port)}
    done = subprocess.run([sys.executable, "-m", module, *_argv(case, tmp_path, busy_port)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    problems = _judge(case, done.returncode, done.stdout, done.stderr)
    _record(case, problems, done.stderr, "subprocess")
    assert not problems, f"python -m {module} {case.id}: {', '.join(problems)}; stderr: {done.stderr[-800:]!r}"


def test_the_table_covers_every_entry_point_and_the_issue_count():
    entries = Counter(case.entry for case in CASES)
    assert set(entries) == set(ENTRY_POINTS)
    assert len(CASES) >= 126
    assert {c.entry for c in SUBPROCESS_CASES} == set(ENTRY_POINTS)
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
