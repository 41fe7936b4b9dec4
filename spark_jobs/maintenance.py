"""`mo maintain`: keep the lakehouse tables fast and small as hourly syncs pile up.

Silver is merge-on-read: an incremental MERGE writes small data files plus position-delete files that
every reader must apply. Bronze grows by one small batch per table per run. Left alone, reads slow
down with the number of files and the metadata keeps every snapshot. Once per
``settings.maintenance_interval_hours`` (the last step of ``source_sync``, so it never overlaps a sync)
each table gets:

- ``rewrite_data_files``: bin-pack small files; on silver and restricted tables every data file with
  a delete file is rewritten too (``delete-file-threshold`` 1), which applies the deletes;
- ``rewrite_position_delete_files`` (merge-on-read tables): drop deletes whose data files are gone;
- ``expire_snapshots``: snapshots older than ``settings.snapshot_retention_hours`` go, keeping at least
  ``RETAIN_LAST``, so time travel reaches back that far and no further.

A table with an ``audit_<run>`` branch of a *live* sync run (its lease in ``ops.sync_leases`` is valid) is
skipped: a rewrite would move main past the branch's base and the publish could no longer fast-forward.
Dead runs (lease expired without an end record) are cleaned up first (``spark_jobs.sync.abandon_dead_runs``:
branches dropped, the run recorded ``abandoned``), and an audit branch no live run holds (left by a run that
is over) is dropped, so a crashed sync never keeps a table from being maintained. Each table's outcome is
recorded in ``ops.maintenance_runs``.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from mo.config import Settings
from mo.contracts import load_source_contracts
from spark_jobs.extract import format_ts
from spark_jobs.lake import (
    bronze_table,
    catalog_relative,
    ensure_ops_tables,
    ops_table,
    restricted_staging_table,
    restricted_table,
    silver_table,
)
from spark_jobs.watermarks import utcnow

log = logging.getLogger(__name__)

RETAIN_LAST = 5
MAINTENANCE_RUNS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_at", "timestamp"),
    ("table", "string"),
    ("status", "string"),  # maintained | skipped
    ("data_files_before", "bigint"),
    ("data_files_after", "bigint"),
    ("delete_files_before", "bigint"),
    ("delete_files_after", "bigint"),
    ("snapshots_expired", "bigint"),
    ("seconds", "double"),
    ("detail", "string"),
)


def _ensure_runs_table(spark, settings: Settings) -> str:
    ensure_ops_tables(spark, settings)
    name = ops_table(settings, "maintenance_runs")
    columns = ", ".join(f"`{n}` {t}" for n, t in MAINTENANCE_RUNS_COLUMNS)
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING iceberg TBLPROPERTIES ('format-version'='2')")
    return name


def _file_counts(spark, table: str) -> tuple[int, int]:
    """(data files, delete files) in the table's current main snapshot."""
    rows = spark.sql(f"SELECT content, count(*) AS n FROM {table}.files GROUP BY content").collect()
    by_content = {r["content"]: r["n"] for r in rows}
    return int(by_content.get(0, 0)), int(by_content.get(1, 0) + by_content.get(2, 0))


def _open_audit_branches(spark, table: str) -> list[str]:
    refs = spark.sql(f"SELECT name FROM {table}.refs WHERE type = 'BRANCH'").collect()
    return [r["name"] for r in refs if r["name"].startswith("audit_")]


def _targets(spark, settings: Settings, tables: list[str] | None) -> list[tuple[str, bool]]:
    """(table, is merge-on-read) for every lake table the sync writes, in contract order."""
    out: list[tuple[str, bool]] = []
    for name, contract in load_source_contracts().items():
        if tables and name not in tables:
            continue
        out += [(silver_table(settings, name), True), (bronze_table(settings, name), False)]
        if contract.pii_columns:
            out += [(restricted_table(settings, name), True), (restricted_staging_table(settings, name), False)]
    return [(t, mor) for t, mor in out if spark.catalog.tableExists(t)]


def last_maintained(spark, settings: Settings):
    """When maintenance last ran (naive UTC), or None."""
    runs = _ensure_runs_table(spark, settings)
    return spark.sql(f"SELECT max(run_at) AS at FROM {runs}").collect()[0]["at"]


def maintenance_due(spark, settings: Settings) -> bool:
    last = last_maintained(spark, settings)
    return last is None or utcnow() - last >= timedelta(hours=settings.maintenance_interval_hours)


