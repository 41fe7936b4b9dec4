"""`mo sync`: source tables -> bronze (raw history) -> silver (current state), gated and idempotent.

One run = four steps; the Airflow DAG runs them as separate tasks passing the JSON *manifest* between
them, :func:`run_sync` runs them in a row.

1. :func:`extract_to_bronze`. Configuration and the source connection are checked before Spark is used
   (:func:`check_sync_config`). The run cleans up after dead runs (:func:`abandon_dead_runs`), takes its
   lease and records every table ``started``. Each table's source schema is checked against its contract
   (:mod:`spark_jobs.schema_drift`): a drifted table is recorded ``failed`` and left out with the tables
   referring to it (``blocked``), the rest go on. For each remaining table (parents before children) read
   rows with
   ``updated_at > watermark - settings.sync_lookback_minutes`` (no watermark: everything) up to the
   source's current max(updated_at) (:mod:`spark_jobs.extract`). The look-back re-reads a window below
   the watermark so a row committed late with an older ``updated_at`` is not lost; versions already in
   bronze from earlier batches (same id and updated_at) are dropped, so re-reads never duplicate
   history. PII becomes tokens and masks (:mod:`spark_jobs.pii`) before anything is written; clear
   values go only to the restricted staging table. Each table has one *open batch*, named after the
   run that last published the table (:func:`batch_id_for`): every run until the next publish appends
   to it only the versions bronze does not hold, so a crashed or failed run that is run again adds what
   changed since and never a version twice, and nothing in bronze is ever replaced or deleted. Batches
   are read back by their rows (``_batch_id = X``), so compaction or any other file layout changes
   nothing. The source's live row count (``deleted_at is null``) is read at the same time, for
   reconciliation in the gate.
   A *full refresh* of a table (``mo sync --full-refresh``) reads it whole instead and writes what bronze
   lacks: rows that differ from bronze's latest version of their id, delete versions for ids the source
   no longer holds (:func:`_refresh_versions`), appended to the same open batch; the other steps are
   the same.
2. :func:`merge_to_audit`. On a fresh branch ``audit_<run_id>`` of each changed silver table (and its
   restricted PII table, with the clear values of the same versions: :func:`_restricted_batch`), MERGE
   the latest version per id of the batch: update only when the batch's
   ``updated_at`` >= silver's, delete soft-deleted rows, never insert a deleted row. ``spark.wap.branch``
   is set only around each MERGE and always unset afterwards.
3. :func:`check_gate`. The quality gate (``quality.gates.run_silver_gate``) sees the candidate state of
   every synced table (the audit branch) and the published state of the others (so foreign keys can
   see their parents), plus the live source counts. After the first load it validates only the rows a
   run can have made invalid (:func:`gate_scopes`), whole tables once a day or when a contract
   changes. On failure the audit branches are dropped (bronze keeps the batch for inspection and the
   rerun rebuilds the branch from it), main is untouched, watermarks stay, the tables the gate failed on
   are recorded ``gate_failed`` (the run's others ``blocked``) and :class:`QualityGateFailed` names table
   and expectation.
4. :func:`publish`. Fast-forward main to each audit branch (``system.fast_forward``), drop the branch,
   empty the published batches from the restricted staging tables, advance the watermarks, record the
   run ``published``, then purge erased customers' clear PII from the restricted zone
   (:mod:`spark_jobs.erasure`). Publish is all-or-nothing per run: watermarks only move for a run whose gate passed.

Every step renews the run's lease (``ops.sync_leases``, ``settings.sync_lease_minutes``) and first checks
that the run was not declared dead meanwhile (:class:`RunAbandoned`). A run whose lease expired without
an end record is dead: the next run or maintenance drops its audit branches and records it ``abandoned``.

Every step can be re-run with the same manifest (after a crash or a retry) and leaves the same
result; a lost manifest is rebuilt from ``ops.sync_runs`` by :func:`manifest_from_runs` and the run
continues from :func:`merge_to_audit`. Runs must not overlap (the DAG has ``max_active_runs=1``); when
they do (a manual ``mo sync`` beside the DAG), the run publishing second finds main moved under its
branches and stops before publishing anything, recorded ``failed``; the next run syncs its changes.

Writers active during a sync: each table's batch is the source up to the run's bound (``watermark_to``),
except rows changed again while they were read. After reading a table the run reads, in one statement,
the source's live count up to the bound and the ids changed after it (``pending_ids``,
:func:`spark_jobs.extract.read_view`); the gate reconciles the count without those ids on either side and
accepts them as parents, so a customer and their policy written during the run, or a row updated while
the partitions read it, neither fail the gate nor are lost: the next run syncs them.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mo.config import Settings
from mo.contracts import TableContract, load_source_contracts
from mo.errors import ConfigError, ContractViolation, MoError, QualityGateFailed
from spark_jobs.extract import (
    ExtractWindow,
    format_ts,
    jdbc_source,
    parse_ts,
    plan_window,
    read_ids,
    read_view,
    read_window,
    transform_operation,
)
from spark_jobs.lake import (
    bronze_columns,
    bronze_table,
    catalog_relative,
    ensure_layer_tables,
    ensure_ops_tables,
    ops_table,
    quote,
    restricted_staging_columns,
    restricted_staging_table,
    restricted_table,
    silver_columns,
    silver_table,
)
from spark_jobs.pii import with_pii_outputs
from spark_jobs.schema_drift import check_source_schema
from spark_jobs.session import register_catalog, sql_over_frames, temporary_conf
from spark_jobs.watermarks import (
    advance_watermarks,
    last_publishers,
    read_runs,
    read_watermarks,
    record_runs,
    renew_lease,
    sync_history,
    unfinished_runs,
    utcnow,
)

Gate = Callable[..., Any]

log = logging.getLogger(__name__)


# --- helpers -----------------------------------------------------------------------------------------


def batch_id_for(table: str, published_by: str | None) -> str:
    """The id of a table's *open batch*: every version extracted for it since the run that last published it.

    Every run until the table's next publish (a retry after a crash or a failed gate, a run over a lost
    manifest, a full refresh) appends to this one batch, so the bronze versions that silver does not hold
    yet are always exactly the open batch, and the merge reads it whole. ``published_by`` is the run
    recorded with the table's watermark (None before the first publish).
    """
    after = published_by or "nothing"
    return hashlib.sha256(f"{table}|after|{after}".encode()).hexdigest()[:16]


def new_run_id() -> str:
    return f"{utcnow():%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:6]}"


def _contracts(tables: list[str] | None, contracts_dir: Path | str | None) -> dict[str, TableContract]:
    contracts = load_source_contracts(Path(contracts_dir) if contracts_dir else None)
    if not tables:
        return contracts
    unknown = [t for t in tables if t not in contracts]
    if unknown:
        raise ConfigError(f"unknown table {', '.join(unknown)}; contracts exist for {', '.join(contracts)}")
    return {name: c for name, c in contracts.items() if name in tables}


def _branch_exists(spark, table: str, branch: str) -> bool:
    refs = spark.sql(f"SELECT name FROM {table}.refs WHERE type = 'BRANCH'").collect()
    return any(r["name"] == branch for r in refs)


def _drop_branch(spark, table: str, branch: str) -> None:
    if spark.catalog.tableExists(table):
        spark.sql(f"ALTER TABLE {table} DROP BRANCH IF EXISTS {quote(branch)}")


def _main_snapshot(spark, table: str) -> int | None:
    rows = spark.sql(f"SELECT snapshot_id FROM {table}.refs WHERE name = 'main'").collect()
    return rows[0]["snapshot_id"] if rows else None


def _branch_snapshot(spark, table: str, branch: str) -> int | None:
    rows = spark.sql(f"SELECT snapshot_id FROM {table}.refs WHERE name = '{branch}'").collect()
    return rows[0]["snapshot_id"] if rows else None


def _any_rows(frame) -> bool:
    return bool(frame.limit(1).count())


def _run_row(
    manifest: dict[str, Any],
    table: str,
    status: str,
    detail: str | None = None,
    entry: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    entry = entry if entry is not None else manifest["tables"][table]
    return {
        "run_id": manifest["run_id"],
        "table": table,
        "batch_id": entry.get("batch_id"),
        "started_at": manifest["started_at"],
        "finished_at": at or utcnow(),
        "status": status,
        "rows_extracted": entry.get("rows_extracted"),
        "rows_bronze": entry.get("rows_bronze"),
        "source_live_count": entry.get("source_live_count"),
        "pending_ids": entry.get("pending_ids") or [],
        "watermark_from": entry.get("watermark_from"),
        "watermark_to": entry.get("watermark_to"),
        "detail": detail or _refresh_detail(entry),
    }


REFRESH_DETAIL = "full refresh:"


def _refresh_detail(entry: dict[str, Any]) -> str | None:
    """What a full refresh found, for the run record (None for other batches)."""
    if "rows_gone" not in entry:
        return None
    gone = entry["rows_gone"]
    return f"{REFRESH_DETAIL} {entry['rows_bronze'] - gone} new versions, {gone} ids gone from the source"


def _record(spark, settings: Settings, manifest: dict[str, Any], status: str, detail: str | None = None) -> None:
    now = utcnow()  # one time for the step's records of every table
    record_runs(spark, settings, [_run_row(manifest, t, status, detail, at=now) for t in manifest["tables"]])


def _reason(exc: BaseException) -> str:
    """An error's first line, for a run record."""
    return str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__


