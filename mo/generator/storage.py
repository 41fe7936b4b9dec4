"""Bulk writes and the world clock, the same on SQLite, MariaDB and PostgreSQL.

Rows travel as plain tuples in the model's column order and go to the driver's own bulk path: SQLAlchemy's
per-row type processing costs more than building the row, and each driver has a faster route:

- SQLite: ``executemany`` of prepared tuples; dates and timestamps are pre-formatted exactly as SQLAlchemy
  stores them (``YYYY-MM-DD HH:MM:SS.ffffff``), so rows written here read back like ORM-written rows.
- MariaDB: PyMySQL's ``executemany`` rewrites one INSERT into multi-row INSERTs.
- PostgreSQL: psycopg2's ``execute_values`` (what SQLAlchemy's insertmanyvalues does), since psycopg2's own
  ``executemany`` sends one statement per row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, Date, DateTime, Engine, select, update
from sqlalchemy import insert as insert_

from mo.errors import MoError
from mo.oltp.models import Base, WorldClock

Row = tuple


def table_columns(table: str) -> list[str]:
    return [c.name for c in Base.metadata.tables[table].columns]


def _sqlite_converter(table: str) -> Callable[[Sequence], tuple]:
    """A row converter generated for one table: straight-line code, no per-value loop or type test."""
    parts = []
    for i, c in enumerate(Base.metadata.tables[table].columns):
        if isinstance(c.type, DateTime | Date):
            fmt = f"r[{i}].isoformat(' ', 'microseconds')" if isinstance(c.type, DateTime) else f"r[{i}].isoformat()"
            parts.append(fmt if not c.nullable else f"(None if r[{i}] is None else {fmt})")
        else:
            parts.append(f"r[{i}]")
    return eval(f"lambda r: ({', '.join(parts)},)")  # noqa: S307 - code built above from the model only


class BulkWriter:
    """Inserts batches of tuples into one engine's source tables by the fastest portable route."""

    def __init__(self, engine: Engine) -> None:
        self.dialect = engine.dialect.name
        self._sql: dict[str, str] = {}
        self._convert: dict[str, Callable[[Sequence], tuple]] = {}

    def _statement(self, table: str) -> str:
        if table not in self._sql:
            cols = table_columns(table)
            marks = "?" if self.dialect == "sqlite" else "%s"
            values = "" if self.dialect == "postgresql" else f" VALUES ({', '.join([marks] * len(cols))})"
            self._sql[table] = f"INSERT INTO {table} ({', '.join(cols)}){values or ' VALUES %s'}"
        return self._sql[table]

    def insert(self, conn: Connection, table: str, rows: list[Row]) -> None:
        if not rows:
            return
        sql = self._statement(table)
        if self.dialect == "sqlite":
            if table not in self._convert:
                self._convert[table] = _sqlite_converter(table)
            convert = self._convert[table]
            conn.exec_driver_sql(sql, [convert(r) for r in rows])
        elif self.dialect == "postgresql":
            from psycopg2.extras import execute_values

            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                execute_values(cursor, sql, rows, page_size=2000)
            finally:
                cursor.close()
        else:
            conn.exec_driver_sql(sql, rows)


# --- the world clock ---------------------------------------------------------------------------------

ID_TABLES = ("organizations", "agents", "products", "customers", "policies", "claims", "sales_recordings",
             "consents", "complaints")  # fmt: skip


@dataclass
class Clock:
    """The last simulated day, the seed, and the next free id per table (ids are assigned by the writer).

    ``next_ids`` also carries a little bookkeeping the daily simulation needs, such as the number of customers
    the world started with (``world_customers``), which scales the daily volumes.
    """

    current_date: date
    seed: int
    next_ids: dict[str, int]

    def take(self, table: str) -> int:
        value = self.next_ids[table]
        self.next_ids[table] = value + 1
        return value


def read_clock(conn: Connection) -> Clock | None:
    # Core quotes current_date, which every one of the three databases also knows as a function.
    row = conn.execute(select(WorldClock.current_date, WorldClock.seed, WorldClock.next_ids)).first()
    if row is None:
        return None
    return Clock(current_date=row[0], seed=int(row[1]), next_ids=json.loads(row[2]))


def write_clock(conn: Connection, clock: Clock, *, insert: bool = False) -> None:
    payload = json.dumps(clock.next_ids, sort_keys=True, separators=(",", ":"))
    if len(payload) > 512:
        raise MoError(f"world clock bookkeeping too large for world_clock.next_ids ({len(payload)} > 512 chars)")
    values = {"current_date": clock.current_date, "seed": clock.seed, "next_ids": payload}
    if insert:
        conn.execute(insert_(WorldClock).values(id=1, **values))
    else:
        conn.execute(update(WorldClock).where(WorldClock.id == 1).values(**values))
