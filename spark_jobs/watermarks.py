"""Durable sync state in Iceberg: per-table watermarks and the record of every run.

``ops.watermarks`` (table, high_watermark, updated_at, last_run_id) holds, per source table, the
highest ``updated_at`` that has been *published* to silver. It moves only in the publish step, so a
run that fails anywhere before leaves it where it was and the next run re-reads the same window.

``ops.sync_runs`` gets a row per (run_id, table) for every step of the run, from its first: ``started``
-> ``extracted`` -> ``merged`` -> ``gated`` -> ``published``, or an end that did not publish: ``gate_failed``
(the gate failed on this table), ``failed`` (schema drift, an error; the detail names the cause), ``blocked``
(not published because of another table: its detail names it) or ``abandoned`` (the run died and a later
run or maintenance cleaned up after it). The latest row per (run_id, table) is the run's status for that
table. It is the audit trail ``mo status`` reads and what a lost run manifest is rebuilt from.

``ops.sync_leases`` holds each run's lease: a run writes (run_id, renewed_at, expires_at) when it starts
and again as it progresses (:func:`renew_lease`), ``settings.sync_lease_minutes`` ahead. A run whose
latest step is a progress step and whose lease is valid is *live*; once the lease expired without an end
record it is *dead* (crashed, killed): the next run or maintenance removes what it left
(``spark_jobs.sync.abandon_dead_runs``), and ``mo status`` names it.

Timestamps are naive UTC. They cross between Python and Spark as ``'YYYY-MM-DD HH:MM:SS.ffffff'``
text cast in the session time zone (UTC), never as Python datetimes, because PySpark converts
collected timestamps with the Python process's local zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mo.config import Settings
from spark_jobs.extract import format_ts, parse_ts
from spark_jobs.lake import SYNC_LEASES_COLUMNS, SYNC_RUNS_COLUMNS, WATERMARKS_COLUMNS, ensure_ops_tables, ops_table

_SPARK_TS = "yyyy-MM-dd HH:mm:ss.SSSSSS"

IN_PROGRESS = ("started", "extracted", "merged", "gated")  # a run between steps (live while its lease is)
STOPPED = ("gate_failed", "failed", "abandoned")  # ends that need a data engineer (``blocked`` names another)


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


def renew_lease(spark, settings: Settings, run_id: str) -> datetime:
    """Write the run's lease, ``settings.sync_lease_minutes`` from now; returns when it expires."""
    ensure_ops_tables(spark, settings)
    now = utcnow()
    expires = now + timedelta(minutes=settings.sync_lease_minutes)
    row = {"run_id": run_id, "renewed_at": now, "expires_at": expires}
    _frame(spark, SYNC_LEASES_COLUMNS, [row]).writeTo(ops_table(settings, "sync_leases")).append()
    return expires


def _latest_per_run_sql(settings: Settings, now: datetime) -> str:
    """Per (run_id, table) the latest record, with the run's lease (``lease_expires_at``), whether the run
    is ``live`` (a progress step and a valid lease) and the table's last published sync (``published_at``)."""
    in_progress = ", ".join(f"'{s}'" for s in IN_PROGRESS)
    return f"""
        WITH leases AS (
            SELECT run_id, max(expires_at) AS lease_expires_at FROM {ops_table(settings, "sync_leases")}
            GROUP BY run_id
        ), latest AS (
            SELECT * FROM (
                SELECT *, row_number() OVER (PARTITION BY run_id, `table` ORDER BY finished_at DESC) AS _r
                FROM {ops_table(settings, "sync_runs")}
            ) WHERE _r = 1
        )
        SELECT latest.*, leases.lease_expires_at,
               coalesce(status IN ({in_progress})
                        AND leases.lease_expires_at >= CAST('{format_ts(now)}' AS TIMESTAMP), false) AS live,
               max(CASE WHEN status = 'published' THEN finished_at END) OVER (PARTITION BY `table`) AS published_at
        FROM latest LEFT JOIN leases ON latest.run_id = leases.run_id
    """


def unfinished_runs(spark, settings: Settings, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Runs whose latest step on some table is a progress step: run_id -> ``live``, ``lease_expires_at``
    (naive UTC or None), ``started_at`` and per table its ``status`` and ``batch_id``."""
    ensure_ops_tables(spark, settings)
    in_progress = ", ".join(f"'{s}'" for s in IN_PROGRESS)
    rows = spark.sql(
        f"""
        SELECT run_id, `table`, status, batch_id, live,
               date_format(started_at, '{_SPARK_TS}') AS started_at,
               date_format(lease_expires_at, '{_SPARK_TS}') AS lease_expires_at
        FROM ({_latest_per_run_sql(settings, now or utcnow())}) WHERE status IN ({in_progress})
        """
    ).collect()
    runs: dict[str, dict[str, Any]] = {}
    for r in rows:
        run = runs.setdefault(
            r["run_id"],
            {"live": r["live"], "lease_expires_at": parse_ts(r["lease_expires_at"]), "started_at": r["started_at"]},
        )
        run["tables"] = {**run.get("tables", {}), r["table"]: {"status": r["status"], "batch_id": r["batch_id"]}}
    return runs


def sync_history(spark, settings: Settings, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Per table, from one read of ``ops.sync_runs``: ``last_sync_at`` (ISO time of the last published sync),
    ``last_run``, the table's latest attempt that is over (published, stopped, or dead: a progress step whose
    lease expired), and ``in_flight``, a live run's latest record when one is syncing the table. Each run
    record has run_id, status, when it was recorded (``at``), its detail (the cause, for a run that stopped)
    and ``lease_expires_at``."""
    ensure_ops_tables(spark, settings)
    iso = "yyyy-MM-dd'T'HH:mm:ss"
    rows = spark.sql(
        f"""
        SELECT `table`, run_id, status, live, detail, date_format(finished_at, "{iso}") AS at,
               date_format(lease_expires_at, "{iso}") AS lease_expires_at,
               date_format(published_at, "{iso}") AS published_at FROM (
            SELECT *, row_number() OVER (PARTITION BY `table`, live ORDER BY finished_at DESC, run_id DESC) AS _rank
            FROM ({_latest_per_run_sql(settings, now or utcnow())})
        ) WHERE _rank = 1
        """
    ).collect()
    history: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = history.setdefault(r["table"], {"last_sync_at": None, "last_run": None, "in_flight": None})
        entry["last_sync_at"] = r["published_at"]
        record = {k: r[k] for k in ("run_id", "status", "at", "detail", "lease_expires_at")}
        entry["in_flight" if r["live"] else "last_run"] = record
    return history
