"""Find strategies (built-in, a folder, installed packages) and build them from configuration.

Where strategies come from, in order (a later source may not reuse an earlier name):
  1. the built-ins (`bot.strategies.builtin`);
  2. every `*.py` file in the folders of STRATEGY_PATH (os.pathsep-separated), each imported
     under a private module name; every `Strategy` subclass defined in the file is a strategy;
  3. installed packages' entry points in the group `tradewatch.strategies`
     (`[project.entry-points."tradewatch.strategies"] breakout = "mypkg.breakout:Breakout"`),
     each naming a Strategy subclass (or a module whose subclasses are taken).

Configuration per strategy (STRATEGY_PARAMS JSON, or a STRATEGIES_FILE in TOML or YAML, both
`{name: {param: value, ..., "symbols": [...], "timeframe": "M5"}}`): `symbols` and `timeframe`
are the strategy's own (default: SYMBOLS and TIMEFRAME), every other key is a declared parameter.
Everything is checked here, before the first cycle: a file that fails to import, a name used
twice, an unknown strategy or parameter, a value of the wrong type or out of bounds — each is a
`StrategyConfigError` whose one line names the file, the strategy and the parameter.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import confcheck

from .api import RESERVED, Strategy
from .builtin import BUILTIN

ENTRY_POINT_GROUP = "tradewatch.strategies"
_NAME = re.compile(r"[A-Za-z0-9_.]+", re.ASCII)
TIMEFRAME_NAMES = ("M1", "M5", "M15", "M30", "H1")


class StrategyConfigError(confcheck.SettingError):
    """A strategy that cannot be loaded or configured; the message is one line naming where and what."""


@dataclass(frozen=True)
class Found:
    cls: type[Strategy]
    origin: str  # "built-in", a file path, or "entry point name = module:attr"


@dataclass
class Catalogue:
    """Every strategy class known by name, and where it came from (for error lines)."""

    found: dict[str, Found] = field(default_factory=dict)

    def add(self, cls: type[Strategy], origin: str, setting: str) -> None:
        name = getattr(cls, "name", "")
        if not isinstance(name, str) or not name or name == "base" or not _NAME.fullmatch(name):
            raise StrategyConfigError(f"{setting}: {origin}: strategy class {cls.__name__} needs a `name` "
                                      f"of letters, digits, '_' or '.', got {name!r}", setting)
        if name in self.found:
            raise StrategyConfigError(f"{setting}: {origin}: strategy {name!r} is already defined by "
                                      f"{self.found[name].origin}", setting)
        bad = sorted(set(getattr(cls, "params", {})) & set(RESERVED))
        if bad:
            raise StrategyConfigError(f"{setting}: {origin}: strategy {name!r} parameter {bad[0]!r}: "
                                      f"the name is reserved for the per-strategy setting", setting)
        self.found[name] = Found(cls, origin)


def _classes_in(module: ModuleType) -> list[type[Strategy]]:
    """The Strategy subclasses a module defines (not the ones it merely imports)."""
    return [obj for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, Strategy) and obj is not Strategy and obj.__module__ == module.__name__]


def _import_file(path: Path) -> ModuleType:
    module_name = f"tradewatch_user_strategies.{path.stem}_{abs(hash(str(path.resolve()))):x}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError("not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def discover(strategy_path: str = "", entry_points: Iterable[Any] | None = None) -> Catalogue:
    """Built-ins, then the folders' files, then the installed entry points."""
    catalogue = Catalogue()
    for cls in BUILTIN:
        catalogue.add(cls, "built-in", "STRATEGIES")
    for folder in filter(None, (part.strip() for part in strategy_path.split(os.pathsep))):
        directory = Path(folder).expanduser()
        if not directory.is_dir():
            raise StrategyConfigError(f"STRATEGY_PATH: folder {folder!r} does not exist", "STRATEGY_PATH")
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                module = _import_file(path)
            except Exception as exc:  # noqa: BLE001 - any error in a user's file is a config error
                raise StrategyConfigError(f"STRATEGY_PATH: {path}: cannot import: {_one_line(exc)}",
                                          "STRATEGY_PATH") from None
            for cls in _classes_in(module):
                catalogue.add(cls, str(path), "STRATEGY_PATH")
    points = metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
    for point in points:
        origin = f"entry point {point.name} = {point.value}"
        try:
            loaded = point.load()
        except Exception as exc:  # noqa: BLE001 - a broken installed plugin is a config error
            raise StrategyConfigError(f"{ENTRY_POINT_GROUP}: {origin}: cannot load: {_one_line(exc)}",
                                      ENTRY_POINT_GROUP) from None
        classes = _classes_in(loaded) if inspect.ismodule(loaded) else [loaded]
        for cls in classes:
            if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
                raise StrategyConfigError(f"{ENTRY_POINT_GROUP}: {origin}: is not a Strategy subclass",
                                          ENTRY_POINT_GROUP)
            catalogue.add(cls, origin, ENTRY_POINT_GROUP)
    return catalogue


