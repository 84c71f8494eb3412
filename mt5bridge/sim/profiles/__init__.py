"""Broker profiles: one TOML file per broker style, validated against ``schema``.

``load("retail-hedging")`` reads ``retail-hedging.toml`` from this folder; a path to a ``.toml``
file works too. Any problem raises ``ProfileError`` with one line naming the file, the key and
the reason, which entry points print before exiting with status 2.
"""

import tomllib
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from mt5bridge.constants import (
    ORDER_FILLING_FOK,
    SYMBOL_CALC_MODE_FUTURES,
    SYMBOL_TRADE_EXECUTION_INSTANT,
    SYMBOL_TRADE_EXECUTION_REQUEST,
)

from ..profile import AccountSpec, Profile
from ..servertime import ServerTime
from ..symbols import SymbolSpec
from .schema import ACCOUNT_KEYS, FILLING_BITS, REQUIRED, SYMBOL_KEYS

HERE = Path(__file__).resolve().parent
FEEDS_FILE = HERE / "feeds.toml"
DEFAULT = "demo"


class ProfileError(ValueError):
    """A profile file is missing or invalid; the message is one line: file, key, reason."""


def names() -> list[str]:
    """The profiles shipped with the simulator."""
    return sorted(p.stem for p in HERE.glob("*.toml") if p.stem != "feeds")


