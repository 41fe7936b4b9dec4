"""`mo status`: the platform's health in one place.

For every source table: live (not soft-deleted) rows in the source, in bronze (ids whose latest
version is not a delete) and in silver, and the last published sync. After a sync, source and
silver agree. Also the event tables, whether the broker answers and how many events wait there
for the ingest (its consumer lag), the marts `build_profiles` builds (row counts) and the serving
store's current refresh. A part that cannot be read (the source unreachable or its URL invalid, the
broker or the serving store down) is reported as a problem, never instead of the report.

:func:`health_problems` runs each check of :data:`PROBLEM_CHECKS` on the report; a new section of the
report adds its check there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from mo.config import Settings
from mo.contracts import load_source_contracts
from mo.errors import MoError
from spark_jobs.watermarks import IN_PROGRESS, STOPPED


def source_label(settings: Settings) -> str:
    """The configured source URL without credentials (even when the URL is invalid)."""
    return _label(settings.source_url or f"sqlite:///{settings.home / 'source.db'}")


def source_report(settings: Settings) -> dict[str, Any]:
    """Where the source is, whether it answers and, when it does, its live rows per table."""
    try:
        return {"url": source_label(settings), "reachable": True, "counts": source_live_counts(settings)}
    except MoError as exc:
        return {"url": source_label(settings), "reachable": False, "error": str(exc), "counts": {}}
    except Exception as exc:  # noqa: BLE001 - a driver's own error (bad URL, missing module) is reported too
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return {"url": source_label(settings), "reachable": False, "error": error, "counts": {}}


def source_live_counts(settings: Settings) -> dict[str, int | None]:
    from sqlalchemy import inspect

    from mo.oltp.db import check_connection, make_engine

    engine = make_engine(settings.resolved_source_url)
    check_connection(engine)
    existing = set(inspect(engine).get_table_names())
    counts: dict[str, int | None] = {}
    with engine.connect() as conn:
        for name, contract in load_source_contracts().items():
            if name not in existing:
                counts[name] = None
                continue
            counts[name] = conn.execute(
                text(f"select count(*) from {name} where {contract.soft_delete} is null")  # noqa: S608 - names from contracts
            ).scalar_one()
    engine.dispose()
    return counts


def _lake_counts(
    settings: Settings,
) -> tuple[dict[str, dict[str, Any]], dict[str, int | None], dict[str, int | None]]:
    from mo.profiles import marts_status
    from spark_jobs.session import get_spark
    from spark_jobs.sync import layer_counts

    spark = get_spark(settings)
    events: dict[str, int | None] = {}
    for key, table in (("events", "bronze.events"), ("dead_letter", "bronze.events_dead_letter")):
        name = f"{settings.catalog_name}.{table}"
        events[key] = spark.table(name).count() if spark.catalog.tableExists(name) else None
    return layer_counts(spark, settings), events, marts_status(spark, settings)


def _label(url: str) -> str:
    """A database URL without credentials."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('@')[-1]}"


def _serving(settings: Settings) -> dict[str, Any]:
    """The serving store's current refresh (None before the first publish)."""
    from mo.serving_store import open_store

    store = open_store(settings)
    try:
        store.ensure_schema()
        current = store.current_refresh()
    except Exception as exc:  # noqa: BLE001 - status reports an unreachable store instead of failing
        return {"store": _label(store.url), "reachable": False, "error": str(exc).splitlines()[0]}
    if current is None:
        return {"store": _label(store.url), "reachable": True, "refresh": None}
    return {
        "store": _label(store.url),
        "reachable": True,
        "refresh": {
            "refresh_id": current.refresh_id,
            "as_of": str(current.as_of_date),
            "published_at": str(current.published_at),
            "rows": current.row_counts,
        },
    }


