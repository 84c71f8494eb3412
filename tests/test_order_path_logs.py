"""Every log call on the order paths is emitted, with its key fields, and none fails inside logging.

An `extra=` key that LogRecord reserves (`message`, `asctime`, `msg`, ...) makes the logging call
itself raise KeyError, so the code path around it fails: "unknown order resolved" once did that on
every cycle that resolved an unknown order. Here the bot runs against the in-process simulator and
each path is driven on purpose: reconciliation (with an adopted position), a requoted order resent,
a requoted order not resent, an unknown outcome resolved at the broker, a queued order replayed and
one expired. Each line is formatted by the real JSON formatter; a failing handler or formatter is
recorded and fails the test. On every shipped broker profile, with the profile's symbol names.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from sim_profile_helpers import broker_name, load_profile, market_deal, shipped_profiles

from bot.app import BotApp
from bot.config import Settings
from bot.engine.orders import new_client_order_id, order_comment
from bot.resilience.order_queue import QueuedOrder
from bot.telemetry.context import new_correlation_id
from bot.telemetry.logging import TradewatchJsonFormatter
from mt5bridge import constants as mt5
from mt5bridge.sim import SimTerminal

TTL_SECONDS = 120
BREAKER_FAILURES = 3
BREAKER_RESET_SECONDS = 60


class JsonCapture(logging.Handler):
    """Formats every record as the bot's JSON line; any error inside logging is kept, not printed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(TradewatchJsonFormatter(service="bot", account=None, env="test"))
        self.lines: list[dict] = []
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(json.loads(self.format(record)))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            self.errors.append(f"{record.getMessage()!r}: {type(exc).__name__}: {exc}")

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        self.errors.append(f"handler error on {record.getMessage()!r}")

    def find(self, prefix: str) -> list[dict]:
        return [line for line in self.lines if line["message"].startswith(prefix)]


@pytest.fixture
def capture():
    handler = JsonCapture()
    root = logging.getLogger()
    old_level, old_raise = root.level, logging.raiseExceptions
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.raiseExceptions = True
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        logging.raiseExceptions = old_raise


def _app(tmp_path, sim: SimTerminal, symbol: str) -> BotApp:
    settings = Settings.from_env({
        "DATABASE_URL": f"sqlite:///{tmp_path}/logs.db", "SYMBOLS": symbol, "TIMEFRAME": "M1",
        "CYCLE_SECONDS": "30", "LOG_LEVEL": "INFO", "ORDER_TTL_SECONDS": str(TTL_SECONDS),
        "ORDER_MAX_DEVIATION_POINTS": "100000", "ORDER_BREAKER_FAILURES": str(BREAKER_FAILURES),
        "ORDER_BREAKER_RESET_SECONDS": str(BREAKER_RESET_SECONDS), "REQUOTE_RETRIES": "2", "HISTORY_DAYS": "1",
        "HISTORY_IMPORT": "off",  # else the first-start import books the stray position and nothing is adopted
    }, dotenv_path=None)
    return BotApp(settings, sim=sim, stepped=True)


def _order(app: BotApp, *, side: str = "BUY", purpose: str = "open", position: int | None = None) -> QueuedOrder:
    engine = app.engine
    (symbol,) = engine.specs
    spec = engine.specs[symbol]
    quote = engine.gateway.quote(symbol)
    return QueuedOrder(
        client_order_id=new_client_order_id(), account=engine.account_id, correlation_id=new_correlation_id(),
        signal_id=None, symbol=symbol, strategy="ma_crossover", side=side, purpose=purpose,
        volume=spec.volume_min, price=quote.ask if side == "BUY" else quote.bid, sl=None, tp=None,
        position_ticket=position, deviation_points=app.settings.deviation_points,
        max_deviation=spec.point * app.settings.order_max_deviation_points,
        decided_at=quote.time, expires_at=quote.time + timedelta(seconds=TTL_SECONDS),
    )


def _submit(app: BotApp, order: QueuedOrder) -> str:
    return app.engine.flow.submit(order, order.price).status


def _open_breaker(app: BotApp) -> None:
    for _ in range(BREAKER_FAILURES):
        app.order_breaker.record_failure()
    assert app.order_breaker.state == "open"


def _one(capture: JsonCapture, prefix: str, client_order_id: str | None = None, most: int = 1, **fields) -> dict:
    """The line logged once (or, with `most`, one to `most` times: the first is checked)."""
    lines = [line for line in capture.find(prefix)
             if client_order_id is None or line.get("client_order_id") == client_order_id]
    assert 1 <= len(lines) <= most, f"{prefix!r} for {client_order_id}: {len(lines)} lines, logged: " + \
        "; ".join(line["message"] for line in capture.lines[-30:])
    line = lines[0]
    for name, wanted in fields.items():
        assert name in line, f"{prefix!r} has no {name!r}: {line}"
        if wanted is not ...:
            assert line[name] == wanted, f"{prefix!r}: {name} is {line[name]!r}, not {wanted!r}"
    return line


