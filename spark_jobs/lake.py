"""Names and DDL of the lakehouse tables the sync writes, all derived from the source contracts.

Layout inside the catalog ``settings.catalog_name``:

- ``bronze.<table>``: append-only raw history of every extracted row version, PII already tokenised
  and masked, plus ``_batch_id``, ``_source``, ``_extracted_at`` and ``_operation``. Partitioned by
  ``days(_extracted_at)``: each run appends one batch, so a day partition holds whole batches, old days
  can be expired as a unit, and a batch never spreads small files over many buckets (a ``bucket(id)``
  layout would write one file per bucket per hourly batch).
- ``silver.<table>``: the current state per id (soft-deleted rows removed). Format version 2 with
  ``write.wap.enabled`` so every change is written on an audit branch and published only after the
  quality gate. Large tables (``partitioned_read`` in the contract) are bucketed on ``id``: the MERGE
  of a batch then rewrites only the buckets its ids fall into instead of the whole table.
- ``silver_restricted.<table>_pii``: the clear PII values (id, clear columns, their tokens,
  ``updated_at``), the only place they exist; ``silver_restricted.<table>_pii_staging`` holds the clear
  values of the versions in batches not yet published (bronze never does); a batch's rows leave it on
  publish.
- ``ops.watermarks``, ``ops.sync_runs`` and ``ops.sync_leases``: durable sync state.

Column lists always come from the contract (plus the PII transforms in :mod:`spark_jobs.pii`), never
from code.
"""

from __future__ import annotations

from mo.config import Settings
from mo.contracts import ColumnContract, TableContract
from spark_jobs.pii import MASKED_KINDS, TOKENISED_KINDS

BRONZE_META_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_batch_id", "string"),
    ("_source", "string"),
    ("_extracted_at", "timestamp"),
    ("_operation", "string"),
)
SILVER_BUCKETS = 8

WATERMARKS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("table", "string"),
    ("high_watermark", "timestamp"),
    ("updated_at", "timestamp"),
    ("last_run_id", "string"),
)
SYNC_RUNS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "string"),
    ("table", "string"),
    ("batch_id", "string"),
    ("started_at", "timestamp"),
    ("finished_at", "timestamp"),
    # progress: started | extracted | merged | gated; end: published | gate_failed | failed | blocked | abandoned
    ("status", "string"),
    ("rows_extracted", "bigint"),
    ("rows_bronze", "bigint"),
    ("source_live_count", "bigint"),  # live rows up to watermark_to, ids in pending_ids left out
    ("pending_ids", "array<bigint>"),  # ids the source changed after watermark_to (the next run syncs them)
    ("watermark_from", "timestamp"),
    ("watermark_to", "timestamp"),
    ("detail", "string"),
)
SYNC_LEASES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "string"),
    ("renewed_at", "timestamp"),
    ("expires_at", "timestamp"),  # the run's latest row is its lease
)


def bronze_table(settings: Settings, table: str) -> str:
    return f"{settings.catalog_name}.bronze.{table}"


def silver_table(settings: Settings, table: str) -> str:
    return f"{settings.catalog_name}.silver.{table}"


def restricted_table(settings: Settings, table: str) -> str:
    return f"{settings.catalog_name}.silver_restricted.{table}_pii"


def restricted_staging_table(settings: Settings, table: str) -> str:
    return f"{settings.catalog_name}.silver_restricted.{table}_pii_staging"


def ops_table(settings: Settings, name: str) -> str:
    return f"{settings.catalog_name}.ops.{name}"


def catalog_relative(settings: Settings, full_name: str) -> str:
    """``lake.silver.t`` -> ``silver.t``: the form Iceberg CALL procedures take."""
    return full_name.removeprefix(f"{settings.catalog_name}.")


def quote(name: str) -> str:
    return f"`{name}`"


