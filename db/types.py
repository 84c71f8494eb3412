"""Column types that keep money exact and timestamps in UTC on every backend.

SQLite has neither a decimal nor a timezone-aware type: left alone, SQLAlchemy
stores a `Numeric` as a binary float and silently drops the offset of an aware
datetime (storing 12:00+02:00 as 12:00).  These decorators make both backends
behave like PostgreSQL: values are rounded to the column's scale as NUMERIC
does, and datetimes go in as UTC and come back as aware UTC.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# SQLite keeps NUMERIC values as 8-byte floats: exact for 15 significant digits.
SQLITE_EXACT_DIGITS = 15

# Surrogate keys: 64-bit on PostgreSQL (snapshot tables grow for months); on SQLite
# only INTEGER PRIMARY KEY is the auto-incrementing rowid.
Identifier = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that only accepts aware datetimes and always returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware (UTC) datetime")
        value = value.astimezone(UTC)
        # SQLite stores the text 'YYYY-MM-DD HH:MM:SS.ffffff' (fixed width, so it sorts): all UTC.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """A fixed-point Decimal column: NUMERIC(precision, scale) with PostgreSQL's rounding everywhere.

    Used for money, prices and volumes alike; floats are refused so that binary
    rounding never enters the money path.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.quantum = Decimal(1).scaleb(-scale)
        self.limit = Decimal(10) ** (precision - scale)
        self._bound: dict[tuple[Decimal, str], Decimal] = {}  # see BOUND_KEPT

    def quantize(self, value: Decimal | int) -> Decimal:
        """The value as the column stores it: rounded half away from zero to the scale, like NUMERIC."""
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"expected Decimal, got {type(value).__name__} {value!r}")
        amount = Decimal(value)
        if not amount.is_finite():
            raise ValueError(f"{amount} is not a finite amount")
        if abs(amount) >= self.limit:  # before quantize, which cannot hold more digits than the context has
            raise ValueError(f"{amount} does not fit NUMERIC({self.impl.precision}, {self.impl.scale})")
        amount = amount.quantize(self.quantum, rounding=ROUND_HALF_UP)
        if abs(amount) >= self.limit:  # rounded up to the limit
            raise ValueError(f"{amount} does not fit NUMERIC({self.impl.precision}, {self.impl.scale})")
        return amount

    #: Recent bound amounts per column type (a bounded dict, emptied when full): a cycle binds the same
    #: balance, equity and prices again and again, and quantizing one costs ~4 us. Keyed by the
    #: Decimal itself: equal Decimals (1.1 and 1.10) bind to the same quantized amount. Zero never
    #: (-0 equals 0 but quantizes to -0.00), and only Decimals (True equals 1 and must be refused).
    BOUND_KEPT = 1024

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if type(value) is Decimal and value.is_finite() and value:
            kept = self._bound
            key = (value, dialect.name)
            amount = kept.get(key)
            if amount is None:
                amount = self._bind(value, dialect)
                if len(kept) >= self.BOUND_KEPT:
                    kept.clear()
                kept[key] = amount
            return amount
        return self._bind(value, dialect)

    def driver_bind_processor(self, dialect: Dialect) -> Callable[[Any], Any]:
        """What `bind_processor(dialect)` gives, the driver's value (a float on SQLite) kept per Decimal.

        For db.sqlite_rows, which binds the cycle's rows itself: SQLAlchemy's processor is a wrapper
        calling process_bind_param (a key tuple, its cache) and then Numeric's to_float, three calls a
        value. Here a finite non-zero Decimal is looked up by itself, and a new one is quantized by
        `_bind`, what process_bind_param does with it (equal Decimals bind alike: see BOUND_KEPT);
        anything else goes through process_bind_param as it is. Same values, a call or two less (issue 16).
        """
        to_driver = self.impl_instance.bind_processor(dialect) or _unchanged
        bind_param, bind = self.process_bind_param, self._bind
        kept: dict[Decimal, Any] = {}
        limit = self.BOUND_KEPT

        def process(value: Any) -> Any:
            if type(value) is Decimal and value.is_finite() and value:
                bound = kept.get(value)
                if bound is None:
                    bound = to_driver(bind(value, dialect))
                    if len(kept) >= limit:
                        kept.clear()
                    kept[value] = bound
                return bound
            return to_driver(bind_param(value, dialect))

        return process

    def _bind(self, value: Decimal | int, dialect: Dialect) -> Decimal:
        amount = self.quantize(value)
        # Significant digits only: trailing zeros of the scale cost a float nothing (1E+8 is exact).
        if dialect.name == "sqlite" and len(amount.normalize().as_tuple().digits) > SQLITE_EXACT_DIGITS:
            raise ValueError(
                f"{amount} has more than {SQLITE_EXACT_DIGITS} digits: SQLite cannot store it exactly"
            )
        return amount

    def process_result_value(self, value: Decimal | None, dialect: Dialect) -> Decimal | None:
        # SQLite hands back a float that Numeric already formatted to the scale; normalise both backends.
        return None if value is None else Decimal(value).quantize(self.quantum)


def _unchanged(value: Any) -> Any:
    return value


def price_type() -> Money:
    """Prices and stop levels: NUMERIC(18, 6)."""
    return Money(18, 6)


def cash_type() -> Money:
    """Amounts of account currency: NUMERIC(18, 2)."""
    return Money(18, 2)


class Volume(Money):
    """Lots, exact to any MT5 volume step (0.001, 0.0001 ...), shown with the decimals they have.

    Stored to 8 decimals so a 0.579-lot trade stays 0.579 (NUMERIC(12, 2) kept 0.58, and 0.002
    became 0.00); read back with trailing zeros dropped down to two decimals, so the 0.10 lots of a
    0.01-step symbol still read "0.10" in the API and exports, and 0.579 reads "0.579", not "0.57900000".
    """

    cache_ok = True

    def quantize(self, value: Decimal | int) -> Decimal:
        return shown(super().quantize(value))

    def process_result_value(self, value: Decimal | None, dialect: Dialect) -> Decimal | None:
        stored = super().process_result_value(value, dialect)
        return None if stored is None else shown(stored)


def shown(lots: Decimal) -> Decimal:
    """`lots` with trailing zeros dropped, but at least two decimals (equal as a number)."""
    exponent = min(lots.normalize().as_tuple().exponent, -VOLUME_MIN_DECIMALS)
    return lots.quantize(Decimal(1).scaleb(exponent))


VOLUME_MIN_DECIMALS = 2


def volume_type() -> Money:
    """Volumes in lots: NUMERIC(18, 8) (revision 0008; was NUMERIC(12, 2))."""
    return Volume(18, 8)


def points_type() -> Money:
    """Price differences in points (slippage, spread: whole ticks in practice): NUMERIC(12, 2)."""
    return Money(12, 2)


def seconds_type() -> Money:
    """Measured durations in seconds, to the microsecond: NUMERIC(12, 6)."""
    return Money(12, 6)
