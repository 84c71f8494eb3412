"""The declarative base every store table belongs to, and the column shapes most tables share.

Why a module of its own: the tables are split by concern (db.models, db.rollup_models) and all
need one metadata, whose constraint names follow `NAMING_CONVENTION` so migrations can name them too.
"""

from sqlalchemy import MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.types import Identifier
from db.vocabulary import ACCOUNT_LEN

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _account() -> Mapped[str]:
    return mapped_column(String(ACCOUNT_LEN))


def _id() -> Mapped[int]:
    return mapped_column(Identifier, primary_key=True, autoincrement=True)
