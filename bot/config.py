"""Settings from the environment (and an optional `.env`), validated once at start.

Every setting has one parser and one default here; `.env.example` lists them all. An invalid
value raises `ConfigError` whose message names the setting and what is wrong, so the CLI can
exit 2 with a single line instead of failing somewhere deep in the first cycle.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path

import confcheck
from mt5bridge import constants as mt5
from mt5bridge.server import TOKEN_MAX_BYTES


class ConfigError(confcheck.SettingError):
    """A setting is missing or invalid; the message is one line naming the setting."""


TIMEFRAMES = {
    "M1": mt5.TIMEFRAME_M1,
    "M5": mt5.TIMEFRAME_M5,
    "M15": mt5.TIMEFRAME_M15,
    "M30": mt5.TIMEFRAME_M30,
    "H1": mt5.TIMEFRAME_H1,
}
MT5_MODES = ("sim", "bridge", "native")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("auto", "json", "console")

# The parsers are confcheck's (shared with the exporter, the bridge, db and stack); these names
# are the ones the settings table below is written in.
_text = confcheck.text()
_optional_text = confcheck.optional(confcheck.text())
_int_between = confcheck.integer
_csv_names = confcheck.names()


def _float_between(low: float, high: float) -> Callable[[str], float]:
    return confcheck.number(low, high)


def _decimal_between(low: str, high: str) -> Callable[[str], Decimal]:
    return confcheck.decimal(low, high)


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str], str]:
    return confcheck.choice(options, upper=upper)


def _symbols(raw: str) -> tuple[str, ...]:
    """As written: brokers spell symbols their own way (EURUSDm is not EURUSDM)."""
    return _csv_names(raw)


def _affix(raw: str) -> str:
    """A broker's symbol suffix or prefix (.m, m, _i, #): a few characters, no spaces or commas."""
    value = confcheck.text(8)(raw)
    if value and not all(ch.isalnum() or ch in "._#+-!" for ch in value):
        raise ValueError(f"invalid suffix {value!r} (letters, digits and . _ # + - ! only)")
    return value


def _bool(raw: str) -> bool:
    return confcheck.boolean(raw) if raw.strip() else False


_url = confcheck.optional(confcheck.url())
_token = confcheck.optional(confcheck.text(TOKEN_MAX_BYTES, max_bytes=TOKEN_MAX_BYTES))


def _local_path(raw: str) -> str:
    """A local SQLite file we write (queue, spool): empty for the default, else its folder must be writable."""
    value = confcheck.text(1024)(raw)
    if value:
        confcheck.writable_file(value)
    return value


def _broker_profile(raw: str) -> str:
    """A shipped sim broker profile name or a .toml path; the profile file is validated now."""
    from mt5bridge.sim.profiles import ProfileError, load

    value = raw.strip()
    try:
        load(value)
    except ProfileError as exc:
        raise ValueError(str(exc)) from None
    return value


def _sim_start(raw: str) -> str:
    """'' (the simulator's fixed start), 'now', or an ISO time (UTC if it names no zone)."""
    value = confcheck.text(40)(raw)
    if value and value.lower() != "now":
        from datetime import datetime

        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be now, an ISO date or time (UTC), or empty") from None
    return value.lower() if value.lower() == "now" else value


def _rules_file(raw: str) -> str:
    """A prop-firm rules file: read and validated now (bot.engine.proprules)."""
    value = confcheck.text(1024)(raw)
    if value:
        from .engine.proprules import RulesError, load_rules

        try:
            load_rules(value)
        except RulesError as exc:
            raise ValueError(str(exc)) from None
    return value


def _database_url(raw: str) -> str | None:
    value = confcheck.text(4096)(raw)
    if not value:
        return None
    if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg2:", "postgres:")):
        raise ValueError("must be a sqlite:// or postgresql:// URL")
    if value.startswith("postgres:"):
        value = "postgresql:" + value[len("postgres:") :]
    from db.url import checked_url

    checked_url(value)
    return value


@dataclass(frozen=True)
class LossLimit:
    """DAILY_LOSS_LIMIT: an amount, in percent of the day's opening equity or in deposit currency."""

    amount: Decimal
    percent: bool

    def __str__(self) -> str:
        return f"{self.amount}{'%' if self.percent else ''}"


