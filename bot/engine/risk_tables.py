"""The risk guard's two tables (bot.engine.riskguard says how they are applied): the halts, each
(reason, hit?, what it means), and the order limits, each (reason, the volume it allows).

Why a module of its own: each row is one of a trader's limits written as a small function of the
guard's figures, the entry and the account; the guard's state, its latching and its file are the
other module's.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from mt5bridge import constants as mt5

from ..gateway import AccountState
from ..gateway.types import Position, SymbolSpec

if TYPE_CHECKING:
    from .riskguard import Entry, RiskGuard

HUNDRED = Decimal(100)
OPERATOR_PAUSE = "operator_pause"
#: Broker answers of order_check that mean "not with this money" (the rest is the send's business).
NO_MONEY_RETCODES = frozenset({mt5.TRADE_RETCODE_NO_MONEY})
#: Margin left unused when an order is shrunk to what the free margin allows (prices move between
#: the check and the fill).
MARGIN_HEADROOM = Decimal("0.95")
NO_MONEY_TRIES = 4  # order_check calls after the first, shrinking the entry each time


# -- halts: (guard, account) -> hit? ------------------------------------------------------------

def _daily_loss_hit(guard: RiskGuard, account: AccountState) -> bool:
    opening = guard.day_start_equity
    if opening is None or opening <= 0:
        return False
    limit = opening * guard.limits.daily_loss / HUNDRED if guard.limits.daily_loss_percent else guard.limits.daily_loss
    return opening - account.equity >= limit


def _drawdown_hit(guard: RiskGuard, account: AccountState) -> bool:
    peak = guard.peak_equity
    return bool(peak and peak > 0 and (peak - account.equity) * HUNDRED / peak >= guard.limits.max_drawdown)


HALTS: tuple[tuple[str, Callable[[RiskGuard, AccountState], bool], str], ...] = (
    ("daily_loss", _daily_loss_hit, "the loss since the broker day began reached DAILY_LOSS_LIMIT"),
    ("max_drawdown", _drawdown_hit, "equity fell MAX_DRAWDOWN percent below its peak"),
)
HALT_REASONS = (OPERATOR_PAUSE, *(reason for reason, _, _ in HALTS))


# -- order limits: (guard, entry, account, positions) -> volume allowed (may be 0) ------------------

def _floor(spec: SymbolSpec, volume: Decimal) -> Decimal:
    steps = (volume / spec.volume_step).to_integral_value(rounding=ROUND_DOWN)
    return min(steps * spec.volume_step, spec.volume_max).quantize(spec.volume_step)


def _loss_at_stop(spec: SymbolSpec, price: Decimal, sl: Decimal | None, volume: Decimal) -> Decimal:
    if sl is None or spec.tick_size <= 0:
        return Decimal(0)
    return abs(price - sl) / spec.tick_size * spec.loss_tick_value * volume


def _open_positions(guard: RiskGuard, entry: Entry, account: AccountState, positions: list[Position]) -> Decimal:
    return entry.volume if len(positions) < guard.limits.max_open_positions else Decimal(0)


def _total_risk(guard: RiskGuard, entry: Entry, account: AccountState, positions: list[Position]) -> Decimal:
    budget = account.equity * guard.limits.max_total_risk / HUNDRED
    for p in positions:  # a position of a symbol we do not trade (any more) has no spec: not ours to price
        spec = guard.specs.get(p.symbol)
        if spec is not None:
            budget -= _loss_at_stop(spec, p.price_open, p.sl, p.volume)
    per_lot = _loss_at_stop(entry.spec, entry.price, entry.sl, Decimal(1))
    if per_lot <= 0 or per_lot * entry.volume <= budget:
        return entry.volume
    return _floor(entry.spec, max(budget, Decimal(0)) / per_lot)


def _margin_usage(guard: RiskGuard, entry: Entry, account: AccountState, positions: list[Position]) -> Decimal:
    allowed = account.equity * guard.limits.max_margin_usage / HUNDRED - account.margin
    if allowed <= 0:
        return Decimal(0)
    required = guard.margin_for(entry, entry.volume)
    if required is None or required <= allowed:
        return entry.volume
    return _floor(entry.spec, entry.volume * allowed / required)


def _terminal_check(guard: RiskGuard, entry: Entry, account: AccountState, positions: list[Position]) -> Decimal:
    """Ask the terminal; on "no money" shrink to what the free margin covers, then halve, and ask again.

    At most `NO_MONEY_TRIES` more checks: the first guess is proportional to the terminal's margin
    figure, and halving covers a terminal whose order_check and order_calc_margin disagree.
    """
    if not guard.limits.margin_check:
        return entry.volume
    if _passes(guard.check(entry, entry.volume)):
        return entry.volume
    required = guard.margin_for(entry, entry.volume)
    if not required or account.free_margin <= 0:
        return Decimal(0)
    volume = _floor(entry.spec, entry.volume * account.free_margin * MARGIN_HEADROOM / required)
    for _ in range(NO_MONEY_TRIES):
        if volume < entry.spec.volume_min:
            break
        if _passes(guard.check(entry, volume)):
            return volume
        volume = _floor(entry.spec, volume / 2)
    return Decimal(0)


def _passes(verdict: Any) -> bool:
    """No verdict (the terminal cannot check: counted) lets the order go; else no money refusal."""
    return verdict is None or (verdict.retcode not in NO_MONEY_RETCODES and verdict.margin_free >= 0)


ORDER_LIMITS: tuple[tuple[str, Callable[..., Decimal]], ...] = (
    ("max_open_positions", _open_positions),
    ("total_risk", _total_risk),
    ("margin_usage", _margin_usage),
    ("no_money", _terminal_check),
)
