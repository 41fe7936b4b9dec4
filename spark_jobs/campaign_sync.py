"""The campaign path's core-database tables -> silver, for the results marts (build_profiles.campaign_results).

Why not the source sync (spark_jobs/sync.py): its contract is a mutable row with ``updated_at`` and a soft
delete (``deleted_at``), a single ``id`` key, and a history in bronze. None of the campaign tables has that
shape: ``contact_ledger`` and ``contact_deliveries`` are append-only (the database refuses UPDATE and DELETE,
there is nothing to soft-delete and no version history to keep), ``campaign_audience`` and
``holdout_assignments`` have composite keys and no timestamp, and ``campaigns`` has ``updated_at`` but no soft
delete. Teaching the sync those shapes touches extraction, the bronze layout, the MERGE, the reconciliation and
the gate; instead this module ingests them with two small kinds, from contracts in schemas/sources/campaigns/
(a subfolder, so the source sync, the generator and the world tests never see them):

- ``append_only`` (the ledger, the deliveries): the watermark is the lake's own ``max(id)``; each run reads
  the source's ids in ``(max(id) - lookback_ids, source max(id)]``, keeps those the lake lacks (the look-back
  catches a transaction that committed a lower id after a higher one was read) and appends them in one Iceberg
  commit. Reconciliation: the source's count of ids up to the bound must equal the lake's after the append;
  when it would not, the run re-reads every id up to the bound and appends what is missing, and if the counts
  still differ nothing is written and the run fails naming the table. A rerun after a crash appends nothing
  twice (the anti-join on id), so no watermark store is needed.
- ``snapshot`` (campaigns, campaign_audience, holdout_assignments): read whole and replace silver in one
  commit (INSERT OVERWRITE); the rows read must lie between the source's counts before and after the read
  (rows are never deleted). The audience is the one that grows large (one row per member per occurrence): a
  keyed incremental read is the next step if it ever dominates the run.

Silver tables go to ``<catalog>.silver.<table>`` beside the synced ones, typed exactly as the contract says
(spark_jobs.extract's casts, so SQLite, MariaDB and PostgreSQL sources give one schema). None of these
tables holds clear PII (customer ids only), so nothing is tokenised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, text

from mo.config import SCHEMAS_DIR, Settings
from mo.contracts import COLUMN_TYPES, ColumnContract, TableContract
from mo.errors import ContractViolation, MoError
from spark_jobs.extract import _jdbc_reader, _select_list, jdbc_source, transform_contract_types
from spark_jobs.lake import quote, silver_table
from spark_jobs.session import register_catalog

log = logging.getLogger(__name__)

CONTRACTS_DIR = SCHEMAS_DIR / "sources" / "campaigns"
KINDS = ("append_only", "snapshot")
DEFAULT_LOOKBACK_IDS = 10_000


class CampaignSyncFailed(MoError):
    """The lake could not be made to hold exactly the source's rows of a table; nothing of it was written."""


@dataclass(frozen=True)
class CampaignTable:
    contract: TableContract  # primary_key = the key's first column; watermark: "id" or ""
    kind: str  # append_only | snapshot
    key: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.contract.table


