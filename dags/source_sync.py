"""
### source_sync

Hourly incremental sync of the insurer's core systems (policies, claims, sales recordings,
customers, consents, complaints, and their reference tables) into the Iceberg lakehouse.

1. **extract** changed rows since each table's durable watermark (with a look-back for late
   arrivals) into append-only bronze, PII tokenised on the way in;
2. **merge** each batch into silver on a write-audit-publish branch (the published silver is untouched);
3. **gate**: Great Expectations suites derived from `schemas/sources/` (counts reconciled with the
   source, keys, enums, referential integrity; rows the source changed while the run read it are left
   out of the count and accepted as parents, and the next run syncs them). A failure stops the run here
   and names the table and expectation; nothing is published and the watermarks stay where they were.
   Hourly runs validate the rows the run changed (and the rows referring to them); each table is
   validated whole once a day
   (`MO_GATE_FULL_INTERVAL_HOURS`), after a contract change, or when the run is triggered with
   `full_gate: true`;
   a run triggered with `full_refresh: [table, ...]` reads those tables whole instead of from their
   watermark and reconciles silver with the source: rows deleted there without a soft delete get a
   delete version, rows changed without a new `updated_at` a new version (the gate validates them whole);
4. **publish**: fast-forward silver to the audited state, advance watermarks, emit the `silver` asset
   that downstream DAGs (profiles, segments) are scheduled on;
5. **reconcile**: once a day (`MO_RECONCILE_INTERVAL_HOURS`), compare silver with the source by
   content (row hashes over id ranges, bisecting only ranges that differ) and re-sync exactly the
   differing ids through the gated full-refresh path (`mo reconcile --repair`); results in
   `ops.reconcile_runs` and `mo status`;
6. **maintain**: once a day (`MO_MAINTENANCE_INTERVAL_HOURS`), compact the lake tables, apply
   merge-on-read deletes and expire old snapshots. It runs after publish inside the same run; it
   cleans up after a dead run (lease expired, `MO_SYNC_LEASE_MINUTES`) and skips only tables a live
   run holds an audit branch on.

Schema drift on a table stops that table and the tables referring to it; the rest is published and
`mo status --check` names the drifted table. Configuration errors fail the extract task in one line
before Spark starts.

Every step is idempotent: a rerun of a failed or crashed run leaves silver identical.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task

SILVER = Asset("lake_silver", uri="iceberg://lake/silver")


@dag(
    dag_id="source_sync",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["lakehouse", "sync"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2), "owner": "data-platform"},
    doc_md=__doc__,
    params={
        "full_gate": Param(False, type="boolean", description="Validate every silver table whole"),
        "full_refresh": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Tables to read whole, reconciling silver with rows deleted or changed behind the watermark",
        ),
    },
)
def source_sync():
    @task
    def extract() -> dict:
        from mo.pipelines import sync_extract

        params = get_current_context()["params"]
        return sync_extract(full_gate=bool(params["full_gate"]), full_refresh=list(params["full_refresh"]))

    @task
    def merge(manifest: dict) -> dict:
        from mo.pipelines import sync_merge

        return sync_merge(manifest)

    @task
    def gate(manifest: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from mo.errors import QualityGateFailed
        from mo.pipelines import sync_gate

        try:
            return sync_gate(manifest)
        except QualityGateFailed as exc:  # bad data does not get better on retry
            raise AirflowFailException(str(exc)) from exc

    @task(outlets=[SILVER])
    def publish(manifest: dict) -> dict:
        from mo.pipelines import sync_publish

        return sync_publish(manifest)

    @task
    def reconcile(_published: dict) -> dict:
        from mo.pipelines import source_reconcile

        return source_reconcile()

    @task
    def maintain(_reconciled: dict) -> dict:
        from mo.pipelines import lake_maintenance

        return lake_maintenance()

    maintain(reconcile(publish(gate(merge(extract())))))


source_sync()