def maintain_table(
    spark, settings: Settings, table: str, *, merge_on_read: bool, live_branches: dict[str, str] | None = None
) -> dict[str, Any]:
    """Compact, drop dangling deletes and expire old snapshots of one table; returns its record.

    ``live_branches``: audit branches of live sync runs (branch -> lease expiry), which make the table wait;
    any other audit branch is left over from a run that is over and is dropped first.
    """
    catalog, relative = settings.catalog_name, catalog_relative(settings, table)
    started = time.perf_counter()
    record: dict[str, Any] = {"table": table, "status": "maintained", "detail": None, "snapshots_expired": 0}
    data_before, deletes_before = _file_counts(spark, table)
    record.update(data_files_before=data_before, delete_files_before=deletes_before)
    branches = _open_audit_branches(spark, table)
    live = [b for b in branches if b in (live_branches or {})]
    for branch in sorted(set(branches) - set(live)):
        spark.sql(f"ALTER TABLE {table} DROP BRANCH IF EXISTS `{branch}`")
        record["detail"] = f"dropped audit branch {branch} left by a sync run that is over"
    if live:
        leases = ", ".join(f"{b} (lease until {(live_branches or {})[b]} UTC)" for b in live)
        record.update(status="skipped", detail=f"open audit branch {leases}: a live sync run is in flight")
    else:
        options = "'min-input-files', '2', 'partial-progress.enabled', 'true'"
        if merge_on_read:
            options += ", 'delete-file-threshold', '1'"
        spark.sql(f"CALL {catalog}.system.rewrite_data_files(table => '{relative}', options => map({options}))")
        if merge_on_read:
            spark.sql(
                f"CALL {catalog}.system.rewrite_position_delete_files("
                f"table => '{relative}', options => map('rewrite-all', 'true'))"
            )
        cutoff = format_ts(utcnow() - timedelta(hours=settings.snapshot_retention_hours))
        expired = spark.sql(
            f"CALL {catalog}.system.expire_snapshots(table => '{relative}', "
            f"older_than => TIMESTAMP '{cutoff}', retain_last => {RETAIN_LAST})"
        ).collect()[0]
        record["snapshots_expired"] = int(expired["deleted_manifest_lists_count"] or 0)
    data_after, deletes_after = _file_counts(spark, table)
    record.update(data_files_after=data_after, delete_files_after=deletes_after)
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def maintain_lake(spark, settings: Settings, tables: list[str] | None = None, *, force: bool = False) -> dict[str, Any]:
    """Maintain every lake table the sync writes, if due (or ``force``); returns a JSON-able report."""
    from spark_jobs.session import register_catalog
    from spark_jobs.sync import abandon_dead_runs
    from spark_jobs.watermarks import _frame, unfinished_runs

    register_catalog(spark, settings)
    runs = _ensure_runs_table(spark, settings)
    if not force and not maintenance_due(spark, settings):
        return {"ran": False, "reason": f"maintained less than {settings.maintenance_interval_hours}h ago"}
    spark.conf.unset("spark.wap.branch")  # rewrites and expiry act on main, never on an audit branch
    abandoned = abandon_dead_runs(spark, settings, by="maintenance")
    live = {
        f"audit_{run_id}": format_ts(run["lease_expires_at"])[:19]
        for run_id, run in unfinished_runs(spark, settings).items()
        if run["live"]
    }
    run_at = utcnow()
    records = []
    for table, mor in _targets(spark, settings, tables):
        record = maintain_table(spark, settings, table, merge_on_read=mor, live_branches=live)
        log.info(
            "%s: %s, data files %d -> %d, delete files %d -> %d (%.1fs)",
            table,
            record["status"],
            record["data_files_before"],
            record["data_files_after"],
            record["delete_files_before"],
            record["delete_files_after"],
            record["seconds"],
        )
        records.append({"run_at": run_at, **record})
    if records:
        rows = [{**r, "seconds": f"{r['seconds']:.3f}"} for r in records]  # _frame types non-bigint as text
        frame = _frame(spark, MAINTENANCE_RUNS_COLUMNS, rows)
        frame.writeTo(runs).append()
    tables_report = [{k: v for k, v in r.items() if k != "run_at"} for r in records]
    return {"ran": True, "run_at": format_ts(run_at), "tables": tables_report, "abandoned_runs": abandoned}


__all__ = ["maintain_lake", "maintain_table", "maintenance_due", "last_maintained"]
