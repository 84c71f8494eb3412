"""`python -m exporter`: serve the exporter with waitress (a production WSGI server) until SIGTERM/SIGINT.

waitress runs with the bounded profile shared with the bot (bot.telemetry.http_server:
fixed worker pool, idle timeout, connection and size limits), so a flood of idle or
half-sent connections cannot starve Prometheus' scrape or Alertmanager's deliveries.

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

from bot.telemetry.http_server import EXPORTER_LIMITS, create_bounded_server
from bot.telemetry.logging import setup_logging
from bot.telemetry.loki import LokiHandler
from db.database import Database
from db.url import redact_url
from exporter.app import create_app
from exporter.settings import ExporterSettings, SettingsError

log = logging.getLogger("exporter")


def _parser():
    import confcheck

    return confcheck.OneLineParser(
        prog="python -m exporter",
        description="tradewatch exporter: KPIs on /metrics, the REST API and the alert sink, served until "
                    "SIGTERM/SIGINT. Settings come from the environment (EXPORTER_HOST, EXPORTER_PORT, "
                    "DATABASE_URL, EXPORTER_SINK_TOKEN(_FILE), EXPORTER_API_TOKEN(_FILE), LOKI_URL, LOG_LEVEL; "
                    "see README).")


def main(argv: list[str] | None = None) -> int:
    _parser().parse_args([] if argv is None else argv)  # --help answers without starting anything; no other argument
    try:
        settings = ExporterSettings.from_env(os.environ)
        settings.check_can_listen()
    except SettingsError as exc:
        sys.stderr.write(f"config error: {exc}\n")
        return 2
    secrets = settings.secrets
    loki = None
    if settings.loki_url:
        loki = LokiHandler(settings.loki_url, {"service": "exporter", "env": settings.env})
    setup_logging(settings.log_level, service="exporter", env=settings.env, secrets=secrets, loki=loki)
    database = Database(settings.database_url)
    app = create_app(database, sink_token=settings.sink_token, api_token=settings.api_token,
                     metrics_max_age_seconds=settings.metrics_max_age_seconds)
    server = create_bounded_server(app, settings.host, settings.port, EXPORTER_LIMITS, ident="tradewatch-exporter")
    signal.signal(signal.SIGTERM, _stop)
    port = int(server.effective_port)
    log.info(
        "exporter listening on http://%s:%d",
        settings.host,
        port,
        extra={"host": settings.host, "port": port, "database": redact_url(database.url),
               "alert_sink": "on" if settings.sink_token else "off", "api_auth": "on" if settings.api_token else "off"},
    )
    if not settings.sink_token:
        log.warning("EXPORTER_SINK_TOKEN is not set: the alert sink refuses every write "
                    "(tradewatch_exporter_alert_sink_enabled 0)")
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
    sys.exit(main(sys.argv[1:]))
