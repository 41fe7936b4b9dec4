"""The analytics marts the dashboards read (schemas/serving/analytics.yaml), published atomically.

``publish_analytics`` gathers every table of the contract and hands the batches to the serving store's
publish (:func:`mo.serving_store.publish_batches`), so each refresh lands in its own tables and the views in
schema ``analytics`` move to it in one transaction: a dashboard never shows a half-refreshed day.

Where the figures come from:
- the tables with ``model:`` (claims, customers, timeline volume, event ingest lag) are dbt marts in the lake
  (dbt/models/marts/analytics, built by build_profiles' analytics task over fct_claims, customer_profile,
  fct_customer_events...), read at their current snapshot (:func:`lake_tables`);
- platform health is computed here: the ``mo status`` report (rows per layer, last sync and gate, reconcile,
  events and dead letters, outbox, serving refresh, problems) and the build's step times from the ops tables
  (:mod:`mo.step_times`).

Nothing here holds a customer's identity: every table is an aggregate (tests/mo/test_analytics.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mo.serving_store.contract import ARROW_TYPES, ServingContract, load_analytics_contract
from mo.serving_store.publish import PublishResult, publish_batches
from mo.serving_store.store import SqlServingStore

log = logging.getLogger(__name__)


def analytics_url(settings: Any) -> str:
    """The analytics store: the serving database (schema ``analytics``) when one is configured, else the SQLite
    file MO_HOME/serving/analytics.db (on SQLite a schema is a file: beside serving.db, not inside it)."""
    url = getattr(settings, "serving_db_url", None)
    return url or f"sqlite:///{Path(settings.home) / 'serving' / 'analytics.db'}"


def open_analytics_store(
    settings: Any, *, url: str | None = None, contract: ServingContract | None = None
) -> SqlServingStore:
    contract = contract or load_analytics_contract()
    return SqlServingStore(url or analytics_url(settings), schema=contract.schema, contract=contract)


# --- helpers ------------------------------------------------------------------------------------------------


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value).replace("T", " ").removesuffix("Z"))


def _batch(contract: ServingContract, table: str, rows: list[dict[str, Any]]) -> list[pa.RecordBatch]:
    spec = contract.tables[table]
    schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.type], nullable=c.nullable) for c in spec.columns])
    if not rows:
        return []
    return [pa.RecordBatch.from_pylist(rows, schema=schema)]


# --- platform health ----------------------------------------------------------------------------------------


def light_status(settings: Any) -> dict[str, Any]:
    """The parts of ``mo status`` that need no Spark (source counts, outbox, serving refresh): the platform
    health figures when the lake is not read (``mo dashboards publish --no-lake``)."""
    from mo import status

    source = status.source_report(settings)
    counts = source.pop("counts")
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
        "tables": {name: {"source": n} for name, n in counts.items()},
        "events": {},
        "outbox": status.outbox_report(settings),
        "serving": status._serving(settings),
        "problems": [],
    }
    return report


def health_rows(report: dict[str, Any]) -> tuple[list[dict], list[dict], list[dict]]:
    """(platform_tables, platform_metrics, platform_problems) rows from a ``mo status --json`` report."""
    observed = _dt(report.get("generated_at")) or datetime.now(UTC).replace(tzinfo=None)
    tables = []
    for name, t in sorted((report.get("tables") or {}).items()):
        last_sync = _dt(t.get("last_sync_at"))
        last_run = t.get("last_run") or {}
        reconcile = t.get("reconcile") or {}
        tables.append(
            {
                "table_name": name,
                "source_rows": t.get("source"),
                "bronze_rows": t.get("bronze"),
                "silver_rows": t.get("silver"),
                "in_sync": bool(t.get("in_sync")),
                "last_sync_at": last_sync,
                "sync_age_hours": round((observed - last_sync).total_seconds() / 3600, 2) if last_sync else None,
                "gate_status": "failed"
                if last_run.get("status") == "gate_failed"
                else ("passed" if last_sync is not None else "none"),
                "reconcile_status": str(reconcile.get("status") or "none"),
            }
        )
    events = report.get("events") or {}
    waiting = ((report.get("broker") or {}).get("ingest_lag") or {}).get("waiting")
    outbox = report.get("outbox") or {}
    refresh = (report.get("serving") or {}).get("refresh") or {}
    published = _dt(refresh.get("published_at")) if refresh.get("published_at") not in (None, "None") else None
    figures = {
        "events_landed": events.get("events"),
        "dead_letters": events.get("dead_letter"),
        "events_waiting": waiting,
        "outbox_pending": outbox.get("pending"),
        "outbox_lag_seconds": outbox.get("lag_seconds"),
        "serving_refresh_age_hours": round((observed - published.replace(tzinfo=None)).total_seconds() / 3600, 2)
        if published
        else None,
        "serving_profiles": (refresh.get("rows") or {}).get("customer_profile"),
        "problems": len(report.get("problems") or []),
        "tables_out_of_sync": sum(1 for t in tables if not t["in_sync"]),
    }
    metrics = [
        {"metric": k, "value": float(v) if v is not None else None, "observed_at": observed} for k, v in figures.items()
    ]
    problems = [
        {"problem_no": i, "problem": str(p)[:2000], "observed_at": observed}
        for i, p in enumerate(report.get("problems") or [], start=1)
    ]
    return tables, metrics, problems


# --- publish ------------------------------------------------------------------------------------------------


def analytics_tables(
    settings: Any, *, status_report: dict[str, Any], spark: Any = None
) -> dict[str, list[pa.RecordBatch]]:
    """The tables the platform computes in Python, as Arrow batches: its health from ``status_report`` and,
    with ``spark``, the build's step times from the ops tables (the contract's tables with a ``model`` come
    from the lake: :func:`lake_tables`)."""
    contract = load_analytics_contract()
    platform_tables, platform_metrics, platform_problems = health_rows(status_report)
    rows = {
        "platform_tables": platform_tables,
        "platform_metrics": platform_metrics,
        "platform_problems": platform_problems,
    }
    if spark is not None:
        from mo.step_times import step_rows

        rows["platform_steps"] = step_rows(spark, settings)
    return {name: _batch(contract, name, r) for name, r in rows.items() if name in contract.tables}


def lake_tables(
    settings: Any, contract: ServingContract, spark: Any
) -> tuple[dict[str, Iterable[pa.RecordBatch] | None], dict[str, int | None]]:
    """The contract's dbt-built tables (``model:``), each read from ``<catalog>.marts.<model>`` at its current
    Iceberg snapshot in the contract's columns; a model not built yet gives None (an empty table). Returns the
    lazy batches per table and the snapshot read per lake table (the refresh's audit row records them)."""
    from mo.serving_store.extract import iter_arrow_batches, pin_tables, serving_columns

    models = {name: f"{settings.catalog_name}.marts.{t.model}" for name, t in contract.tables.items() if t.model}
    if not models:
        return {}, {}
    pinned = pin_tables(spark, models)
    tables: dict[str, Iterable[pa.RecordBatch] | None] = {}
    for name, frame in pinned.frames.items():
        if frame is None:
            log.warning("analytics table %s: the lake has no %s yet (published empty)", name, models[name])
            tables[name] = None
        else:
            tables[name] = iter_arrow_batches(serving_columns(frame, contract.tables[name]))
    return tables, pinned.snapshots


def publish_analytics(
    settings: Any,
    *,
    status_report: dict[str, Any] | None = None,
    with_lake: bool = True,
    as_of: date | None = None,
    url: str | None = None,
    published_by: str | None = None,
    spark: Any = None,
    contract: ServingContract | None = None,
) -> PublishResult:
    """Publish the analytics marts as one atomic refresh of schema ``analytics``: the tables the platform
    computes (:func:`analytics_tables`) and, ``with_lake``, the dbt-built ones read from the lake
    (:func:`lake_tables`; ``spark`` or the process's session). Without the lake those (and the step times) are
    published empty. ``as_of`` labels the refresh (default: today, UTC); the claims' SLA date is the one the
    marts were built for (``mo build-profiles --as-of``, dbt var as_of_date), in claims_open.as_of_date."""
    contract = contract or load_analytics_contract()
    as_of = as_of or datetime.now(UTC).date()
    if status_report is None:
        if with_lake:
            from mo.status import collect_status

            status_report = collect_status(settings)
        else:
            status_report = light_status(settings)
    if with_lake and spark is None:
        from spark_jobs.session import get_spark

        spark = get_spark(settings, app_name="mo-analytics-publish")
    tables = analytics_tables(settings, status_report=status_report, spark=spark if with_lake else None)
    computed: dict[str, Iterable[pa.RecordBatch] | None] = {n: b for n, b in tables.items() if n in contract.tables}
    snapshots: dict[str, int | None] = {}
    if with_lake and any(t.model for t in contract.tables.values()):
        from_lake, snapshots = lake_tables(settings, contract, spark)
        computed.update(from_lake)
    store = open_analytics_store(settings, url=url, contract=contract)
    try:
        return publish_batches(
            store,
            as_of=as_of,
            tables=computed,
            published_by=published_by,
            source={
                "as_of": as_of.isoformat(),
                "status_generated_at": status_report.get("generated_at"),
                "tables": snapshots,
            },
        )
    finally:
        store.dispose()


def iter_rows(batches: Iterable[pa.RecordBatch]) -> list[dict[str, Any]]:
    return [row for b in batches for row in b.to_pylist()]
