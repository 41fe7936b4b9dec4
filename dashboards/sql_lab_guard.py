"""SQL Lab kept read-only, and Superset's Hive engine spec made right for the lake's Spark Thrift server.

Loaded by superset_config.py (which puts this folder on sys.path): :func:`patch_superset` as FLASK_APP_MUTATOR,
:func:`read_only_guard` as SQL_QUERY_MUTATOR. Needs no PyHive (the dialect fix is lake_sql_dialect.py).

Read-only: Superset's own DML check (``allow_dml`` off) refuses INSERT/UPDATE/DELETE/MERGE/CREATE/DROP/ALTER, but
lets through every statement its parser does not classify: on Spark ``CALL lake.system.rollback_to_snapshot(...)``
(a write), ``SET`` (on the Thrift server's shared session it would change every reader's settings), ``CACHE TABLE``,
``ADD JAR``, ``USE``, ``LOAD DATA``... :func:`read_only_guard` lets a database whose ``allow_dml`` is off run only
queries (SELECT, WITH, set operations, VALUES), DESCRIBE, SHOW and EXPLAIN, and refuses anything else naming it,
before anything is sent. The Thrift server itself opens the embedded catalog read-only (mo/lake_sql.py).
"""

from __future__ import annotations

from typing import Any

# Functions that reach outside SQL: Java reflection on the Thrift server's JVM.
DISALLOWED_FUNCTIONS = {"reflect", "java_method", "try_reflect"}
READ_COMMANDS = ("SHOW", "DESCRIBE", "DESC", "EXPLAIN")


def _spark_view_names(cls, database, inspector, schema):
    """Superset's HiveEngineSpec.get_view_names, reading Spark's three-column SHOW VIEWS."""
    sql = "SHOW VIEWS" + (f" IN `{schema}`" if schema else "")
    with database.get_raw_connection(schema=schema) as conn:
        cursor = conn.cursor()
        try:
            cursor.execute(sql)
            from lake_sql_dialect import names_of

            return set(names_of(cursor.fetchall()))
        except Exception:  # noqa: BLE001  (a catalog without views answers with an error)
            return set()


def _fixed_schema(cls, uri, connect_args, catalog=None, schema=None):
    return uri, connect_args


def _no_catalog(cls, database):
    return None


def patch_superset(app) -> None:
    """FLASK_APP_MUTATOR: Superset's Hive engine spec made right for the lake's Thrift server, no reflection functions.

    - SHOW VIEWS read as Spark answers it;
    - no catalogs: 6.1's Hive spec inherits Presto's and took the URL's schema for a catalog, so a grant on schema
      ``silver`` never matched a query on ``silver.t`` (checked as ``silver.silver.t``);
    - one schema per connection, the URL's: every connection of the Thrift server's single shared session runs
      ``USE <schema>`` (PyHive does on connect), so a schema per query would let two queries switch each other's
      namespace between ``USE`` and ``SELECT``, and a query's unqualified names resolve in another namespace than
      the one Superset checked. Unqualified names are the URL's namespace (silver) for Superset and Spark alike;
      other namespaces are named (``marts.customer_profile``).
    """
    from superset.db_engine_specs.hive import HiveEngineSpec

    HiveEngineSpec.get_view_names = classmethod(_spark_view_names)
    HiveEngineSpec.supports_catalog = HiveEngineSpec.supports_dynamic_catalog = False
    HiveEngineSpec.get_default_catalog = classmethod(_no_catalog)
    HiveEngineSpec.supports_dynamic_schema = False
    HiveEngineSpec.adjust_engine_params = classmethod(_fixed_schema)
    disallowed = app.config.setdefault("DISALLOWED_SQL_FUNCTIONS", {})
    disallowed["hive"] = set(disallowed.get("hive", set())) | DISALLOWED_FUNCTIONS


def refused_statement(sql: str, engine: str) -> str | None:
    """The first statement of ``sql`` that only reads nothing (a write, a session change, a cache...), else None."""
    from sqlglot import exp
    from superset.sql.parse import SQLScript

    for statement in SQLScript(sql, engine=engine).statements:
        parsed = statement._parsed  # noqa: SLF001  (Superset keeps the sqlglot tree there)
        if isinstance(parsed, exp.Query | exp.Describe | exp.Show) and not parsed.args.get("into"):
            continue
        if isinstance(parsed, exp.Command) and str(parsed.this).upper() in READ_COMMANDS:
            continue
        return statement.format(comments=False)
    return None


def read_only_guard(sql: str, **kwargs: Any) -> str:
    """SQL_QUERY_MUTATOR: on a database whose ``allow_dml`` is off, refuse a statement that does not just read."""
    database = kwargs.get("database")
    if database is None or database.allow_dml:
        return sql
    refused = refused_statement(sql, database.db_engine_spec.engine)
    if refused is None:
        return sql
    from superset.errors import ErrorLevel, SupersetError, SupersetErrorType
    from superset.exceptions import SupersetErrorException

    first_line = refused.strip().splitlines()[0][:200]
    raise SupersetErrorException(
        SupersetError(
            message=(
                f"Database {database.database_name!r} is read-only in SQL Lab (DML is not allowed): the statement "
                f"`{first_line}` was refused; only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN run here. Nothing was run."
            ),
            error_type=SupersetErrorType.DML_NOT_ALLOWED_ERROR,
            level=ErrorLevel.ERROR,
        ),
        status=403,
    )
