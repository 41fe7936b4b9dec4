"""Reading changed source rows with Spark JDBC, typed exactly as the contract says.

- URLs: the SQLAlchemy source URL becomes a JDBC URL. MariaDB/MySQL go through
  ``jdbc:mysql://...?permitMysqlScheme`` with the MariaDB driver: a ``jdbc:mariadb://`` URL makes Spark
  pick no MySQL dialect and return column *names* as values without any error.
- SQLite: SQLAlchemy stores DATETIME, DATE and NUMERIC as text/real, and sqlite-jdbc reports made-up
  types for expressions in a sub-select (a timestamp came back as decimal(38,18) and failed). So on
  SQLite every non-key column is selected ``CAST(... AS TEXT)`` with a matching ``customSchema`` and
  Spark casts the text to the contract type. On every engine each column is finally cast to its
  contract type (decimal(18,2), boolean, bigint, ...), so bronze has one schema whatever the source.
- Incremental window: ``watermark > lower AND watermark <= upper``, where ``upper`` is the source's
  max(updated_at) read just before the extraction. Rows changed while the extraction runs are left for
  the next run instead of being half-seen by some JDBC partitions. Timestamps enter the SQL as literals
  ``'YYYY-MM-DD HH:MM:SS.ffffff'``: all three engines compare them as timestamps, and on SQLite they
  compare as text in the exact format SQLAlchemy writes (rows written by other tools in another text
  format would be compared wrongly there).
- The run's view of a table (:func:`read_view`, read after its rows): the live rows with a watermark up to
  the run's bound, counted for the gate's reconciliation, and the ids changed after that bound, in one
  statement (one snapshot). A row changed after the bound may be missing from the batch, or be there in
  the version a JDBC partition read before the change: the next run syncs it, and the gate leaves those
  ids out of the count on both sides and accepts them as parents of references.
- Large tables (``partitioned_read``) are read by ``numPartitions`` parallel range queries on ``id``
  over the filtered set; ``numPartitions = ceil(rows / settings.jdbc_partition_rows)`` capped at
  :data:`MAX_READ_PARTITIONS` so a sync never opens more connections than the source team allows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mo.config import Settings
from mo.contracts import TableContract
from mo.errors import ConfigError

MAX_READ_PARTITIONS = 8
TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class JdbcSource:
    """Where and how Spark reads the source; ``label`` names it without credentials."""

    url: str
    driver: str
    properties: dict[str, str]
    dialect: str  # sqlite | mysql | postgresql
    label: str


def jdbc_source(url: str) -> JdbcSource:
    """Translate a SQLAlchemy source URL into what Spark's JDBC reader needs."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"source URL is not a database URL: {url.split('@')[-1]!r}") from None
    scheme = parsed.drivername.split("+")[0]
    if scheme == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:":
            raise ConfigError("an in-memory SQLite source cannot be read by Spark; give a file path")
        return JdbcSource(
            url=f"jdbc:sqlite:{path}",
            driver="org.sqlite.JDBC",
            properties={},
            dialect="sqlite",
            label=f"sqlite:{Path(path).name}",
        )
    props = {}
    if parsed.username:
        props["user"] = parsed.username
    if parsed.password is not None:
        props["password"] = parsed.password
    host = parsed.host or "127.0.0.1"
    if scheme in ("mysql", "mariadb"):
        port = parsed.port or 3306
        return JdbcSource(
            url=f"jdbc:mysql://{host}:{port}/{parsed.database}?permitMysqlScheme",
            driver="org.mariadb.jdbc.Driver",
            properties=props,
            dialect="mysql",
            label=f"mysql:{host}:{port}/{parsed.database}",
        )
    if scheme == "postgresql":
        port = parsed.port or 5432
        return JdbcSource(
            url=f"jdbc:postgresql://{host}:{port}/{parsed.database}",
            driver="org.postgresql.Driver",
            properties=props,
            dialect="postgresql",
            label=f"postgresql:{host}:{port}/{parsed.database}",
        )
    raise ConfigError(f"unknown source URL scheme '{scheme}'; expected one of sqlite, mysql, mariadb, postgresql")


