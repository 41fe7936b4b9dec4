"""`build_profiles`: silver -> marts (dbt) -> segments -> insight marts -> gate -> serving store.

One daily run, scheduled by Airflow when ``source_sync`` publishes new silver (the ``lake_silver``
asset), in five steps that are each idempotent for their ``as_of`` date and run id:

1. :func:`build_marts`: ``dbt build`` of staging, intermediate and marts (customer 360, timeline, tags,
   customer_profile), dbt's unit and data tests included; the segment insight marts are left out
   (``tag:segment_insights``) because they read this run's memberships.
2. :func:`train_models` then :func:`refresh_segments`: the propensity models of
   schemas/segments/models/ trained (or reused for a week) and every customer scored, then every active
   segment of the definition store in the core database (mo.segments.store: made through the API or
   imported from the files of schemas/segments/examples, which the step imports first) evaluated on the
   fresh marts, memberships written per run to Iceberg under the store's versions.
3. :func:`build_insights`: ``dbt build --select tag:segment_insights`` (sizes, distributions, overlap,
   trend), when the project has such models.
4. :func:`gate_marts`: Great Expectations on the marts to be published (quality/marts.py); a failure
   raises QualityGateFailed and nothing is published.
5. :func:`publish_serving`: profiles, event-day counts, segments and memberships to the serving store,
   swapped in atomically (mo/serving_store).

The ``as_of`` date is the reference date of every time-relative tag and segment rule: the DAG passes
its logical date, the CLI today's date unless told otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

from mo.config import Settings
from mo.errors import QualityGateFailed

log = logging.getLogger(__name__)

INSIGHTS_SELECTOR = "tag:segment_insights"
# Built after the campaign tables' ingest (build_campaign_results), not with the other marts.
CAMPAIGN_RESULTS_SELECTOR = "tag:campaign_results"
# The dashboards' analytics marts (dbt/models/marts/analytics): built last, on everything above.
ANALYTICS_SELECTOR = "tag:analytics"
GATED_MARTS = ("customer_profile", "customer_event_daily", "fct_customer_events")


def _as_of(value: dt.date | str | None) -> dt.date:
    if value is None:
        return dt.datetime.now(dt.UTC).date()
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def mart_table(settings: Settings, name: str) -> str:
    return f"{settings.catalog_name}.marts.{name}"


def _node_summary(result: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node_result in getattr(result, "results", None) or []:
        status = str(getattr(node_result, "status", "unknown")).lower()
        counts[status] = counts.get(status, 0) + 1
    return counts


def build_marts(settings: Settings, as_of: dt.date | str | None = None) -> dict[str, Any]:
    """dbt build of everything but the segment insight and campaign results marts (each built later, on what the
    run adds: memberships, the campaign tables' ingest); returns dbt's node counts by status."""
    from mo.marts.dbt import build_vars, run_dbt

    day = _as_of(as_of)
    started = time.perf_counter()
    excluded = ["--exclude", INSIGHTS_SELECTOR, CAMPAIGN_RESULTS_SELECTOR, ANALYTICS_SELECTOR]
    result = run_dbt(settings, ["build", *excluded], vars=build_vars(settings, day))
    seconds = round(time.perf_counter() - started, 1)
    return {"as_of": day.isoformat(), "nodes": _node_summary(result), "seconds": seconds}


MODEL_MAX_AGE_DAYS = 7  # a model version is reused for a week before it is retrained on fresh history


def train_models(settings: Settings, as_of: dt.date | str | None = None) -> dict[str, Any]:
    """Train (or reuse) every propensity model spec and score every customer; a model whose history cannot
    train yet (e.g. a new world without renewals) is reported and its smart segments are skipped."""
    from mo.errors import MoError
    from mo.segments.smart import MODELS_DIR, train_and_score

    day = _as_of(as_of)
    report: dict[str, Any] = {}
    for spec in sorted(MODELS_DIR.glob("*.yaml")):
        try:
            record, scores = train_and_score(
                settings, spec.stem, as_of=day, max_age_days=MODEL_MAX_AGE_DAYS, trained_by="build_profiles"
            )
        except MoError as exc:
            log.warning("model %s not trained: %s", spec.stem, exc)
            report[spec.stem] = {"trained": False, "reason": str(exc).splitlines()[0]}
            continue
        report[spec.stem] = {
            "trained": True,
            "version": record.version,
            "auc": record.auc,
            "rows_train": record.rows_train,
            "rows_holdout": record.rows_holdout,
            "customers_scored": scores.customers,
        }
    return report


def refresh_segments(
    settings: Settings,
    as_of: dt.date | str | None = None,
    run_id: str | None = None,
    folder: Path | str | None = None,
) -> dict[str, Any]:
    """Import the definition files into the definition store, then evaluate every active segment of the store
    on the marts; returns the segment sizes of the run."""
    from mo.segments.membership import refresh_from_folder

    day = _as_of(as_of)
    report = refresh_from_folder(
        settings,
        Path(folder) if folder else None,
        as_of=day,
        run_id=run_id or f"build-{day}",
        created_by="build_profiles",
    )
    return {
        "run_id": report.run_id,
        "as_of": day.isoformat(),
        "sizes": report.sizes,
        "skipped": {s.segment_id: s.note for s in report.skipped},
    }


def build_campaign_results(
    settings: Settings, as_of: dt.date | str | None = None, *, spark: Any = None
) -> dict[str, Any]:
    """Ingest the campaign tables from the core database (spark_jobs.campaign_sync) and build the campaign
    results marts on them."""
    from mo.marts.dbt import build_vars, run_dbt
    from spark_jobs.campaign_sync import sync_campaign_tables
    from spark_jobs.session import get_spark

    day = _as_of(as_of)
    synced = sync_campaign_tables(spark or get_spark(settings), settings)
    started = time.perf_counter()
    result = run_dbt(settings, ["build", "--select", CAMPAIGN_RESULTS_SELECTOR], vars=build_vars(settings, day))
    return {
        "as_of": day.isoformat(),
        "synced": {table: entry["rows_written"] for table, entry in synced.items()},
        "nodes": _node_summary(result),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _has_insight_models() -> bool:
    from mo.marts.dbt import DBT_PROJECT_DIR

    return (DBT_PROJECT_DIR / "models" / "marts" / "segments").is_dir()


def build_insights(settings: Settings, as_of: dt.date | str | None = None) -> dict[str, Any]:
    """dbt build of the segment insight marts over this run's memberships."""
    from mo.marts.dbt import build_vars, run_dbt

    day = _as_of(as_of)
    if not _has_insight_models():
        return {"as_of": day.isoformat(), "nodes": {}, "note": "no segment insight models in dbt/"}
    result = run_dbt(settings, ["build", "--select", INSIGHTS_SELECTOR], vars=build_vars(settings, day))
    return {"as_of": day.isoformat(), "nodes": _node_summary(result)}


def build_analytics(settings: Settings, as_of: dt.date | str | None = None) -> dict[str, Any]:
    """dbt build of the dashboards' analytics marts (``tag:analytics``) over this run's marts, memberships and
    campaign results."""
    from mo.marts.dbt import DBT_PROJECT_DIR, build_vars, run_dbt

    day = _as_of(as_of)
    if not any((DBT_PROJECT_DIR / "models" / "marts" / "analytics").glob("*.sql")):
        return {"as_of": day.isoformat(), "nodes": {}, "note": "no analytics models in dbt/"}
    started = time.perf_counter()
    result = run_dbt(settings, ["build", "--select", ANALYTICS_SELECTOR], vars=build_vars(settings, day))
    return {
        "as_of": day.isoformat(),
        "nodes": _node_summary(result),
        "seconds": round(time.perf_counter() - started, 1),
    }


def gate_marts(settings: Settings) -> dict[str, Any]:
    """Great Expectations on the marts about to be published; raises QualityGateFailed on any failure."""
    from quality.marts import CAMPAIGN_MARTS, run_marts_gate
    from spark_jobs.lake import silver_table
    from spark_jobs.session import get_spark

    spark = get_spark(settings)
    frames = {name: spark.table(mart_table(settings, name)) for name in GATED_MARTS}
    # the campaign results marts too (published in the same refresh), once built: a lake before campaigns has none
    frames |= {
        n: spark.table(mart_table(settings, n))
        for n in CAMPAIGN_MARTS
        if spark.catalog.tableExists(mart_table(settings, n))
    }
    live_customers = spark.table(silver_table(settings, "customers")).count()
    result = run_marts_gate(spark, settings, frames, {"customer_profile": live_customers})
    if not result.passed:
        raise QualityGateFailed(f"marts quality gate failed, nothing published: {result.summary()}")
    return {"passed": True, "tables": result.tables}


def publish_serving(
    settings: Settings, as_of: dt.date | str | None = None, published_by: str | None = None
) -> dict[str, Any]:
    """Publish profiles, event-day counts, segments and memberships to the serving store atomically."""
    from mo.serving_store import open_store, publish
    from mo.serving_store.columnar import columnar_directory
    from spark_jobs.session import get_spark

    day = _as_of(as_of)
    store = open_store(settings)
    try:
        result = publish(
            settings,
            spark=get_spark(settings),
            as_of=day,
            store=store,
            published_by=published_by or "build_profiles",
            columnar_dir=columnar_directory(store, settings.home) if settings.serving_columnar else None,
        )
    finally:
        store.dispose()
    return {
        "refresh_id": result.refresh_id,
        "as_of": day.isoformat(),
        "row_counts": result.row_counts,
        "redis_keys": result.redis_keys,
        "previous_refresh_id": result.previous_refresh_id,
        "seconds": result.seconds,
    }


def publish_dashboards(
    settings: Settings, as_of: dt.date | str | None = None, published_by: str | None = None
) -> dict[str, Any]:
    """Publish the analytics marts the dashboards read (mo.analytics) as one atomic refresh of schema
    ``analytics``: the dbt-built ones from the lake, the platform's own figures beside them."""
    from mo.analytics import publish_analytics
    from spark_jobs.session import get_spark

    day = _as_of(as_of)
    result = publish_analytics(settings, as_of=day, spark=get_spark(settings), published_by=published_by)
    return {"refresh_id": result.refresh_id, "as_of": day.isoformat(), "row_counts": result.row_counts}


def build_profiles(settings: Settings, as_of: dt.date | str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """The whole run in one process (``mo build-profiles``); the DAG runs the same steps as tasks. Each step's
    start, end and outcome go to ``ops.build_steps`` (mo.step_times), those before the dashboards' publish in
    time for it to show them, the rest (or what a failure left) at the end."""
    from mo.step_times import BuildSteps

    day = _as_of(as_of)
    steps = BuildSteps(settings, run_id or f"build-{day.isoformat()}-{dt.datetime.now(dt.UTC):%H%M%S}", day,
                       deferred=True)  # fmt: skip
    report: dict[str, Any] = {"as_of": day.isoformat()}

    def step(name: str, run: Any) -> None:
        with steps.step(name):
            report[name] = run()

    try:
        step("marts", lambda: build_marts(settings, day))
        step("models", lambda: train_models(settings, day))
        step("segments", lambda: refresh_segments(settings, day, run_id))
        step("insights", lambda: build_insights(settings, day))
        step("campaign_results", lambda: build_campaign_results(settings, day))
        step("analytics_marts", lambda: build_analytics(settings, day))
        step("gate", lambda: gate_marts(settings))
        step("publish", lambda: publish_serving(settings, day, published_by=run_id))
        steps.flush()  # in time for the dashboards' publish to show them
        step("publish_dashboards", lambda: publish_dashboards(settings, day, published_by=run_id))
    finally:
        steps.flush()
    return report


def marts_status(spark, settings: Settings) -> dict[str, Any]:
    """Row counts of the published marts (None where a mart is not built yet), for `mo status`."""
    counts: dict[str, Any] = {}
    for name in GATED_MARTS:
        table = mart_table(settings, name)
        counts[name] = spark.table(table).count() if spark.catalog.tableExists(table) else None
    return counts


__all__ = [
    "build_insights",
    "build_marts",
    "build_profiles",
    "gate_marts",
    "marts_status",
    "publish_serving",
    "refresh_segments",
    "train_models",
]
