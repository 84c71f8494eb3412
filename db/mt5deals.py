"""MT5's deal types and entries as a table: integer value, the word the terminal prints, what it does.

Why a table: the MT5-convention figures (db.mt5report) and the report importer
(db.report_import) must agree on what each deal is, and one table is easier to check
against /work/shared/mt5-api-5.0.6231.json (the values below are the package's
DEAL_TYPE_* and DEAL_ENTRY_* constants) than ifs scattered over two modules.

What a deal does to the figures (its `kind`):
- TRADE: a buy or sell; its exit deals are MT5's "trades", its entry deals' costs go
  to gross loss (or gross profit when positive);
- FUNDING: a deposit or withdrawal (DEAL_TYPE_BALANCE): moves the balance but is never
  profit, loss or drawdown;
- CREDIT: credit facility: not part of the balance at all (equity = balance + credit + floating);
- OTHER: every other balance operation (charges, corrections, bonuses, commissions charged as
  separate deals, interest, dividends, taxes): part of the balance change and so of total net
  profit, never a trade, never a win or a loss.

The words are those of the terminal's reports, which MetaQuotes prints in English in every
UI language (only headers and section titles are translated).
"""

from __future__ import annotations

from dataclasses import dataclass

TRADE, FUNDING, CREDIT, OTHER = "trade", "funding", "credit", "other"


@dataclass(frozen=True, slots=True)
class DealType:
    value: int
    word: str
    kind: str


DEAL_TYPES: tuple[DealType, ...] = (
    DealType(0, "buy", TRADE),  # DEAL_TYPE_BUY
    DealType(1, "sell", TRADE),  # DEAL_TYPE_SELL
    DealType(2, "balance", FUNDING),  # DEAL_TYPE_BALANCE
    DealType(3, "credit", CREDIT),  # DEAL_TYPE_CREDIT
    DealType(4, "charge", OTHER),  # DEAL_TYPE_CHARGE
    DealType(5, "correction", OTHER),  # DEAL_TYPE_CORRECTION
    DealType(6, "bonus", OTHER),  # DEAL_TYPE_BONUS
    DealType(7, "commission", OTHER),  # DEAL_TYPE_COMMISSION
    DealType(8, "daily commission", OTHER),  # DEAL_TYPE_COMMISSION_DAILY
    DealType(9, "monthly commission", OTHER),  # DEAL_TYPE_COMMISSION_MONTHLY
    DealType(10, "daily agent commission", OTHER),  # DEAL_TYPE_COMMISSION_AGENT_DAILY
    DealType(11, "monthly agent commission", OTHER),  # DEAL_TYPE_COMMISSION_AGENT_MONTHLY
    DealType(12, "interest rate", OTHER),  # DEAL_TYPE_INTEREST
    DealType(13, "canceled buy", OTHER),  # DEAL_TYPE_BUY_CANCELED
    DealType(14, "canceled sell", OTHER),  # DEAL_TYPE_SELL_CANCELED
    DealType(15, "dividend", OTHER),  # DEAL_DIVIDEND
    DealType(16, "franked dividend", OTHER),  # DEAL_DIVIDEND_FRANKED
    DealType(17, "tax", OTHER),  # DEAL_TAX
)

BUY, SELL, BALANCE, CREDIT_TYPE, COMMISSION = 0, 1, 2, 3, 7
ENTRY_IN, ENTRY_OUT, ENTRY_INOUT, ENTRY_OUT_BY = 0, 1, 2, 3
# DEAL_ENTRY_* by the word the report prints in the Direction column ('' for balance operations).
ENTRIES = {"in": ENTRY_IN, "out": ENTRY_OUT, "in/out": ENTRY_INOUT, "out by": ENTRY_OUT_BY, "": ENTRY_IN}
EXITS = frozenset({ENTRY_OUT, ENTRY_INOUT, ENTRY_OUT_BY})

_BY_VALUE = {deal_type.value: deal_type for deal_type in DEAL_TYPES}
BY_WORD = {deal_type.word: deal_type for deal_type in DEAL_TYPES}


def kind_of(deal_type: int) -> str:
    """TRADE, FUNDING, CREDIT or OTHER; a type MT5 does not define is refused, not guessed."""
    try:
        return _BY_VALUE[deal_type].kind
    except KeyError:
        raise ValueError(f"unknown MT5 deal type {deal_type!r}") from None


def word_of(deal_type: int) -> str:
    return _BY_VALUE[deal_type].word


def entry_word(entry: int) -> str:
    return {value: word for word, value in ENTRIES.items() if word}[entry]
