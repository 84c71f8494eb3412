"""A stop signal (Ctrl-C, SIGTERM) only sets a flag: the loop says so once it stops.

Why a test: a signal handler runs between two bytecodes of the main thread, possibly inside a log
handler's emit. Logging from the handler re-entered that handler and, under load, `make run`'s
Ctrl-C printed a "--- Logging error ---" traceback. Here the signal lands exactly there, every time.
"""

from __future__ import annotations

import logging
import signal

from bot.app import BotApp
from bot.config import Settings
from mt5bridge.sim import SimTerminal


class _SignalInsideEmit(logging.Handler):
    """Delivers the stop 'signal' while the first 'cycle' record is being emitted."""

    def __init__(self, app: BotApp) -> None:
        super().__init__(logging.DEBUG)
        self.app, self.fired, self.messages, self.logged_by_handler = app, False, [], None

    def emit(self, record: logging.LogRecord) -> None:
        if not self.fired and record.getMessage().startswith("cycle"):
            self.fired = True
            before = len(self.messages)
            self.app.request_stop(signal.SIGINT, None)
            self.logged_by_handler = len(self.messages) - before  # records emitted from inside the handler
        self.messages.append(record.getMessage())


def test_a_stop_signal_inside_a_log_emit_logs_nothing_there_and_the_loop_says_it_once(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "SYMBOLS": "EURUSD", "CYCLE_SECONDS": "30",
           "LOG_LEVEL": "DEBUG", "METRICS_PORT": "0"}
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=SimTerminal(seed=5, stepped=True), stepped=True)
    handler = _SignalInsideEmit(app)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        assert app.run(cycles=50, serve=False) == 0
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert handler.fired
    stops = [m for m in handler.messages if m.startswith("stop requested")]
    assert stops == ["stop requested (SIGINT): the cycle in progress finished"]
    assert app._cycles_done < 50  # it stopped after the cycle in progress, not at the cycle limit
    assert handler.logged_by_handler == 0  # the signal handler itself logged nothing
