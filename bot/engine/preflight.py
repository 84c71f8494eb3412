"""Preflight: can this terminal and account trade at all? Checked before trading, every minute and
after every reconnect (each symbol's facts every SYMBOL_RECHECK while they pass); a failed check
halts every order with one sentence a trader can act on.

Why a separate check instead of letting orders fail: a terminal with AutoTrading off, an
investor (read-only) login or a symbol hidden from Market Watch refuses every order with a
retcode, and a loop of refused orders looks like a broker outage in the logs and the alerts.
Here each condition is read directly (terminal_info, account_info, symbol_info), named, shown on
/readyz and /status, exported as ``tradewatch_preflight_ok{account,check}`` (alert
BrokerPreflightFailed), logged once when it starts failing and once when it passes again; the
engine sends nothing while any check fails and resumes by itself when they all pass.

The checks are one table (`CHECKS`): name, how to read it from the facts, the sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mt5bridge import constants as mt5

from ..gateway import Gateway, GatewayError
from ..gateway.errors import BrokerUnavailable, ConnectionLost, OutcomeUnknown
from ..gateway.filling import allowed_fillings
from .netting import margin_mode_name

log = logging.getLogger("bot.preflight")

#: How often the checks are read again while trading (broker time); a reconnect re-checks at once.
RECHECK = timedelta(minutes=1)
#: How often each symbol's facts (symbol_info: Market Watch, trade mode, filling) are read again while
#: they all pass. Why longer than RECHECK: they are one call per symbol, most of a preflight's cost (a bar
#: cycle on M1 runs preflight every time), and change only when the broker changes a symbol's
#: specification, not at a button in the terminal. Read again at once after a reconnect, when the
#: symbol list changes, and every RECHECK while a symbol check fails (so trading resumes as promptly).
SYMBOL_RECHECK = timedelta(minutes=5)

_FOK_IOC = mt5.SYMBOL_FILLING_FOK | mt5.SYMBOL_FILLING_IOC


def filling_usable(exemode: int, filling_bits: int) -> bool:
    """Whether a market order on the symbol can carry at least one filling mode: the gateway's own
    selection table (bot.gateway.filling) offers one, so preflight and order_send never disagree."""
    return bool(allowed_fillings(int(exemode), int(filling_bits)))


@dataclass(frozen=True)
class Facts:
    """What one preflight read saw (plain dicts as the MT5 package gives them)."""

    terminal: dict[str, Any]
    account: dict[str, Any]
    symbols: dict[str, dict[str, Any] | None]  # name -> symbol_info, None when the broker has no such symbol

    def failing_symbols(self, ok: Callable[[dict[str, Any]], bool], found_only: bool = True) -> list[str]:
        return [name for name, info in self.symbols.items() if (info is not None or not found_only)
                and (info is None or not ok(info))]


def _names(names: list[str]) -> str:
    return ", ".join(names)


@dataclass(frozen=True)
class Check:
    name: str
    #: facts -> None when it passes, else the sentence a trader can act on
    judge: Callable[[Facts], str | None]


def _flag(ok: Callable[[Facts], bool], sentence: str) -> Callable[[Facts], str | None]:
    return lambda facts: None if ok(facts) else sentence


def _symbols(ok: Callable[[dict[str, Any]], bool], sentence: str, found_only: bool = True):
    def judge(facts: Facts) -> str | None:
        bad = facts.failing_symbols(ok, found_only)
        return sentence.format(names=_names(bad), one="is" if len(bad) == 1 else "are") if bad else None
    return judge


def _margin_mode(facts: Facts) -> str | None:
    mode = facts.account.get("margin_mode")
    if margin_mode_name(mode) is not None:
        return None
    return (f"The account's margin mode {mode!r} is not one the bot supports (netting, exchange or hedging): "
            f"use another account type")


CHECKS: tuple[Check, ...] = (
    Check("terminal_connected", _flag(
        lambda f: bool(f.terminal.get("connected")),
        "The terminal is not connected to the broker's trade server: check its login and internet connection "
        "(bottom-right corner of the terminal)")),
    Check("algo_trading", _flag(
        lambda f: bool(f.terminal.get("trade_allowed")),
        "AutoTrading is off in the terminal: press the Algo Trading button")),
    Check("api_trading", _flag(
        lambda f: not f.terminal.get("tradeapi_disabled"),
        "Trading from Python is disabled in the terminal: untick 'Disable automatic trading via external "
        "Python API' in Tools > Options > Expert Advisors")),
    Check("expert_trading", _flag(
        lambda f: bool(f.account.get("trade_expert")),
        "The broker does not allow expert advisors on this account: ask the broker to enable algorithmic "
        "trading for it")),
    Check("account_trading", _flag(
        lambda f: bool(f.account.get("trade_allowed")),
        "Trading is disabled on this account (investor password, or disabled by the broker): log in with "
        "the master password or ask the broker")),
    Check("margin_mode", _margin_mode),
    Check("symbols_found", _symbols(
        lambda info: True,
        "{names} {one} not offered by this broker: check SYMBOLS against the terminal's symbol list "
        "(the broker may spell it with a suffix, e.g. EURUSD.m)", found_only=False)),
    Check("symbols_selected", _symbols(
        lambda info: bool(info.get("visible", True)),
        "{names} {one} not in Market Watch: right-click Market Watch > Symbols and show {names}")),
    Check("symbols_tradable", _symbols(
        lambda info: int(info.get("trade_mode", mt5.SYMBOL_TRADE_MODE_FULL)) == mt5.SYMBOL_TRADE_MODE_FULL,
        "{names} cannot be fully traded now (the broker set it disabled, close-only or one-way): check "
        "the symbol's specification in the terminal")),
    Check("symbols_filling", _symbols(
        lambda info: filling_usable(info.get("trade_exemode", mt5.SYMBOL_TRADE_EXECUTION_MARKET),
                                    info.get("filling_mode", 0)),
        "{names}: the symbol's execution mode admits no filling mode a market order can carry: ask the "
        "broker which filling it takes")),
)
CHECK_NAMES = tuple(check.name for check in CHECKS)
#: The checks judged on the symbols' facts alone (re-read at SYMBOL_RECHECK while they pass).
_SYMBOL_CHECKS = ("symbols_found", "symbols_selected", "symbols_tradable", "symbols_filling")
#: A watch-only account (TRADING=off, often an investor login) sends nothing: only what observing
#: needs is checked, so a read-only login or AutoTrading off is not reported as a failure.
WATCH_CHECKS = ("terminal_connected", "margin_mode", "symbols_found")


class Preflight:
    """Runs `CHECKS` when due and keeps the results; `ok` is what the engine trades on."""

    def __init__(self, gateway: Gateway, symbols: Callable[[], Iterable[str]], recheck: timedelta = RECHECK,
                 on_result: Callable[[str, bool], None] | None = None,
                 on_margin_mode: Callable[[str], None] | None = None, watch_only: bool = False,
                 symbol_recheck: timedelta = SYMBOL_RECHECK):
        self.gateway = gateway
        self.checks = tuple(c for c in CHECKS if c.name in WATCH_CHECKS) if watch_only else CHECKS
        self.symbols = symbols
        self.recheck = recheck
        self.symbol_recheck = max(symbol_recheck, recheck)
        self._told: dict[str, bool] = {}  # check -> what on_result was last told
        self.on_result = on_result  # told (check, ok) when it changes: the metric
        self.on_margin_mode = on_margin_mode  # told the margin mode's name when first known or changed
        self.results: dict[str, str | None] = {}  # check -> None (passes) or its sentence
        self.margin_mode: str | None = None
        self._checked_at: datetime | None = None
        self._due = True
        self.runs = 0  # how many times the checks were read
        self.symbol_reads = 0  # how many of those read every symbol's facts too (the rest reused them)
        self._symbol_facts: dict[str, dict[str, Any] | None] = {}
        self._symbols_read_at: datetime | None = None
        self._symbols_due = True
        self._judged_symbols: dict[str, dict[str, Any] | None] | None = None  # the facts `results` judged

    @property
    def on_result(self) -> Callable[[str, bool], None] | None:
        return self._on_result

    @on_result.setter
    def on_result(self, callback: Callable[[str, bool], None] | None) -> None:
        """A new listener is told every check at the next run, then each change."""
        self._on_result, self._told = callback, {}

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(sentence is None for sentence in self.results.values())

    @property
    def reason(self) -> str | None:
        """The first failing check's sentence (what /readyz and the halt say)."""
        return next((s for s in self.results.values() if s is not None), None if self.results else "not checked yet")

    def recheck_now(self) -> None:
        """After a reconnect: read everything again on the next cycle."""
        self._due = self._symbols_due = True

    def check(self, now: datetime) -> bool:
        """Read the checks if due (first time, after a reconnect, every `recheck`); True when all pass."""
        if self._due or self._checked_at is None or now - self._checked_at >= self.recheck:
            self._run(now)
        return self.ok

    def _run(self, now: datetime) -> None:
        facts = self._read(now)
        # The symbol checks of facts judged before (reused while they pass: SYMBOL_RECHECK) say
        # what they said then: judged again only when the facts were read again.
        same = facts.symbols is self._judged_symbols
        results = {check.name: self.results[check.name] if same and check.name in _SYMBOL_CHECKS
                   and check.name in self.results else check.judge(facts) for check in self.checks}
        self._judged_symbols = facts.symbols
        self._due, self._checked_at = False, now
        self.runs += 1
        for name, sentence in results.items():
            before = self.results.get(name, "never checked")
            if sentence is not None and sentence != before:
                log.error("preflight check %s failed, no order is sent: %s", name, sentence,
                          extra={"check": name, "preflight": "failed"})
            elif sentence is None and before not in (None, "never checked"):
                log.info("preflight check %s passes again", name, extra={"check": name, "preflight": "ok"})
            if self.on_result is not None and self._told.get(name) is not (sentence is None):
                self.on_result(name, sentence is None)  # a gauge: told once per change, not every run
                self._told[name] = sentence is None
        was_ok, self.results = self.ok, results
        if self.ok and not was_ok and self._checked_before:
            log.info("preflight: every check passes: trading resumes")
        self._checked_before = True
        mode = margin_mode_name(facts.account.get("margin_mode"))
        if mode is not None and mode != self.margin_mode:
            self.margin_mode = mode
            if self.on_margin_mode is not None:
                self.on_margin_mode(mode)

    _checked_before = False

    def _read(self, now: datetime) -> Facts:
        """Read the terminal, the account and each symbol; a lost connection propagates (the supervisor's).

        The symbols' facts of an earlier run are used again when none is due (SYMBOL_RECHECK).
        """
        terminal = self.gateway.read_info("terminal_info") or {}
        account = self.gateway.read_info("account_info") or {}
        names = list(self.symbols())
        if self._symbols_due_at(now, names):
            self._symbol_facts = self._read_symbols(names)
            self._symbols_due, self._symbols_read_at = False, now
            self.symbol_reads += 1
        return Facts(terminal, account, self._symbol_facts)  # replaced, never changed, when read again

    def _symbols_due_at(self, now: datetime, names: list[str]) -> bool:
        return (self._symbols_due or self._symbols_read_at is None or list(self._symbol_facts) != names
                or now - self._symbols_read_at >= self.symbol_recheck
                or any(self.results.get(check) is not None for check in _SYMBOL_CHECKS))

    def _read_symbols(self, names: list[str]) -> dict[str, dict[str, Any] | None]:
        symbols: dict[str, dict[str, Any] | None] = {}
        for name in names:
            try:
                symbols[name] = self.gateway.read_info("symbol_info", name)
            except (ConnectionLost, BrokerUnavailable, OutcomeUnknown):
                raise
            except GatewayError:
                symbols[name] = None  # symbol_info None: the broker has no such symbol
        return symbols

    def as_status(self) -> dict[str, str]:
        """check -> "ok" or its sentence ("not checked yet" before the first run), for /readyz and /status."""
        if not self.results:
            return dict.fromkeys((check.name for check in self.checks), "not checked yet")
        return {name: sentence or "ok" for name, sentence in self.results.items()}
