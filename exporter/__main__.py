"""`python -m exporter`: serve the exporter with waitress (a production WSGI server) until SIGTERM/SIGINT.

Settings come from the environment (exporter.settings); an invalid one exits with
status 2 and one line naming it.  Logs are JSON lines (bot.telemetry.logging), with the
database password registered as a secret so it can never appear in them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

import waitress

from bot.telemetry.logging import setup_logging
from bot.telemetry.loki import LokiHandler
from db.database import Database
from db.url import redact_url
from exporter.app import create_app
from exporter.settings import ExporterSettings, SettingsError

log = logging.getLogger("exporter")
THREADS = 4


def main() -> int:
    try:
        settings = ExporterSettings.from_env(os.environ)
        settings.check_can_listen()
    except SettingsError as exc:
        sys.stderr.write(f"config error: {exc}\n")
        return 2
    secrets = [settings.database_url.password] if settings.database_url.password else []
    loki = None
    if settings.loki_url:
        loki = LokiHandler(settings.loki_url, {"service": "exporter", "env": settings.env})
    setup_logging(settings.log_level, service="exporter", env=settings.env, secrets=secrets, loki=loki)
    database = Database(settings.database_url)
    server = waitress.create_server(
        create_app(database), host=settings.host, port=settings.port, threads=THREADS, ident="tradewatch-exporter"
    )
    signal.signal(signal.SIGTERM, _stop)
    port = int(server.effective_port)
    log.info(
        "exporter listening on http://%s:%d",
        settings.host,
        port,
        extra={"host": settings.host, "port": port, "database": redact_url(database.url)},
    )
    try:
        server.run()  # returns on SIGINT/SIGTERM (waitress catches the KeyboardInterrupt/SystemExit)
    finally:
        server.close()
        database.dispose()
        log.info("exporter stopped")
        if loki is not None:
            loki.close()
    return 0


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
