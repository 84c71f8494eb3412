"""The trading engine: strategies, risk, orders and book-keeping around one cycle."""

from .engine import CycleReport, Engine, EngineObserver
from .strategies import REGISTRY, Signal, Strategy, load_strategies

__all__ = ["REGISTRY", "CycleReport", "Engine", "EngineObserver", "Signal", "Strategy", "load_strategies"]
