"""The exporter's settings, from the environment; a bad value stops start-up with one line naming it.

Parsed with confcheck, the vocabulary the bot, the bridge, db and stack share.
The default bind is 127.0.0.1 (compose sets EXPORTER_HOST=0.0.0.0 on its own networks).
EXPORTER_SINK_TOKEN(_FILE) guards the alert sink; without it the sink refuses every write.
EXPORTER_API_TOKEN(_FILE), when set, is required by the read endpoints under /api/v1.
EXPORTER_METRICS_MAX_AGE_SECONDS (default 0): how long /metrics may reuse figures read from a store
that has changed since (exporter/figures.py); 0 reuses them only while the store is unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.engine import URL

import confcheck
from db.url import DEFAULT_URL, checked_url, resolve_url
from exporter.auth import TokenError, load_token

DEFAULT_PORT = 9108
DEFAULT_HOST = "127.0.0.1"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_METRICS_AGE_SECONDS = 300.0  # beyond a few scrape intervals a reused figure would mislead


class SettingsError(confcheck.SettingError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class ExporterSettings:
    database_url: URL
    host: str
    port: int  # 0: any free port (tests)
    log_level: str
    env: str
    loki_url: str | None
    sink_token: str | None = None  # None: the alert sink refuses every write
    api_token: str | None = None  # None: the read endpoints are open (to whoever reaches the port)
    metrics_max_age_seconds: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExporterSettings:
        return cls(
            database_url=_read("DATABASE_URL", env, "", _database_url, secret=True),
            host=_read("EXPORTER_HOST", env, DEFAULT_HOST, confcheck.bind_address),
            port=_read("EXPORTER_PORT", env, str(DEFAULT_PORT), confcheck.port(allow_zero=True)),
            log_level=_read("LOG_LEVEL", env, "INFO", confcheck.choice(LOG_LEVELS, upper=True)),
            env=_read("ENV", env, "dev", lambda raw: confcheck.label()(raw or "dev")),
            loki_url=_read("LOKI_URL", env, "", confcheck.optional(confcheck.url())),
            sink_token=_token(env, "EXPORTER_SINK_TOKEN"),
            api_token=_token(env, "EXPORTER_API_TOKEN"),
            metrics_max_age_seconds=_read("EXPORTER_METRICS_MAX_AGE_SECONDS", env, "0",
                                          confcheck.number(0.0, MAX_METRICS_AGE_SECONDS)),
        )

    @property
    def secrets(self) -> list[str]:
        """Values never to be logged."""
        values = [self.database_url.password, self.sink_token, self.api_token]
        return [value for value in values if value]

    def check_can_listen(self) -> None:
        """Raise SettingsError if EXPORTER_PORT is taken on EXPORTER_HOST (before the database is opened)."""
        try:
            confcheck.free_to_listen(self.host, self.port)
        except ValueError as exc:
            raise SettingsError(f"EXPORTER_PORT: {exc}", "EXPORTER_PORT") from None


def _read(name: str, env: Mapping[str, str], default: str, parse, secret: bool = False):
    try:
        return confcheck.read(name, env.get(name, default), parse, secret=secret)
    except confcheck.SettingError as exc:
        raise SettingsError(str(exc), name) from None


def _token(env: Mapping[str, str], name: str) -> str | None:
    try:
        return load_token(env, name)
    except TokenError as exc:
        raise SettingsError(str(exc), name) from None


def _database_url(raw: str) -> URL:
    """Empty: the SQLite default under data/, whose folder db/ creates."""
    return checked_url(raw) if raw.strip() else resolve_url(DEFAULT_URL)
