"""Durable sync state in Iceberg: per-table watermarks and the record of every run.

``ops.watermarks`` (table, high_watermark, updated_at, last_run_id) holds, per source table, the
highest ``updated_at`` that has been *published* to silver. It moves only in the publish step, so a
run that fails anywhere before leaves it where it was and the next run re-reads the same window.

``ops.sync_runs`` gets a row per (run_id, table) for every step the run completes: ``extracted`` ->
``merged`` -> ``published``, or ``gate_failed`` / ``failed``; the latest row is the run's status. It is the audit trail
``mo status`` reads (last published sync) and what a lost run manifest is rebuilt from.

Timestamps are naive UTC. They cross between Python and Spark as ``'YYYY-MM-DD HH:MM:SS.ffffff'``
text cast in the session time zone (UTC), never as Python datetimes, because PySpark converts
collected timestamps with the Python process's local zone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mo.config import Settings
from spark_jobs.extract import format_ts, parse_ts
from spark_jobs.lake import SYNC_RUNS_COLUMNS, WATERMARKS_COLUMNS, ensure_ops_tables, ops_table

_SPARK_TS = "yyyy-MM-dd HH:mm:ss.SSSSSS"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _ts_text(value) -> str | None:
    parsed = parse_ts(value)
    return format_ts(parsed) if parsed else None


def _frame(spark, columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]):
    """A DataFrame typed like an ops table from Python dicts (timestamps travel as text, see module doc)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

    kinds = {"bigint": LongType(), "array<bigint>": ArrayType(LongType())}
    schema = StructType([StructField(name, kinds.get(typ, StringType()), True) for name, typ in columns])
    data = [tuple(_ts_text(r.get(name)) if typ == "timestamp" else r.get(name) for name, typ in columns) for r in rows]
    df = spark.createDataFrame(data, schema)
    return df.select(*[F.col(f"`{name}`").cast(typ).alias(name) for name, typ in columns])


def read_watermarks(spark, settings: Settings) -> dict[str, datetime]:
    ensure_ops_tables(spark, settings)
    rows = spark.sql(
        f"SELECT `table`, date_format(high_watermark, '{_SPARK_TS}') AS wm FROM {ops_table(settings, 'watermarks')}"
    ).collect()
    marks = {r["table"]: parse_ts(r["wm"]) for r in rows}
    return {table: mark for table, mark in marks.items() if mark is not None}


def last_publishers(spark, settings: Settings) -> dict[str, str]:
    """Per table, the run that last published it (``last_run_id``): what names the table's open batch."""
    ensure_ops_tables(spark, settings)
    rows = spark.sql(f"SELECT `table`, last_run_id FROM {ops_table(settings, 'watermarks')}").collect()
    return {r["table"]: r["last_run_id"] for r in rows if r["last_run_id"]}


def advance_watermarks(spark, settings: Settings, run_id: str, marks: dict[str, datetime | str | None]) -> None:
    """Set each table's published watermark (one commit for all tables of the run)."""
    marks = {t: m for t, m in marks.items() if m is not None}
    if not marks:
        return
    now = utcnow()
    rows = [{"table": t, "high_watermark": m, "updated_at": now, "last_run_id": run_id} for t, m in marks.items()]
    _frame(spark, WATERMARKS_COLUMNS, rows).createOrReplaceTempView("mo_watermark_updates")
    spark.sql(
        f"""
        MERGE INTO {ops_table(settings, "watermarks")} t USING mo_watermark_updates s ON t.`table` = s.`table`
        WHEN MATCHED THEN UPDATE SET *
        WHEN NOT MATCHED THEN INSERT *
        """
    )


def record_runs(spark, settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Append run records; one commit per call.

    Appending (the latest row per (run_id, table) is the current status) keeps every step's record and
    costs a fraction of a MERGE, which matters with one record per step of every run.
    """
    if not rows:
        return
    ensure_ops_tables(spark, settings)
    _frame(spark, SYNC_RUNS_COLUMNS, rows).writeTo(ops_table(settings, "sync_runs")).append()


def read_runs(spark, settings: Settings, run_id: str | None = None) -> list[dict[str, Any]]:
    """Run records as dicts with ISO-text timestamps (the latest run's when ``run_id`` is None)."""
    ensure_ops_tables(spark, settings)
    name = ops_table(settings, "sync_runs")
    if run_id is None:
        latest = spark.sql(f"SELECT run_id FROM {name} ORDER BY started_at DESC, run_id DESC LIMIT 1").collect()
        if not latest:
            return []
        run_id = latest[0]["run_id"]
    select = ", ".join(
        f"date_format(`{n}`, '{_SPARK_TS}') AS `{n}`" if t == "timestamp" else f"`{n}`" for n, t in SYNC_RUNS_COLUMNS
    )
    safe_id = run_id.replace("'", "")
    latest = spark.sql(
        f"""
        SELECT {select} FROM (
            SELECT *, row_number() OVER (PARTITION BY `table` ORDER BY finished_at DESC) AS _rank
            FROM {name} WHERE run_id = '{safe_id}'
        ) WHERE _rank = 1
        """
    )
    return [r.asDict() for r in latest.collect()]


def sync_history(spark, settings: Settings) -> dict[str, dict[str, Any]]:
    """Per table, from one read of ``ops.sync_runs``: ``last_sync_at`` (ISO time of the last published
    sync) and ``last_run``, the latest run record: run_id, status (published, gate_failed, failed or a
    step still in progress), when it was recorded and its detail (the failure, for a run that stopped)."""
    ensure_ops_tables(spark, settings)
    iso = "yyyy-MM-dd'T'HH:mm:ss"
    rows = spark.sql(
        f"""
        SELECT `table`, run_id, status, date_format(finished_at, "{iso}") AS at, detail,
               date_format(published_at, "{iso}") AS published_at FROM (
            SELECT *,
                   row_number() OVER (PARTITION BY `table` ORDER BY finished_at DESC, run_id DESC) AS _rank,
                   max(CASE WHEN status = 'published' THEN finished_at END) OVER (PARTITION BY `table`)
                       AS published_at
            FROM {ops_table(settings, "sync_runs")}
        ) WHERE _rank = 1
        """
    ).collect()
    return {
        r["table"]: {
            "last_sync_at": r["published_at"],
            "last_run": {k: r[k] for k in ("run_id", "status", "at", "detail")},
        }
        for r in rows
    }
