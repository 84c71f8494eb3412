"""NativeStack: PostgreSQL, Alertmanager, Loki (when a binary exists, see stack/loki.py), the
exporter, the sim bridge, the bot and Prometheus on loopback, without Docker, from the committed configs. Used by `python -m stack` and the
end-to-end test (tests/test_stack_e2e.py).

State lives under one directory (`.stack/` for `make stack`, a temp dir in the test):
  state.json       ports and URLs of the running stack (no secrets)
  secrets.json     bridge token, alert-sink token and database passwords (mode 0600), kept between runs
  sink_token       the alert-sink token as a file (0600): the exporter and Alertmanager read it
  bridge.crt/.key  the bridge's self-signed TLS pair (key 0600); the bot trusts bridge.crt as its CA file
  run/*.pid        one per process we started (see stack/processes.py)
  logs/*.log       their output; pg/ the cluster (its own server.log)
  prometheus/, alertmanager/, loki/  rendered configs and data
Why one directory: `down` needs nothing but that directory to stop exactly what `up` started.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from stack.configs import (
    PROMETHEUS_RULES_DIR,
    REPO,
    Timings,
    prometheus_config,
    prometheus_rules,
    write_alertmanager_config,
)
from stack.loki import LokiBinaryError, find_loki_binary, loki_command
from stack.postgres import ROLE_PASSWORD_VARIABLES, LocalPostgres
from stack.processes import ProcessTable

log = logging.getLogger("stack")

DEFAULT_ROOT = REPO / ".stack"
# Preferred ports of `make stack` (the compose ports); a busy one is replaced by a free one.
DEFAULT_PORTS = {"postgres": 5433, "bridge": 18812, "bot": 8000, "exporter": 9108,
                 "prometheus": 9090, "alertmanager": 9093, "loki": 3100, "loki_grpc": 9095}
# Start order; stopped in reverse. Postgres is not in this list: pg_ctl manages it.
# Loki early: it takes the longest to be ready, and the bot's pushes wait for it anyway.
SERVICES = ("alertmanager", "loki", "exporter", "bridge", "bot", "prometheus")
READY_TIMEOUT_SECONDS = 60.0


class StackError(RuntimeError):
    """The stack could not be brought up (the message names the service and its log file)."""


@dataclass(frozen=True)
class StackSettings:
    """How to run the stack. `ports`: service -> port, 0 (or missing) for any free port."""

    root: Path = DEFAULT_ROOT
    speed: float = 60.0
    ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    timings: Timings = field(default_factory=Timings)
    loki_url: str | None = None  # an external Loki; None: run our own when a binary is found
    loki_bin: str | None = None  # None: $LOKI_BIN, else `loki` on PATH (stack/loki.py)
    bot_env: Mapping[str, str] = field(default_factory=dict)  # extra bot settings, e.g. CYCLE_SECONDS
    python: str = sys.executable


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(preferred: int = 0) -> int:
    """`preferred` when it is free, else a free port the kernel picks."""
    if preferred and _port_free(preferred):
        return preferred
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def _tcp_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


class NativeStack:
    """The stack under `settings.root`. `up()` starts it, `down()` stops what the pid files name."""

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or StackSettings()
        self.root = self.settings.root.resolve()
        self.processes = ProcessTable(self.root / "run", self.root / "logs")
        self.ports: dict[str, int] = {}
        self._loki_bin: str | None = self.settings.loki_bin

    # -- paths and addresses ---------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def urls(self) -> dict[str, str]:
        p = self.ports
        urls = {
            "prometheus": f"http://127.0.0.1:{p['prometheus']}",
            "alertmanager": f"http://127.0.0.1:{p['alertmanager']}",
            "bot": f"http://127.0.0.1:{p['bot']}",
            "exporter": f"http://127.0.0.1:{p['exporter']}",
            "bridge": f"127.0.0.1:{p['bridge']}",
            "postgres": f"127.0.0.1:{p['postgres']}",
        }
        if self.loki_url:
            urls["loki"] = self.loki_url
        return urls

    @property
    def runs_loki(self) -> bool:
        """True when this stack starts its own Loki (no external LOKI_URL, a binary was found)."""
        return not self.settings.loki_url and self._loki_bin is not None

    @property
    def loki_url(self) -> str | None:
        """Where logs go: the external Loki, our own, or None (stdout only)."""
        if self.settings.loki_url:
            return self.settings.loki_url
        if self._loki_bin is not None and "loki" in self.ports:
            return f"http://127.0.0.1:{self.ports['loki']}"
        return None

    def database_url(self, role: str) -> str:
        """SQLAlchemy URL for tradewatch | tradewatch_exporter | tradewatch_grafana (holds a password)."""
        return self._postgres().url(role)

    def log_file(self, service: str) -> Path:
        return self.root / "pg" / "server.log" if service == "postgres" else self.processes.log_file(service)

    @property
    def services(self) -> list[str]:
        """SERVICES, without Loki when there is none to run (and the exporter while it is missing)."""
        names = [name for name in SERVICES if name != "loki" or self.runs_loki]
        if (REPO / "exporter" / "__main__.py").exists():
            return names
        log.warning("exporter/__main__.py not found: starting the stack without the exporter")
        return [name for name in names if name != "exporter"]

    # -- lifecycle -------------------------------------------------------------------------

    def up(self) -> dict[str, str]:
        """Start everything and wait until each service answers; on failure stop it all again."""
        if any(self.processes.running(name) for name in self.processes.names()):
            raise StackError(f"a stack is already running from {self.root}: stop it first (make stack-down)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)  # the postgres user must reach pg/ inside it
        self._choose_loki()
        self.ports = {name: pick_port(self.settings.ports.get(name, 0)) for name in DEFAULT_PORTS}
        self._write_state()
        try:
            self._start_postgres()
            self._migrate()
            services = self.services
            for name in services:
                self.start_service(name)
            for name in services:
                self.wait_ready(name)
        except BaseException:
            self.down()
            raise
        return self.urls

    def _choose_loki(self) -> None:
        if self.settings.loki_url:
            return
        if self._loki_bin is None:
            try:
                self._loki_bin = find_loki_binary()
            except LokiBinaryError as exc:
                raise StackError(str(exc)) from None
        if self._loki_bin is None:
            log.warning("no Loki binary (set LOKI_BIN or put `loki` on PATH): logs go to stdout only")

    def down(self) -> list[str]:
        """Stop every recorded process (reverse start order) and the cluster; names what was stopped."""
        self._load_state()
        stopped = []
        recorded = self.processes.names()
        for name in [*reversed(SERVICES), *sorted(set(recorded) - set(SERVICES))]:
            if self.processes.stop(name):
                stopped.append(name)
        if (self.root / "pg" / "data").exists() and self._postgres(check_secrets=False).stop():
            stopped.append("postgres")
        self.state_file.unlink(missing_ok=True)
        return stopped

    def status(self) -> dict[str, bool]:
        """Service -> running, for what this root recorded."""
        self._load_state()
        running = {name: self.processes.running(name) for name in SERVICES if name != "loki" or self.runs_loki}
        running["postgres"] = (self.root / "pg" / "data" / "postmaster.pid").exists()
        return running

    @classmethod
    def from_root(cls, root: Path = DEFAULT_ROOT) -> NativeStack:
        """The stack recorded under `root` (for `down` and `status` from another process)."""
        stack = cls(StackSettings(root=root))
        stack._load_state()
        return stack

    # -- one service at a time (the test stops and restarts the bridge) ----------------------

    def start_service(self, name: str) -> None:
        argv, env = self._command(name)
        self.processes.start(name, argv, env, cwd=self.root)

    def stop_service(self, name: str) -> None:
        if not self.processes.stop(name):
            raise StackError(f"{name} was not running")

    def wait_ready(self, name: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        check = {
            "alertmanager": lambda: _http_ok(self.urls["alertmanager"] + "/-/ready"),
            "prometheus": lambda: _http_ok(self.urls["prometheus"] + "/-/ready"),
            "exporter": lambda: _http_ok(self.urls["exporter"] + "/healthz"),
            "bot": lambda: _http_ok(self.urls["bot"] + "/healthz"),
            "bridge": lambda: _tcp_open(self.ports["bridge"]),
            "loki": lambda: _http_ok(f"{self.loki_url}/ready"),
        }[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if not self.processes.running(name):
                raise StackError(f"{name} exited during start-up; see {self.log_file(name)}:\n{self._tail(name)}")
            time.sleep(0.2)
        raise StackError(f"{name} not ready after {timeout:.0f} s; see {self.log_file(name)}:\n{self._tail(name)}")

    def sim_control(self, command: str, **params: Any) -> dict[str, Any]:
        """Drive the simulated terminal through the bridge (fault injection, time), e.g. from a test."""
        from mt5bridge.client import connect  # the bridge client only when asked: `down` needs none of it

        client = connect("127.0.0.1", self.ports["bridge"], token=self._secrets()["MT5_BRIDGE_TOKEN"],
                         ca_file=str(self.bridge_cert()[0]))
        try:
            return client.sim_control(command, **params)
        finally:
            client.close()

    # -- internals -------------------------------------------------------------------------

    def _secrets(self) -> dict[str, str]:
        """Bridge token and role passwords, created once (mode 0600) and reused."""
        path = self.root / "secrets.json"
        if path.exists():
            return json.loads(path.read_text(encoding="utf-8"))
        values = {"MT5_BRIDGE_TOKEN": secrets.token_hex(24), "EXPORTER_SINK_TOKEN": secrets.token_hex(32)}
        values.update({role: secrets.token_hex(24) for role in ROLE_PASSWORD_VARIABLES})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(values, handle)
        return values

    def bridge_cert(self) -> tuple[Path, Path]:
        """The bridge's self-signed certificate and key (key 0600), made once; the bot trusts the
        certificate as its CA file (connect(..., ca_file=cert) from a test)."""
        cert, key = self.root / "bridge.crt", self.root / "bridge.key"
        if not (cert.exists() and key.exists()):
            from mt5bridge.tls import generate_self_signed

            cert.unlink(missing_ok=True)
            key.unlink(missing_ok=True)
            generate_self_signed(cert, key, hosts=("localhost", "127.0.0.1"))
        return cert, key

    def _sink_token_file(self) -> Path:
        """The alert-sink token as a file (0600): Alertmanager reads only files (credentials_file)."""
        path = self.root / "sink_token"
        values = self._secrets()
        if "EXPORTER_SINK_TOKEN" not in values:  # a secrets.json from before the sink had a token
            values["EXPORTER_SINK_TOKEN"] = secrets.token_hex(32)
            (self.root / "secrets.json").write_text(json.dumps(values), encoding="utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(values["EXPORTER_SINK_TOKEN"] + "\n")
        return path

    def _postgres(self, check_secrets: bool = True) -> LocalPostgres:
        passwords = self._secrets() if check_secrets else {}
        return LocalPostgres(self.root / "pg", self.ports.get("postgres", 0),
                             {role: passwords.get(role, "") for role in ROLE_PASSWORD_VARIABLES})

    def _start_postgres(self) -> None:
        self._postgres().start()

    def _migrate(self) -> None:
        """Schema to head as the owning role, then the roles SQL again (it grants the new `alerts`)."""
        env = self._python_env({"DATABASE_URL": self.database_url("tradewatch")})
        result = subprocess.run([self.settings.python, "-m", "db", "upgrade"], cwd=self.root, env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise StackError(f"migrations failed: {(result.stderr or result.stdout).strip()[-1500:]}")
        self._postgres().apply_roles()

    def _python_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("SIM_START", "now")  # the sim bridge's clock starts at the wall clock: an honest demo
        env.update(extra)
        return env

    def _command(self, name: str) -> tuple[list[str], dict[str, str]]:
        """argv and environment of one service; configs are (re)rendered here."""
        s, p, u, py = self.settings, self.ports, self.urls, self.settings.python
        token = self._secrets()["MT5_BRIDGE_TOKEN"]
        loki = self.loki_url or ""
        if name == "loki":
            if self._loki_bin is None:
                raise StackError("no Loki binary to start (set LOKI_BIN or put `loki` on PATH)")
            return loki_command(self._loki_bin, self.root / "loki", p["loki"], p["loki_grpc"], u["alertmanager"],
                                s.timings)
        if name == "alertmanager":
            directory = self.root / "alertmanager"
            directory.mkdir(parents=True, exist_ok=True)
            config = directory / "alertmanager.yml"
            write_alertmanager_config(config, u["exporter"] + "/api/v1/alerts", s.timings, python=py,
                                      sink_token_file=self._sink_token_file())
            binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
            if binary is None:
                raise StackError("prometheus-alertmanager not installed: run `make sysdeps`")
            return [binary, f"--config.file={config}", f"--storage.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{p['alertmanager']}", "--cluster.listen-address=",
                    "--data.retention=120h"], dict(os.environ)
        if name == "prometheus":
            return self._prometheus_command()
        if name == "exporter":
            return [py, "-m", "exporter"], self._python_env({
                "DATABASE_URL": self.database_url("tradewatch_exporter"), "EXPORTER_PORT": str(p["exporter"]),
                "EXPORTER_HOST": "127.0.0.1", "LOKI_URL": loki, "ENV": "stack",
                "EXPORTER_SINK_TOKEN_FILE": str(self._sink_token_file())})
        if name == "bridge":
            cert, key = self.bridge_cert()
            return [py, "-m", "mt5bridge.server", "--backend", "sim", "--host", "127.0.0.1", "--port",
                    str(p["bridge"]), "--speed", str(s.speed), "--state", str(self.root / "sim-state.json"),
                    "--cert", str(cert), "--key", str(key)], \
                self._python_env({"MT5_BRIDGE_TOKEN": token})
        if name == "bot":
            env = {"MT5_MODE": "bridge", "MT5_HOST": "127.0.0.1", "MT5_PORT": str(p["bridge"]),
                   "MT5_BRIDGE_TOKEN": token, "MT5_BRIDGE_CA_FILE": str(self.bridge_cert()[0]),
                   "DATABASE_URL": self.database_url("tradewatch"),
                   "METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(p["bot"]),
                   "ALERTMANAGER_URL": u["alertmanager"], "LOKI_URL": loki, "ENV": "stack",
                   "ORDER_QUEUE_PATH": str(self.root / "bot" / "order_queue.db"),
                   "STORE_SPOOL_PATH": str(self.root / "bot" / "store_spool.db"), **s.bot_env}
            (self.root / "bot").mkdir(exist_ok=True)
            return [py, "-m", "bot", "run", "--speed", str(s.speed)], self._python_env(env)
        raise StackError(f"unknown service {name!r}; known: {', '.join(SERVICES)}")

    def _prometheus_command(self) -> tuple[list[str], dict[str, str]]:
        s, p = self.settings, self.ports
        directory = self.root / "prometheus"
        rules_dir = PROMETHEUS_RULES_DIR
        if s.timings.rules_changed:
            rules_dir = directory / "rules"
            rules_dir.mkdir(parents=True, exist_ok=True)
            for file_name, text in prometheus_rules(s.timings).items():
                (rules_dir / file_name).write_text(text, encoding="utf-8")
        targets = {job: [f"127.0.0.1:{p[job]}"] for job in ("bot", "exporter", "prometheus", "alertmanager")}
        if self.loki_url:
            targets["loki"] = [urlsplit(self.loki_url).netloc]
        config = prometheus_config(targets, f"127.0.0.1:{p['alertmanager']}", rules_dir, s.timings)
        directory.mkdir(parents=True, exist_ok=True)
        config_file = directory / "prometheus.yml"
        config_file.write_text("# Rendered by stack/ from prometheus/prometheus.yml. Do not edit.\n"
                               + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("prometheus not installed: run `make sysdeps`")
        return [binary, f"--config.file={config_file}", f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{p['prometheus']}"], dict(os.environ)  # no lifecycle API

    def _write_state(self) -> None:
        state: dict[str, Any] = {"ports": self.ports, "speed": self.settings.speed,
                                 "loki_url": self.settings.loki_url, "loki_bin": self._loki_bin}
        self.state_file.write_text(json.dumps(state, indent=2), encoding="utf-8")

    def _load_state(self) -> None:
        if self.ports or not self.state_file.exists():
            return
        state = json.loads(self.state_file.read_text(encoding="utf-8"))
        self.ports = {name: int(port) for name, port in state.get("ports", {}).items()}
        self._loki_bin = self._loki_bin or state.get("loki_bin")

    def _tail(self, name: str, chars: int = 1500) -> str:
        path = self.log_file(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"
