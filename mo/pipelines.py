"""The units of work the Airflow DAGs run, one function per task.

DAG files stay thin: each task imports one of these and passes JSON-serialisable dicts between
steps (XCom). The same functions back the `mo` CLI, so a data engineer can run any step by hand.
"""

from __future__ import annotations

from typing import Any

from mo.config import get_settings


def _spark_and_settings():
    from spark_jobs.session import get_spark

    settings = get_settings()
    return get_spark(settings), settings


def sync_extract(
    tables: list[str] | None = None, *, full_gate: bool = False, full_refresh: list[str] | None = None
) -> dict[str, Any]:
    """Extract changed rows since each table's watermark into bronze; returns the run manifest.

    ``full_gate``: the run's gate validates every table whole, not only what the run changed.
    ``full_refresh``: tables read whole to reconcile silver with what the watermark cannot see (rows
    deleted in the source without a soft delete, rows changed without a new ``updated_at``).
    """
    from spark_jobs.session import get_spark
    from spark_jobs.sync import check_sync_config, extract_to_bronze

    settings = get_settings()
    check_sync_config(settings, tables, full_refresh=full_refresh or ())  # one line, before a JVM starts
    spark = get_spark(settings)
    return extract_to_bronze(spark, settings, tables, full_gate=full_gate, full_refresh=full_refresh or ())


def sync_merge(manifest: dict[str, Any]) -> dict[str, Any]:
    """Merge the run's bronze batches into silver audit branches (nothing published yet)."""
    from spark_jobs.sync import merge_to_audit

    spark, settings = _spark_and_settings()
    return merge_to_audit(spark, settings, manifest)


def sync_gate(manifest: dict[str, Any]) -> dict[str, Any]:
    """Run the quality gate on the audit branches; raises QualityGateFailed and publishes nothing on failure."""
    from spark_jobs.sync import check_gate

    spark, settings = _spark_and_settings()
    return check_gate(spark, settings, manifest)


def sync_publish(manifest: dict[str, Any]) -> dict[str, Any]:
    """Fast-forward silver to the audited branches and advance the watermarks."""
    from spark_jobs.sync import publish

    spark, settings = _spark_and_settings()
    return publish(spark, settings, manifest)


def source_reconcile(*, force: bool = False) -> dict[str, Any]:
    """Compare silver with the source by content and repair the differing ids (gated), once a day.

    Skipped (``{"skipped": ...}``) while every table was reconciled within ``MO_RECONCILE_INTERVAL_HOURS``.
    """
    from spark_jobs.reconcile import reconcile, reconcile_due

    spark, settings = _spark_and_settings()
    if not force and not reconcile_due(spark, settings):
        return {"skipped": f"reconciled within the last {settings.reconcile_interval_hours:g} h"}
    return reconcile(spark, settings, repair=True)


def lake_maintenance() -> dict[str, Any]:
    """Compact and expire snapshots of the lake tables if the last maintenance is older than the interval."""
    from spark_jobs.maintenance import maintain_lake

    spark, settings = _spark_and_settings()
    return maintain_lake(spark, settings)


def events_ingest(max_messages: int | None = None) -> dict[str, Any]:
    """Drain the event topics into bronze (offsets committed after the Iceberg commit)."""
    from spark_jobs.events_ingest import ingest_events

    spark, settings = _spark_and_settings()
    return ingest_events(spark, settings, max_messages=max_messages)


# --- build_profiles ---------------------------------------------------------------------------------


def profiles_due(as_of: str) -> bool:
    """Whether the serving store has no refresh for ``as_of`` yet (the DAG builds once a day)."""
    from mo.serving_store import open_store

    store = open_store(get_settings())
    store.ensure_schema()
    current = store.current_refresh()
    return current is None or str(current.as_of_date) < as_of


def _build_steps(as_of: str, run_id: str | None):
    """The task's steps, timed into ``ops.build_steps`` under the DAG run's id (mo.step_times)."""
    from datetime import UTC, date, datetime

    from mo.step_times import BuildSteps

    return BuildSteps(get_settings(), run_id or f"manual-{as_of}-{datetime.now(UTC):%H%M%S}", date.fromisoformat(as_of))


def profiles_dbt_build(as_of: str, run_id: str | None = None) -> dict[str, Any]:
    from mo.profiles import build_marts

    with _build_steps(as_of, run_id).step("marts"):
        return build_marts(get_settings(), as_of)


def profiles_segments(as_of: str, run_id: str) -> dict[str, Any]:
    """Train or reuse the propensity models, score customers, then refresh every segment."""
    from mo.profiles import refresh_segments, train_models

    settings = get_settings()
    steps = _build_steps(as_of, run_id)
    with steps.step("models"):
        models = train_models(settings, as_of)
    with steps.step("segments"):
        return {**refresh_segments(settings, as_of, run_id), "models": models}


def profiles_insights(as_of: str, run_id: str | None = None) -> dict[str, Any]:
    from mo.profiles import build_insights

    with _build_steps(as_of, run_id).step("insights"):
        return build_insights(get_settings(), as_of)


def profiles_gate(as_of: str, run_id: str | None = None) -> dict[str, Any]:
    from mo.profiles import gate_marts

    with _build_steps(as_of, run_id).step("gate"):
        return gate_marts(get_settings())


def profiles_publish(as_of: str, run_id: str) -> dict[str, Any]:
    from mo.profiles import publish_serving

    with _build_steps(as_of, run_id).step("publish"):
        return publish_serving(get_settings(), as_of, published_by=run_id)


def profiles_analytics(as_of: str, run_id: str | None = None) -> dict[str, Any]:
    """Build the dashboards' analytics marts (dbt, ``tag:analytics``)."""
    from mo.profiles import build_analytics

    with _build_steps(as_of, run_id).step("analytics_marts"):
        return build_analytics(get_settings(), as_of)


def profiles_publish_dashboards(as_of: str, run_id: str) -> dict[str, Any]:
    """Publish the analytics marts to schema ``analytics`` (one atomic refresh)."""
    from mo.profiles import publish_dashboards

    with _build_steps(as_of, run_id).step("publish_dashboards"):
        return publish_dashboards(get_settings(), as_of, published_by=run_id)


def profiles_campaign_results(as_of: str, run_id: str | None = None) -> dict[str, Any]:
    """Ingest the campaign tables (spark_jobs.campaign_sync) and build the campaign results marts on them."""
    from mo.profiles import build_campaign_results

    spark, settings = _spark_and_settings()
    with _build_steps(as_of, run_id).step("campaign_results"):
        return build_campaign_results(settings, as_of, spark=spark)