# --- the run's lease and what dead runs leave --------------------------------------------------------


class RunAbandoned(MoError):
    """A later run or maintenance found this run dead (lease expired) and cleaned up after it."""


def _renew_lease(spark, settings: Settings, manifest: dict[str, Any], *, force: bool = False) -> None:
    """Renew the run's lease once a third of it has passed (or now, ``force``)."""
    expires = parse_ts(manifest.get("lease_expires_at"))
    left = (expires - utcnow()) if expires else timedelta(0)
    if force or left < timedelta(minutes=settings.sync_lease_minutes) * 2 / 3:
        manifest["lease_expires_at"] = format_ts(renew_lease(spark, settings, manifest["run_id"]))


def _check_alive(spark, settings: Settings, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Stop a run that a later run or maintenance declared dead; renew its lease; returns its records."""
    rows = read_runs(spark, settings, manifest["run_id"])
    if any(r["status"] == "abandoned" for r in rows):
        raise RunAbandoned(
            f"sync run {manifest['run_id']} was abandoned (its lease expired and its audit branches were removed); "
            "nothing of it is published, the next run syncs its changes"
        )
    _renew_lease(spark, settings, manifest)
    return rows


def abandon_dead_runs(spark, settings: Settings, *, by: str) -> list[str]:
    """Clean up after every dead run (a progress step last, lease expired): drop its audit branches, delete
    its batches' clear PII from the restricted staging tables (unless a live run writes the same batch) and
    record it ``abandoned``; bronze keeps the batches (a rerun replaces them). Returns the dead runs' ids.
    ``by`` names who cleans up, for the record."""
    runs = unfinished_runs(spark, settings)
    live_batches = {(t, e["batch_id"]) for r in runs.values() if r["live"] for t, e in r["tables"].items()}
    contracts = load_source_contracts()
    rows = []
    now = utcnow()
    for run_id, run in runs.items():
        if run["live"]:
            continue
        branch = f"audit_{run_id}"
        lease = run["lease_expires_at"]
        expired = f"its lease expired at {format_ts(lease)[:19]} UTC" if lease else "no lease"
        for table, entry in run["tables"].items():
            has_pii = bool(table in contracts and contracts[table].pii_columns)
            for target, _ in _audit_targets(settings, table, has_pii):
                _drop_branch(spark, target, branch)
            staging = restricted_staging_table(settings, table)
            batch = entry["batch_id"]
            if has_pii and batch and (table, batch) not in live_batches and spark.catalog.tableExists(staging):
                spark.sql(f"DELETE FROM {staging} WHERE _batch_id = '{batch}'")
            detail = f"crashed: no end record and {expired} (last step {entry['status']}); {by} removed what it left"
            rows.append(
                {
                    "run_id": run_id,
                    "table": table,
                    "batch_id": batch,
                    "started_at": run["started_at"],
                    "finished_at": now,
                    "status": "abandoned",
                    "detail": detail,
                }
            )
        log.warning("sync run %s abandoned (%s): %s", run_id, expired, ", ".join(run["tables"]))
    record_runs(spark, settings, rows)
    return sorted({r["run_id"] for r in rows})


def _waiting_for(contracts: dict[str, TableContract], stopped: Collection[str]) -> dict[str, str]:
    """Tables referring to a stopped table, directly or through another: table -> the stopped table."""
    waits: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for name, contract in contracts.items():
            if name in stopped or name in waits:
                continue
            for column in contract.columns:
                parent = column.references.split(".")[0] if column.references else None
                if parent and parent != name and (parent in stopped or parent in waits):
                    waits[name] = parent if parent in stopped else waits[parent]
                    changed = True
                    break
    return waits


def stopped_message(manifest: dict[str, Any]) -> str | None:
    """One line naming the tables a run stopped and why (None when it stopped none)."""
    stopped = manifest.get("stopped") or {}
    causes = [f"{n}: {e['detail']}" for n, e in stopped.items() if e["status"] == "failed"]
    if not causes:
        return None
    waiting = [n for n, e in stopped.items() if e["status"] == "blocked"]
    text = f"sync run {manifest['run_id']} stopped {'; '.join(causes)}"
    if waiting:
        text += f"; {', '.join(waiting)} refer to it and wait"
    published = [n for n in manifest["tables"] if manifest.get("step") == "published"]
    text += f"; published: {', '.join(published)}" if published else "; nothing published"
    return text


def _audit_targets(settings: Settings, table: str, has_pii: bool) -> list[tuple[str, str]]:
    """(published table, bronze-side table the batch is read from) pairs that a table's MERGE touches."""
    targets = [(silver_table(settings, table), bronze_table(settings, table))]
    if has_pii:
        targets.append((restricted_table(settings, table), restricted_staging_table(settings, table)))
    return targets


# --- step 1: extract ---------------------------------------------------------------------------------


# Spark compresses cached columns by default; building that compressed copy of a 2.2M-row batch took
# longer than reading it from the source (policies: 21 s cached vs 8 s read, 10 s cached uncompressed).
# The batch is cached only for the two writes that follow, so it is kept uncompressed (spilling to
# disk if it does not fit in memory).
UNCOMPRESSED_CACHE = {"spark.sql.inMemoryColumnarStorage.compressed": "false"}


def _refresh_versions(changes, held, seen, contract: TableContract, key: bytes, *, force: bool = False):
    """A full refresh's new history: (source rows bronze does not hold as they are, ids gone from the source).

    ``changes`` is the whole source table up to the run's bound, ``held`` every id the source holds
    (:func:`spark_jobs.extract.read_ids`: a row changed while the refresh reads is past the bound but not
    gone), ``seen`` bronze (the open batch included). A source row is a new
    version when bronze's latest version of its id differs in any column (null-safe), which also catches
    a change written without moving ``updated_at``; it keeps the source's ``updated_at``, so the silver
    MERGE (newer or equal wins) applies it. An id whose latest bronze version is live but which the source
    no longer holds (deleted outside the soft delete) gets a delete version: its latest bronze version
    with ``_operation = 'delete'``. ``force`` (a repair of ids known to differ from silver) makes every
    source row a new version, even one bronze already holds as it is.
    """
    from functools import reduce

    from pyspark.sql import functions as F

    pk = contract.primary_key
    compared = [n for n, _ in silver_columns(contract) if n != pk]
    latest = _latest_per_id(seen, pk, contract.watermark)
    previous = latest.select(pk, F.lit(True).alias("_known"), *[F.col(quote(c)).alias(f"_prev_{c}") for c in compared])
    current = with_pii_outputs(changes, contract, key)
    differs = reduce(lambda a, b: a | b, [~F.col(quote(c)).eqNullSafe(F.col(f"`_prev_{c}`")) for c in compared])
    known = F.col("_known").isNotNull()
    operation = F.when(F.col("_operation") == "delete", "delete").when(known, "update").otherwise("insert")
    fresh = (
        current.join(previous, pk, "left")
        .where(F.lit(force) | F.col("_known").isNull() | differs)
        .withColumn("_operation", operation)
        .select(*[quote(c) for c in current.columns])
    )
    gone = latest.where(F.col("_operation") != "delete").join(held, pk, "left_anti")
    return fresh, gone.withColumn("_operation", F.lit("delete"))


def _write_batch(
    spark,
    settings: Settings,
    source,
    contract: TableContract,
    window: ExtractWindow,
    batch_id: str,
    extracted_at: datetime,
    key: bytes,
    *,
    full_refresh: bool = False,
) -> tuple[int, int, bool]:
    """Append the window's versions that bronze lacks to the open batch ``batch_id``.

    Returns (rows in the batch, ids gone from the source, whether an earlier attempt had written to the
    batch). Bronze is append-only history keyed by (id, updated_at): a version it holds already, from an
    earlier batch (the look-back re-reads them) or from an earlier attempt at this batch (a run that
    crashed or failed before publishing), is not appended again. Nothing is ever replaced or deleted, so
    no write depends on which data files hold which rows (compaction, rewrites, another writer).
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    pk, wm = contract.primary_key, contract.watermark
    bronze = bronze_table(settings, contract.table)
    staging = restricted_staging_table(settings, contract.table) if contract.pii_columns else None
    changes = transform_operation(read_window(spark, settings, source, contract, window), contract)
    seen = spark.table(bronze)
    if window.ids is not None:  # a repair of some ids compares with their versions only
        seen = seen.where(F.col(pk).isin(list(window.ids)))
    if window.lower is not None:
        seen = seen.where(F.col(wm) > F.lit(format_ts(window.lower)).cast("timestamp"))
    resumed = any(
        _any_rows(spark.table(t).where(F.col("_batch_id") == batch_id)) for t in (bronze, staging) if t is not None
    )
    meta = {
        "_batch_id": F.lit(batch_id),
        "_source": F.lit(source.label),
        "_extracted_at": F.lit(format_ts(extracted_at)).cast("timestamp"),
    }
    gone = None
    # A first load has nothing to compare with: skip the join (and its shuffle of the whole table).
    if not _any_rows(seen):
        prepared = with_pii_outputs(changes, contract, key).withColumns(meta)
    elif full_refresh:
        held = read_ids(spark, settings, source, contract, window.ids)
        fresh, gone = _refresh_versions(changes, held, seen, contract, key, force=window.ids is not None)
        prepared = fresh.withColumns(meta)
        gone = gone.withColumns(meta).persist(StorageLevel.MEMORY_AND_DISK)
    else:
        prepared = with_pii_outputs(changes.join(seen.select(pk, wm), [pk, wm], "left_anti"), contract, key)
        prepared = prepared.withColumns(meta)
    bronze_cols = [quote(n) for n, _ in bronze_columns(contract)]
    staging_cols = [quote(n) for n, _ in restricted_staging_columns(contract)]
    with temporary_conf(spark, UNCOMPRESSED_CACHE):
        if staging:  # read once from the source, tokenised once, written twice
            prepared = prepared.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            # What to append is decided from bronze as it is before this attempt writes anything.
            gone_count = gone.count() if gone is not None else 0
            if staging:
                # Clear values first: a crash between the two appends leaves clear values whose version
                # bronze lacks (never read, emptied on publish), never a version without its clear values.
                # The restricted side of a delete needs none (see _restricted_batch).
                prepared.select(*staging_cols).writeTo(staging).append()
            rows = prepared.select(*bronze_cols)
            if gone is not None:
                rows = rows.unionByName(gone.select(*bronze_cols))
            rows.writeTo(bronze).append()
        finally:
            prepared.unpersist()
            if gone is not None:
                gone.unpersist()
    return spark.table(bronze).where(F.col("_batch_id") == batch_id).count(), gone_count, resumed


def check_sync_config(
    settings: Settings,
    tables: list[str] | None = None,
    *,
    contracts_dir: Path | str | None = None,
    full_refresh: Collection[str] = (),
) -> dict[str, TableContract]:
    """What a sync needs that can be checked without Spark, checked before Spark starts; returns the contracts.

    Unknown tables, the source URL (scheme, shape), ``MO_PII_KEY`` and the source connection: each is a
    ConfigError or SourceUnavailable in one line. Callers run it before creating a SparkSession, so a bad
    configuration never waits for a JVM.
    """
    from mo.oltp.db import check_connection, make_engine

    contracts = _contracts(tables, contracts_dir)
    unknown = sorted(set(full_refresh) - set(contracts))
    if unknown:
        raise ConfigError(f"full refresh of {', '.join(unknown)}: not among the tables of this sync")
    url = settings.resolved_source_url
    jdbc_source(url)
    settings.require_pii_key()
    engine = make_engine(url)
    try:
        check_connection(engine)
    finally:
        engine.dispose()
    return contracts


def extract_to_bronze(
    spark,
    settings: Settings,
    tables: list[str] | None = None,
    *,
    contracts_dir: Path | str | None = None,
    full_gate: bool = False,
    full_refresh: Collection[str] = (),
    repair_ids: Mapping[str, Collection[int]] | None = None,
) -> dict[str, Any]:
    """Extract each table's changed rows into bronze; returns the run manifest (JSON-serialisable).

    ``full_gate`` makes this run's gate validate every table whole instead of what the run changed.
    ``full_refresh`` names tables read whole instead of from their watermark, to reconcile silver with a
    source that changed behind the watermark's back: rows deleted outside the soft delete, rows changed
    without moving ``updated_at`` (see :func:`_refresh_versions`). Their gate validates them whole.
    ``repair_ids`` restricts the full refresh of a table to those ids (what ``mo reconcile --repair``
    found differing); its watermark does not move.

    Configuration and the source connection are checked first (:func:`check_sync_config`, no Spark). Then
    the run cleans up after dead runs (:func:`abandon_dead_runs`), takes its lease and records every table
    ``started``. A table whose source schema drifted is recorded ``failed`` (the drift is the detail) and
    left out, with the tables that refer to it (``blocked``: their new rows may refer to rows it cannot
    bring); the others go on (``manifest["stopped"]`` lists what stopped). An error while extracting a
    table is recorded against that table (``failed``, the others ``blocked``) and raised.
    """
    from mo.oltp.db import make_engine

    contracts = check_sync_config(settings, tables, contracts_dir=contracts_dir, full_refresh=full_refresh)
    url = settings.resolved_source_url
    source = jdbc_source(url)
    key = settings.require_pii_key()
    engine = make_engine(url)
    try:
        register_catalog(spark, settings)
        ensure_ops_tables(spark, settings)
        run_id = new_run_id()
        abandon_dead_runs(spark, settings, by=f"run {run_id}")
        watermarks = read_watermarks(spark, settings)
        publishers = last_publishers(spark, settings)
        started = utcnow()
        manifest: dict[str, Any] = {
            "run_id": run_id,
            "started_at": format_ts(started),
            "source": source.label,
            "audit_branch": f"audit_{run_id}",
            "contracts_dir": str(contracts_dir) if contracts_dir else None,
            "full_gate": full_gate,
            "tables": {},
            "stopped": {},
        }
        effective: dict[str, TableContract] = {}
        for name, contract in contracts.items():
            try:
                effective[name] = check_source_schema(engine, contract)
            except ContractViolation as exc:
                manifest["stopped"][name] = {"status": "failed", "detail": f"schema drift: {exc}"}
        for name, parent in _waiting_for(contracts, list(manifest["stopped"])).items():
            del effective[name]
            detail = f"not extracted: refers to {parent}, stopped by schema drift"
            manifest["stopped"][name] = {"status": "blocked", "detail": detail}
        batches = {
            name: {
                "batch_id": batch_id_for(name, publishers.get(name)),
                "watermark_from": format_ts(mark) if mark else None,
            }
            for name, mark in ((n, watermarks.get(n)) for n in contracts)
        }
        _renew_lease(spark, settings, manifest, force=True)
        stopped = manifest["stopped"]
        record_runs(
            spark,
            settings,
            [_run_row(manifest, n, "started", entry=batches[n]) for n in effective]
            + [_run_row(manifest, n, e["status"], e["detail"], entry=batches[n]) for n, e in stopped.items()],
        )
        lookback = timedelta(minutes=settings.sync_lookback_minutes)
        for name, contract in effective.items():
            try:
                added = ensure_layer_tables(spark, settings, contract)
                wm_from = watermarks.get(name)
                refresh = name in full_refresh and wm_from is not None  # a first load reads everything anyway
                ids = tuple(sorted(repair_ids[name])) if refresh and repair_ids and name in repair_ids else None
                window = plan_window(engine, contract, wm_from - lookback if wm_from and not refresh else None, ids=ids)
                batch_id = batch_id_for(name, publishers.get(name))
                table_started = time.perf_counter()
                rows_bronze, gone, resumed = _write_batch(
                    spark, settings, source, contract, window, batch_id, started, key, full_refresh=refresh
                )
                log.info("%s: %d rows to bronze (%.1fs)", name, rows_bronze, time.perf_counter() - table_started)
                # a repair reads some ids, not everything up to a bound: the watermark stays
                wm_to = wm_from if ids is not None else max(filter(None, (wm_from, window.upper)), default=None)
                view = read_view(engine, contract, wm_to)
            except Exception as exc:
                _record_extract_failure(spark, settings, manifest, effective, batches, name, exc)
                raise
            manifest["tables"][name] = {
                "batch_id": batch_id,
                "watermark_from": format_ts(wm_from) if wm_from else None,
                "watermark_to": format_ts(wm_to) if wm_to else None,
                "rows_extracted": window.rows,
                "rows_bronze": rows_bronze,
                "source_live_count": view.live_count,
                "pending_ids": view.pending_ids,
                "has_pii": bool(contract.pii_columns),
                "columns_added": added,
                "resumed": resumed,
            }
            if refresh:
                manifest["tables"][name].update(full_refresh=True, rows_gone=gone)
            _renew_lease(spark, settings, manifest)
    finally:
        engine.dispose()
    _record(spark, settings, manifest, "extracted")
    manifest["step"] = "extracted"
    return manifest


def _record_extract_failure(spark, settings, manifest, effective, batches, table: str, exc: BaseException) -> None:
    """Record an error while extracting ``table``: that table ``failed``, the run's other tables ``blocked``."""
    reason = f"extraction failed: {_reason(exc)}"
    rows = [_run_row(manifest, table, "failed", reason, entry=batches[table])]
    blocked = f"not published: the run stopped at {table} ({reason})"
    for name in effective:
        if name != table:
            rows.append(_run_row(manifest, name, "blocked", blocked, entry=manifest["tables"].get(name, batches[name])))
    try:
        record_runs(spark, settings, rows)
    except Exception:  # noqa: BLE001 - the extraction error is the one to report
        log.exception("could not record the failed extraction of %s", table)


# --- step 2: merge on audit branches -----------------------------------------------------------------


def _merge_sql(target: str, view: str, columns: list[str], pk: str, wm: str) -> str:
    sets = ", ".join(f"t.{quote(c)} = s.{quote(c)}" for c in columns)
    names = ", ".join(quote(c) for c in columns)
    values = ", ".join(f"s.{quote(c)}" for c in columns)
    newer = f"s.{quote(wm)} >= t.{quote(wm)}"
    return f"""
        MERGE INTO {target} t USING {view} s ON t.{quote(pk)} = s.{quote(pk)}
        WHEN MATCHED AND s._operation = 'delete' AND {newer} THEN DELETE
        WHEN MATCHED AND s._operation <> 'delete' AND {newer} THEN UPDATE SET {sets}
        WHEN NOT MATCHED AND s._operation <> 'delete' THEN INSERT ({names}) VALUES ({values})
    """


def _latest_per_id(batch, pk: str, wm: str):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = [F.col(wm).desc()]
    if "_extracted_at" in batch.columns:
        order.append(F.col("_extracted_at").desc())
    ranked = batch.withColumn("_rank", F.row_number().over(Window.partitionBy(pk).orderBy(*order)))
    return ranked.where(F.col("_rank") == 1).drop("_rank")


def _restricted_batch(spark, settings: Settings, contract: TableContract, batch_id: str, latest):
    """The restricted table's side of a batch: for each id, the clear values of exactly the version silver
    gets (``latest``, bronze's latest version per id in the batch).

    Staging rows pair with bronze rows by (id, updated_at, ``_extracted_at``): the attempt that appended a
    version wrote its clear values with the same ``_extracted_at`` just before. Clear values of versions
    bronze does not hold (an attempt that died between the two appends) are not read. A delete needs no
    clear values: it removes the id's row whatever staging holds.
    """
    from pyspark.sql import functions as F

    pk, wm = contract.primary_key, contract.watermark
    staging = spark.table(restricted_staging_table(settings, contract.table)).where(F.col("_batch_id") == batch_id)
    clear = staging.drop("_operation", "_batch_id").withColumn("_clear", F.lit(True))
    versions = latest.select(pk, wm, "_extracted_at", "_operation").join(clear, [pk, wm, "_extracted_at"], "left")
    return versions.where((F.col("_operation") == "delete") | F.col("_clear").isNotNull())


def merge_to_audit(spark, settings: Settings, manifest: dict[str, Any]) -> dict[str, Any]:
    """MERGE each table's bronze batch into silver on the run's audit branch (main is not touched).

    The batch is read by its rows (``_batch_id = X``), never by which files hold it.
    """
    from pyspark.sql import functions as F

    register_catalog(spark, settings)
    _check_alive(spark, settings, manifest)
    contracts = load_source_contracts(Path(manifest["contracts_dir"]) if manifest.get("contracts_dir") else None)
    branch = manifest["audit_branch"]
    for name, entry in manifest["tables"].items():
        _renew_lease(spark, settings, manifest)
        entry["audit_snapshots"] = {}
        if not entry["rows_bronze"]:
            continue
        contract = contracts[name]
        pk, wm = contract.primary_key, contract.watermark
        batch = spark.table(bronze_table(settings, name)).where(F.col("_batch_id") == entry["batch_id"])
        # Written by one attempt from the first watermark, a batch holds one version per id (the source's
        # key); a batch earlier attempts wrote to too (or one of a rebuilt manifest) may hold several.
        single = entry["watermark_from"] is None and entry.get("resumed") is False
        latest = batch if single else _latest_per_id(batch, pk, wm)
        for target, batch_table in _audit_targets(settings, name, entry["has_pii"]):
            # a rerun starts again from main, so merging twice gives the same branch
            _drop_branch(spark, target, branch)
            spark.sql(f"ALTER TABLE {target} CREATE BRANCH {quote(branch)}")
            if batch_table == bronze_table(settings, name):
                rows = latest
            elif single:
                rows = spark.table(batch_table).where(F.col("_batch_id") == entry["batch_id"])
            else:
                rows = _restricted_batch(spark, settings, contract, entry["batch_id"], latest)
            columns = spark.table(target).columns
            started = time.perf_counter()
            first_load = _main_snapshot(spark, target) is None
            spark.conf.set("spark.wap.branch", branch)
            try:
                if first_load:
                    # Nothing published yet: the live rows are appended, no MERGE join against silver.
                    # Each read task writes its own rows into the buckets (fanout) instead of shuffling
                    # the whole table by bucket first; compaction evens the files out later.
                    rows = rows.where(F.col("_operation") != "delete").select(*[quote(c) for c in columns])
                    rows.writeTo(target).option("distribution-mode", "none").option("fanout-enabled", "true").append()
                else:
                    view = f"mo_batch_{name}"
                    rows.createOrReplaceTempView(view)
                    spark.sql(_merge_sql(target, view, columns, pk, wm))
            finally:
                spark.conf.unset("spark.wap.branch")
            entry["audit_snapshots"][target] = _branch_snapshot(spark, target, branch)
            log.info(
                "%s: %s on %s (%.1fs)",
                target,
                "appended" if first_load else "merged",
                branch,
                time.perf_counter() - started,
            )
    _record(spark, settings, manifest, "merged")
    manifest["step"] = "merged"
    return manifest


def drop_audit_branches(spark, settings: Settings, manifest: dict[str, Any]) -> None:
    branch = manifest["audit_branch"]
    for name, entry in manifest["tables"].items():
        for target, _ in _audit_targets(settings, name, entry.get("has_pii", False)):
            _drop_branch(spark, target, branch)


# --- step 3: gate ------------------------------------------------------------------------------------


def _default_gate() -> Gate:
    try:
        from quality.gates import run_silver_gate
    except ImportError as exc:
        raise ConfigError(f"the silver quality gate (quality.gates) cannot be imported: {exc}") from None
    return run_silver_gate


def candidate_frames(spark, settings: Settings, manifest: dict[str, Any]) -> dict[str, Any]:
    """Silver as it would be after publishing: audit branches for changed tables, main for the rest."""
    contracts = load_source_contracts(Path(manifest["contracts_dir"]) if manifest.get("contracts_dir") else None)
    frames = {}
    for name in contracts:
        silver = silver_table(settings, name)
        if not spark.catalog.tableExists(silver):
            continue
        entry = manifest["tables"].get(name)
        if entry and entry.get("audit_snapshots", {}).get(silver):
            frames[name] = spark.read.option("branch", manifest["audit_branch"]).table(silver)
        else:
            frames[name] = spark.table(silver)
    return frames


# Above this share of a table's live rows changed in one run, its gate validates the whole table: finding
# the changed rows would cost more than the rows it saves.
GATE_SCOPE_MAX_SHARE = 0.2


def gate_scopes(spark, settings: Settings, manifest: dict[str, Any], frames: dict[str, Any]) -> dict[str, Any] | None:
    """Per candidate table, the rows this run can have made invalid (see ``quality.gates.run_silver_gate``).

    A table's scope is its rows whose key is in the table's bronze batch or whose foreign key is in a
    changed parent's batch (soft-deleted parents included, self-references too), as existence joins
    against the batches' keys; None where neither the table nor a parent changed. Tables left out are
    validated whole: those with a large share of rows changed. Returns None (everything whole) for a run
    asked to check in full (``mo sync --full-gate``) or one that loads a table for the first time.
    """
    from pyspark.sql import functions as F

    from quality.suites import parent_of

    if manifest.get("full_gate"):
        return None
    contracts = load_source_contracts(Path(manifest["contracts_dir"]) if manifest.get("contracts_dir") else None)
    changed: dict[str, Any] = {}
    for name, entry in manifest["tables"].items():
        if not entry["rows_bronze"]:
            continue
        if entry["watermark_from"] is None:
            return None
        batch = spark.table(bronze_table(settings, name)).where(F.col("_batch_id") == entry["batch_id"])
        changed[name] = batch.select(F.col(contracts[name].primary_key).alias("k"))
    scopes: dict[str, Any] = {}
    for name, frame in frames.items():
        contract = contracts[name]
        entry = manifest["tables"].get(name)
        if entry and entry.get("full_refresh"):
            continue
        if entry and entry["rows_bronze"] > GATE_SCOPE_MAX_SHARE * max(entry["source_live_count"] or 0, 1):
            continue
        keys = [(contract.primary_key, name)] if name in changed else []
        keys += [
            (c.name, parent_of(c)[0])
            for c in contract.columns
            if c.references and not c.pii and parent_of(c)[0] in changed
        ]
        if not keys:
            scopes[name] = None
            continue
        views = {"c": frame} | {f"k{i}": changed[table] for i, (_, table) in enumerate(keys)}
        where = " OR ".join(
            f"EXISTS (SELECT 1 FROM {{k{i}}} b WHERE b.k = c.{quote(column)})" for i, (column, _) in enumerate(keys)
        )
        scopes[name] = sql_over_frames(spark, f"SELECT * FROM {{c}} c WHERE {where}", **views)
    return scopes


def pending_keys(spark, manifest: dict[str, Any]) -> dict[str, Any]:
    """Per synced table with ids changed in the source after the run's view, those ids as a frame (``k``)."""
    return {
        name: spark.createDataFrame([(i,) for i in entry["pending_ids"]], "k bigint")
        for name, entry in manifest["tables"].items()
        if entry.get("pending_ids")
    }


def check_gate(spark, settings: Settings, manifest: dict[str, Any], *, gate: Gate | None = None) -> dict[str, Any]:
    """Run the quality gate on the candidate silver; on failure record it, drop the branches and raise."""
    register_catalog(spark, settings)
    if manifest.get("step") not in ("merged", "gated"):
        raise MoError(f"run {manifest.get('run_id')} has not been merged to its audit branches; run merge first")
    _check_alive(spark, settings, manifest)
    gate = gate or _default_gate()
    if not manifest["tables"]:  # every table of the run stopped before extraction
        manifest.update(gate={"passed": True, "checked_at": format_ts(utcnow()), "tables": []}, step="gated")
        return manifest
    source_counts = {name: entry["source_live_count"] for name, entry in manifest["tables"].items()}
    frames = candidate_frames(spark, settings, manifest)
    started = time.perf_counter()
    scopes = gate_scopes(spark, settings, manifest, frames)
    result = gate(spark, settings, frames, source_counts, scopes=scopes, pending=pending_keys(spark, manifest))
    if not result.passed:
        summary = result.summary().replace("\n", "; ")
        record_runs(spark, settings, _gate_failed_rows(manifest, result, summary))
        drop_audit_branches(spark, settings, manifest)
        raise QualityGateFailed(f"quality gate failed, nothing published (run {manifest['run_id']}): {summary}")
    manifest["gate"] = {
        "passed": True,
        "checked_at": format_ts(utcnow()),
        "seconds": round(time.perf_counter() - started, 1),
        "modes": getattr(result, "modes", {}),
        "scope_rows": getattr(result, "scope_rows", {}),
    }
    _record(spark, settings, manifest, "gated")
    manifest["step"] = "gated"
    return manifest


def _gate_failed_rows(manifest: dict[str, Any], result, summary: str) -> list[dict[str, Any]]:
    """A failed gate's records: each table it failed on ``gate_failed`` with its own failures, the run's
    other tables ``blocked`` naming those tables (so each clears when its own next attempt publishes)."""
    failures = getattr(result, "failures", None) or []
    failed = sorted({f.table for f in failures} & set(manifest["tables"]))
    now = utcnow()
    if not failed:
        return [_run_row(manifest, name, "gate_failed", summary, at=now) for name in manifest["tables"]]
    rows = []
    for name in manifest["tables"]:
        if name in failed:
            own = "; ".join(f"silver.{name}: {f.expectation} failed: {f.detail}" for f in failures if f.table == name)
            rows.append(_run_row(manifest, name, "gate_failed", own, at=now))
        else:
            detail = f"not published: the gate failed on {', '.join(failed)}"
            rows.append(_run_row(manifest, name, "blocked", detail, at=now))
    return rows


# --- step 4: publish ---------------------------------------------------------------------------------


def _overtaken(spark, settings: Settings, manifest: dict[str, Any], target: str) -> MoError:
    """Stop a run another run overtook on ``target``: drop its branches, record it failed, name the table."""
    error = MoError(
        f"sync run {manifest['run_id']} not published: {target} changed after the run branched off it "
        "(another sync run published to it; runs must not overlap). Its changes stay in bronze and the "
        "next run syncs them again."
    )
    drop_audit_branches(spark, settings, manifest)
    _record(spark, settings, manifest, "failed", str(error))
    return error


def _main_is_behind(spark, table: str, head: int) -> bool:
    """Whether main can fast-forward to snapshot ``head``: main is empty or one of head's ancestors."""
    main = _main_snapshot(spark, table)
    if main is None:
        return True
    parents = {
        r["snapshot_id"]: r["parent_id"]
        for r in spark.sql(f"SELECT snapshot_id, parent_id FROM {table}.snapshots").collect()
    }
    snapshot: int | None = head
    while snapshot is not None:
        if snapshot == main:
            return True
        snapshot = parents.get(snapshot)
    return False


def _check_not_overtaken(spark, settings: Settings, manifest: dict[str, Any], tables: list[str]) -> None:
    """Before anything is published: every branch of this run can still be fast-forwarded to.

    Another run that published in between (a manual ``mo sync`` beside the scheduled DAG, say) moved main
    off this run's branches; the fast-forward would then refuse them table by table, after the first
    tables went out. So the run is stopped whole (:func:`_overtaken`). The check is the fast-forward's own
    rule, so a target an earlier attempt of this publish already fast-forwarded passes it.
    """
    branch = manifest["audit_branch"]
    for name in tables:
        for target, snapshot in (manifest["tables"][name].get("audit_snapshots") or {}).items():
            if _branch_exists(spark, target, branch) and not _main_is_behind(spark, target, snapshot):
                raise _overtaken(spark, settings, manifest, target)


def publish(spark, settings: Settings, manifest: dict[str, Any]) -> dict[str, Any]:
    """Fast-forward silver to the audited branches, advance the watermarks, record the run."""
    register_catalog(spark, settings)
    if not (manifest.get("gate") or {}).get("passed"):
        raise MoError(f"run {manifest.get('run_id')} has not passed the quality gate; nothing to publish")
    catalog = settings.catalog_name
    branch = manifest["audit_branch"]
    done = {r["table"] for r in _check_alive(spark, settings, manifest) if r["status"] == "published"}
    unpublished = [name for name in manifest["tables"] if name not in done]
    _check_not_overtaken(spark, settings, manifest, unpublished)
    for name in unpublished:
        entry = manifest["tables"][name]
        for target, snapshot in entry.get("audit_snapshots", {}).items():
            if _branch_exists(spark, target, branch):
                relative = catalog_relative(settings, target)
                try:
                    spark.sql(f"CALL {catalog}.system.fast_forward('{relative}', 'main', '{branch}')")
                except Exception as exc:
                    if "not an ancestor" not in str(exc):
                        raise
                    raise _overtaken(spark, settings, manifest, target) from None
                _drop_branch(spark, target, branch)
            elif _main_snapshot(spark, target) != snapshot:
                raise MoError(
                    f"audit branch {branch} of {target} is gone and main is not at its snapshot; "
                    "run merge_to_audit and the gate again"
                )
        if entry.get("has_pii") and entry["rows_bronze"]:
            # clear PII of a published batch now lives only in the restricted table
            staging = restricted_staging_table(settings, name)
            spark.sql(f"DELETE FROM {staging} WHERE _batch_id = '{entry['batch_id']}'")
    marks = {n: manifest["tables"][n]["watermark_to"] for n in unpublished}
    advance_watermarks(spark, settings, manifest["run_id"], marks)
    now = utcnow()
    record_runs(spark, settings, [_run_row(manifest, n, "published", at=now) for n in unpublished])
    # Erased customers' clear values leave the restricted zone, whatever this run extracted again; a rerun of
    # publish repeats it (spark_jobs.erasure).
    from spark_jobs.erasure import purge_erased_pii

    contracts = load_source_contracts(Path(manifest["contracts_dir"]) if manifest.get("contracts_dir") else None)
    manifest["erasure_purged"] = purge_erased_pii(spark, settings, contracts)
    manifest["step"] = "published"
    manifest["published_at"] = format_ts(utcnow())
    return manifest


# --- the whole run -----------------------------------------------------------------------------------


def run_sync(
    spark,
    settings: Settings,
    tables: list[str] | None = None,
    *,
    contracts_dir: Path | str | None = None,
    gate: Gate | None = None,
    full_gate: bool = False,
    full_refresh: Collection[str] = (),
    repair_ids: Mapping[str, Collection[int]] | None = None,
) -> dict[str, Any]:
    """Extract, merge on audit branches, gate, publish. Returns the published manifest.

    Raises ConfigError or SourceUnavailable (before Spark is used), QualityGateFailed (nothing published),
    or ContractViolation after publishing the other tables when schema drift stopped a table (the message
    names the tables it stopped and those it published).
    """
    gate = gate or _default_gate()  # fail before extracting if the gate cannot run at all
    manifest = extract_to_bronze(
        spark,
        settings,
        tables,
        contracts_dir=contracts_dir,
        full_gate=full_gate,
        full_refresh=full_refresh,
        repair_ids=repair_ids,
    )
    try:
        manifest = merge_to_audit(spark, settings, manifest)
        manifest = check_gate(spark, settings, manifest, gate=gate)
        manifest = publish(spark, settings, manifest)
    except (QualityGateFailed, RunAbandoned):
        raise
    except Exception as exc:
        try:
            drop_audit_branches(spark, settings, manifest)
            _record(spark, settings, manifest, "failed", _reason(exc))
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        raise
    stopped = stopped_message(manifest)
    if stopped:
        raise ContractViolation(stopped)
    return manifest


def manifest_from_runs(spark, settings: Settings, run_id: str | None = None) -> dict[str, Any]:
    """Rebuild a run's manifest from ``ops.sync_runs`` (the latest run if ``run_id`` is None).

    The rebuilt manifest is at the ``extracted`` step: continue with :func:`merge_to_audit`.
    """
    rows = read_runs(spark, settings, run_id)
    if not rows:
        which = f"run {run_id}" if run_id else "run"
        raise MoError(f"no sync {which} recorded in {settings.catalog_name}.ops.sync_runs")
    run_id = rows[0]["run_id"]
    if any(r["status"] == "abandoned" for r in rows):
        raise RunAbandoned(f"sync run {run_id} was abandoned (its lease expired); start a new run")
    unfinished = [r["table"] for r in rows if r["status"] == "started"]
    if unfinished:
        raise MoError(f"sync run {run_id} did not finish extracting {', '.join(unfinished)}; start a new run")
    contracts = load_source_contracts()
    # a full refresh says so in the detail of the run's records (its 'extracted' one at least)
    runs = ops_table(settings, "sync_runs")
    refreshed = {
        r["table"]
        for r in spark.sql(
            f"SELECT DISTINCT `table` FROM {runs} WHERE run_id = :run_id AND detail LIKE '{REFRESH_DETAIL}%'",
            args={"run_id": run_id},
        ).collect()
    }
    tables = {}
    for r in rows:
        if r["rows_bronze"] is None:  # stopped before extraction (schema drift or a table it refers to)
            continue
        contract = contracts.get(r["table"])
        refresh = r["table"] in refreshed
        tables[r["table"]] = {
            "batch_id": r["batch_id"],
            "watermark_from": r["watermark_from"],
            "watermark_to": r["watermark_to"],
            "rows_extracted": r["rows_extracted"],
            "rows_bronze": r["rows_bronze"],
            "source_live_count": r["source_live_count"],
            "pending_ids": list(r["pending_ids"] or []),
            "has_pii": bool(contract and contract.pii_columns),
            "columns_added": [],
            **({"full_refresh": True} if refresh else {}),
        }
    return {
        "run_id": run_id,
        "started_at": rows[0]["started_at"],
        "source": None,
        "audit_branch": f"audit_{run_id}",
        "contracts_dir": None,
        "tables": tables,
        "stopped": {
            r["table"]: {"status": r["status"], "detail": r["detail"]} for r in rows if r["table"] not in tables
        },
        "step": "extracted",
    }


# --- status ------------------------------------------------------------------------------------------


def layer_counts(spark, settings: Settings) -> dict[str, dict[str, Any]]:
    """Per contract table: live ids in bronze (latest version not a delete), silver rows, last published sync,
    the table's latest attempt that is over (``last_run``: names a failure when it did not publish) and a
    live run syncing it (``in_flight``); see :func:`spark_jobs.watermarks.sync_history`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    register_catalog(spark, settings)
    history = sync_history(spark, settings)  # creates the ops tables on a new lake
    counts: dict[str, dict[str, Any]] = {}
    for name, contract in load_source_contracts().items():
        bronze, silver = bronze_table(settings, name), silver_table(settings, name)
        entry: dict[str, Any] = dict.fromkeys(("bronze", "silver", "last_sync_at", "last_run", "in_flight"))
        entry.update(history.get(name, {}))
        if spark.catalog.tableExists(bronze):
            pk, wm = contract.primary_key, contract.watermark
            order = Window.partitionBy(pk).orderBy(F.col(wm).desc(), F.col("_extracted_at").desc())
            latest = spark.table(bronze).withColumn("_rank", F.row_number().over(order)).where("_rank = 1")
            entry["bronze"] = latest.where(F.col("_operation") != "delete").count()
        if spark.catalog.tableExists(silver):
            entry["silver"] = spark.table(silver).count()
        counts[name] = entry
    return counts


__all__ = [
    "batch_id_for",
    "check_gate",
    "extract_to_bronze",
    "layer_counts",
    "manifest_from_runs",
    "merge_to_audit",
    "publish",
    "run_sync",
]
