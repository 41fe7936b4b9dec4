"""
### events_ingest

Drains the behaviour (app, WeChat, forms, coupons, messages) and business (claim filed, policy near
renewal) event topics into the Iceberg table `bronze.events`. Malformed events go to
`bronze.events_dead_letter` with the reason and the pipeline goes on. Consumer offsets are committed
only after the Iceberg commit, and the sink skips offsets it already holds, so a crash and rerun
neither loses nor duplicates an event.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

BRONZE_EVENTS = Asset("lake_bronze_events", uri="iceberg://lake/bronze/events")


@dag(
    dag_id="events_ingest",
    schedule="*/10 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["lakehouse", "events"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1), "owner": "data-platform"},
    doc_md=__doc__,
)
def events_ingest():
    @task(outlets=[BRONZE_EVENTS])
    def ingest() -> dict:
        from mo.pipelines import events_ingest as run

        return run()

    ingest()


events_ingest()
