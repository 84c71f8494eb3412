"""The hostile configuration table of tests/test_hostile_config.py: one Case per bad value.

Data only (the runner is the test module): who is fed what, and which name the one error line
must carry. Placeholders are filled per case: {tmp} a fresh folder, {file} an existing regular
file, {busy} a port with a live listener on 127.0.0.1, {corrupt} a file that is not a sim state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

from bot.config import Settings

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
    argv = ("--backend", "sim", *argv) if "--backend" not in argv else argv
    # Plain TCP unless the case is about TLS: each case is about the one setting it names.
    argv = argv if {"--cert", "--key", "--insecure"} & set(argv) else (*argv, "--insecure")
    return Case("bridge", setting, env or {}, argv, secret, subprocess)


def db(setting, *argv, env=None, secret=None, subprocess=False):
    return Case("db", setting, env or {}, argv, secret, subprocess)


def stack(setting, *argv, subprocess=False, **env):
    return Case("stack", setting, env, argv or ("up",), None, subprocess)


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
    bot("--account", ("report", "daily"), MT5_MODE="bridge", MT5_BRIDGE_TOKEN=TOKEN, MT5_BRIDGE_INSECURE="true"),
    # --- the bot: bridge TLS ----------------------------------------------------------------------
    bot("MT5_BRIDGE_CA_FILE", MT5_MODE="bridge", MT5_BRIDGE_TOKEN=TOKEN),
    bot("MT5_BRIDGE_CA_FILE", MT5_BRIDGE_CA_FILE="{tmp}/missing.pem", MT5_MODE="bridge", MT5_BRIDGE_TOKEN=TOKEN),
    bot("MT5_BRIDGE_FINGERPRINT", MT5_BRIDGE_FINGERPRINT="AB:CD"),
    bot("MT5_BRIDGE_FINGERPRINT", MT5_BRIDGE_FINGERPRINT="zz" * 32),
    bot("MT5_BRIDGE_INSECURE", MT5_BRIDGE_INSECURE="yes please"),
    bot("MT5_BRIDGE_INSECURE", MT5_BRIDGE_INSECURE="true", MT5_BRIDGE_FINGERPRINT="ab" * 32, MT5_MODE="bridge",
        MT5_BRIDGE_TOKEN=TOKEN),
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
    bridge("--cert", "--cert", "{tmp}/missing.crt", "--key", "{file}"),
    bridge("--key", "--cert", "{file}", "--key", "{tmp}/missing.key"),
    bridge("--cert/--key", "--cert", "{file}", "--key", "{file}"),
    bridge("--insecure", "--insecure", "--cert", "{file}"),
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
    db("--server-timezone", "--url", "sqlite:///{tmp}/x.db", "import-mt5-report", "r.html", "--server-timezone", "+25:00"),
    db("--server-timezone", "--url", "sqlite:///{tmp}/x.db", "verify-report", "r.html", "--server-timezone", "Europe/\nAthens"),
    db("--account", "--url", "sqlite:///{tmp}/x.db", "import-mt5-report", "r.html", "--account", "9" * 40),
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