def format_ts(value: datetime) -> str:
    return value.strftime(TS_FORMAT)


def parse_ts(value) -> datetime | None:
    """A timestamp from a source driver or a manifest (SQLite hands back text)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class ExtractWindow:
    """What one run reads from a table: rows with lower < watermark <= upper, and what the source holds."""

    lower: datetime | None
    upper: datetime | None  # None: the filtered set is empty
    rows: int
    min_id: int | None
    max_id: int | None
    ids: tuple[int, ...] | None = None  # a repair reads only these ids (see spark_jobs.reconcile)


def window_filter(contract: TableContract, window: ExtractWindow) -> str:
    wm = contract.watermark
    conds = []
    if window.lower is not None:
        conds.append(f"{wm} > '{format_ts(window.lower)}'")
    if window.upper is not None:
        conds.append(f"{wm} <= '{format_ts(window.upper)}'")
    if window.ids is not None:
        conds.append(ids_filter(contract, window.ids))
    return " AND ".join(conds) or "1 = 1"


def ids_filter(contract: TableContract, ids: tuple[int, ...]) -> str:
    return f"{contract.primary_key} IN ({', '.join(str(int(i)) for i in ids) or 'NULL'})"


def plan_window(
    engine: Engine, contract: TableContract, lower: datetime | None, *, ids: tuple[int, ...] | None = None
) -> ExtractWindow:
    """Bounds and size of the window, read in one transaction just before the extraction.

    ``ids``: only those rows, whatever their watermark (a repair of ids found by ``mo reconcile``).
    """
    wm, pk, table = contract.watermark, contract.primary_key, contract.table
    conds = ([f"{wm} > '{format_ts(lower)}'"] if lower else []) + (
        [ids_filter(contract, ids)] if ids is not None else []
    )
    where = f"WHERE {' AND '.join(conds)}" if conds else ""
    with engine.connect() as conn:
        upper = parse_ts(conn.execute(text(f"SELECT max({wm}) FROM {table} {where}")).scalar())
        window = ExtractWindow(lower, upper, 0, None, None, ids)
        rows, min_id, max_id = 0, None, None
        if upper is not None:
            rows, min_id, max_id = conn.execute(
                text(f"SELECT count(*), min({pk}), max({pk}) FROM {table} WHERE {window_filter(contract, window)}")
            ).one()
    return ExtractWindow(lower, upper, int(rows or 0), min_id, max_id, ids)


@dataclass(frozen=True)
class SourceView:
    """The source as a run sees a table: rows with ``watermark <= bound`` (see the module doc)."""

    live_count: int  # live rows (not soft-deleted) up to the bound
    pending_ids: list[int]  # ids changed after the bound: the next run syncs them


def read_view(engine: Engine, contract: TableContract, bound: datetime | None) -> SourceView:
    """The live count up to ``bound`` and the ids changed after it, in one statement so in one snapshot.

    Called after the table's rows were read: a row changed after the bound (while or after the JDBC
    partitions read) keeps a watermark above it from then on, so it is among ``pending_ids`` whenever
    this is read. ``bound`` None (nothing synced yet, the table was empty): everything is pending.
    """
    wm, pk, sd, table = contract.watermark, contract.primary_key, contract.soft_delete, contract.table
    after, upto = (
        ("1 = 1", "1 = 0") if bound is None else (f"{wm} > '{format_ts(bound)}'", f"{wm} <= '{format_ts(bound)}'")
    )
    statement = (
        f"SELECT 0 AS kind, {pk} AS value FROM {table} WHERE {after} "
        f"UNION ALL SELECT 1 AS kind, count(*) AS value FROM {table} WHERE {sd} IS NULL AND {upto}"
    )
    with engine.connect() as conn:
        rows = conn.execute(text(statement)).all()
    live = next(int(value) for kind, value in rows if kind == 1)
    return SourceView(live, sorted(int(value) for kind, value in rows if kind == 0))


def _select_list(contract: TableContract, dialect: str) -> tuple[str, str | None]:
    """The sub-select's column list and, on SQLite, the customSchema that goes with it."""
    if dialect != "sqlite":
        return ", ".join(contract.column_names), None
    items, schema = [], []
    for c in contract.columns:
        if c.name == contract.primary_key:
            items.append(c.name)
            schema.append(f"{c.name} BIGINT")
        else:
            items.append(f"CAST({c.name} AS TEXT) AS {c.name}")
            schema.append(f"{c.name} STRING")
    return ", ".join(items), ", ".join(schema)