def broker_report(settings: Settings) -> dict[str, Any]:
    """Where the broker is and whether it answers; when it does, the events waiting for the ingest."""
    from mo.events.broker import broker_status
    from spark_jobs.events_ingest import ingest_lag

    try:
        status = broker_status(settings)
    except MoError as exc:
        return {"bootstrap": settings.resolved_kafka_bootstrap, "reachable": False, "error": str(exc)}
    if status["reachable"]:
        try:
            status["ingest_lag"] = ingest_lag(settings)
        except MoError as exc:  # the broker went away between the two calls
            status["ingest_lag"] = {"error": str(exc)}
    return status


Check = Callable[[dict[str, Any], datetime, dict[str, float]], list[str]]


def source_problems(report: dict[str, Any], now: datetime, limits: dict[str, float]) -> list[str]:
    """The source not answering, or its URL invalid."""
    source = report.get("source_check") or {}
    if source and not source.get("reachable", True):
        return [f"source {report.get('source')} unreachable: {source.get('error') or '-'}"]
    return []


def table_problems(report: dict[str, Any], now: datetime, limits: dict[str, float]) -> list[str]:
    """Per table, judged on its latest attempt that is over (``last_run``): a sync run that stopped on it
    (gate failed, schema drift, an error), died (a progress step whose lease expired: crashed or killed)
    or was abandoned. A table's problem clears when its next attempt publishes; a table held back by
    another's failure (``blocked``) is not one (the other table's line is). Also tables never synced and
    silver older than the limit."""
    problems: list[str] = []
    tables = report.get("tables") or {}
    never = [name for name, row in tables.items() if row.get("last_sync_at") is None]
    if never:
        problems.append(f"never synced to silver: {', '.join(never)}")
    stale: dict[str, list[str]] = {}  # last sync time (UTC, ISO) -> tables
    for name, row in tables.items():
        if row.get("last_sync_at"):
            stale.setdefault(row["last_sync_at"], []).append(name)
    max_age = limits["max_sync_age_hours"]
    for synced, names in sorted(stale.items()):
        hours = (now - datetime.fromisoformat(synced).replace(tzinfo=UTC)).total_seconds() / 3600
        if hours > max_age:
            problems.append(
                f"silver is stale: last sync {synced} UTC, {hours:.1f} h ago (limit {max_age:g} h): {', '.join(names)}"
            )
    stopped: dict[tuple[str, str], list[str]] = {}  # (text before the table names, text after) -> tables
    for name, row in tables.items():
        run = row.get("last_run")
        if not run:
            continue
        if run["status"] in STOPPED:
            line = (f"sync run {run['run_id']} {run['status']} at {run['at']} UTC", f": {run['detail'] or '-'}")
        elif run["status"] in IN_PROGRESS and _lease_expired(run.get("lease_expires_at"), now):
            lease = run.get("lease_expires_at")
            expiry = f"its lease expired at {lease} UTC" if lease else "it holds no lease"
            line = (f"sync run {run['run_id']} died after step {run['status']}", f": no end record and {expiry}")
        else:
            continue
        stopped.setdefault(line, []).append(name)
    problems += [f"{before} ({', '.join(names)}){after}" for (before, after), names in stopped.items()]
    return problems


