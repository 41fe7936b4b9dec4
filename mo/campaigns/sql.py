"""Small SQL helpers the campaign modules share across SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, String, Table, Text, any_, bindparam, cast
from sqlalchemy.dialects import mysql, postgresql, sqlite


def insert_ignore(conn: Connection, table: Table, conflict: Sequence[Any]) -> Any:
    """INSERT that skips rows whose key is already there (a concurrent writer's identical row)."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    if name in ("mysql", "mariadb"):  # not INSERT IGNORE: that would also hide truncation and bad values
        stmt = mysql.insert(table)
        first = conflict[0].name
        return stmt.on_duplicate_key_update({first: stmt.inserted[first]})
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))


def _element(value: Any) -> str:
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, int | Decimal):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def pg_array(values: Iterable[Any]) -> str:
    """PostgreSQL's text form of a one-dimensional array, ``{1,2,"a b"}``: bound as one string and cast, it is
    parsed by the array type's input function, many times cheaper than the ``ARRAY[...]`` expression list
    psycopg2 renders for a Python list (one parse node per element)."""
    values = list(values)
    kinds = set(map(type, values))
    if kinds <= {int} or kinds == {Decimal}:  # the common cases, without a Python call per element
        return "{" + ",".join(map(str, values)) + "}"
    if kinds == {str}:
        joined = "\x00".join(values)
        if '"' not in joined and "\\" not in joined and joined.count("\x00") == len(values) - 1:
            return '{"' + joined.replace("\x00", '","') + '"}'
    return "{" + ",".join(map(_element, values)) + "}"


def array_param(values: Iterable[Any], item: Any) -> Any:
    """A bound PostgreSQL array of ``item`` (a SQLAlchemy type), sent in its text form (:func:`pg_array`)."""
    return cast(bindparam(None, pg_array(values), type_=Text()), postgresql.ARRAY(item))


def one_of(conn: Connection, column: Any, values: Sequence[Any]) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``: one bound array instead of thousands of
    bound parameters (the chunks here hold thousands of ids), far cheaper to render, send and parse."""
    if conn.dialect.name == "postgresql":
        item = BigInteger() if isinstance(column.type, BigInteger | Integer) else String()
        return column == any_(array_param(values, item))
    return column.in_(list(values))