def _jdbc_reader(spark, settings: Settings, source: JdbcSource, query: str):
    reader = (
        spark.read.format("jdbc")
        .option("url", source.url)
        .option("driver", source.driver)
        .option("dbtable", query)
        .option("fetchsize", str(settings.jdbc_fetch_size))
    )
    for key, value in source.properties.items():
        reader = reader.option(key, value)
    return reader


def read_window(spark, settings: Settings, source: JdbcSource, contract: TableContract, window: ExtractWindow):
    """The rows of the window as a DataFrame with exactly the contract's columns and types."""
    select, custom_schema = _select_list(contract, source.dialect)
    query = f"(SELECT {select} FROM {contract.table} WHERE {window_filter(contract, window)}) src"
    reader = _jdbc_reader(spark, settings, source, query)
    if custom_schema:
        reader = reader.option("customSchema", custom_schema)
    partitions = min(MAX_READ_PARTITIONS, math.ceil(window.rows / max(settings.jdbc_partition_rows, 1)))
    if contract.partitioned_read and partitions > 1 and window.min_id is not None and window.max_id is not None:
        reader = (
            reader.option("partitionColumn", contract.primary_key)
            .option("lowerBound", str(window.min_id))
            .option("upperBound", str(int(window.max_id) + 1))
            .option("numPartitions", str(partitions))
        )
    raw = reader.load()
    return transform_contract_types(raw, contract)


def read_ids(
    spark, settings: Settings, source: JdbcSource, contract: TableContract, ids: tuple[int, ...] | None = None
):
    """Every id the source holds (of ``ids``, if given), whatever its watermark: what a full refresh takes
    as not deleted.

    The refresh's window ends at its bound, so a row changed while the refresh reads is outside it;
    only an id missing from this read is gone from the source.
    """
    from pyspark.sql import functions as F

    pk = contract.primary_key
    where = f" WHERE {ids_filter(contract, ids)}" if ids is not None else ""
    reader = _jdbc_reader(spark, settings, source, f"(SELECT {pk} FROM {contract.table}{where}) ids")
    if source.dialect == "sqlite":
        reader = reader.option("customSchema", f"{pk} BIGINT")
    return reader.load().select(F.col(pk).cast("bigint").alias(pk))


def transform_contract_types(df, contract: TableContract):
    """Cast every column to its contract type; text timestamps parse as UTC (the session time zone)."""
    from pyspark.sql import functions as F

    # Spark's string casts parse 'YYYY-MM-DD HH:MM:SS.ffffff', 'YYYY-MM-DD', '0'/'1' and decimal text exactly
    cols = [F.col(c.name).cast(c.spark_type).alias(c.name) for c in contract.columns]
    return df.select(*cols)


def transform_operation(df, contract: TableContract):
    """What happened to the row in this version: insert (never updated), update, or delete (soft)."""
    from pyspark.sql import functions as F

    op = (
        F.when(F.col(contract.soft_delete).isNotNull(), F.lit("delete"))
        .when(F.col("created_at") == F.col(contract.watermark), F.lit("insert"))
        .otherwise(F.lit("update"))
    )
    return df.withColumn("_operation", op)
