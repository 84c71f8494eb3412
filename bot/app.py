"""The composition root: build settings, store, gateway, engine and telemetry, then run the loop.

This is the only module that knows every part; each part knows only its neighbours' interfaces.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from db import Repository, init_db, redact_url

from .config import Settings
from .engine import Engine, load_strategies
from .gateway.factory import make_gateway, make_sim

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


class BotApp:
    def __init__(self, settings: Settings, speed: float | None = None, sim: Any = None, stepped: bool = False):
        self.settings = settings
        self.speed = speed if speed is not None else (settings.sim_speed if settings.mt5_mode == "sim" else 1.0)
        if settings.mt5_mode == "sim" and sim is None:
            from dataclasses import replace

            sim = make_sim(replace(settings, sim_speed=self.speed), stepped=stepped)
        self.sim = sim
        self.database = init_db(settings.database_url)
        self.repo = Repository(self.database)
        self.gateway = make_gateway(settings, sim=sim)
        self.strategies = load_strategies(settings.strategies)
        self.engine = Engine(settings, self.gateway, self.repo, self.strategies)
        self.pacer = Pacer(settings.cycle_seconds, self.speed, stepped_sim=sim if stepped else None)

    def request_stop(self, *_: Any) -> None:
        if not self.pacer.stop_event.is_set():
            log.info("stop requested: finishing the cycle")
        self.pacer.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)

    def run(self, cycles: int | None = None) -> int:
        log.info(
            "bot starting",
            extra={"mode": self.settings.mt5_mode, "database": redact_url(self.database.url),
                   "speed": self.speed, "cycle_seconds": self.settings.cycle_seconds},
        )
        done = 0
        try:
            while not self.pacer.stop_event.is_set() and (cycles is None or done < cycles):
                self.engine.run_cycle()
                done += 1
                if cycles is not None and done >= cycles:
                    break
                self.pacer.wait()
        finally:
            self.close()
        log.info("bot stopped", extra={"cycles": done})
        return 0

    def close(self) -> None:
        self.gateway.close()
        self.database.dispose()
