"""The composition root: build settings, store, gateway, engine and telemetry, then run the loop.

This is the only module that knows every part; each part knows only its neighbours' interfaces.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import replace
from datetime import date
from typing import Any

from db import Database, Repository, redact_url
from db.url import resolve_url

from . import __version__
from .app_health import HealthViews
from .config import Settings
from .control.server import ControlServer
from .control.strategies import build_strategies
from .engine import Engine
from .engine.risk_tables import HALT_REASONS
from .engine.riskstate import default_path as risk_state_path
from .gateway import GatewayError
from .gateway.factory import make_gateway, make_sim, sim_state_file
from .history import MinuteRollup
from .instrumentation import Instrumentation
from .resilience.order_queue import OrderQueue
from .resilience.supervisor import ConnectionSupervisor
from .run_summary import RunSummary
from .store import CircuitBreaker, SpooledRepository, StoreUnavailable, is_connectivity_error
from .store.schema import SchemaGate
from .store.spool_file import SpoolFile
from .telemetry.alerts import AlertmanagerClient
from .telemetry.broker_safety_metrics import BrokerSafetyMetrics
from .telemetry.durability_metrics import DurabilityMetrics
from .telemetry.health import LivenessTracker, TelemetryServer
from .telemetry.log_backlog import LogBacklog
from .telemetry.logging import attach_loki, detach_loki, set_account
from .telemetry.loki import LokiHandler
from .telemetry.metrics import BotMetrics
from .telemetry.risk_metrics import ControlCollector, RiskGuardCollector
from .telemetry.strategy_metrics import StrategyMetrics

log = logging.getLogger("bot.app")


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


def local_file(configured: str, database_url: Any, name: str) -> str:
    """Where a local durable file lives: as configured, else next to a SQLite store, else under data/.

    Next to the SQLite file keeps one bot's files together (and tests' runs apart).
    """
    if configured:
        return configured
    url = str(database_url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return f"{url[len('sqlite:///'):]}.{name}.db"
    return f"data/{name}.db"


class BotApp(HealthViews):
    def __init__(self, settings: Settings, speed: float | None = None, sim: Any = None, stepped: bool = False):
        self.settings = settings
        self.speed = speed if speed is not None else (settings.sim_speed if settings.mt5_mode == "sim" else 1.0)
        if settings.mt5_mode == "sim" and sim is None:
            state = sim_state_file(settings.sim_state_path, resolve_url(settings.database_url))
            sim = make_sim(replace(settings, sim_speed=self.speed), stepped=stepped, state_file=state)
        self.sim = sim
        self.started_at = time.time()
        self.metrics: BotMetrics | None = None
        self.instrumentation: Instrumentation | None = None
        self.durability: DurabilityMetrics | None = None
        # Not init_db: a database that is down at start must not stop the bot (see bot.store.schema).
        self.database = Database(settings.database_url)
        self.loki: LokiHandler | None = self._start_loki()  # before anything logs: nothing is left out
        spool_path = local_file(settings.store_spool_path, self.database.url, "store_spool")
        self.schema = SchemaGate(self.database, SpoolFile(spool_path), settings.reconnect_initial_seconds,
                                 settings.reconnect_max_seconds)
        self._first_migration()
        self.db_breaker = CircuitBreaker(
            "store", settings.db_breaker_failures, settings.db_breaker_reset_seconds, is_failure=is_connectivity_error,
            on_state_change=lambda name, state: self.instrumentation and self.instrumentation.circuit(name, state),
        )
        # Every store write goes through the spool when the database is unreachable (zero lost rows).
        self.repo = SpooledRepository(
            Repository(self.database), spool_path, spool=self.schema.spool, gate=self.schema,
            breaker=self.db_breaker, on_depth=lambda n: self.metrics and self.metrics.set_store_spool_depth(n),
        )
        self.gateway = make_gateway(settings, sim=sim)
        self.strategies = build_strategies(settings)  # also what `ctl reload-strategies` calls
        self.cycle_lock = threading.Lock()  # a cycle, or an operator command that sends orders (bot.control)
        self.control: ControlServer | None = None
        self.control_reason: str | None = None  # why the control endpoint is off (readyz says it)
        self._build_resilience(sim if stepped else None)
        self.engine = Engine(settings, self.gateway, self.repo, self.strategies, supervisor=self.supervisor,
                             order_queue=self.order_queue, order_breaker=self.order_breaker)
        self.engine.risk_guard.use_state_file(settings.risk_state_path or risk_state_path(self.database.url))
        self.engine.policy.database = self.database  # the first-start history import writes here
        self.pacer = Pacer(settings.cycle_seconds, self.speed, stepped_sim=sim if stepped else None)
        self._stop_signal: int | None = None  # set by request_stop (a signal handler), said by the loop
        self.liveness = LivenessTracker(max(self.pacer.wall_interval, 1.0))
        self.server: TelemetryServer | None = None
        self._cycles_done = 0
        self.summary = RunSummary()  # said when the bot stops (bot/run_summary.py)
        self.alerts: AlertmanagerClient | None = None
        self.history: MinuteRollup | None = None

    def _build_resilience(self, stepped_sim: Any) -> None:
        """Supervisor, durable order queue and order breaker; their events reach the metrics once started.

        With a stepped simulator, backoff and breaker timeouts run on simulated time, so a test
        that steps the clock sees the same schedule a live bot sees on the wall clock.
        """
        clock = (lambda: stepped_sim.now().timestamp()) if stepped_sim is not None else time.monotonic
        s = self.settings
        self.supervisor = ConnectionSupervisor(
            self.gateway, initial_backoff=s.reconnect_initial_seconds, max_backoff=s.reconnect_max_seconds,
            jitter=min(1.0, s.reconnect_initial_seconds), clock=clock,
            on_reconnect=self._reconnected,
        )
        self.order_queue = OrderQueue(local_file(s.order_queue_path, self.database.url, "order_queue"),
                                      on_depth=lambda n: self.metrics and self.metrics.set_order_queue_depth(n))
        self.order_breaker = CircuitBreaker(
            "orders", s.order_breaker_failures, s.order_breaker_reset_seconds, clock=clock,
            on_state_change=lambda name, state: self.instrumentation and self.instrumentation.circuit(name, state),
        )

    def _reconnected(self, outage: float) -> None:
        self.engine.preflight.recheck_now()  # every reconnect reads the preflight checks again
        if self.instrumentation is not None:
            self.instrumentation.reconnected(outage)

    # -- start-up ----------------------------------------------------------------------------

    def _start_loki(self) -> LokiHandler | None:
        """The Loki handler from process start, holding its lines until the account (a label) is known.

        What it cannot push in time goes to the log backlog file beside the store, pushed next start.
        """
        s = self.settings
        if not s.loki_url:
            return None
        backlog = LogBacklog(local_file(s.log_backlog_path, self.database.url, "log_backlog"), s.log_backlog_max_lines)
        loki = LokiHandler(s.loki_url, {"service": "bot", "env": s.env}, backlog=backlog, hold=True)
        attach_loki(loki)
        return loki

    def _first_migration(self) -> None:
        """Migrate now if the database answers; otherwise say what happens next (never raise for an outage)."""
        if self.schema.attempt():
            return
        if self.schema.schema_known:
            log.warning("%s; schema %s known from the last run: trading, writes spooled until it answers",
                        self.schema.reason, self.schema.code_head)
        else:
            log.warning("%s; no known schema (first start): waiting for it before trading", self.schema.reason)

    @property
    def waiting_for_database(self) -> bool:
        """Not trading for want of the database: no known schema; or the engine cannot start (after a
        crash: no checkpoint of the store's state) or cycle (a read the local mirror cannot answer)
        from what the spool knows. Feeds tradewatch_store_waiting_for_database (BotWaitingForDatabase)."""
        report = self.engine.last_report
        blocked = report is not None and (report.error or "").startswith(StoreUnavailable.__name__)
        return self.schema.waiting or blocked or (not self.schema.ready and not self.engine.reconciled)

    def wait_for_schema(self) -> bool:
        """First-ever start without a database: wait (retrying, not ready) until it is migrated or stop."""
        return self.schema.wait(self.pacer.stop_event) if self.schema.waiting else True

    def connect(self) -> None:
        """First contact with the terminal; on failure the loop starts anyway and keeps retrying."""
        try:
            self.engine.start()
        except GatewayError as exc:
            log.warning("terminal not reachable at start: %s", exc, extra={"error_kind": exc.kind})
        except StoreUnavailable as exc:
            log.warning("engine not started yet: %s", exc)

    @property
    def account(self) -> str:
        return self.engine.account_id or (str(self.settings.mt5_login) if self.settings.mt5_login else "unknown")

    def start_telemetry(self, serve: bool = True) -> None:
        """Metrics, Loki, alerts and the health server, labelled with the account."""
        account = self.account
        self.metrics = BotMetrics(account, version=__version__)
        self.durability = DurabilityMetrics(self.metrics.registry, self.metrics.account)
        self.durability.watch_waiting_for_database(lambda: self.waiting_for_database)
        wal_sync = getattr(self.database.engine, "wal_sync", None)
        if wal_sync is not None:  # a SQLite store: a failed background fsync is counted (StoreFsyncFailing)
            wal_sync.on_failure = self.durability.count_fsync_failure
        self.metrics.registry.register(RiskGuardCollector(self.metrics.account, lambda: self.engine.risk_guard,
                                                          HALT_REASONS))
        self.safety = BrokerSafetyMetrics(self.metrics.registry, self.metrics.account)
        self.engine.preflight.on_result = self.safety.set_check
        self.engine.on_stop_out = self.safety.count_stop_out
        if self.loki is not None:
            self.loki.on_drop = self.metrics.count_log_drops
            self.loki.on_push_failure = self.durability.count_push_failure
            self.durability.watch_log_queues(lambda: self.loki.queue_depth if self.loki else 0,
                                             lambda: self.loki.backlog_depth if self.loki else 0)
        set_account(account)
        if self.loki is not None:
            self.loki.start_pushing(account)
        if self.settings.alertmanager_url:
            self.alerts = AlertmanagerClient(self.settings.alertmanager_url, {"account": account, "service": "bot"})
        self.history = MinuteRollup(self.repo, account, on_day_closed=self.write_daily_report, defer_writes=True,
                                    # the measured server offset, read as broker_day_of reads it
                                    offset_of=self.gateway.server_offset_seconds)
        self.instrumentation = Instrumentation(self.metrics, history_sink=self.history, alerts=self.alerts,
                                               terminal_alert_after=self.settings.terminal_alert_seconds)
        self.instrumentation.watch(self.gateway)
        clock = getattr(self.gateway, "clock", None)  # the broker's server clock (bot.gateway.clock)
        if clock is not None:
            clock.on_change = self.instrumentation.broker_clock
            self.metrics.set_broker_clock_offset(clock.offset)
        self.engine.observer = self.instrumentation
        self.instrumentation.strategy_metrics = StrategyMetrics(self.metrics.registry, self.metrics.account,
                                                                [s.name for s in self.strategies])
        self.metrics.set_connected(self.gateway.connected)
        self.metrics.set_order_queue_depth(self.order_queue.depth)
        self.metrics.set_circuit_state(self.order_breaker.name, self.order_breaker.state)
        self.metrics.set_circuit_state(self.db_breaker.name, self.db_breaker.state)
        self.metrics.set_store_spool_depth(self.repo.depth)
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
            self.control = self._start_control()

    def _start_control(self) -> ControlServer | None:
        """The operator control endpoint (bot.control); if it cannot start, the bot trades on without it (said)."""
        from .control.client import local_url
        from .control.desk import ControlDesk
        from .control.server import ControlApp
        from .control.token import TokenFileError, ensure_token, token_file, write_endpoint

        path = token_file(self.settings.control_token_file, self.database.url)
        try:
            token = ensure_token(path)
            desk = ControlDesk(self.engine, self.repo, lambda: self.account, self.cycle_lock, self.status)
            server = ControlServer(ControlApp(desk, token), self.settings.control_host, self.settings.control_port)
        except (TokenFileError, OSError) as exc:
            self.control_reason = f"control endpoint off: {exc}"
            log.error(self.control_reason)
            return None
        self.metrics.registry.register(ControlCollector(self.metrics.account, desk))
        server.start()
        try:
            write_endpoint(path, local_url(self.settings.control_host, server.port))  # for ctl (CONTROL_PORT=0)
        except OSError as exc:
            log.error("control endpoint file not written beside %s: %s", path, exc)
        self.control_reason = None
        return server

    def write_daily_report(self, day: date) -> None:
        """The trading day rolled over: store the finished day's daily_performance row."""
        from .reports import daily_report

        result = daily_report(self.database, self.repo, self.account, day)
        log.info("daily report", extra={"date": day.isoformat(), "trades": result.trades,
                                        "profit": str(result.profit), "win_rate": result.win_rate})

    # -- the loop ------------------------------------------------------------------------------

    def request_stop(self, signum: int | None = None, *_: Any) -> None:
        """SIGINT/SIGTERM: the loop stops after the cycle in progress.

        Nothing is logged here: a signal handler runs between two bytecodes of the main thread,
        possibly inside a log handler's emit, and logging from it re-enters that handler (a
        "--- Logging error ---" traceback on Ctrl-C under load). The loop says it once it stops.
        """
        if self._stop_signal is None:
            self._stop_signal = signum or 0
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
            self.wait_for_schema()
            while not self.pacer.stop_event.is_set() and (cycles is None or done < cycles):
                with self.cycle_lock:
                    self.summary.add(self.engine.run_cycle())
                self.liveness.beat()
                done += 1
                self._cycles_done = done
                if cycles is not None and done >= cycles:
                    break
                self.pacer.wait()
            if self._stop_signal is not None:
                name = signal.Signals(self._stop_signal).name if self._stop_signal else "a stop request"
                log.info("stop requested (%s): the cycle in progress finished", name)
        finally:
            self.close()
        return 0

    def _close_resilience(self, deadline: float) -> None:
        """Flush the store spool within the time left (what remains stays durable for the next start)."""
        try:
            self.repo.flush(max(0.1, deadline - time.monotonic()))
        except Exception as exc:  # noqa: BLE001 - shutting down: report, keep the spool for next time
            log.warning("store spool not flushed at shutdown: %s", exc)
        if self.repo.depth:
            log.warning("store spool keeps %d writes for the next start", self.repo.depth)
        self.repo.close()
        self.order_queue.close()

    def close(self) -> None:
        """Stop in the order that loses nothing: store spool, then "bot stopped", then the Loki queue
        (within SHUTDOWN_FLUSH_SECONDS, the rest to the log backlog), and the metrics server last,
        so a scrape still sees the final drop counter."""
        deadline = time.monotonic() + self.settings.shutdown_flush_seconds
        if self.history is not None:
            self.instrumentation.flush_history()  # the cycles it feeds the history in batches
            self.history.flush()
        self.gateway.close()
        if self.alerts is not None:
            self.alerts.close(max(0.5, deadline - time.monotonic()))
        self._close_resilience(deadline)
        self.engine.risk_guard.close()
        log.info(self.summary.line(), extra=self.summary.fields())
        log.info("bot stopped", extra={"cycles": self._cycles_done})
        if self.loki is not None:
            self.loki.close(max(0.5, deadline - time.monotonic()))
            detach_loki(self.loki)
        if self.control is not None:
            self.control.stop()
            self.control = None
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.database.dispose()
