"""
### build_profiles

Daily customer profiles, tags and segments, built once silver has been refreshed: it is scheduled on the
`lake_silver` asset that `source_sync` emits, and the `due` check lets through the first new silver of
each day (or any run triggered with `{"force": true}`).

1. **dbt_build**: `dbt build` of staging, intermediate and the marts (customer 360, timeline, tags,
   `customer_profile`), with dbt's unit and data tests;
2. **segments**: the propensity models trained (or reused for a week) and every customer scored, then
   every segment definition (rule, static, smart) evaluated on the fresh marts, membership written per
   run to Iceberg (point-in-time history and "why is this customer in");
3. **insights**: the segment insight marts (sizes, distributions, overlap, trend) over this run;
3b. **campaign_results**: the campaign tables ingested from the core database (append-only ledger and
   deliveries by id, campaigns, audiences and holdouts whole: spark_jobs/campaign_sync.py), then the results
   marts (`fct_contact_touches`, `mart_campaign_results`, `mart_campaign_uplift`) built on them and on this
   run's silver policies. Here rather than in a DAG of its own because the serving store publishes one refresh
   with every table swapped together: the reports go out in the same gated, atomic publish as the profiles;
3c. **analytics**: the dashboards' analytics marts (`dbt/models/marts/analytics`, `tag:analytics`): pre-aggregated
   campaign, segment, recording, claim and customer figures over everything above;
4. **gate**: Great Expectations on the marts to be published; a failure stops here and nothing reaches
   the serving store;
5. **publish**: profiles, event-day counts, segments and memberships, campaign results to the serving
   store (PostgreSQL or SQLite, and Redis), swapped in atomically;
6. **publish_dashboards**: the analytics marts and the platform's own health figures to schema `analytics`
   (Superset reads it), in one atomic swap of their own (mo/analytics.py).

The reference date of every time-relative tag and rule (`as_of`) is the day the run was triggered, UTC,
unless the run is triggered with `{"as_of": "YYYY-MM-DD"}`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, get_current_context, task

SILVER = Asset("lake_silver", uri="iceberg://lake/silver")
SERVING = Asset("serving_profiles", uri="serving://profiles")
DASHBOARDS = Asset("analytics_marts", uri="serving://analytics/marts")


def _as_of() -> str:
    context = get_current_context()
    if context["params"].get("as_of"):  # a rebuild for a given day, or a demo world's own date
        return str(context["params"]["as_of"])[:10]
    run = context["dag_run"]
    when = run.logical_date or run.run_after
    return when.in_timezone("UTC").date().isoformat() if hasattr(when, "in_timezone") else when.date().isoformat()


def _run_id() -> str:
    """The DAG run's id: what the steps' times (ops.build_steps) and the publishes are recorded under."""
    return str(get_current_context()["dag_run"].run_id)


@dag(
    dag_id="build_profiles",
    schedule=[SILVER],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["profiles", "segments"],
    params={"force": False, "as_of": None},
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5), "owner": "marketing-data"},
    doc_md=__doc__,
)
def build_profiles():
    @task.short_circuit
    def due() -> bool:
        from mo.pipelines import profiles_due

        return bool(get_current_context()["params"].get("force")) or profiles_due(_as_of())

    @task
    def dbt_build() -> dict:
        from mo.pipelines import profiles_dbt_build

        return profiles_dbt_build(_as_of(), _run_id())

    @task
    def segments(_marts: dict) -> dict:
        from mo.pipelines import profiles_segments

        return profiles_segments(_as_of(), _run_id())

    @task
    def insights(_segments: dict) -> dict:
        from mo.pipelines import profiles_insights

        return profiles_insights(_as_of(), _run_id())

    @task
    def campaign_results(_insights: dict) -> dict:
        from mo.pipelines import profiles_campaign_results

        return profiles_campaign_results(_as_of(), _run_id())

    @task
    def analytics(_campaign_results: dict) -> dict:
        from mo.pipelines import profiles_analytics

        return profiles_analytics(_as_of(), _run_id())

    @task
    def gate(_insights: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from mo.errors import QualityGateFailed
        from mo.pipelines import profiles_gate

        try:
            return profiles_gate(_as_of(), _run_id())
        except QualityGateFailed as exc:  # bad data does not get better on retry
            raise AirflowFailException(str(exc)) from exc

    @task(outlets=[SERVING])
    def publish(_gate: dict) -> dict:
        from mo.pipelines import profiles_publish

        return profiles_publish(_as_of(), _run_id())

    @task(outlets=[DASHBOARDS])
    def publish_dashboards(_publish: dict) -> dict:
        from mo.pipelines import profiles_publish_dashboards

        return profiles_publish_dashboards(_as_of(), _run_id())

    marts = dbt_build()
    due() >> marts
    publish_dashboards(publish(gate(analytics(campaign_results(insights(segments(marts)))))))


build_profiles()