def reconcile_report(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per table, its latest content reconciliation (``ops.reconcile_runs``; empty before the first)."""
    from spark_jobs.reconcile import reconcile_history
    from spark_jobs.session import get_spark

    return reconcile_history(get_spark(settings), settings)


def reconcile_problems(report: dict[str, Any], now: datetime, limits: dict[str, float]) -> list[str]:
    """A table whose latest reconciliation found rows differing from the source and did not repair them."""
    problems = []
    for name, row in (report.get("tables") or {}).items():
        last = row.get("reconcile") or {}
        if last.get("status") in ("differs", "repair_failed"):
            how = f"repair failed: {last.get('detail') or '-'}" if last["status"] == "repair_failed" else "not repaired"
            problems.append(
                f"{name}: {last['rows_differing']} rows differ from the source by content (reconciled "
                f"{last['reconciled_at']} UTC, {how}); run mo reconcile --table {name} --repair"
            )
    return problems


def _lease_expired(lease: str | None, now: datetime) -> bool:
    return lease is None or datetime.fromisoformat(lease).replace(tzinfo=UTC) < now


def broker_problems(report: dict[str, Any], now: datetime, limits: dict[str, float]) -> list[str]:
    """The broker not answering, or more events waiting for the ingest than the limit."""
    broker = report.get("broker") or {}
    lag = broker.get("ingest_lag") or {}
    if broker and not broker.get("reachable"):
        return [f"broker {broker.get('bootstrap')} unreachable: {broker.get('error') or '-'}"]
    if "error" in lag:
        return [f"ingest lag unknown: {lag['error']}"]
    if lag.get("waiting", 0) > limits["max_waiting"]:
        return [f"{lag['waiting']} events wait on the broker for the ingest (limit {limits['max_waiting']:g})"]
    return []


def outbox_report(settings: Settings) -> dict[str, Any] | None:
    """The API's outbox in the source database: events waiting for the relay and the oldest one's age
    (None when the source has no outbox yet or does not answer; the source check reports the latter)."""
    from sqlalchemy import inspect

    from mo.oltp.db import make_engine
    from mo.oltp.outbox import outbox_status

    try:
        engine = make_engine(settings.resolved_source_url)
        try:
            if "outbox" not in inspect(engine).get_table_names():
                return None
            return outbox_status(engine).as_dict()
        finally:
            engine.dispose()
    except Exception:  # noqa: BLE001 - an unreachable source is the source check's problem line
        return None


def outbox_problems(report: dict[str, Any], now: datetime, limits: dict[str, float]) -> list[str]:
    """Business events from the API waiting in the outbox longer than the limit: the relay or the broker is down."""
    outbox = report.get("outbox") or {}
    lag = outbox.get("lag_seconds") or 0.0
    if lag > limits["max_outbox_lag_minutes"] * 60:
        return [
            f"outbox: {outbox.get('pending')} API events wait for the relay, the oldest for {lag / 60:.0f} min "
            f"(limit {limits['max_outbox_lag_minutes']:g}); is `mo outbox relay` running and the broker up?"
            + (f" last error: {outbox['last_error']}" if outbox.get("last_error") else "")
        ]
    return []


def serving_problems(report: dict[str, Any], now: datetime, limits: dict[str, float]) -> list[str]:
    serving = report.get("serving") or {}
    if serving and not serving.get("reachable", True):
        return [f"serving store {serving.get('store')} unreachable: {serving.get('error')}"]
    return []


PROBLEM_CHECKS: list[Check] = [
    source_problems,
    table_problems,
    reconcile_problems,
    broker_problems,
    outbox_problems,
    serving_problems,
]


def health_problems(
    report: dict[str, Any],
    *,
    now: datetime,
    max_sync_age_hours: float,
    max_waiting: int,
    max_outbox_lag_minutes: float = 15.0,
) -> list[str]:
    """What needs a data engineer's attention in a status report, one line each (empty: healthy).

    The source, broker or serving store not answering; per table (:func:`table_problems`) a sync run that
    stopped on it or died, a table never synced or silver older than ``max_sync_age_hours``; more than
    ``max_waiting`` events waiting on the broker for the ingest; API events older than
    ``max_outbox_lag_minutes`` waiting in the outbox for the relay. A source ahead of silver between two
    syncs is not a problem: it is what the next sync picks up.
    """
    limits = {
        "max_sync_age_hours": max_sync_age_hours,
        "max_waiting": max_waiting,
        "max_outbox_lag_minutes": max_outbox_lag_minutes,
    }
    return [problem for check in PROBLEM_CHECKS for problem in check(report, now, limits)]


def collect_status(settings: Settings) -> dict[str, Any]:
    source_check = source_report(settings)
    source = source_check.pop("counts")
    lake, events, marts = _lake_counts(settings)
    tables = {
        name: {
            "source": source.get(name),
            "bronze": lake.get(name, {}).get("bronze"),
            "silver": lake.get(name, {}).get("silver"),
            "last_sync_at": lake.get(name, {}).get("last_sync_at"),
            "last_run": lake.get(name, {}).get("last_run"),
            "in_flight": lake.get(name, {}).get("in_flight"),
            "in_sync": source.get(name) is not None and source.get(name) == lake.get(name, {}).get("silver"),
        }
        for name in load_source_contracts()
    }
    for name, last in reconcile_report(settings).items():
        if name in tables:
            tables[name]["reconcile"] = last
    now = datetime.now(UTC)
    report = {
        "generated_at": now.replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
        "source": source_check["url"],
        "source_check": source_check,
        "catalog": {"name": settings.catalog_name, "warehouse": settings.resolved_warehouse},
        "tables": tables,
        "events": events,
        "broker": broker_report(settings),
        "outbox": outbox_report(settings),
        "marts": marts,
        "serving": _serving(settings),
    }
    report["problems"] = health_problems(
        report,
        now=now,
        max_sync_age_hours=settings.sync_max_age_hours,
        max_waiting=settings.events_max_waiting,
        max_outbox_lag_minutes=settings.outbox_max_lag_minutes,
    )
    return report


def format_status(report: dict[str, Any]) -> str:
    source = report.get("source_check") or {}
    unreachable = "" if source.get("reachable", True) else f" unreachable: {source.get('error')}"
    lines = [
        f"source   {report['source']}{unreachable}",
        f"catalog  {report['catalog']['name']} at {report['catalog']['warehouse']}",
        "",
        f"{'table':<18}{'source':>10}{'bronze':>10}{'silver':>10}  {'last sync (UTC)':<22}",
    ]
    for name, row in report["tables"].items():
        cells = [("-" if row[k] is None else str(row[k])) for k in ("source", "bronze", "silver")]
        mark = "" if row["in_sync"] else "  (out of sync)"
        if row.get("in_flight"):
            mark += f"  (syncing: run {row['in_flight']['run_id']})"
        lines.append(f"{name:<18}{cells[0]:>10}{cells[1]:>10}{cells[2]:>10}  {row['last_sync_at'] or '-':<22}{mark}")
    reconciled = {name: row["reconcile"] for name, row in report["tables"].items() if row.get("reconcile")}
    if reconciled:
        lines.append("")
        lines.append(f"{'content':<18}{'differing':>10}{'pending':>10}  {'last reconciled (UTC)':<22}  status")
        for name, last in reconciled.items():
            lines.append(
                f"{name:<18}{last['rows_differing']:>10}{last['rows_pending']:>10}  {last['reconciled_at']:<22}"
                f"  {last['status']}"
            )
    events = report.get("events") or {}
    lines.append("")
    lines.append(f"events   bronze {events.get('events', '-')}   dead-lettered {events.get('dead_letter', '-')}")
    broker = report.get("broker") or {}
    lag = broker.get("ingest_lag") or {}
    waiting = f"   waiting for ingest {lag['waiting']}" if "waiting" in lag else ""
    lines.append(f"broker   {broker.get('bootstrap', '-')} reachable={broker.get('reachable')}{waiting}")
    outbox = report.get("outbox")
    if outbox is not None:
        lines.append(f"outbox   pending {outbox['pending']}   oldest waiting {outbox['lag_seconds']:.0f} s")
    marts = report.get("marts") or {}
    lines.append("marts    " + "   ".join(f"{name} {'-' if n is None else n}" for name, n in marts.items()))
    serving = report.get("serving") or {}
    refresh = serving.get("refresh")
    where = serving.get("store", "-")
    if not serving.get("reachable", True):
        lines.append(f"serving  {where} unreachable: {serving.get('error')}")
    elif refresh is None:
        lines.append(f"serving  {where}: nothing published yet")
    else:
        lines.append(f"serving  {where}: refresh {refresh['refresh_id']} as of {refresh['as_of']}, {refresh['rows']}")
    problems = report.get("problems")
    if problems is not None:
        lines.append("")
        lines.append("health   ok" if not problems else "problems:")
        lines.extend(f"  - {problem}" for problem in problems)
    return "\n".join(lines)