def pii_output_columns(column: ColumnContract) -> list[tuple[str, str]]:
    """What a column becomes outside the restricted zone: a join token and/or a display mask."""
    if not column.pii:
        return [(column.name, column.spark_type)]
    out = []
    if column.pii in TOKENISED_KINDS:
        out.append((f"{column.name}_token", "string"))
    if column.pii in MASKED_KINDS:
        out.append((f"{column.name}_masked", "string"))
    return out


def silver_columns(contract: TableContract) -> list[tuple[str, str]]:
    """Silver (and bronze) business columns in contract order, PII replaced by tokens and masks."""
    return [col for c in contract.columns for col in pii_output_columns(c)]


def bronze_columns(contract: TableContract) -> list[tuple[str, str]]:
    return [*silver_columns(contract), *BRONZE_META_COLUMNS]


def restricted_columns(contract: TableContract) -> list[tuple[str, str]]:
    """id, each clear PII column with its token (if the kind has one), and the version's updated_at."""
    cols = [(contract.primary_key, contract.column(contract.primary_key).spark_type)]
    for c in contract.pii_columns:
        cols.append((c.name, c.spark_type))
        if c.pii in TOKENISED_KINDS:
            cols.append((f"{c.name}_token", "string"))
    cols.append((contract.watermark, "timestamp"))
    return cols


def restricted_staging_columns(contract: TableContract) -> list[tuple[str, str]]:
    """The restricted columns of a version plus its batch, and the ``_extracted_at`` of the run that wrote
    it, which it shares with the version's bronze row: (id, updated_at, _extracted_at) pairs them."""
    return [
        *restricted_columns(contract),
        ("_operation", "string"),
        ("_batch_id", "string"),
        ("_extracted_at", "timestamp"),
    ]


def _ddl(columns: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{quote(n)} {t}" for n, t in columns)


def _create(spark, name: str, columns, partitioned_by: str | None, properties: dict[str, str]) -> None:
    props = ", ".join(f"'{k}'='{v}'" for k, v in properties.items())
    partition = f" PARTITIONED BY ({partitioned_by})" if partitioned_by else ""
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} ({_ddl(columns)}) USING iceberg{partition} TBLPROPERTIES ({props})")


def ensure_namespaces(spark, settings: Settings) -> None:
    for ns in ("bronze", "silver", "silver_restricted", "ops"):
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.{ns}")


def ensure_ops_tables(spark, settings: Settings) -> None:
    ensure_namespaces(spark, settings)
    props = {"format-version": "2"}
    for name, columns in (
        ("watermarks", WATERMARKS_COLUMNS),
        ("sync_runs", SYNC_RUNS_COLUMNS),
        ("sync_leases", SYNC_LEASES_COLUMNS),
    ):
        table_name = ops_table(settings, name)
        if not spark.catalog.tableExists(table_name):
            _create(spark, table_name, columns, None, props)
        else:
            _add_missing_columns(spark, table_name, columns)


def _add_missing_columns(spark, table_name: str, columns) -> list[str]:
    """Add the columns an existing table lacks (Iceberg schema evolution); returns their names."""
    existing = {f.name.lower() for f in spark.table(table_name).schema.fields}
    missing = [(n, t) for n, t in columns if n.lower() not in existing]
    for col_name, col_type in missing:
        spark.sql(f"ALTER TABLE {table_name} ADD COLUMN {quote(col_name)} {col_type}")
    return [n for n, _ in missing]


# Silver MERGEs touch a few thousand rows of million-row tables each run: merge-on-read writes delete
# files instead of rewriting every data file a changed row sits in (copy-on-write). Readers merge the
# deletes; periodic compaction (rewrite_data_files / rewrite_position_delete_files) keeps reads fast.
MERGE_ON_READ = {
    "write.merge.mode": "merge-on-read",
    "write.update.mode": "merge-on-read",
    "write.delete.mode": "merge-on-read",
}


