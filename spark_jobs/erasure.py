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

Limit: Iceberg keeps the deleted clear values in the restricted tables' older snapshots until they are
expired (``mo maintain``'s expire_snapshots, by its retention); the restricted zone is access-controlled,
but an erasure is complete in the lake only once those snapshots are expired.
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


def purge_erased_pii(
    spark, settings: Settings, contracts: Mapping[str, TableContract], customer_ids: Sequence[int] | None = None
) -> dict[str, int]:
    """Delete erased customers' clear values from the restricted tables and their staging tables.

    ``customer_ids`` defaults to :func:`erased_customer_ids`. Returns, per table, how many of its ids were
    purged (ids the restricted tables may or may not still have held)."""
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
        for target in (restricted_table(settings, name), restricted_staging_table(settings, name)):
            if not spark.catalog.tableExists(target):
                continue
            for start in range(0, len(owned), DELETE_CHUNK):
                chunk = ", ".join(str(int(i)) for i in owned[start : start + DELETE_CHUNK])
                spark.sql(f"DELETE FROM {target} WHERE {pk} IN ({chunk})")
        purged[name] = len(owned)
    if purged:
        log.info("erased customers' clear PII purged from the restricted zone: %s", purged)
    return purged
