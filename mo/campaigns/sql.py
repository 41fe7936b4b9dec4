"""Small SQL helpers the campaign modules share across SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Connection, Integer, String, Table, any_, bindparam
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


def one_of(conn: Connection, column: Any, values: Sequence[Any]) -> Any:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``: one bound array instead of thousands of
    bound parameters (the chunks here hold thousands of ids), far cheaper to render, send and parse."""
    if conn.dialect.name == "postgresql":
        item = BigInteger() if isinstance(column.type, BigInteger | Integer) else String()
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(item)))
    return column.in_(list(values))
