"""The lake follows erasures: an erased customer's clear PII leaves the restricted zone on every publish.

The serving API records each erasure in the source's ``erasure_requests`` (mo.oltp.privacy). The customer's
row stays in the core systems (the policy holder of record for policies under legal hold) and so keeps being
synced; the lake keeps its tokens and masks in bronze and silver, which join rows without naming anyone.
What would re-identify those tokens is ``silver_restricted.<table>_pii`` (and its staging table): the clear
values beside their tokens. :func:`purge_erased_pii` deletes them for every erased customer, in every table
with PII that belongs to a customer (``customers`` by id, tables with a ``customer_id`` column by the ids of
the customer's rows in bronze, which holds every version ever synced, published or not).

The sync's :func:`spark_jobs.sync.publish` runs it after every publish, so a version extracted again later
(a change, a full refresh, a reconcile repair) never leaves clear values behind in the published state.

The restricted tables are merge-on-read, so a DELETE alone would leave the clear values in their data files
and older snapshots (time travel would still read them). When a purge deletes anything from a table, that
table's data files holding the ids are rewritten with the deletes applied and its older snapshots expired
(:func:`_remove_from_files`), so the values are gone from the files too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from mo.config import Settings
from mo.contracts import TableContract
from spark_jobs.lake import bronze_table, quote, restricted_staging_table, restricted_table

log = logging.getLogger(__name__)
DELETE_CHUNK = 1000


def erased_customer_ids(settings: Settings) -> list[int]:
    """Customers whose erasure was completed, from the source; none if the source predates erasures."""
    from mo.oltp.privacy import erased_customer_ids as from_source

    return from_source(settings.resolved_source_url)


def _owned_ids(spark, settings: Settings, contract: TableContract, customer_ids: Sequence[int]) -> list[int]:
    """Ids of the table's rows that belong to these customers (every version bronze ever held)."""
    from pyspark.sql import functions as F

    if contract.table == "customers":
        return list(customer_ids)
    bronze = bronze_table(settings, contract.table)
    if not spark.catalog.tableExists(bronze):
        return []
    rows = (
        spark.table(bronze)
        .where(F.col("customer_id").isin(list(customer_ids)))
        .select(F.col(quote(contract.primary_key)))
        .distinct()
    )
    return sorted(int(r[0]) for r in rows.collect())


def _remove_from_files(spark, settings: Settings, target: str, pk: str, ids: Sequence[int]) -> None:
    """Make the delete physical: the tables are merge-on-read, so DELETE only wrote delete files and the clear
    values still sit in the data files and in older snapshots. Rewrite the data files holding these ids with
    their deletes applied, then expire every older snapshot of this table (its history is the erased data)."""
    from spark_jobs.extract import format_ts
    from spark_jobs.lake import catalog_relative
    from spark_jobs.watermarks import utcnow

    catalog, relative = settings.catalog_name, catalog_relative(settings, target)
    # Only the files that may hold these ids (all files when the list is long).
    where = (
        f", where => '{pk.strip('`')} IN ({', '.join(str(int(i)) for i in ids)})'" if len(ids) <= DELETE_CHUNK else ""
    )
    rewrite_all = "options => map('rewrite-all', 'true')"
    spark.sql(f"CALL {catalog}.system.rewrite_data_files(table => '{relative}', {rewrite_all}{where})")
    spark.sql(f"CALL {catalog}.system.rewrite_position_delete_files(table => '{relative}', {rewrite_all})")
    spark.sql(
        f"CALL {catalog}.system.expire_snapshots(table => '{relative}', "
        f"older_than => TIMESTAMP '{format_ts(utcnow())}', retain_last => 1)"
    )


def purge_erased_pii(
    spark, settings: Settings, contracts: Mapping[str, TableContract], customer_ids: Sequence[int] | None = None
) -> dict[str, int]:
    """Delete erased customers' clear values from the restricted tables and their staging tables.

    ``customer_ids`` defaults to :func:`erased_customer_ids`. Returns, per table, how many rows held clear
    values of erased customers (restricted and staging), 0 when none was left."""
    ids = erased_customer_ids(settings) if customer_ids is None else sorted(set(customer_ids))
    purged: dict[str, int] = {}
    if not ids:
        return purged
    for name, contract in contracts.items():
        if not contract.pii_columns:
            continue
        if name != "customers" and "customer_id" not in contract.column_names:
            continue  # PII of no customer (agents)
        owned = _owned_ids(spark, settings, contract, ids)
        if not owned:
            continue
        pk = quote(contract.primary_key)
        held = 0
        for target in (restricted_table(settings, name), restricted_staging_table(settings, name)):
            if not spark.catalog.tableExists(target):
                continue
            found_here = 0
            for start in range(0, len(owned), DELETE_CHUNK):
                chunk = ", ".join(str(int(i)) for i in owned[start : start + DELETE_CHUNK])
                found = spark.table(target).where(f"{pk} IN ({chunk})").count()
                if found:
                    spark.sql(f"DELETE FROM {target} WHERE {pk} IN ({chunk})")
                    found_here += found
            if found_here:
                _remove_from_files(spark, settings, target, pk, owned)
            held += found_here
        purged[name] = held
    if purged:
        log.info("erased customers' clear PII purged from the restricted zone: %s", purged)
    return purged