def _read(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ProfileError(f"broker profile {path}: file not found (shipped: {', '.join(names())})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"broker profile {path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ProfileError(f"broker profile {path}: cannot read: {exc.strerror}") from None


def _resolve(name_or_path: str) -> Path:
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ProfileError(f"broker profile name must be a non-empty string, got {name_or_path!r}")
    if name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path:
        return Path(name_or_path)
    if name_or_path not in names():
        raise ProfileError(f"unknown broker profile {name_or_path!r}; shipped: {', '.join(names())}")
    return HERE / f"{name_or_path}.toml"


def _fields(source: Path, where: str, raw: object, keys: dict, partial: bool = False) -> dict:
    """Parse one table against a key table; every error names file and key."""
    if not isinstance(raw, dict):
        raise ProfileError(f"broker profile {source}: {where}: must be a table")
    for key in raw:
        if key not in keys:
            raise ProfileError(f"broker profile {source}: {where}.{key}: unknown key; known: {', '.join(keys)}")
    values = {}
    for key, spec in keys.items():
        if key not in raw:
            if partial:
                continue
            if spec.default is REQUIRED:
                raise ProfileError(f"broker profile {source}: {where}.{key}: missing ({spec.doc})")
            value = spec.default
        else:
            value = raw[key]
        try:
            values[key] = spec.parse(value)
        except ValueError as exc:
            raise ProfileError(f"broker profile {source}: {where}.{key}: {exc}") from None
    return values


@lru_cache(maxsize=1)
def _feeds() -> dict[str, dict]:
    raw = _read(FEEDS_FILE)
    for feed, table in raw.items():
        _fields(FEEDS_FILE, feed, table, SYMBOL_KEYS, partial=True)
    return raw


def _account(source: Path, raw: object) -> AccountSpec:
    values = _fields(source, "account", raw, ACCOUNT_KEYS)
    rule = values.pop("server_time")
    offset = values.pop("utc_offset_hours")
    if rule == "utc" and offset:
        raise ProfileError(f"broker profile {source}: account.utc_offset_hours: must be 0 with server_time utc")
    if values["stop_out"] >= values["margin_call"]:
        raise ProfileError(f"broker profile {source}: account.stop_out: must be below margin_call")
    return AccountSpec(server_time=ServerTime(rule, offset), **values)


def _symbol(source: Path, name: str, raw: object, account: AccountSpec) -> SymbolSpec:
    where = f'symbols."{name}"'
    if not isinstance(raw, dict):
        raise ProfileError(f"broker profile {source}: {where}: must be a table")
    feed = raw.get("feed")
    feeds = _feeds()
    if feed not in feeds:
        raise ProfileError(f"broker profile {source}: {where}.feed: unknown feed {feed!r}; known: {', '.join(feeds)}")
    v = _fields(source, where, {**feeds[feed], **raw}, SYMBOL_KEYS)

    def bad(key: str, reason: str) -> ProfileError:
        return ProfileError(f"broker profile {source}: {where}.{key}: {reason}")

    point = Decimal(1).scaleb(-v["digits"])
    tick = v["tick_size"] or point
    if tick % point:
        raise bad("tick_size", f"must be a multiple of the point {point}")
    if v["volume_min"] > v["volume_max"] or v["volume_min"] % v["volume_step"]:
        raise bad("volume_min", "must be a multiple of volume_step and at most volume_max")
    fok_only = v["execution"] in (SYMBOL_TRADE_EXECUTION_REQUEST, SYMBOL_TRADE_EXECUTION_INSTANT)
    if fok_only and v["filling"] != {ORDER_FILLING_FOK} and not account.permissive_filling:
        raise bad("filling", "Instant and Request execution accept FOK only")
    if v["calc_mode"] == SYMBOL_CALC_MODE_FUTURES and not (v["margin_initial"] and v["tick_value"]):
        raise bad("calc_mode", "futures need margin_initial and tick_value")
    if v["typical_spread"] % int(tick / point):
        raise bad("typical_spread", "must be a multiple of the tick size in points")
    return SymbolSpec(
        name=name,
        feed=v["feed"],
        description=v["description"],
        path=v["path"],
        base=v["base"],
        quote=v["quote"],
        digits=v["digits"],
        contract_size=v["contract_size"],
        calc_mode=v["calc_mode"],
        volume_min=v["volume_min"],
        volume_max=v["volume_max"],
        volume_step=v["volume_step"],
        stops_level=v["stops_level"],
        swap_long=v["swap_long"],
        swap_short=v["swap_short"],
        start_price=v["start_price"],
        annual_vol=v["annual_vol"],
        typical_spread=v["typical_spread"],
        max_slippage=v["max_slippage"],
        tick_size=int(tick / point),
        freeze_level=v["freeze_level"],
        execution=v["execution"],
        filling=v["filling"],
        filling_mode=sum(FILLING_BITS.get(f, 0) for f in v["filling"]),
        order_mode=sum(v["orders"]),
        swap_mode=v["swap_mode"],
        swap_rollover3days=v["triple_swap_day"],
        commission_per_lot=v["commission_per_lot"],
        margin_initial=v["margin_initial"],
        tick_value=v["tick_value"],
        market_watch=v["market_watch"],
        trade_sessions=v["trade_sessions"],
        quote_sessions=v["quote_sessions"],
        requote_share=v["requote_share"],
    )


def _check_conversions(source: Path, account: AccountSpec, symbols: dict[str, SymbolSpec]) -> None:
    """Every profit and margin currency must convert to the account currency through a symbol."""
    pairs = {(s.base, s.quote) for s in symbols.values()}
    acc = account.currency
    for spec in symbols.values():
        for ccy in dict.fromkeys((spec.quote, spec.margin_currency)):  # profit currency first
            if ccy != acc and (ccy, acc) not in pairs and (acc, ccy) not in pairs:
                raise ProfileError(
                    f'broker profile {source}: symbols."{spec.name}".quote: no symbol converts {ccy} to {acc}'
                )


def load_file(path: Path, name: str | None = None) -> Profile:
    raw = _read(path)
    for key in raw:
        if key not in ("account", "symbols"):
            raise ProfileError(f"broker profile {path}: {key}: unknown table; expected account and symbols")
    account = _account(path, raw.get("account"))
    tables = raw.get("symbols")
    if not isinstance(tables, dict) or not tables:
        raise ProfileError(f"broker profile {path}: symbols: at least one symbol is needed")
    symbols = {n: _symbol(path, n, t, account) for n, t in tables.items()}
    _check_conversions(path, account, symbols)
    return Profile(name or path.stem, str(path), account, symbols)


@lru_cache(maxsize=16)
def _load_cached(path: str, name: str) -> Profile:
    return load_file(Path(path), name)


def load(name_or_path: str = DEFAULT) -> Profile:
    """The profile called ``name_or_path`` (shipped), or read from that ``.toml`` path."""
    path = _resolve(name_or_path)
    if path.parent == HERE:
        return _load_cached(str(path), path.stem)
    return load_file(path)
