"""Money columns keep recently bound amounts (db.types.Money.process_bind_param): never a different answer.

Why a cache at all: a cycle binds the same balance, equity and prices again and again (issue 16).
What must hold: a kept amount is exactly what binding it afresh gives, for every value that can
compare equal to another (1.1 and 1.10, 5 and 5.00), zero's sign, and every refusal unchanged.
"""

import random
from decimal import Decimal

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from db.types import Money, price_type, volume_type


def _fresh(column, value, dialect):
    return column._bind(value, dialect)


@pytest.mark.parametrize("make", [lambda: Money(18, 2), price_type, volume_type])
@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_kept_amounts_are_what_binding_afresh_gives(make, dialect):
    column = make()
    rng = random.Random(5)
    values = [Decimal(f"{rng.randint(-10**6, 10**6)}E{rng.randint(-8, 2)}") for _ in range(3000)]
    values += [Decimal("1.1"), Decimal("1.10"), Decimal("1.100000"), Decimal("0.005"), Decimal("-0.005"),
               Decimal("2.675"), Decimal("-0"), Decimal("0"), Decimal("0E-8"), 5, 0]
    for value in values * 2:  # the second pass is served from what the first kept
        got = column.process_bind_param(value, dialect)
        want = _fresh(column, value, dialect)
        assert (got, str(got)) == (want, str(want)), value
    assert 0 < len(column.__dict__["_bound"]) <= Money.BOUND_KEPT


def test_zero_keeps_its_sign_and_refusals_stay_refusals():
    column, dialect = Money(18, 2), sqlite.dialect()
    column.process_bind_param(Decimal("0"), dialect)
    assert str(column.process_bind_param(Decimal("-0"), dialect)) == "-0.00"
    column.process_bind_param(Decimal("1"), dialect)
    with pytest.raises(TypeError):
        column.process_bind_param(True, dialect)  # True == 1, and must still be refused
    with pytest.raises(TypeError):
        column.process_bind_param(1.0, dialect)
    for bad in (Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("1E+20"), Decimal("-1E+30"),
                Decimal("9" * 40), 10**40, Decimal("9999999999999999.995")):  # the last rounds up to the limit
        for _ in range(2):
            with pytest.raises(ValueError):
                column.process_bind_param(bad, dialect)
