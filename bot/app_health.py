"""What the bot says about itself: /readyz (each readiness check and why it fails) and /status (the
run's figures, the broker clock, the risk guard). A mixin of `bot.app.BotApp`, whose parts it reads.

Why apart from the composition root: these are read-only views over the parts, and say nothing
about how they are built or run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from . import __version__
from .gateway import broker_day_of


class HealthViews:
    """BotApp methods behind /readyz and /status (mixed into BotApp)."""

    # -- health --------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks = {
            "terminal_connected": self.gateway.connected and self.supervisor.usable,
            "reconciled": self.engine.halted_reason is None,
            "orders_circuit_closed": self.order_breaker.state != "open",
            "orders_not_halted": self.engine.orders_halted_reason is None,
            "store_writable": self.repo.ping() or self.repo.spool_ping(),  # spooling still records
            "strategies_loaded": len(self.strategies) > len(self.engine.runner.disabled),  # one still trades
            "store_schema_known": self.schema.schema_known,
            "preflight": self.engine.preflight.ok,
        }
        report = self.engine.last_report
        details: dict[str, Any] = {name: ("ok" if ok else "failing") for name, ok in checks.items()}
        if report is not None and report.error:
            details["last_error"] = report.error
        if not checks["terminal_connected"] and self.supervisor.reason:
            details["terminal_reason"] = self.supervisor.reason
        if self.engine.halted_reason:
            details["halted_reason"] = self.engine.halted_reason
        if self.engine.orders_halted_reason:
            details["orders_halted_reason"] = self.engine.orders_halted_reason
        if self.repo.depth:
            details["store_spool_depth"] = self.repo.depth
        if self.schema.reason and not self.schema.ready:
            details["database_reason"] = self.schema.reason
        # Not a failing check: a loss halt is the guard doing its job (exits go on), not an unready bot.
        if self.control_reason:
            details["control"] = self.control_reason
        details["risk_guard"] = f"halted: {self.engine.risk_guard.halted_reason}" if self.engine.risk_guard.halted_reason else "ok"
        details["preflight_checks"] = self.engine.preflight.as_status()  # each named check: "ok" or its sentence
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
            "broker_symbols": dict(self.engine.symbol_map),  # configured name -> the broker's name
            "broker_clock": self._broker_clock_status(),
            "strategies": [s.name for s in self.strategies],
            "strategies_disabled": dict(self.engine.runner.disabled),  # name -> the error that disabled it
            "cycles": self.engine.cycles,
            "last_cycle": None if report is None else {
                "number": report.number,
                "broker_time": report.started_at.isoformat() if report.started_at else None,
                "duration_seconds": round(report.duration_seconds, 6),
                "ok": report.ok,
                "error": report.error,
            },
            "open_positions": self.instrumentation.open_positions() if self.instrumentation else {},
            "equity": str(report.equity) if report and report.equity is not None else None,
            "preflight": self.engine.preflight.as_status(),
            "margin_mode": self.engine.preflight.margin_mode,
            "process": process,
            "risk_guard": self.engine.risk_guard.status(),
        }

    def _broker_clock_status(self) -> dict[str, Any]:
        """The server clock's offset; broker days (daily P&L, swaps) start at the server's midnight."""
        clock = getattr(self.gateway, "clock", None)
        offset = None if clock is None else clock.offset
        report = self.engine.last_report
        now = report.started_at if report is not None and report.started_at else datetime.now(UTC)
        day = broker_day_of(self.gateway, now)
        return {"offset_seconds": offset,
                "broker_day_starts_utc": None if offset is None else
                f"{(-offset // 60) % 1440 // 60:02d}:{(-offset // 60) % 60:02d}",
                "broker_day": day.date.isoformat(), "broker_day_start": day.start.isoformat(),
                "broker_day_label": day.label()}
