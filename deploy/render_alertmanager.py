"""Render the Alertmanager config: the committed alertmanager/alertmanager.yml plus the optional
Telegram, Slack and e-mail receivers switched on by variables in `.env`.

Why a render step: Alertmanager never expands environment variables in its config, and the
`*_file` secret fields that would avoid it are missing from Debian's Alertmanager 0.25 (which
the native stack and `amtool` in the tests use). So a one-shot container (see
docker-compose.yml, service `alertmanager-config`) writes the final file into a volume that
only Alertmanager reads; the committed file stays a complete config that `amtool` accepts.

Why parse-and-append instead of a template: routing, grouping and inhibition stay exactly as
written in the committed file (edit them there); this script only appends channel configs to
the receivers named in NOTIFY_SEVERITIES and can repoint the always-on sink (ALERT_SINK_URL)
and the file its bearer token is read from (ALERT_SINK_TOKEN_FILE; the exporter refuses
writes without it, and Alertmanager reads `http_config.authorization.credentials_file` itself,
so the token never enters the rendered file).

Variables (all optional; a channel is on when its first variable is set):
  TELEGRAM_BOT_TOKEN, TELEGRAM_CHAT_ID
  SLACK_WEBHOOK_URL, SLACK_CHANNEL
  SMTP_SMARTHOST (host:port), SMTP_FROM, SMTP_TO (comma-separated), SMTP_USERNAME,
  SMTP_PASSWORD, SMTP_REQUIRE_TLS (default true)
  HEARTBEAT_URL: a healthchecks-style ping URL for the always-firing Watchdog (receiver `heartbeat`)
  NOTIFY_SEVERITIES (default "critical,warning"): receivers that get the channels
  ALERT_SINK_URL: where the exporter's alert sink is (default: as committed)
  ALERT_SINK_TOKEN_FILE: the sink token's file (default: as committed, the compose secret)

Uses only the standard library and PyYAML, so it runs in the tradewatch image and on a host.
Secret values are never logged; errors are one line naming the variable.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("render_alertmanager")

COMMITTED_SINK_URL = "http://exporter:9108/api/v1/alerts"
COMMITTED_SINK_TOKEN_FILE = "/run/secrets/exporter_sink_token"
SEVERITIES = ("critical", "warning", "info")
DEFAULT_NOTIFY_SEVERITIES = "critical,warning"

_TELEGRAM_TOKEN = re.compile(r"^[0-9]+:[A-Za-z0-9_-]+$")
_CHAT_ID = re.compile(r"^-?[0-9]+$")
_SMARTHOST = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class RenderError(ValueError):
    """Bad input for the render; the message is one line naming the variable."""


def _get(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def _require(env: Mapping[str, str], name: str, because: str) -> str:
    value = _get(env, name)
    if not value:
        raise RenderError(f"{name} is required when {because} is set")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name).lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise RenderError(f"{name} must be true or false, got {raw!r}")


def _email_address(value: str, name: str) -> str:
    if "@" not in value or any(c.isspace() for c in value):
        raise RenderError(f"{name} must be an e-mail address, got {value!r}")
    return value


def telegram_config(env: Mapping[str, str]) -> dict[str, Any] | None:
    """telegram_configs entry (Alertmanager >= 0.24), or None when TELEGRAM_BOT_TOKEN is unset."""
    token = _get(env, "TELEGRAM_BOT_TOKEN")
    if not token:
        return None
    if not _TELEGRAM_TOKEN.match(token):
        raise RenderError("TELEGRAM_BOT_TOKEN must look like <digits>:<letters, digits, _ or ->")
    chat_id = _require(env, "TELEGRAM_CHAT_ID", "TELEGRAM_BOT_TOKEN")
    if not _CHAT_ID.match(chat_id):
        raise RenderError(f"TELEGRAM_CHAT_ID must be an integer chat id, got {chat_id!r}")
    return {"bot_token": token, "chat_id": int(chat_id), "send_resolved": True}


def slack_config(env: Mapping[str, str]) -> dict[str, Any] | None:
    """slack_configs entry for an incoming webhook, or None when SLACK_WEBHOOK_URL is unset."""
    url = _get(env, "SLACK_WEBHOOK_URL")
    if not url:
        return None
    if not url.startswith("https://") or any(c.isspace() for c in url):
        raise RenderError("SLACK_WEBHOOK_URL must be an https:// URL")
    config: dict[str, Any] = {"api_url": url, "send_resolved": True}
    channel = _get(env, "SLACK_CHANNEL")
    if channel:
        config["channel"] = channel
    return config


def email_config(env: Mapping[str, str]) -> dict[str, Any] | None:
    """email_configs entry, or None when SMTP_SMARTHOST is unset."""
    smarthost = _get(env, "SMTP_SMARTHOST")
    if not smarthost:
        return None
    if not _SMARTHOST.match(smarthost):
        raise RenderError(f"SMTP_SMARTHOST must be host:port, got {smarthost!r}")
    sender = _email_address(_require(env, "SMTP_FROM", "SMTP_SMARTHOST"), "SMTP_FROM")
    recipients = [r.strip() for r in _require(env, "SMTP_TO", "SMTP_SMARTHOST").split(",") if r.strip()]
    for recipient in recipients:
        _email_address(recipient, "SMTP_TO")
    config: dict[str, Any] = {
        "to": ", ".join(recipients),
        "from": sender,
        "smarthost": smarthost,
        "require_tls": _bool(env, "SMTP_REQUIRE_TLS", True),
        "send_resolved": True,
    }
    username, password = _get(env, "SMTP_USERNAME"), _get(env, "SMTP_PASSWORD")
    if bool(username) != bool(password):
        raise RenderError("SMTP_USERNAME and SMTP_PASSWORD must be set together")
    if username:
        config["auth_username"] = username
        config["auth_password"] = password
    return config


def heartbeat_config(env: Mapping[str, str]) -> dict[str, Any] | None:
    """webhook_configs entry of the `heartbeat` receiver (the Watchdog's pings), or None when unset."""
    url = _get(env, "HEARTBEAT_URL")
    if not url:
        return None
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise RenderError("HEARTBEAT_URL must be an http:// or https:// URL")
    return {"url": url, "send_resolved": False, "max_alerts": 1}


def notify_severities(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = _get(env, "NOTIFY_SEVERITIES") or DEFAULT_NOTIFY_SEVERITIES
    chosen = tuple(dict.fromkeys(s.strip().lower() for s in raw.split(",") if s.strip()))
    unknown = [s for s in chosen if s not in SEVERITIES]
    if unknown or not chosen:
        raise RenderError(f"NOTIFY_SEVERITIES must list some of {', '.join(SEVERITIES)}, got {raw!r}")
    return chosen


def channels(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The enabled channels as {config key: config}, validated."""
    found = {
        "telegram_configs": telegram_config(env),
        "slack_configs": slack_config(env),
        "email_configs": email_config(env),
    }
    return {key: config for key, config in found.items() if config is not None}


def render(base: Mapping[str, Any], env: Mapping[str, str], sink_url: str | None = None,
           sink_token_file: str | None = None) -> dict[str, Any]:
    """The final config: `base` with the channels appended to the NOTIFY_SEVERITIES receivers.

    `base` is not modified. `sink_url` replaces the committed sink URL in every webhook, and
    `sink_token_file` the file the sink's bearer token is read from.
    """
    config = yaml.safe_load(yaml.safe_dump(dict(base), sort_keys=False))  # a deep copy without shared YAML aliases
    receivers = {r.get("name"): r for r in config.get("receivers") or []}
    heartbeat = heartbeat_config(env)
    if heartbeat is not None:
        if "heartbeat" not in receivers:
            raise RenderError("HEARTBEAT_URL is set but alertmanager.yml has no `heartbeat` receiver")
        receivers["heartbeat"].setdefault("webhook_configs", []).append(heartbeat)
    enabled = channels(env)
    if enabled:
        for severity in notify_severities(env):
            receiver = receivers.get(severity)
            if receiver is None:
                raise RenderError(f"NOTIFY_SEVERITIES names {severity!r} but alertmanager.yml has no such receiver")
            for key, channel in enabled.items():
                receiver.setdefault(key, []).append(dict(channel))
    if sink_url and not sink_url.startswith(("http://", "https://")):
        raise RenderError("ALERT_SINK_URL must be an http:// or https:// URL")
    if sink_token_file is not None and not Path(sink_token_file).is_absolute():
        raise RenderError("ALERT_SINK_TOKEN_FILE must be an absolute path")
    for receiver in receivers.values():
        for webhook in receiver.get("webhook_configs") or []:
            if webhook.get("url") != COMMITTED_SINK_URL:
                continue
            if sink_url:
                webhook["url"] = sink_url
            if sink_token_file:
                authorization = webhook.setdefault("http_config", {}).setdefault("authorization", {})
                authorization.update(type="Bearer", credentials_file=sink_token_file)
    return config


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(config: Mapping[str, Any]) -> str:
    header = "# Rendered by deploy/render_alertmanager.py from alertmanager/alertmanager.yml. Do not edit.\n"
    return header + yaml.dump(dict(config), Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False)


def write_private(path: Path, text: str, mode: int, owner: tuple[int, int] | None) -> None:
    """Write atomically with `mode` (the file may hold tokens) and optionally chown it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".alertmanager-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        if owner is not None:
            os.chown(tmp, *owner)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _owner(raw: str) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]+):([0-9]+)", raw)
    if not match:
        raise argparse.ArgumentTypeError(f"--owner must be UID:GID, got {raw!r}")
    return int(match.group(1)), int(match.group(2))


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="committed alertmanager.yml")
    parser.add_argument("--output", type=Path, required=True, help="file Alertmanager reads")
    parser.add_argument("--sink-url", default=None, help="alert sink URL (default: $ALERT_SINK_URL or as committed)")
    parser.add_argument("--sink-token-file", default=None,
                        help="file of the sink's bearer token (default: $ALERT_SINK_TOKEN_FILE or as committed)")
    parser.add_argument("--mode", type=lambda s: int(s, 8), default=0o600, help="octal file mode (default 0600)")
    parser.add_argument("--owner", type=_owner, default=None, help="UID:GID to own the output")
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        base = yaml.safe_load(args.source.read_text(encoding="utf-8"))
        if not isinstance(base, dict):
            raise RenderError(f"{args.source} is not a YAML mapping")
        config = render(base, env, args.sink_url or _get(env, "ALERT_SINK_URL") or None,
                        args.sink_token_file or _get(env, "ALERT_SINK_TOKEN_FILE") or None)
        write_private(args.output, dump(config), args.mode, args.owner)
    except (RenderError, OSError, yaml.YAMLError) as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        log.error("cannot render the Alertmanager config: %s", first_line)
        return 2
    enabled = [key.removesuffix("_configs") for key in channels(env)]
    where = ", ".join(notify_severities(env)) if enabled else "-"
    log.info("wrote %s; channels: %s (for severities: %s)", args.output, ", ".join(enabled) or "sink only", where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
