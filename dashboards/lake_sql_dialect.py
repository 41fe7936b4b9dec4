"""SQL Lab on the lake: PyHive's ``hive://`` dialect made right for Spark's Thrift server.

Registered by superset_config.py (which puts this folder on sys.path) when PyHive is installed (dashboards/.venv;
Superset's stock image has none). Superset's side of the fix and SQL Lab's read-only guard: sql_lab_guard.py.

What stock PyHive 0.7 gets wrong against Spark 3.5's Thrift server (checked on this machine, see
docs/dashboards.md "SQL Lab on the lake"):

- ``SHOW TABLES`` / ``SHOW VIEWS`` answer (namespace, name, isTemporary): PyHive and Superset's Hive engine spec
  take column 0, so every table was listed under its namespace's name;
- ``DESCRIBE`` of a partitioned Iceberg table ends with ``# Partitioning`` / ``Part 0 | days(ts)`` rows that PyHive
  read as columns (with a NULL type: TypeError), and Spark's types (``timestamp_ntz``, ``decimal(12,2)``,
  ``array<string>``) need mapping;
- a missing table raises ``[TABLE_OR_VIEW_NOT_FOUND]``, which PyHive's has_table does not recognise.
"""

from __future__ import annotations

import re
from typing import Any

from pyhive.sqlalchemy_hive import HiveDialect, _type_map
from sqlalchemy import exc, text, types, util

SPARK_TYPES = {
    **_type_map,
    "timestamp_ntz": _type_map["timestamp"],
    "integer": types.Integer,
    "long": types.BigInteger,
    "short": types.SmallInteger,
    "byte": _type_map["tinyint"],
    "real": types.Float,
    "dec": _type_map["decimal"],
    "numeric": _type_map["decimal"],
    "void": types.NullType,
    "interval": types.String,
}
NOT_FOUND = re.compile(r"TABLE_OR_VIEW_NOT_FOUND|NoSuchTableException|Table not found|does not exist")


def names_of(rows: list[Any]) -> list[str]:
    """Names from a SHOW TABLES / SHOW VIEWS answer: Spark's (namespace, name, isTemporary) or Hive's (name)."""
    names = []
    for row in rows:
        if len(row) >= 3:
            if str(row[2]).lower() == "true":  # a session's temporary view, not a table of the namespace
                continue
            names.append(row[1])
        else:
            names.append(row[0])
    return names


class SparkHiveDialect(HiveDialect):
    """PyHive's dialect reading Spark's answers; still right against a Hive server (its answers have one column)."""

    supports_statement_cache = False

    def get_table_names(self, connection, schema=None, **kw):
        query = "SHOW TABLES"
        if schema:
            query += " IN " + self.identifier_preparer.quote_identifier(schema)
        return names_of(connection.execute(text(query)).fetchall())

    def get_view_names(self, connection, schema=None, **kw):
        query = "SHOW VIEWS"
        if schema:
            query += " IN " + self.identifier_preparer.quote_identifier(schema)
        try:
            return names_of(connection.execute(text(query)).fetchall())
        except exc.DBAPIError:  # a catalog without views
            return []

    def _describe(self, connection, table_name, schema):
        full_table = f"{schema}.{table_name}" if schema else table_name
        try:
            return connection.execute(text(f"DESCRIBE {full_table}")).fetchall()
        except exc.DBAPIError as error:
            if NOT_FOUND.search(str(error)):
                raise exc.NoSuchTableError(full_table) from None
            raise

    @staticmethod
    def _column_rows(rows):
        """The column rows of a DESCRIBE: they end at the first blank line or ``#`` section (partitioning, details)."""
        out = []
        for row in rows:
            name = (row[0] or "").strip()
            if not name or name.startswith("#"):
                break
            out.append((name, (row[1] or "").strip(), row[2]))
        return out

    def has_table(self, connection, table_name, schema=None, **kw):
        try:
            self._describe(connection, table_name, schema)
            return True
        except exc.NoSuchTableError:
            return False

    def get_columns(self, connection, table_name, schema=None, **kw):
        result = []
        for name, type_text, comment in self._column_rows(self._describe(connection, table_name, schema)):
            match = re.match(r"\w+", type_text)
            base = match.group(0).lower() if match else ""
            coltype = SPARK_TYPES.get(base)
            if coltype is None:
                util.warn(f"Did not recognize type {type_text!r} of column {name!r}")
                coltype = types.NullType
            result.append({"name": name, "type": coltype, "nullable": True, "default": None, "comment": comment})
        return result

    def get_indexes(self, connection, table_name, schema=None, **kw):
        """Hive-style partition columns only (``# Partition Information``). An Iceberg table's ``# Partitioning``
        lists transforms (``days(ts)``, ``bucket(8, id)``), not columns, and it has no partitions to SHOW: none."""
        rows = self._describe(connection, table_name, schema)
        names, in_section = [], False
        for row in rows:
            name = (row[0] or "").strip()
            if name == "# Partition Information":
                in_section = True
            elif in_section and name.startswith("#"):
                if name != "# col_name":
                    break
            elif in_section and name:
                names.append(name)
            elif in_section and not name:
                break
        return [{"name": "partition", "column_names": names, "unique": False}] if names else []


def register() -> None:
    """Make ``hive://`` URLs use :class:`SparkHiveDialect` (registered names win over PyHive's entry point)."""
    from sqlalchemy.dialects import registry

    registry.register("hive", __name__, "SparkHiveDialect")
    registry.register("hive.thrift", __name__, "SparkHiveDialect")
