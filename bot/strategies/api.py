"""The Strategy interface: closed bars in, one BUY/SELL/HOLD signal out.

A strategy is a class with a unique `name`, an optional `warmup` (closed bars it needs before its
first real signal; the engine answers HOLD "warming up" until then, without calling it) and
optional `params`: a table of `Param`s (type, default, bounds) that configuration may override
(STRATEGY_PARAMS or STRATEGIES_FILE). The engine builds one instance per configured strategy with
the checked values and then only calls `evaluate(bars)` with the closed bars of one symbol and
timeframe. Keep `evaluate` a pure function of the bars: it can then be tested on arrays and
replayed, and a queued order can be re-judged on fresh bars before it is sent.

Why declared parameters rather than free keyword arguments: a typo or a wrong type in the
configuration must stop the bot at start with one line naming the strategy and the parameter, not
surface as a TypeError in the first cycle of a Monday morning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import confcheck

from ..gateway.types import Bars

BUY, SELL, HOLD = "BUY", "SELL", "HOLD"
ACTIONS = (BUY, SELL, HOLD)
RESERVED = ("symbols", "timeframe")  # per-strategy settings, never a parameter name


@dataclass(frozen=True)
class Signal:
    action: str  # BUY | SELL | HOLD
    confidence: float  # 0..1
    reason: str  # one short sentence, stored with the signal and logged


@dataclass(frozen=True)
class Param:
    """One tunable of a strategy: its type (int, float, bool or str), default and bounds."""

    type: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""

    def parser(self) -> Callable[[str], Any]:
        """The confcheck parser of this parameter (the shared vocabulary of every setting)."""
        if self.type is bool:
            return confcheck.boolean
        if self.type is int:
            return confcheck.integer(int(self.low if self.low is not None else -(10**12)),
                                     int(self.high if self.high is not None else 10**12))
        if self.type is float:
            return confcheck.number(self.low if self.low is not None else -1e12,
                                    self.high if self.high is not None else 1e12)
        if self.choices:
            return confcheck.choice(self.choices)
        return confcheck.text()

    def check(self, value: Any) -> Any:
        """The value as this parameter's type, or ValueError with the reason (confcheck's wording)."""
        if isinstance(value, bool) and self.type is not bool:
            raise ValueError(f"must be {self.type.__name__}, not a boolean")
        if isinstance(value, list | dict | tuple) or value is None:
            raise ValueError(f"must be a single {self.type.__name__} value")
        raw = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if self.type is int and isinstance(value, float) and not value.is_integer():
            raise ValueError("must be a whole number")
        if self.type is int and isinstance(value, float):
            raw = str(int(value))
        return self.parser()(raw)


class Strategy:
    """Base of every strategy; subclass it, set `name`, declare `params`, implement `evaluate`."""

    name: ClassVar[str] = "base"
    params: ClassVar[Mapping[str, Param]] = {}
    warmup: int = 0  # closed bars needed before evaluate() is called; may depend on parameters

    # Set by the loader from configuration: None means SYMBOLS and TIMEFRAME of the settings.
    symbols: tuple[str, ...] | None = None
    timeframe: str | None = None

    def __init__(self, **values: Any):
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise TypeError(f"unknown parameter {unknown[0]!r}")
        for key, param in self.params.items():
            setattr(self, key, values.get(key, param.default))

    def evaluate(self, bars: Bars) -> Signal:
        raise NotImplementedError

    def parameters(self) -> dict[str, Any]:
        """The values this instance runs with (logged at start, shown on /status)."""
        return {key: getattr(self, key) for key in self.params}
