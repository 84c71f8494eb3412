"""Strategies as plugins: loading from a folder and from entry points, configuration, and isolation.

The isolation figure: the same accelerated run with and without a plugin that raises on every
call gives the other strategies the same cycles and the same signals (printed).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from bot.app import BotApp
from bot.config import Settings
from bot.strategies import StrategyConfigError, discover, load_configured
from mt5bridge.sim import SimTerminal

ROOT = Path(__file__).resolve().parents[1]
GOOD = '''
from bot.strategies import HOLD, Param, Signal, Strategy

class Flat(Strategy):
    name = "flat"
    params = {"window": Param(int, 5, 2, 50), "ratio": Param(float, 0.5, 0, 1), "mode": Param(str, "a", choices=("a", "b"))}
    warmup = 3

    def evaluate(self, bars):
        return Signal(HOLD, 0.0, f"window {self.window}")
'''
EXPLODING = '''
from bot.strategies import Strategy

class Exploding(Strategy):
    name = "exploding"

    def evaluate(self, bars):
        raise RuntimeError("plugin bug on every call")
'''


def _folder(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "strategies"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(text))
    return folder


def _error(**kwargs) -> str:
    with pytest.raises(StrategyConfigError) as info:
        load_configured(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_folder_strategy_is_built_with_checked_parameters(tmp_path):
    folder = _folder(tmp_path, flat=GOOD)
    (flat,) = load_configured(("flat",), strategy_path=str(folder), traded=("EURUSD", "GBPUSD"),
                              params_json='{"flat": {"window": 7, "ratio": 1, "symbols": ["eurusd"], "timeframe": "m5"}}')
    assert flat.parameters() == {"window": 7, "ratio": 1.0, "mode": "a"}
    assert (flat.symbols, flat.timeframe) == (("EURUSD",), "M5")
    ma, rsi = load_configured(("ma_crossover", "rsi_reversion"), params_json='{"ma_crossover": {"fast": 10}}')
    assert (ma.fast, ma.slow, rsi.period) == (10, 21, 14)  # the defaults stay for what is not given


@pytest.mark.parametrize(("params", "expected"), [
    ('{"flat": {"window": "many"}}', "strategy 'flat' ({file}) parameter 'window': expected a whole number in ASCII digits, got 'many'"),
    ('{"flat": {"window": 500}}', "parameter 'window': must be at most 50, got '500'"),
    ('{"flat": {"window": true}}', "parameter 'window': must be int, not a boolean"),
    ('{"flat": {"mode": "c"}}', "parameter 'mode':"),
    ('{"flat": {"widow": 3}}', "parameter 'widow': unknown; known: mode, ratio, symbols, timeframe, window"),
    ('{"flat": {"symbols": ["XAGUSD"]}}', "parameter 'symbols': 'XAGUSD' is not in SYMBOLS"),
    ('{"flat": {"timeframe": "W1"}}', "parameter 'timeframe':"),
    ('{"ma_crossover": {"fast": 10}}', "strategy 'ma_crossover' is configured but not listed in STRATEGIES"),
    ('{"flat": 3}', "must map each strategy name to a table"),
    ('{"flat": ', "STRATEGY_PARAMS: not JSON"),
])
def test_a_bad_parameter_is_one_line_naming_file_strategy_and_parameter(tmp_path, params, expected):
    folder = _folder(tmp_path, flat=GOOD)
    message = _error(names=("flat",), strategy_path=str(folder), params_json=params, traded=("EURUSD",))
    assert message.startswith("STRATEGY_PARAMS: ")
    assert expected.format(file=folder / "flat.py") in message


def test_a_constructor_refusing_its_values_names_the_strategy():
    message = _error(names=("ma_crossover",), params_json='{"ma_crossover": {"fast": 30, "slow": 20}}')
    assert "strategy 'ma_crossover' (built-in): ValueError: fast (30) must be below slow (20)" in message


def test_a_broken_plugin_file_or_a_duplicate_name_names_the_file(tmp_path):
    folder = _folder(tmp_path, broken="def evaluate(:\n")
    message = _error(names=("ma_crossover",), strategy_path=str(folder))
    assert message.startswith(f"STRATEGY_PATH: {folder / 'broken.py'}: cannot import: SyntaxError")
    (folder / "broken.py").unlink()
    (folder / "again.py").write_text("from bot.strategies import Strategy\nclass Again(Strategy):\n    name = 'ma_crossover'\n")
    message = _error(names=("ma_crossover",), strategy_path=str(folder))
    assert f"{folder / 'again.py'}: strategy 'ma_crossover' is already defined by built-in" in message
    assert "does not exist" in _error(names=("ma_crossover",), strategy_path=str(tmp_path / "nowhere"))


def test_strategies_file_in_toml_and_yaml(tmp_path):
    folder = _folder(tmp_path, flat=GOOD)
    toml = tmp_path / "strategies.toml"
    toml.write_text('[flat]\nwindow = 9\nsymbols = ["GBPUSD"]\n')
    (flat,) = load_configured(("flat",), strategy_path=str(folder), strategies_file=str(toml), traded=("GBPUSD",))
    assert (flat.window, flat.symbols) == (9, ("GBPUSD",))
    yaml_file = tmp_path / "strategies.yaml"
    yaml_file.write_text("flat:\n  ratio: 2\n")
    message = _error(names=("flat",), strategy_path=str(folder), strategies_file=str(yaml_file))
    assert message.startswith(f"STRATEGIES_FILE: {yaml_file}: strategy 'flat'")
    assert "parameter 'ratio': must be at most 1, got '2'" in message


def test_an_installed_package_entry_point_is_found(tmp_path, monkeypatch):
    """A real distribution on sys.path (dist-info with entry_points.txt), found by importlib.metadata."""
    site = tmp_path / "site"
    (site / "tw_plugin").mkdir(parents=True)
    (site / "tw_plugin" / "__init__.py").write_text(textwrap.dedent(GOOD).replace('"flat"', '"installed_flat"'))
    info = site / "tw_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tw-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tradewatch.strategies]\ninstalled_flat = tw_plugin:Flat\n")
    monkeypatch.syspath_prepend(str(site))
    catalogue = discover()
    assert catalogue.found["installed_flat"].origin == "entry point installed_flat = tw_plugin:Flat"
    (info / "entry_points.txt").write_text("[tradewatch.strategies]\nbad = tw_plugin:Missing\n")
    message = _error(names=("ma_crossover",))
    assert message.startswith("tradewatch.strategies: entry point bad = tw_plugin:Missing: cannot load: AttributeError")


def test_check_config_exits_2_with_one_line(tmp_path):
    folder = _folder(tmp_path, flat=GOOD)
    env = {**os.environ, "STRATEGY_PATH": str(folder), "STRATEGIES": "flat", "STRATEGY_PARAMS": '{"flat": {"window": 0}}',
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "METRICS_PORT": "0"}
    result = subprocess.run([sys.executable, "-m", "bot", "check-config"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"strategy 'flat' ({folder / 'flat.py'}) parameter 'window': must be at least 2, got '0'" in result.stderr


CYCLES = 240


def _run(tmp_path: Path, name: str, strategies: str, folder: Path, caplog) -> tuple[BotApp, Counter]:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / name}.db", "SYMBOLS": "EURUSD,GBPUSD", "LOG_LEVEL": "WARNING",
           "METRICS_PORT": "0", "CYCLE_SECONDS": "60", "STRATEGIES": strategies, "STRATEGY_PATH": str(folder)}
    settings = Settings.from_env(env, dotenv_path=None)
    app = BotApp(settings, sim=SimTerminal(seed=7, stepped=True), stepped=True)
    with caplog.at_level(logging.ERROR, logger="bot.engine.strategies"):
        assert app.run(cycles=CYCLES, serve=False) == 0
    signals = Counter()
    for metric in app.metrics.registry.collect():
        if metric.name == "tradewatch_signals":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    signals[(sample.labels["symbol"], sample.labels["strategy"], sample.labels["signal"])] = sample.value
    return app, signals


def _sample(app: BotApp, name: str, strategy: str) -> float:
    return app.metrics.registry.get_sample_value(name, {"account": app.account, "strategy": strategy})


def test_a_strategy_raising_on_every_call_leaves_the_others_trading_unchanged(tmp_path, caplog, capsys):
    folder = _folder(tmp_path, exploding=EXPLODING)
    alone, alone_signals = _run(tmp_path, "alone", "ma_crossover,rsi_reversion", folder, caplog)
    caplog.clear()
    mixed, mixed_signals = _run(tmp_path, "mixed", "ma_crossover,exploding,rsi_reversion", folder, caplog)
    traced = [r for r in caplog.records if "exploding raised" in r.getMessage()]
    assert len(traced) == 1 and traced[0].exc_info is not None  # its traceback, once
    assert _sample(mixed, "tradewatch_strategy_errors_total", "exploding") == 1
    assert _sample(mixed, "tradewatch_strategy_enabled", "exploding") == 0
    assert _sample(mixed, "tradewatch_strategy_enabled", "ma_crossover") == 1
    assert mixed.readiness()[0] is alone.readiness()[0]  # the others still count as loaded strategies
    assert mixed.engine.cycles == alone.engine.cycles == CYCLES
    assert mixed.status()["strategies_disabled"] == {"exploding": "RuntimeError: plugin bug on every call"}
    assert all(r.ok for r in [mixed.engine.last_report])
    assert sum(alone_signals.values()) > 0 and mixed_signals == alone_signals
    orders = {k: v for k, v in alone_signals.items() if k[2] != "HOLD"}
    with capsys.disabled():
        sys.stdout.write(f"\n[figure] strategy raising on every call: others' cycles {mixed.engine.cycles} vs {alone.engine.cycles} "
              f"alone, signals {sum(mixed_signals.values()):g} vs {sum(alone_signals.values()):g} "
              f"({sum(orders.values()):g} BUY/SELL), identical per symbol/strategy/action: {mixed_signals == alone_signals}\n")


def test_per_strategy_symbols_and_timeframe_read_bars_per_symbol_and_timeframe(tmp_path, caplog):
    from mt5bridge import constants as mt5

    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'tf'}.db", "SYMBOLS": "EURUSD,GBPUSD", "LOG_LEVEL": "WARNING",
           "METRICS_PORT": "0", "CYCLE_SECONDS": "60",
           "STRATEGY_PARAMS": '{"rsi_reversion": {"timeframe": "M5", "symbols": ["EURUSD"], "period": 10}}'}
    app = BotApp(Settings.from_env(env, dotenv_path=None), sim=SimTerminal(seed=7, stepped=True), stepped=True)
    reads: Counter = Counter()
    original = app.gateway.bars

    def recording(symbol, timeframe, count):
        reads[(symbol, timeframe)] += 1
        return original(symbol, timeframe, count)

    app.gateway.bars = recording
    cycles = 30
    assert app.run(cycles=cycles, serve=False) == 0
    # one read per (symbol, timeframe) when one of its bars can have closed (bot/engine/barwindow.py):
    # every 60 s cycle for M1, every fifth for M5
    assert set(reads) == {("EURUSD", mt5.TIMEFRAME_M1), ("EURUSD", mt5.TIMEFRAME_M5), ("GBPUSD", mt5.TIMEFRAME_M1)}
    assert reads[("EURUSD", mt5.TIMEFRAME_M1)] == reads[("GBPUSD", mt5.TIMEFRAME_M1)] == cycles
    assert cycles // 5 <= reads[("EURUSD", mt5.TIMEFRAME_M5)] <= cycles // 5 + 1
    with app.database.session() as session:
        from sqlalchemy import text

        rows = set(session.execute(text("SELECT symbol, strategy FROM signals")).all())
    assert rows == {("EURUSD", "ma_crossover"), ("GBPUSD", "ma_crossover"), ("EURUSD", "rsi_reversion")}
    # M5 bars close every 5 minutes: one rsi signal per closed M5 bar, one ma signal per M1 bar
    with app.database.session() as session:
        per = dict(session.execute(text("SELECT strategy, count(*) FROM signals WHERE symbol='EURUSD' GROUP BY strategy")).all())
    assert per["ma_crossover"] == cycles and cycles // 5 <= per["rsi_reversion"] <= cycles // 5 + 1


def test_the_cycle_plan_is_each_symbols_groups_in_the_same_order():
    """StrategyRunner.plan (made once a cycle) gives every symbol what groups(symbol) gives."""
    from types import SimpleNamespace

    from bot.engine.strategy_runner import StrategyRunner

    def strategy(name, symbols=None, timeframe=None):
        return SimpleNamespace(name=name, symbols=symbols, timeframe=timeframe)

    strategies = [strategy("a"), strategy("b", ("EURUSD",), "M5"), strategy("c", ("GBPUSD", "XAUUSD"), "M1"),
                  strategy("d", None, "M5"), strategy("e", ("EURUSD",))]
    runner = StrategyRunner(strategies, ("EURUSD", "GBPUSD"), "M1", 120, lambda: None,
                            broker_name=lambda name: {"XAUUSD": "XAUUSD.m"}.get(name, name))
    for disabled in ({}, {"a": "RuntimeError: boom"}, {"b": "x", "d": "y"}):
        runner.disabled = dict(disabled)
        plan = runner.plan()
        symbols = ("EURUSD", "GBPUSD", "XAUUSD", "XAUUSD.m")
        assert {s: runner.groups(s) for s in symbols if runner.groups(s)} == plan
        assert all(plan[s] == runner.groups(s) for s in plan)  # the order too (lists compare in order)
    runner.disabled = {}
    assert [(tf, [s.name for s in group]) for tf, group in runner.plan()["EURUSD"]] == \
        [("M1", ["a", "e"]), ("M5", ["b", "d"])]
