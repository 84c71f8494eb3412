"""Records to column values and rows back to records: the helpers every part of the store shares.

Why a module: the repository's parts (db.repository and its mixins db.repo_signals, db.repo_trades)
all turn records into values and compare stored rows with what a repeat would store.
"""

from dataclasses import fields
from functools import cache
from operator import attrgetter
from typing import Any, TypeVar

from sqlalchemy import Table

from db.models import Base
from db.types import Money

View = TypeVar("View")


def table_of(model: type[Base]) -> Table:
    return model.__table__  # type: ignore[return-value]


def values_of(record: Any) -> dict[str, Any]:
    """A record's fields as column values (not dataclasses.asdict: no deep copies needed)."""
    names, read = fields_of(type(record))
    return dict(zip(names, read(record), strict=True))


@cache
def fields_of(cls: type) -> tuple[tuple[str, ...], Any]:
    """A record class's field names and one getter of them all (dataclasses.fields on every call
    was a tenth of writing a cycle's signals)."""
    names = tuple(field.name for field in fields(cls))
    getter = attrgetter(*names)
    return names, (getter if len(names) > 1 else lambda record: (getter(record),))


def view_of(cls: type[View], row: Base) -> View:
    names, _read = fields_of(cls)
    return cls(**{name: getattr(row, name) for name in names})


def column_type(model: type[Base], name: str) -> Money:
    return table_of(model).c[name].type  # type: ignore[return-value]


def differences(row: Any, wanted: dict[str, Any], table: Table | None = None) -> list[str]:
    """Names of the fields whose stored value differs from what the column would store for `wanted`
    (`row`: a model instance, or a Core row of `table`)."""
    table = row.__table__ if table is None else table
    differing = []
    for name, value in wanted.items():
        column_type = table.c[name].type
        if isinstance(column_type, Money) and value is not None:
            value = column_type.quantize(value)
        if getattr(row, name) != value:
            differing.append(name)
    return differing