def _loss_limit(raw: str) -> LossLimit:
    """DAILY_LOSS_LIMIT: "3%" (percent of the day's opening equity) or "250" (deposit currency)."""
    value = confcheck.text(64)(raw)  # no control characters, bounded, stripped
    if value.endswith("%"):
        return LossLimit(confcheck.decimal("0.01", "100")(value[:-1]), True)
    return LossLimit(confcheck.decimal("0.01", "1000000000")(value), False)


def _setting(env: str, default: str, parse: Callable[[str], object], secret: bool = False, doc: str = ""):
    return field(default=None, metadata={"env": env, "default": default, "parse": parse, "secret": secret, "doc": doc})


def _fingerprint(raw: str) -> str | None:
    from mt5bridge.tls import normalise_fingerprint

    return normalise_fingerprint(raw) if raw.strip() else None


@dataclass(frozen=True)
class Settings:
    """All bot settings. Build with `Settings.from_env()`; fields are already parsed and valid."""

    mt5_mode: str = _setting("MT5_MODE", "sim", _choice(MT5_MODES), doc="sim | bridge | native")
    mt5_host: str = _setting("MT5_HOST", "127.0.0.1", confcheck.host, doc="bridge host")
    mt5_port: int = _setting("MT5_PORT", "18812", confcheck.port(), doc="bridge port")
    mt5_bridge_token: str | None = _setting("MT5_BRIDGE_TOKEN", "", _token, secret=True, doc="shared bridge token")
    mt5_bridge_timeout: float = _setting("MT5_BRIDGE_TIMEOUT", "10", _float_between(0.1, 300), doc="seconds per bridge call")
    mt5_login: int | None = _setting("MT5_LOGIN", "", confcheck.optional(_int_between(1, 10**12)), doc="broker account login")
    mt5_password: str | None = _setting("MT5_PASSWORD", "", _optional_text, secret=True, doc="broker account password")
    mt5_server: str | None = _setting("MT5_SERVER", "", _optional_text, doc="broker server name")
    mt5_path: str | None = _setting("MT5_PATH", "", _optional_text, doc="terminal64.exe path (native mode)")
    mt5_bridge_ca_file: str | None = _setting("MT5_BRIDGE_CA_FILE", "", _optional_text,
                                              doc="bridge TLS: CA file (or the server's self-signed certificate) to verify it")
    mt5_bridge_fingerprint: str | None = _setting("MT5_BRIDGE_FINGERPRINT", "", _fingerprint,
                                                  doc="bridge TLS: pinned SHA-256 fingerprint of the server certificate")
    mt5_bridge_insecure: bool = _setting("MT5_BRIDGE_INSECURE", "false", _bool,
                                         doc="bridge over plain TCP (no TLS): only on loopback or a trusted link")
    sim_seed: int = _setting("SIM_SEED", "42", _int_between(0, 2**31 - 1), doc="seed of the in-process simulated terminal")
    sim_speed: float = _setting("SIM_SPEED", "1", _float_between(0.001, 1_000_000), doc="simulated seconds per wall second")
    sim_broker: str = _setting("SIM_BROKER", "demo", _broker_profile, doc="broker profile of the simulated terminal (mt5bridge/sim/profiles)")
    sim_start: str = _setting("SIM_START", "", _sim_start,
                              doc="sim mode: start of the simulated clock: now, an ISO time (UTC), or empty for the fixed 2026-01-05 start tests use (make run: now)")
    sim_state_path: str = _setting("SIM_STATE_PATH", "", _local_path,
                                   doc="sim mode: file keeping the simulated broker's books across runs; empty: next to a SQLite store, else data/sim_state.json")
    database_url: str | None = _setting("DATABASE_URL", "", _database_url, secret=True, doc="empty: SQLite file under data/")
    symbols: tuple[str, ...] = _setting("SYMBOLS", "EURUSD,GBPUSD,USDJPY,XAUUSD", _symbols, doc="symbols to trade")
    symbol_suffix: str = _setting("SYMBOL_SUFFIX", "", _affix,
                                  doc="broker's symbol suffix or prefix (.m, #); empty: exact name, else detected")
    strategies: tuple[str, ...] = _setting("STRATEGIES", "ma_crossover,rsi_reversion", _csv_names, doc="strategy names")
    strategy_path: str = _setting("STRATEGY_PATH", "", confcheck.text(4096),
                                  doc="folders (os.pathsep-separated) of user strategy files (*.py); README 'Write your own strategy'")
    strategy_params: str = _setting("STRATEGY_PARAMS", "", confcheck.text(16384),
                                    doc='per-strategy parameters, symbols and timeframe as JSON, e.g. {"ma_crossover": {"fast": 10}}')
    strategies_file: str = _setting("STRATEGIES_FILE", "", confcheck.text(1024),
                                    doc="the same per-strategy tables in a .toml or .yaml file (wins over STRATEGY_PARAMS)")
    timeframe: str = _setting("TIMEFRAME", "M1", _choice(tuple(TIMEFRAMES), upper=True), doc="bar timeframe")
    bars: int = _setting("BARS", "120", _int_between(30, 5000), doc="bars read per symbol per cycle")
    cycle_seconds: float = _setting("CYCLE_SECONDS", "30", _float_between(0.01, 86400), doc="cycle interval (simulated time when accelerated)")
    risk_per_trade: Decimal = _setting("RISK_PER_TRADE", "1.0", _decimal_between("0.01", "10"), doc="percent of equity risked per trade")
    max_equity_jump: Decimal = _setting("MAX_EQUITY_JUMP", "0.5", _decimal_between("0.01", "100"),
                                        doc="equity moving more than this share between cycles without a deal halts new orders")
    max_positions_per_symbol: int = _setting("MAX_POSITIONS_PER_SYMBOL", "2", _int_between(1, 100), doc="open positions cap per symbol")
    atr_period: int = _setting("ATR_PERIOD", "14", _int_between(2, 500), doc="ATR period for stops")
    sl_atr_multiple: Decimal = _setting("SL_ATR_MULTIPLE", "2.0", _decimal_between("0.1", "50"), doc="stop-loss distance in ATRs")
    tp_atr_multiple: Decimal = _setting("TP_ATR_MULTIPLE", "3.0", _decimal_between("0.1", "100"), doc="take-profit distance in ATRs")
    deviation_points: int = _setting("DEVIATION_POINTS", "20", _int_between(0, 10000), doc="max slippage in points")
    requote_retries: int = _setting("REQUOTE_RETRIES", "2", _int_between(0, 10),
                                    doc="requoted order (10004/10020/10021): resends at the fresh price, within TTL and deviation")
    magic: int = _setting("MAGIC", "20260101", _int_between(1, 2**31 - 1), doc="magic number of this bot's orders")
    history_days: int = _setting("HISTORY_DAYS", "7", _int_between(1, 3650), doc="deal history looked at on start")
    log_format: str = _setting("LOG_FORMAT", "auto", _choice(LOG_FORMATS),
                               doc="auto (console on a terminal, else JSON) | json | console")
    log_level: str = _setting("LOG_LEVEL", "INFO", _choice(LOG_LEVELS, upper=True), doc="DEBUG | INFO | WARNING | ERROR")
    metrics_port: int = _setting("METRICS_PORT", "8000", confcheck.port(allow_zero=True), doc="port of /metrics /healthz /readyz /status (0: any)")
    metrics_host: str = _setting("METRICS_HOST", "127.0.0.1", confcheck.bind_address, doc="bind address of the telemetry server (compose: 0.0.0.0 on its network)")
    loki_url: str | None = _setting("LOKI_URL", "", _url, doc="Loki base URL; empty: no Loki push")
    alertmanager_url: str | None = _setting("ALERTMANAGER_URL", "", _url, doc="Alertmanager base URL; empty: no direct alerts")
    terminal_alert_seconds: float = _setting("TERMINAL_ALERT_SECONDS", "60", _float_between(1, 86400),
                                             doc="terminal unreachable this long: the bot raises an alert")
    env: str = _setting("ENV", "dev", confcheck.label(), doc="environment label on logs")
    reconnect_initial_seconds: float = _setting("RECONNECT_INITIAL_SECONDS", "0.5", _float_between(0.01, 3600),
                                                doc="first reconnect backoff; doubles per failed attempt (with jitter)")
    reconnect_max_seconds: float = _setting("RECONNECT_MAX_SECONDS", "30", _float_between(0.01, 3600),
                                            doc="cap of the reconnect backoff")
    order_ttl_seconds: float = _setting("ORDER_TTL_SECONDS", "120", _float_between(1, 86400),
                                        doc="a queued order older than this (broker time) is expired, never sent")
    order_max_deviation_points: int = _setting("ORDER_MAX_DEVIATION_POINTS", "50", _int_between(0, 100000),
                                               doc="a queued order is expired if the price moved more than this")
    order_queue_path: str = _setting("ORDER_QUEUE_PATH", "", _local_path,
                                     doc="durable order queue (SQLite file); empty: next to a SQLite store, else data/order_queue.db")
    order_breaker_failures: int = _setting("ORDER_BREAKER_FAILURES", "5", _int_between(1, 1000),
                                           doc="consecutive failed order sends that open the order circuit")
    order_breaker_reset_seconds: float = _setting("ORDER_BREAKER_RESET_SECONDS", "60", _float_between(0.01, 86400),
                                                  doc="open order circuit: seconds before one trial order")
    db_breaker_failures: int = _setting("DB_BREAKER_FAILURES", "3", _int_between(1, 1000),
                                        doc="consecutive database failures that open the database circuit")
    db_breaker_reset_seconds: float = _setting("DB_BREAKER_RESET_SECONDS", "10", _float_between(0.01, 86400),
                                               doc="open database circuit: seconds before one trial write")
    store_spool_path: str = _setting("STORE_SPOOL_PATH", "", _local_path,
                                     doc="spool of store writes while the database is down; empty: next to a SQLite store, else data/store_spool.db")
    shutdown_flush_seconds: float = _setting("SHUTDOWN_FLUSH_SECONDS", "5", _float_between(0.1, 600),
                                             doc="on SIGTERM: time allowed to flush the spool and the log queue")
    log_backlog_path: str = _setting("LOG_BACKLOG_PATH", "", _local_path,
                                     doc="log lines Loki did not take (pushed on the next start); empty: next to a SQLite store, else data/log_backlog.db")
    log_backlog_max_lines: int = _setting("LOG_BACKLOG_MAX_LINES", "100000", _int_between(1, 10_000_000),
                                          doc="cap of the log backlog file; lines beyond it are dropped and counted")
    trading: bool = _setting("TRADING", "on", confcheck.boolean,
                             doc="off: watch-only observer (records deals, positions, snapshots, metrics; never sends an order)")
    rules_file: str = _setting("RULES_FILE", "", lambda raw: _rules_file(raw),
                               doc="prop-firm challenge rules (YAML) evaluated live each cycle; empty: none")
    history_import: bool = _setting("HISTORY_IMPORT", "on", confcheck.boolean,
                                    doc="at first start, import the account's whole deal history from the terminal")

    # -- the account risk guard (bot/engine/riskguard.py) and operator control (bot/control/) --
    max_margin_usage: Decimal = _setting("MAX_MARGIN_USAGE", "30", _decimal_between("0.1", "100"),
                                         doc="new entries are shrunk or skipped so used margin stays within this percent of equity")
    margin_check: bool = _setting("MARGIN_CHECK", "on", _bool,
                                  doc="ask the terminal (order_check) before every entry; an order it refuses for money is shrunk or skipped")
    daily_loss_limit: LossLimit = _setting("DAILY_LOSS_LIMIT", "3%", _loss_limit,
                                       doc="loss since the broker day began that halts new entries: N% of the day's opening equity, or money")
    max_drawdown: Decimal = _setting("MAX_DRAWDOWN", "10", _decimal_between("0.1", "100"),
                                     doc="equity this percent below its peak halts new entries (exits go on)")
    max_open_positions: int = _setting("MAX_OPEN_POSITIONS", "8", _int_between(1, 10000), doc="this bot's open positions cap, all symbols")
    max_total_risk: Decimal = _setting("MAX_TOTAL_RISK", "6", _decimal_between("0.01", "1000"),
                                       doc="percent of equity lost if every open stop and the new one were hit")
    risk_state_path: str = _setting("RISK_STATE_PATH", "", _local_path,
                                    doc="risk guard state (day, peak, halts); empty: next to a SQLite store, else data/risk_state.<hash of the database URL>.json")
    control_host: str = _setting("CONTROL_HOST", "127.0.0.1", confcheck.bind_address,
                                 doc="bind address of the operator control endpoint (python -m bot ctl); keep it on loopback")
    control_port: int = _setting("CONTROL_PORT", "0", confcheck.port(allow_zero=True),
                                 doc="port of the control endpoint; 0: any free one, written to the endpoint file beside the token for ctl")
    control_token_file: str = _setting("CONTROL_TOKEN_FILE", "", _local_path,
                                       doc="control token file, made (0600) at first start; empty: next to a SQLite store, else data/control_token")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env") -> Settings:
        """Parse every setting; `.env` fills only what the real environment leaves unset."""
        source: dict[str, str] = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            from dotenv import dotenv_values

            source.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        source.update(os.environ if environ is None else environ)
        values = {}
        for f in fields(cls):
            meta = f.metadata
            raw = source.get(meta["env"], meta["default"])
            try:
                values[f.name] = confcheck.read(meta["env"], raw, meta["parse"], secret=meta["secret"])
            except confcheck.SettingError as exc:
                raise ConfigError(str(exc), exc.setting) from None
        settings = cls(**values)
        settings._check_combinations()
        return settings

    def _check_combinations(self) -> None:
        if self.mt5_mode == "bridge" and not self.mt5_bridge_token:
            raise ConfigError("MT5_BRIDGE_TOKEN: required when MT5_MODE=bridge")
        if self.mt5_mode == "bridge":
            self._check_bridge_tls()
        if self.tp_atr_multiple <= 0 or self.sl_atr_multiple <= 0:
            raise ConfigError("SL_ATR_MULTIPLE: stop distances must be positive")
        if self.mt5_mode == "native":
            try:
                confcheck.native_terminal()
            except ValueError as exc:
                raise ConfigError(f"MT5_MODE: {exc}") from None
        if self.reconnect_initial_seconds > self.reconnect_max_seconds:
            raise ConfigError(f"RECONNECT_INITIAL_SECONDS: must not exceed RECONNECT_MAX_SECONDS "
                              f"({self.reconnect_initial_seconds:g} > {self.reconnect_max_seconds:g})")
        if self.order_queue_path and self.store_spool_path and \
                Path(self.order_queue_path).resolve() == Path(self.store_spool_path).resolve():
            raise ConfigError("STORE_SPOOL_PATH: must be another file than ORDER_QUEUE_PATH")

    def _check_bridge_tls(self) -> None:
        """Bridge mode needs TLS trust (CA file and/or pinned fingerprint) or an explicit MT5_BRIDGE_INSECURE."""
        tls = self.mt5_bridge_ca_file or self.mt5_bridge_fingerprint
        if self.mt5_bridge_insecure and tls:
            raise ConfigError("MT5_BRIDGE_INSECURE: cannot be combined with MT5_BRIDGE_CA_FILE/MT5_BRIDGE_FINGERPRINT")
        if not self.mt5_bridge_insecure and not tls:
            raise ConfigError("MT5_BRIDGE_CA_FILE: required when MT5_MODE=bridge (or MT5_BRIDGE_FINGERPRINT, "
                              "or MT5_BRIDGE_INSECURE=true for plain TCP)")
        if self.mt5_bridge_ca_file and not Path(self.mt5_bridge_ca_file).is_file():
            raise ConfigError(f"MT5_BRIDGE_CA_FILE: {self.mt5_bridge_ca_file!r} does not exist")

    @property
    def timeframe_code(self) -> int:
        return TIMEFRAMES[self.timeframe]

    def secrets(self) -> list[str]:
        """Values that must never appear in a log line."""
        found = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                found.append(str(value))
        if self.database_url and "@" in self.database_url:
            from urllib.parse import urlsplit

            password = urlsplit(self.database_url).password
            if password:
                found.append(password)
        from db.url import file_password  # the password of $DATABASE_PASSWORD_FILE (compose secret)

        try:
            found.extend(filter(None, [file_password()]))
        except ValueError:
            pass  # an unreadable file is reported when the store opens
        return found

    def describe(self) -> dict[str, object]:
        """Every setting by its variable name, secrets masked (for check-config and the status page)."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                value = "***"
            elif isinstance(value, tuple):
                value = ",".join(value)
            elif isinstance(value, Decimal | LossLimit):
                value = str(value)
            out[f.metadata["env"]] = value
        return out


def env_example() -> str:
    """The text of `.env.example`, generated from the settings so the two never drift apart."""
    lines = ["# --- bot settings: every one optional, shown commented out with its default ---"]
    for f in fields(Settings):
        meta = f.metadata
        lines.append(f"# {meta['doc']}")
        lines.append(f"# {meta['env']}={meta['default']}")
    return "\n".join(lines) + "\n"