@pytest.mark.parametrize("profile", shipped_profiles())
def test_every_order_path_logs_its_line_without_a_logging_error(tmp_path, capture, profile):
    symbol = broker_name(profile, "EURUSD")
    sim = SimTerminal(seed=5, stepped=True, profile=profile)
    app = _app(tmp_path, sim, symbol)
    try:
        # A position with our magic, opened before the history the bot looks at: reconciliation adopts it.
        app.gateway.connect()
        stray = market_deal(sim, symbol, "BUY", 0.01, magic=app.settings.magic, deviation=20,
                            comment=order_comment(new_client_order_id(), "manual"))
        assert stray.retcode == mt5.TRADE_RETCODE_DONE, stray
        sim.advance(26 * 3600)
        app.connect()
        app.start_telemetry(serve=False)
        reports = [app.engine.run_cycle()]
        _one(capture, "reconciled with the broker", opened=..., closed=..., adopted=1, queued=0)
        adopted = _one(capture, "position adopted", symbol=symbol)
        assert adopted["ticket"] == stray.order  # a position's ticket is its opening order's

        # Requoted, resent at the fresh price under the same client order id, then filled.
        sim.fault_reject_next(1, mt5.TRADE_RETCODE_REQUOTE)
        requoted = _order(app)
        assert _submit(app, requoted) == "filled"
        _one(capture, "order intent", requoted.client_order_id, symbol=symbol, side="BUY", purpose="open")
        # a dealer that requotes a share of requests anyway (request-exotic) may requote the resend too
        resends = app.settings.requote_retries if load_profile(profile).symbols[symbol].requote_share else 1
        _one(capture, f"order {requoted.client_order_id} requoted", requoted.client_order_id, most=resends,
             retcode=mt5.TRADE_RETCODE_REQUOTE, price=..., attempt=2, symbol=symbol)

        # Requoted, but by the time it could be resent it is older than its TTL: not resent.
        sim.fault_reject_next(1, mt5.TRADE_RETCODE_REQUOTE)
        send = sim.order_send

        def late_reply(request):
            reply = send(request)
            sim.advance(TTL_SECONDS + 1)
            return reply

        sim.order_send = late_reply
        stale = _order(app)
        try:
            assert _submit(app, stale) == "rejected"
        finally:
            del sim.order_send
        _one(capture, f"requoted order {stale.client_order_id} not resent", stale.client_order_id, reason="ttl")
        _one(capture, "order open BUY", stale.client_order_id, outcome="rejected", retcode=mt5.TRADE_RETCODE_REQUOTE)

        # Executed, reply lost: unknown; the next cycle finds it at the broker.
        sim.fault_timeout_after_execute(1)
        lost = _order(app)
        assert _submit(app, lost) == "unknown"
        _one(capture, "order open BUY", lost.client_order_id, outcome="unknown")
        reports.append(app.engine.run_cycle())
        _one(capture, "unknown order resolved", lost.client_order_id, outcome="filled",
             correlation_id=lost.correlation_id, resolution=...)

        # Order circuit open: queued; once it half-opens the next cycle replays it (a close).
        _open_breaker(app)
        close = _order(app, side="SELL", purpose="close", position=adopted["ticket"])
        assert _submit(app, close) == "queued"
        _one(capture, f"order close SELL {symbol} queued", close.client_order_id, outcome="queued",
             correlation_id=close.correlation_id)
        sim.advance(BREAKER_RESET_SECONDS)
        reports.append(app.engine.run_cycle())
        _one(capture, "queued order replayed", close.client_order_id, outcome="filled", price=...,
             correlation_id=close.correlation_id)

        # Queued again, and still waiting when its TTL passes: expired, never sent.
        _open_breaker(app)
        expired = _order(app)
        assert _submit(app, expired) == "queued"
        sim.advance(TTL_SECONDS + BREAKER_RESET_SECONDS)
        reports.append(app.engine.run_cycle())
        _one(capture, "queued order expired", expired.client_order_id, reason="ttl",
             correlation_id=expired.correlation_id)
        assert all(line.get("client_order_id") != expired.client_order_id for line in capture.find("order intent"))
    finally:
        app.close()

    assert capture.errors == []
    assert [r.error for r in reports] == [None] * len(reports)
    assert not capture.find("cycle failed")


def test_no_extra_field_overwrites_a_log_record_attribute():
    """Statically, everywhere: an `extra=` key named like a LogRecord attribute raises in logging itself."""
    import ast
    from pathlib import Path

    reserved = set(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))) | {"message", "asctime"}
    root = Path(__file__).resolve().parents[1]
    found, scanned = [], 0
    packages = ("bot", "db", "exporter", "mt5bridge", "bench", "stack", "tests", "scripts", "deploy")
    for path in sorted(p for name in packages for p in (root / name).glob("**/*.py")):
        if "node_modules" in path.parts:
            continue
        scanned += 1
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                    found += [f"{path.relative_to(root)}:{node.lineno} {key.value!r}" for key in keyword.value.keys
                              if isinstance(key, ast.Constant) and key.value in reserved]
    assert scanned > 100
    assert found == []
