"""Hostile configuration, every entry point: each bad value exits 2 with one line naming the setting.

The table below is the suite: the bot (`check-config`, `run` and its other sub-commands), the
exporter, the bridge server, `python -m db` and `python -m stack`, fed the values of issue 10
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
from dataclasses import dataclass, field, fields
from pathlib import Path

import pytest

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hostile-suite-token-0123456789"
SECRET = "hunter2-very-secret"
LONG_TOKEN = "t" * 2000
NUMERIC_TYPES = ("int", "float", "Decimal", "int | None")


@dataclass(frozen=True)
class Case:
    entry: str  # bot | exporter | bridge | db | stack
    setting: str  # the name the error line must carry
    env: dict[str, str] = field(default_factory=dict)
    argv: tuple[str, ...] = ()
    secret: str | None = None  # must appear nowhere in the output
    subprocess: bool = False  # also run as a real process

    @property
    def id(self) -> str:
        shown = " ".join([*(f"{k}={v}" for k, v in self.env.items()), *self.argv])
        shown = re.sub(r"[^\w.:=/+\\-]+", "_", shown.encode("unicode_escape").decode("ascii"))[:60]
        return f"{self.entry}-{self.setting}-{shown}"


def bot(setting, argv=("check-config",), secret=None, subprocess=False, **env):
    return Case("bot", setting, env, tuple(argv), secret, subprocess)


def run(setting, secret=None, subprocess=False, **env):
    return bot(setting, ("run", "--cycles", "1"), secret, subprocess, **env)


def exporter(setting, secret=None, subprocess=False, **env):
    return Case("exporter", setting, env, (), secret, subprocess)


def bridge(setting, *argv, env=None, subprocess=False, secret=None):
    return Case("bridge", setting, env or {}, ("--backend", "sim", *argv) if "--backend" not in argv else argv,
                secret, subprocess)


def db(setting, *argv, env=None, secret=None, subprocess=False):
    return Case("db", setting, env or {}, argv, secret, subprocess)


def stack(setting, *argv, subprocess=False, **env):
    return Case("stack", setting, env, argv or ("up",), None, subprocess)


# Placeholders filled per case: {tmp} a fresh folder, {file} an existing regular file,
# {busy} a port with a live listener on 127.0.0.1, {corrupt} a file that is not a sim state.
HAND_WRITTEN = [
    # --- the bot: URLs ------------------------------------------------------------------------
    bot("LOKI_URL", LOKI_URL="http://", subprocess=True),
    bot("LOKI_URL", LOKI_URL="loki:3100"),
    bot("LOKI_URL", LOKI_URL="http://loki:99999"),
    bot("LOKI_URL", LOKI_URL="http://loki:abc"),
    bot("LOKI_URL", LOKI_URL="ftp://loki:3100"),
    bot("LOKI_URL", LOKI_URL="http://lo ki:3100"),
    bot("LOKI_URL", LOKI_URL="http://loki:3100?tenant=1"),
    bot("LOKI_URL", LOKI_URL="http://[::1"),
    bot("LOKI_URL", LOKI_URL="http://loki:0"),
    bot("LOKI_URL", LOKI_URL="http://:3100"),
    bot("ALERTMANAGER_URL", ALERTMANAGER_URL="http://alertmanager:99999"),
    bot("ALERTMANAGER_URL", ALERTMANAGER_URL="http://"),
    bot("ALERTMANAGER_URL", ALERTMANAGER_URL="alertmanager:9093"),
    bot("ALERTMANAGER_URL", ALERTMANAGER_URL="http://am:١٢"),
    bot("ALERTMANAGER_URL", ALERTMANAGER_URL="http://am:9093#x"),
    # --- the bot: hosts and ports -------------------------------------------------------------
    bot("METRICS_HOST", METRICS_HOST=""),
    bot("METRICS_HOST", METRICS_HOST="nonexistent.invalid"),
    bot("METRICS_HOST", METRICS_HOST="192.0.2.1"),
    bot("METRICS_HOST", METRICS_HOST="not a host"),
    bot("METRICS_HOST", METRICS_HOST="0.0.0.0\nx"),
    bot("METRICS_PORT", METRICS_PORT="70000"),
    bot("METRICS_PORT", METRICS_PORT="²"),
    bot("METRICS_PORT", METRICS_PORT="8_000"),
    run("METRICS_PORT", METRICS_PORT="{busy}", subprocess=True),
    bot("MT5_HOST", MT5_HOST=""),
    bot("MT5_HOST", MT5_HOST="a b"),
    bot("MT5_HOST", MT5_HOST="-bad-.example"),
    bot("MT5_HOST", MT5_HOST="h" * 300),
    bot("MT5_PORT", MT5_PORT="1_000"),
    bot("MT5_PORT", MT5_PORT="١٠٠٠"),
    bot("MT5_PORT", MT5_PORT="70000"),
    bot("MT5_PORT", MT5_PORT="0"),
    bot("MT5_PORT", MT5_PORT="²"),
    bot("MT5_PORT", MT5_PORT="１８８１２"),
    # --- the bot: secrets, bounded and never shown ---------------------------------------------
    bot("MT5_BRIDGE_TOKEN", MT5_MODE="bridge", MT5_BRIDGE_TOKEN=LONG_TOKEN, secret=LONG_TOKEN[:100]),
    bot("MT5_BRIDGE_TOKEN", MT5_MODE="bridge", MT5_BRIDGE_TOKEN=f"{SECRET}\nx", secret=SECRET),
    bot("MT5_BRIDGE_TOKEN", MT5_MODE="bridge"),
    bot("MT5_PASSWORD", MT5_PASSWORD=f"{SECRET}\x07pw", secret=SECRET),
    bot("MT5_PASSWORD", MT5_PASSWORD=SECRET * 40, secret=SECRET),
    bot("DATABASE_URL", DATABASE_URL=f"postgresql://tw:{SECRET}@db:99999/tw", secret=SECRET),
    bot("DATABASE_URL", DATABASE_URL=f"postgresql://tw:{SECRET}@db:١٢/tw", secret=SECRET),
    bot("DATABASE_URL", DATABASE_URL=f"mysql://tw:{SECRET}@db/tw", secret=SECRET),
    bot("DATABASE_URL", DATABASE_URL=f"postgresql://tw:{SECRET}@bad host/tw", secret=SECRET),
    bot("DATABASE_URL", DATABASE_URL="nonsense"),
    # --- the bot: files --------------------------------------------------------------------------
    bot("DATABASE_URL", DATABASE_URL="sqlite:///{tmp}/missing/store.db"),
    bot("DATABASE_URL", DATABASE_URL="sqlite:///{file}/store.db"),
    bot("DATABASE_URL", DATABASE_URL="sqlite:////proc/store.db"),
    bot("DATABASE_URL", DATABASE_URL="sqlite:///{tmp}"),
    bot("ORDER_QUEUE_PATH", ORDER_QUEUE_PATH="{tmp}/missing/queue.db"),
    bot("ORDER_QUEUE_PATH", ORDER_QUEUE_PATH="{file}/queue.db"),
    bot("ORDER_QUEUE_PATH", ORDER_QUEUE_PATH="/proc/queue.db"),
    bot("ORDER_QUEUE_PATH", ORDER_QUEUE_PATH="{tmp}"),
    bot("STORE_SPOOL_PATH", STORE_SPOOL_PATH="{tmp}/missing/spool.db"),
    bot("STORE_SPOOL_PATH", STORE_SPOOL_PATH="{file}/spool.db"),
    bot("STORE_SPOOL_PATH", STORE_SPOOL_PATH="/proc/spool.db"),
    bot("STORE_SPOOL_PATH", STORE_SPOOL_PATH="{tmp}"),
    bot("STORE_SPOOL_PATH", ORDER_QUEUE_PATH="{tmp}/same.db", STORE_SPOOL_PATH="{tmp}/same.db"),
    run("ORDER_QUEUE_PATH", ORDER_QUEUE_PATH="{tmp}/missing/queue.db"),
    # --- the bot: modes, choices, labels, lists, combinations ----------------------------------
    bot("MT5_MODE", MT5_MODE="native"),
    run("MT5_MODE", MT5_MODE="native"),
    bot("MT5_MODE", MT5_MODE="wine"),
    bot("TIMEFRAME", TIMEFRAME="M7"),
    bot("LOG_LEVEL", LOG_LEVEL="LOUD"),
    bot("ENV", ENV="prod\nlevel=ERROR"),
    bot("ENV", ENV="prod eu"),
    bot("ENV", ENV="e" * 100),
    bot("SYMBOLS", SYMBOLS=" , "),
    bot("SYMBOLS", SYMBOLS="EUR USD"),
    bot("SYMBOLS", SYMBOLS="EURUSD\nGBPUSD"),
    bot("STRATEGIES", STRATEGIES="nosuch"),
    run("STRATEGIES", STRATEGIES="ma_crossover,nosuch"),
    bot("RECONNECT_INITIAL_SECONDS", RECONNECT_INITIAL_SECONDS="60", RECONNECT_MAX_SECONDS="30"),
    bot("RISK_PER_TRADE", RISK_PER_TRADE="nan"),
    bot("RISK_PER_TRADE", RISK_PER_TRADE="Infinity"),
    bot("CYCLE_SECONDS", CYCLE_SECONDS="1e999"),
    bot("MT5_BRIDGE_TIMEOUT", MT5_BRIDGE_TIMEOUT="inf"),
    # --- the bot: symbols are checked against the terminal, after connecting -------------------
    run("SYMBOLS", SYMBOLS="NOTASYMBOL", subprocess=True),
    bot("SYMBOLS", SYMBOLS="NOTASYMBOL"),  # check-config asks the simulated terminal
    run("SYMBOLS", SYMBOLS="EURUSD,EURUSDD"),
    # --- the bot: command-line options ----------------------------------------------------------
    bot("--cycles", ("run", "--cycles", "0")),
    bot("--cycles", ("run", "--cycles", "1_0")),
    bot("--speed", ("run", "--speed", "0")),
    bot("--speed", ("run", "--speed", "fast")),
    bot("--out", ("metrics", "export", "--out", "{tmp}/missing/m.json")),
    bot("--since", ("metrics", "export", "--out", "-", "--since", "yesterday")),
    bot("--format", ("metrics", "export", "--out", "-", "--format", "xml")),
    bot("--account", ("report", "daily", "--account", "a b")),
    bot("--date", ("report", "daily", "--date", "2026-13-01")),
    bot("--account", ("report", "daily"), MT5_MODE="bridge", MT5_BRIDGE_TOKEN=TOKEN),
    bot("command", ("launch",)),
    # --- the exporter ---------------------------------------------------------------------------
    exporter("EXPORTER_PORT", EXPORTER_PORT="²", subprocess=True),
    exporter("EXPORTER_PORT", EXPORTER_PORT="70000"),
    exporter("EXPORTER_PORT", EXPORTER_PORT="1_000"),
    exporter("EXPORTER_PORT", EXPORTER_PORT="٩١٠٨"),
    exporter("EXPORTER_PORT", EXPORTER_PORT="http"),
    exporter("EXPORTER_PORT", EXPORTER_HOST="127.0.0.1", EXPORTER_PORT="{busy}"),
    exporter("EXPORTER_HOST", EXPORTER_HOST=""),
    exporter("EXPORTER_HOST", EXPORTER_HOST="nonexistent.invalid"),
    exporter("EXPORTER_HOST", EXPORTER_HOST="192.0.2.1"),
    exporter("EXPORTER_HOST", EXPORTER_HOST="not a host"),
    exporter("LOG_LEVEL", LOG_LEVEL="chatty"),
    exporter("LOKI_URL", LOKI_URL="http://"),
    exporter("LOKI_URL", LOKI_URL="http://loki:99999"),
    exporter("ENV", ENV="stack\nlevel=error"),
    exporter("DATABASE_URL", DATABASE_URL=f"mysql://root:{SECRET}@db/x", secret=SECRET),
    exporter("DATABASE_URL", DATABASE_URL=f"postgresql://e:{SECRET}@db:99999/tw", secret=SECRET),
    exporter("DATABASE_URL", DATABASE_URL="sqlite:///{tmp}/missing/store.db"),
    # --- the bridge server ----------------------------------------------------------------------
    bridge("--port", "--port", "70000", subprocess=True),
    bridge("--port", "--port", "1_000"),
    bridge("--port", "--port", "١٢"),
    bridge("--port", "--port", "-1"),
    bridge("--port", "--host", "127.0.0.1", "--port", "{busy}"),
    bridge("--host", "--host", "192.0.2.1"),
    bridge("--host", "--host", "nonexistent.invalid"),
    bridge("--host", "--host", ""),
    bridge("--timeout", "--timeout", "0"),
    bridge("--timeout", "--timeout", "soon"),
    bridge("--state", "--state", "{tmp}/missing/state.json"),
    bridge("--state", "--state", "{tmp}"),
    bridge("--state", "--state", "{corrupt}"),
    bridge("--seed", "--seed", "x"),
    bridge("--speed", "--speed", "0"),
    bridge("--log-level", "--log-level", "LOUD"),
    bridge("--backend", "--backend", "mt4"),
    bridge("--backend", "--backend", "metatrader5", "--port", "0"),
    bridge("--seed", "--backend", "metatrader5", "--seed", "1"),
    bridge("MT5_BRIDGE_TOKEN", env={"MT5_BRIDGE_TOKEN": ""}),
    bridge("MT5_BRIDGE_TOKEN", env={"MT5_BRIDGE_TOKEN": LONG_TOKEN}, secret=LONG_TOKEN[:100]),
    bridge("MT5_BRIDGE_TOKEN", env={"MT5_BRIDGE_TOKEN": f"{SECRET}\nx"}, secret=SECRET),
    bridge("MT5_BRIDGE_TIMEOUT", env={"MT5_BRIDGE_TIMEOUT": "1_0"}),
    bridge("MT5_BRIDGE_TIMEOUT", env={"MT5_BRIDGE_TIMEOUT": "soon"}),
    bridge("MT5_LOGIN", "--backend", "metatrader5", env={"MT5_LOGIN": "abc"}),
    bridge("MT5_PASSWORD", "--backend", "metatrader5", env={"MT5_PASSWORD": f"{SECRET}\x07"}, secret=SECRET),
    # --- python -m db ---------------------------------------------------------------------------
    db("--url", "--url", f"mysql://root:{SECRET}@db/x", "current", secret=SECRET, subprocess=True),
    db("DATABASE_URL", "current", env={"DATABASE_URL": f"postgresql://a:{SECRET}@db:99999/x"}, secret=SECRET),
    db("DATABASE_URL", "current", env={"DATABASE_URL": "sqlite:///{tmp}/missing/x.db"}),
    db("DATABASE_URL", "current", env={"DATABASE_URL": "sqlite:///x\n.db"}),
    db("--url", "--url", "sqlite:///{file}/x.db", "upgrade"),
    db("revision", "--url", "sqlite:///{tmp}/x.db", "upgrade", "zzz"),
    db("revision", "--url", "sqlite:///{tmp}/x.db", "downgrade", "0001;DROP"),
    db("revision", "--url", "sqlite:///{tmp}/x.db", "downgrade", ""),
    db("--trades", "--url", "sqlite:///{tmp}/x.db", "seed-demo", "--trades", "0"),
    db("--trades", "--url", "sqlite:///{tmp}/x.db", "seed-demo", "--trades", "1_000"),
    db("--accounts", "--url", "sqlite:///{tmp}/x.db", "seed-demo", "--accounts", "٣"),
    db("--years", "--url", "sqlite:///{tmp}/x.db", "seed-demo", "--years", "0"),
    db("--years", "--url", "sqlite:///{tmp}/x.db", "seed-demo", "--years", "nan"),
    db("--seed", "--url", "sqlite:///{tmp}/x.db", "seed-demo", "--seed", "-1"),
    db("command", "migrate"),
    # --- python -m stack ------------------------------------------------------------------------
    stack("SIM_SPEED", SIM_SPEED="fast", subprocess=True),
    stack("SIM_SPEED", SIM_SPEED="0"),
    stack("SIM_SPEED", SIM_SPEED="1_0"),
    stack("SIM_SPEED", SIM_SPEED="-60"),
    stack("LOKI_URL", LOKI_URL="http://"),
    stack("LOKI_URL", LOKI_URL="http://loki:99999"),
    stack("LOKI_URL", LOKI_URL="loki:3100"),
    stack("STACK_DIR", STACK_DIR="{tmp}/missing/stack"),
    stack("STACK_DIR", STACK_DIR="{file}"),
    stack("STACK_DIR", "status", STACK_DIR="{tmp}\n/x"),
    stack("command", "sideways"),
]


def _generated_cases() -> list[Case]:
    """From the bot's settings table: every numeric setting as a word, in non-ASCII digits, below and
    above any range; every setting with a control character inside (a newline forges log lines)."""
    cases = []
    for f in fields(Settings):
        name = f.metadata["env"]
        if f.type in NUMERIC_TYPES:
            cases += [bot(name, **{name: value}) for value in ("abc", "١٢", "-1", "1" + "0" * 15)]
        default = f.metadata["default"] or "x"
        cases.append(bot(name, **{name: f"{default[:1]}\n{default[1:] or 'x'}"}))
    return cases


CASES = HAND_WRITTEN + _generated_cases()
ENTRY_POINTS = ("bot", "exporter", "bridge", "db", "stack")
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

        monkeypatch.setattr(entry.waitress, "create_server", _accepted)
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