def load_campaign_contracts(directory: Path | None = None) -> dict[str, CampaignTable]:
    """The campaign tables' contracts (schemas/sources/campaigns/*.yaml), keyed by table."""
    found: dict[str, CampaignTable] = {}
    for path in sorted((directory or CONTRACTS_DIR).glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        try:
            key = tuple(raw["primary_key"]) if isinstance(raw["primary_key"], list) else (raw["primary_key"],)
            kind = raw["kind"]
            columns = tuple(
                ColumnContract(name=c["name"], type=c["type"], nullable=bool(c.get("nullable", True)))
                for c in raw["columns"]
            )
            contract = TableContract(
                table=raw["table"],
                description=raw.get("description", ""),
                primary_key=key[0],
                watermark=raw.get("watermark", ""),
                soft_delete="",
                partitioned_read=False,
                schema_evolution="strict",
                columns=columns,
            )
        except KeyError as exc:
            raise ContractViolation(f"{path.name}: missing key {exc}") from None
        if kind not in KINDS:
            raise ContractViolation(f"{path.name}: kind must be one of {', '.join(KINDS)}")
        if kind == "append_only" and (key != ("id",) or contract.watermark != "id"):
            raise ContractViolation(f"{path.name}: an append_only table has primary_key [id] and watermark id")
        names = set(contract.column_names)
        for c in columns:
            if c.type not in COLUMN_TYPES and not c.type.startswith("decimal("):
                raise ContractViolation(f"{path.name}: column {c.name} has unknown type {c.type!r}")
        if not set(key) <= names:
            raise ContractViolation(f"{path.name}: key column(s) missing from columns")
        found[contract.table] = CampaignTable(contract, kind, key)
    return found


def ensure_silver_tables(spark, settings: Settings, tables: dict[str, CampaignTable] | None = None) -> None:
    """Create the (empty) silver tables, so the marts build on a lake that has no campaign yet."""
    register_catalog(spark, settings)
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.silver")
    for table in (tables or load_campaign_contracts()).values():
        ddl = ", ".join(f"{quote(c.name)} {c.spark_type}" for c in table.contract.columns)
        spark.sql(
            f"CREATE TABLE IF NOT EXISTS {silver_table(settings, table.name)} ({ddl}) USING iceberg "
            "TBLPROPERTIES ('format-version' = '2')"
        )


def _scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def _read(spark, settings: Settings, source, table: CampaignTable, where: str):
    select, custom_schema = _select_list(table.contract, source.dialect)
    reader = _jdbc_reader(spark, settings, source, f"(SELECT {select} FROM {table.name} WHERE {where}) src")
    if custom_schema:
        reader = reader.option("customSchema", custom_schema)
    return transform_contract_types(reader.load(), table.contract)


def _sync_snapshot(spark, settings: Settings, engine: Engine, source, table: CampaignTable) -> dict[str, Any]:
    before = int(_scalar(engine, f"SELECT count(*) FROM {table.name}"))
    frame = _read(spark, settings, source, table, "1 = 1").localCheckpoint()  # one read of the source
    rows = frame.count()
    after = int(_scalar(engine, f"SELECT count(*) FROM {table.name}"))
    if not before <= rows <= after:
        raise CampaignSyncFailed(
            f"{table.name}: read {rows} rows but the source held {before} before and {after} after the read"
        )
    frame.createOrReplaceTempView("_campaign_sync_snapshot")
    spark.sql(f"INSERT OVERWRITE {silver_table(settings, table.name)} SELECT * FROM _campaign_sync_snapshot")
    return {"kind": table.kind, "source_rows": after, "rows_written": rows, "lake_rows": rows}


def _sync_append(
    spark, settings: Settings, engine: Engine, source, table: CampaignTable, lookback_ids: int
) -> dict[str, Any]:
    from pyspark.sql import functions as F

    target = silver_table(settings, table.name)
    bound = _scalar(engine, f"SELECT max(id) FROM {table.name}")
    lake = spark.table(target)
    lake_max = lake.agg(F.max("id")).first()[0]
    if bound is None:
        return {"kind": table.kind, "source_rows": 0, "rows_written": 0, "lake_rows": lake.count(), "bound": None}
    bound = int(bound)
    expected = int(_scalar(engine, f"SELECT count(*) FROM {table.name} WHERE id <= {bound}"))
    have = lake.where(F.col("id") <= bound).count()

    def missing(lower: int | None):
        where = f"id <= {bound}" + (f" AND id > {lower}" if lower is not None else "")
        read = _read(spark, settings, source, table, where)
        known = lake.select("id") if lower is None else lake.where(F.col("id") > lower).select("id")
        return read.join(known, "id", "left_anti").localCheckpoint()

    lower = max(0, int(lake_max) - lookback_ids) if lake_max is not None else None
    new = missing(lower)
    added = new.count()
    if have + added != expected and lower is not None:
        log.warning(
            "%s: %d ids missing below the look-back; reading every id up to %d",
            table.name,
            expected - have - added,
            bound,
        )
        new = missing(None)
        added = new.count()
    if have + added != expected:
        raise CampaignSyncFailed(
            f"{table.name}: the source holds {expected} rows up to id {bound}, the lake would hold {have + added}; "
            "nothing written"
        )
    if added:
        new.writeTo(target).append()
    return {
        "kind": table.kind,
        "source_rows": expected,
        "rows_written": added,
        "lake_rows": have + added,
        "bound": bound,
    }


def sync_campaign_tables(
    spark,
    settings: Settings,
    *,
    tables: list[str] | None = None,
    lookback_ids: int = DEFAULT_LOOKBACK_IDS,
    contracts_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Bring the campaign tables into silver; returns per table what was read and written."""
    from mo.oltp.db import make_engine

    contracts = load_campaign_contracts(contracts_dir)
    unknown = sorted(set(tables or ()) - set(contracts))
    if unknown:
        raise MoError(f"unknown campaign table(s) {', '.join(unknown)}; contracts exist for {', '.join(contracts)}")
    chosen = {n: t for n, t in contracts.items() if not tables or n in tables}
    ensure_silver_tables(spark, settings, chosen)
    source = jdbc_source(settings.resolved_source_url)
    engine = make_engine(settings.resolved_source_url)
    result: dict[str, dict[str, Any]] = {}
    try:
        for name, table in chosen.items():
            if table.kind == "append_only":
                result[name] = _sync_append(spark, settings, engine, source, table, lookback_ids)
            else:
                result[name] = _sync_snapshot(spark, settings, engine, source, table)
            log.info("campaign sync %s: %s", name, result[name])
    finally:
        engine.dispose()
    return result


__all__ = ["CampaignSyncFailed", "ensure_silver_tables", "load_campaign_contracts", "sync_campaign_tables"]
