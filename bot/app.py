"""The composition root: build settings, store, gateway, engine and telemetry, then run the loop.

This is the only module that knows every part; each part knows only its neighbours' interfaces.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import replace
from typing import Any

from db import Repository, init_db, redact_url

from . import __version__
from .config import Settings
from .engine import Engine, load_strategies
from .gateway import GatewayError
from .gateway.factory import make_gateway, make_sim
from .instrumentation import Instrumentation
from .telemetry.alerts import AlertmanagerClient
from .telemetry.health import LivenessTracker, TelemetryServer
from .telemetry.logging import set_account, setup_logging
from .telemetry.loki import LokiHandler
from .telemetry.metrics import BotMetrics

log = logging.getLogger("bot.app")

SHUTDOWN_FLUSH_SECONDS = 5.0


class Pacer:
    """Waits between cycles: wall-clock sleep scaled by speed, or a step of a stepped simulated clock."""

    def __init__(self, cycle_seconds: float, speed: float = 1.0, stepped_sim: Any = None):
        self.cycle_seconds = cycle_seconds
        self.speed = speed
        self.stepped_sim = stepped_sim
        self.stop_event = threading.Event()

    @property
    def wall_interval(self) -> float:
        return 0.0 if self.stepped_sim is not None else self.cycle_seconds / self.speed

    def wait(self) -> None:
        if self.stepped_sim is not None:
            self.stepped_sim.advance(self.cycle_seconds)
        else:
            self.stop_event.wait(self.wall_interval)


class BotApp:
    def __init__(self, settings: Settings, speed: float | None = None, sim: Any = None, stepped: bool = False):
        self.settings = settings
        self.speed = speed if speed is not None else (settings.sim_speed if settings.mt5_mode == "sim" else 1.0)
        if settings.mt5_mode == "sim" and sim is None:
            sim = make_sim(replace(settings, sim_speed=self.speed), stepped=stepped)
        self.sim = sim
        self.started_at = time.time()
        self.database = init_db(settings.database_url)
        self.repo = Repository(self.database)
        self.gateway = make_gateway(settings, sim=sim)
        self.strategies = load_strategies(settings.strategies)
        self.engine = Engine(settings, self.gateway, self.repo, self.strategies)
        self.pacer = Pacer(settings.cycle_seconds, self.speed, stepped_sim=sim if stepped else None)
        self.liveness = LivenessTracker(max(self.pacer.wall_interval, 1.0))
        self.metrics: BotMetrics | None = None
        self.instrumentation: Instrumentation | None = None
        self.server: TelemetryServer | None = None
        self.loki: LokiHandler | None = None
        self.alerts: AlertmanagerClient | None = None

    # -- start-up ----------------------------------------------------------------------------

    def connect(self) -> None:
        """First contact with the terminal; on failure the loop starts anyway and keeps retrying."""
        try:
            self.engine.start()
        except GatewayError as exc:
            log.warning("terminal not reachable at start: %s", exc, extra={"error_kind": exc.kind})

    @property
    def account(self) -> str:
        return self.engine.account_id or (str(self.settings.mt5_login) if self.settings.mt5_login else "unknown")

    def start_telemetry(self, serve: bool = True) -> None:
        """Metrics, Loki, alerts and the health server, labelled with the account."""
        account = self.account
        self.metrics = BotMetrics(account, version=__version__)
        if self.settings.loki_url:
            self.loki = LokiHandler(
                self.settings.loki_url,
                {"service": "bot", "account": account, "env": self.settings.env},
                on_drop=self.metrics.count_log_drops,
            )
            setup_logging(self.settings.log_level, service="bot", account=account, env=self.settings.env,
                          secrets=self.settings.secrets(), loki=self.loki)
        set_account(account)
        if self.settings.alertmanager_url:
            self.alerts = AlertmanagerClient(self.settings.alertmanager_url, {"account": account, "service": "bot"})
        self.instrumentation = Instrumentation(self.metrics, alerts=self.alerts,
                                               terminal_alert_after=self.settings.terminal_alert_seconds)
        self.gateway.set_observer(self.instrumentation.on_broker_call)
        self.engine.observer = self.instrumentation
        self.metrics.set_connected(self.gateway.connected)
        if serve:
            self.server = TelemetryServer(
                self.metrics,
                host=self.settings.metrics_host,
                port=self.settings.metrics_port,
                status_provider=self.status,
                liveness=self.liveness.check,
                readiness=self.readiness,
            )
            self.server.start()
            log.info("telemetry serving", extra={"port": self.server.port})

    # -- health --------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks = {
            "terminal_connected": self.gateway.connected,
            "store_writable": self.repo.ping(),
            "strategies_loaded": len(self.strategies) > 0,
        }
        report = self.engine.last_report
        details: dict[str, Any] = {name: ("ok" if ok else "failing") for name, ok in checks.items()}
        if report is not None and report.error:
            details["last_error"] = report.error
        return all(checks.values()), details

    def status(self) -> dict[str, Any]:
        report = self.engine.last_report
        process = self.instrumentation.process_figures() if self.instrumentation else {}
        return {
            "version": __version__,
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "account": self.account,
            "mode": self.settings.mt5_mode,
            "symbols": list(self.settings.symbols),
            "strategies": [s.name for s in self.strategies],
            "cycles": self.engine.cycles,
            "last_cycle": None if report is None else {
                "number": report.number,
                "broker_time": report.started_at.isoformat() if report.started_at else None,
                "duration_seconds": round(report.duration_seconds, 6),
                "ok": report.ok,
                "error": report.error,
            },
            "open_positions": dict(self.instrumentation.last_positions) if self.instrumentation else {},
            "equity": str(report.equity) if report and report.equity is not None else None,
            "process": process,
        }

    # -- the loop ------------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        if not self.pacer.stop_event.is_set():
            log.info("stop requested: finishing the cycle")
        self.pacer.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)

    def run(self, cycles: int | None = None, serve: bool = True) -> int:
        log.info(
            "bot starting",
            extra={"mode": self.settings.mt5_mode, "database": redact_url(self.database.url),
                   "speed": self.speed, "cycle_seconds": self.settings.cycle_seconds},
        )
        self.connect()
        if self.instrumentation is None:
            self.start_telemetry(serve=serve)
        done = 0
        try:
            while not self.pacer.stop_event.is_set() and (cycles is None or done < cycles):
                self.engine.run_cycle()
                self.liveness.beat()
                done += 1
                if cycles is not None and done >= cycles:
                    break
                self.pacer.wait()
        finally:
            self.close()
        log.info("bot stopped", extra={"cycles": done})
        return 0

    def close(self) -> None:
        deadline = time.monotonic() + SHUTDOWN_FLUSH_SECONDS
        self.gateway.close()
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.alerts is not None:
            self.alerts.close(max(0.5, deadline - time.monotonic()))
        if self.loki is not None:
            self.loki.close(max(0.5, deadline - time.monotonic()))
        self.database.dispose()