# A bronze batch carries one ``_extracted_at``, so all its rows fall in one day partition: each task can
# write its own rows straight away. The default ``hash`` distribution would shuffle the whole batch by
# partition first, which on a first load is a second pass over every extracted row.
BRONZE_PROPERTIES = {"format-version": "2", "write.distribution-mode": "none"}

# Data files are zstd (Iceberg's default codec) at level 1 instead of zstd's default 3: on the 1M-customer
# world the layer tables came out the same size (bronze 358 vs 357 MB, silver 376 vs 380 MB) and the initial
# sync's extract and merge took 66.0 s instead of 69.2 s.
PARQUET_PROPERTIES = {"write.parquet.compression-codec": "zstd", "write.parquet.compression-level": "1"}


def token_metrics(columns: list[tuple[str, str]]) -> dict[str, str]:
    """Counts-only column metrics for join tokens (HMAC hex strings).

    A token's min/max say nothing (hashes spread every file over the whole range, so they never prune a
    file) and collecting them made writing the token-heavy customers batch take almost twice as long.
    """
    return {f"write.metadata.metrics.column.{name}": "counts" for name, _ in columns if name.endswith("_token")}


# SHOW TBLPROPERTIES hides the value of every key matching spark.redaction.regex (keys naming a *_token
# column among them) behind this text.
REDACTED = "*********(redacted)"


def _properties(spark, table_name: str) -> dict[str, str]:
    return {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {table_name}").collect()}


def ensure_layer_tables(spark, settings: Settings, contract: TableContract) -> list[str]:
    """Create the table's bronze/silver/restricted tables if missing and add columns the contract gained.

    Returns the names of columns added to existing tables (additive schema evolution).
    """
    ensure_namespaces(spark, settings)
    name = contract.table
    silver_props = {"format-version": "2", "write.wap.enabled": "true", **MERGE_ON_READ}
    bucket = f"bucket({SILVER_BUCKETS}, {quote(contract.primary_key)})" if contract.partitioned_read else None
    targets = [
        (bronze_table(settings, name), bronze_columns(contract), "days(_extracted_at)", BRONZE_PROPERTIES),
        (silver_table(settings, name), silver_columns(contract), bucket, silver_props),
    ]
    if contract.pii_columns:
        targets += [
            (restricted_table(settings, name), restricted_columns(contract), None, silver_props),
            (
                restricted_staging_table(settings, name),
                restricted_staging_columns(contract),
                None,
                {"format-version": "2"},
            ),
        ]
    targets = [
        (t, cols, part, {**props, **PARQUET_PROPERTIES, **token_metrics(cols)}) for t, cols, part, props in targets
    ]
    added: list[str] = []
    for table_name, columns, partitioned_by, props in targets:
        if not spark.catalog.tableExists(table_name):
            _create(spark, table_name, columns, partitioned_by, props)
            continue
        current = _properties(spark, table_name)
        # a redacted value cannot be compared: the key being there is taken as set by this code
        stale = {k: v for k, v in props.items() if k != "format-version" and current.get(k) not in (v, REDACTED)}
        if stale:
            # tables created before a write setting became the default are switched over in place
            settings_sql = ", ".join(f"'{k}' = '{v}'" for k, v in stale.items())
            spark.sql(f"ALTER TABLE {table_name} SET TBLPROPERTIES ({settings_sql})")
        added += [n for n in _add_missing_columns(spark, table_name, columns) if n not in added]
    return added


def ensure_ops_table(spark, settings: Settings, name: str, columns: tuple[tuple[str, str], ...]) -> None:
    """Create ``ops.<name>`` with ``columns`` if missing, or add the columns it lacks."""
    ensure_namespaces(spark, settings)
    table_name = ops_table(settings, name)
    if not spark.catalog.tableExists(table_name):
        _create(spark, table_name, columns, None, {"format-version": "2"})
    else:
        _add_missing_columns(spark, table_name, columns)
