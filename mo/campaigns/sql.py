"""Small SQL helpers the campaign modules share across SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, Connection, Table
from sqlalchemy.dialects import mysql, postgresql, sqlite


def insert_ignore(conn: Connection, table: Table, conflict: Sequence[Column]):  # type: ignore[no-untyped-def]
    """INSERT that skips rows whose key is already there (a concurrent writer's identical row)."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    if name in ("mysql", "mariadb"):  # not INSERT IGNORE: that would also hide truncation and bad values
        stmt = mysql.insert(table)
        first = conflict[0].name
        return stmt.on_duplicate_key_update({first: stmt.inserted[first]})
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
