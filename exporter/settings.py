"""The exporter's settings, from the environment; a bad value stops start-up with one line naming it.

The default bind is 127.0.0.1 (compose sets EXPORTER_HOST=0.0.0.0 on its own networks).
EXPORTER_SINK_TOKEN(_FILE) guards the alert sink; without it the sink refuses every write.
EXPORTER_API_TOKEN(_FILE), when set, is required by the read endpoints under /api/v1.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.engine import URL

from bot.telemetry.logging import parse_level
from db.url import resolve_url
from exporter.auth import TokenError, load_token

DEFAULT_PORT = 9108
DEFAULT_HOST = "127.0.0.1"
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


class SettingsError(ValueError):
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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExporterSettings:
        try:
            database_url = resolve_url(env.get("DATABASE_URL") or None)
        except ValueError as exc:
            raise SettingsError(f"DATABASE_URL: {exc}") from None
        try:
            sink_token = load_token(env, "EXPORTER_SINK_TOKEN")
            api_token = load_token(env, "EXPORTER_API_TOKEN")
        except TokenError as exc:
            raise SettingsError(str(exc)) from None
        return cls(
            database_url=database_url,
            host=_host(env.get("EXPORTER_HOST", DEFAULT_HOST)),
            port=_port(env.get("EXPORTER_PORT", str(DEFAULT_PORT))),
            log_level=_level(env.get("LOG_LEVEL", "INFO")),
            env=env.get("ENV", "dev") or "dev",
            loki_url=_loki(env.get("LOKI_URL", "")),
            sink_token=sink_token,
            api_token=api_token,
        )

    @property
    def secrets(self) -> list[str]:
        """Values never to be logged."""
        values = [self.database_url.password, self.sink_token, self.api_token]
        return [value for value in values if value]


def _port(raw: str) -> int:
    text = raw.strip()
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise SettingsError(f"EXPORTER_PORT must be a port number from 0 to 65535, got {raw!r}")
    return int(text)


def _host(raw: str) -> str:
    text = raw.strip()
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        if _HOSTNAME.match(text):
            return text
    raise SettingsError(f"EXPORTER_HOST must be an IP address or a host name, got {raw!r}")


def _level(raw: str) -> str:
    try:
        parse_level(raw)
    except ValueError:
        raise SettingsError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got {raw!r}") from None
    return raw.strip().upper()


def _loki(raw: str) -> str | None:
    text = raw.strip()
    if not text:
        return None
    if not re.match(r"^https?://[^\s/]+", text):
        raise SettingsError("LOKI_URL must be an http(s) URL such as http://loki:3100")
    return text.rstrip("/")