def read_config(params_json: str = "", strategies_file: str = "") -> tuple[dict[str, dict[str, Any]], str]:
    """The per-strategy tables and the setting they came from (the file wins over the JSON)."""
    if strategies_file:
        path = Path(strategies_file).expanduser()
        setting = f"STRATEGIES_FILE: {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StrategyConfigError(f"{setting}: cannot read: {exc.strerror or exc}", "STRATEGIES_FILE") from None
        try:
            if path.suffix.lower() == ".toml":
                data: Any = tomllib.loads(text)
            elif path.suffix.lower() in (".yml", ".yaml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                raise ValueError("must end in .toml, .yml or .yaml")
        except Exception as exc:  # noqa: BLE001 - tomllib/yaml errors: one line with their position
            raise StrategyConfigError(f"{setting}: {_one_line(exc)}", "STRATEGIES_FILE") from None
    elif params_json.strip():
        setting = "STRATEGY_PARAMS"
        try:
            data = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise StrategyConfigError(f"{setting}: not JSON: {exc.msg} at character {exc.pos}", setting) from None
    else:
        return {}, "STRATEGY_PARAMS"
    if not isinstance(data, Mapping) or not all(isinstance(v, Mapping) for v in data.values()):
        raise StrategyConfigError(f"{setting}: must map each strategy name to a table of its parameters, "
                                  f"e.g. {{\"ma_crossover\": {{\"fast\": 10}}}}", setting.split(":")[0])
    return {str(k): dict(v) for k, v in data.items()}, setting


def _symbols(value: Any, where: str, traded: tuple[str, ...], setting: str) -> tuple[str, ...]:
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise StrategyConfigError(f"{where} 'symbols': must be a non-empty list of symbol names", setting)
    spelled = {n.upper(): n for n in traded}  # as SYMBOLS writes it (the engine maps it to the broker's name)
    outside = [n.strip() for n in names if n.strip().upper() not in spelled]
    if outside:
        raise StrategyConfigError(f"{where} 'symbols': {outside[0]!r} is not in SYMBOLS "
                                  f"({','.join(traded)})", setting)
    return tuple(n.strip() if n.strip() in traded else spelled[n.strip().upper()] for n in names)


def build(names: tuple[str, ...], catalogue: Catalogue, config: Mapping[str, Mapping[str, Any]], setting: str,
          traded: tuple[str, ...] = ()) -> list[Strategy]:
    """One instance per name in STRATEGIES, with its checked parameters, symbols and timeframe."""
    key = setting.split(":")[0]
    unknown = [n for n in names if n not in catalogue.found]
    if unknown:
        raise StrategyConfigError(f"STRATEGIES: unknown strategy {unknown[0]!r}; known: "
                                  f"{', '.join(sorted(catalogue.found))}", "STRATEGIES")
    stray = [n for n in config if n not in names]
    if stray:
        raise StrategyConfigError(f"{setting}: strategy {stray[0]!r} is configured but not listed in STRATEGIES "
                                  f"({','.join(names)})", key)
    built = []
    for name in names:
        found = catalogue.found[name]
        table = dict(config.get(name, {}))
        where = f"{setting}: strategy {name!r} ({found.origin}) parameter"
        symbols = _symbols(table.pop("symbols"), where, traded, key) if "symbols" in table else None
        timeframe = None
        if "timeframe" in table:
            try:
                timeframe = confcheck.choice(TIMEFRAME_NAMES, upper=True)(str(table.pop("timeframe")))
            except ValueError as exc:
                raise StrategyConfigError(f"{where} 'timeframe': {exc}", key) from None
        values = {}
        for param_name, raw in table.items():
            param = found.cls.params.get(param_name)
            if param is None:
                known = ", ".join(sorted([*found.cls.params, *RESERVED]))
                raise StrategyConfigError(f"{where} {param_name!r}: unknown; known: {known}", key)
            try:
                values[param_name] = param.check(raw)
            except ValueError as exc:
                raise StrategyConfigError(f"{where} {param_name!r}: {exc}, got {confcheck.shown(str(raw))}",
                                          key) from None
        try:
            strategy = found.cls(**values)
        except Exception as exc:  # noqa: BLE001 - a constructor refusing its values is a config error
            raise StrategyConfigError(f"{setting}: strategy {name!r} ({found.origin}): {_one_line(exc)}", key) from None
        strategy.symbols, strategy.timeframe = symbols, timeframe
        built.append(strategy)
    return built


def load_configured(names: tuple[str, ...], *, strategy_path: str = "", params_json: str = "",
                    strategies_file: str = "", traded: tuple[str, ...] = (),
                    entry_points: Iterable[Any] | None = None) -> list[Strategy]:
    """discover + read_config + build: what the bot and `check-config` call at start."""
    catalogue = discover(strategy_path, entry_points)
    config, setting = read_config(params_json, strategies_file)
    return build(names, catalogue, config, setting, traded)


def from_settings(settings: Any) -> list[Strategy]:
    """The strategies a `bot.config.Settings` names, built and checked (StrategyConfigError if not)."""
    return load_configured(settings.strategies, strategy_path=settings.strategy_path,
                           params_json=settings.strategy_params, strategies_file=settings.strategies_file,
                           traded=settings.symbols)
