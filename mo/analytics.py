"""The analytics marts the dashboards read (schemas/serving/analytics.yaml), published atomically.

``publish_analytics`` computes every table of the contract and hands the batches to the serving store's
publish (:func:`mo.serving_store.publish_batches`), so each refresh lands in its own tables and the views in
schema ``analytics`` move to it in one transaction: a dashboard never shows a half-refreshed day.

Where the figures come from (this first cut; see docs/dashboards.md for what moves into dbt):
- claims: the source database's claims, policies (the policy's organisation) and products, with the claim
  SLA of the serving API (3 working days to the review, 5 from approval to payment, ``mo.workdays``);
- customers: consents (latest decision per channel) and in-force policies from the source, tiers from the
  serving store's current customer_profile when one is published;
- platform health: the ``mo status`` report (rows per layer, last sync and gate, reconcile, events and dead
  letters, outbox, serving refresh, problems).

Nothing here holds a customer's identity: every table is an aggregate (tests/mo/test_analytics.py).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import text

from mo.serving_store.contract import ARROW_TYPES, ServingContract, load_analytics_contract
from mo.serving_store.publish import PublishResult, publish_batches
from mo.serving_store.store import SqlServingStore
from mo.workdays import CLAIM_PAYMENT_SLA_WORKING_DAYS, CLAIM_REVIEW_SLA_WORKING_DAYS, working_days_between

log = logging.getLogger(__name__)

# The serving API's claim SLA (serving/app/services/claims.py: REVIEW_ACTIONS, AT_RISK_WORKING_DAYS_LEFT).
REVIEW_ACTIONS = ("under_review_at", "docs_requested_at", "approved_at", "rejected_at")
AT_RISK_WORKING_DAYS_LEFT = 1
AGE_BANDS = ((1, "0-1"), (3, "2-3"), (5, "4-5"), (10, "6-10"))
CONSENT_CHANNELS = ("app_push", "sms", "wechat", "phone", "email")


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


@dataclass(frozen=True)
class Organisation:
    org_id: int
    name: str
    path: str  # '/1/<branch>/<sub_branch>/'
    branch_name: str


def organisations(conn: Any) -> dict[int, Organisation]:
    rows = conn.execute(text("SELECT id, name, level, parent_id FROM organizations WHERE deleted_at IS NULL")).all()
    by_id = {r.id: r for r in rows}
    result: dict[int, Organisation] = {}
    for r in rows:
        chain: list[Any] = []
        node = r
        while node is not None and len(chain) < 10:
            chain.append(node)
            node = by_id.get(node.parent_id) if node.parent_id is not None else None
        chain.reverse()
        branch = next((n for n in chain if n.level == "branch"), chain[0])
        path = "/" + "/".join(str(n.id) for n in chain) + "/"
        result[r.id] = Organisation(r.id, r.name, path, branch.name)
    return result


def default_as_of(conn: Any) -> date:
    """The source's own today: the day of its latest claim change (a demo world generated for an earlier date
    would otherwise show every open claim as breached); the real today when that is later."""
    latest = _dt(conn.execute(text("SELECT MAX(updated_at) FROM claims")).scalar())
    today = datetime.now(UTC).date()
    return min(today, latest.date()) if latest is not None else today


# --- claims -------------------------------------------------------------------------------------------------


def _age_band(days: int) -> str:
    for upper, label in AGE_BANDS:
        if days <= upper:
            return label
    return "11+"


def _clock(start: date, end: date | None, limit: int, as_of: date) -> tuple[int, bool, bool]:
    """(working days used, breached, at risk) of one SLA clock on ``as_of``."""
    used = working_days_between(start, end or as_of)
    breached = used > limit
    at_risk = end is None and limit - AT_RISK_WORKING_DAYS_LEFT <= used <= limit
    return used, breached, at_risk


def claim_rows(conn: Any, orgs: dict[int, Organisation], as_of: date) -> tuple[list[dict], list[dict]]:
    """(claims_open, claims_sla_daily) rows from the source's claims reported up to ``as_of``."""
    rows = conn.execute(
        text(
            "SELECT c.status, c.amount_claimed, c.reported_at, c.under_review_at, c.docs_requested_at, "
            "c.approved_at, c.rejected_at, c.paid_at, p.org_id, pr.line AS product_line "
            "FROM claims c JOIN policies p ON p.id = c.policy_id LEFT JOIN products pr ON pr.id = p.product_id "
            "WHERE c.deleted_at IS NULL"
        )
    )
    open_: dict[tuple, Counter] = defaultdict(Counter)
    daily: dict[tuple, Counter] = defaultdict(Counter)
    for r in rows:
        reported = _dt(r.reported_at)
        if reported is None or reported.date() > as_of or r.org_id not in orgs:
            continue
        line = r.product_line or "unknown"
        started = [t for t in (_dt(getattr(r, a)) for a in REVIEW_ACTIONS) if t is not None]
        review_end = min(started).date() if started else None
        review_used, review_breached, review_risk = _clock(
            reported.date(), review_end, CLAIM_REVIEW_SLA_WORKING_DAYS, as_of
        )
        approved = _dt(r.approved_at)
        paid = _dt(r.paid_at)
        pay: tuple[int, bool, bool] | None = None
        if approved is not None:
            pay = _clock(approved.date(), paid.date() if paid else None, CLAIM_PAYMENT_SLA_WORKING_DAYS, as_of)
        is_open = r.status not in ("paid", "rejected")
        breached = review_breached or (pay is not None and pay[1])
        at_risk = not breached and (review_risk or (pay is not None and pay[2]))

        day = daily[(reported.date(), r.org_id, line)]
        day["claims"] += 1
        day["open_claims"] += is_open
        if review_end is not None:
            day["reviewed"] += 1
            day["review_working_days"] += review_used
            day["review_within_sla"] += not review_breached
        day["review_breached"] += review_breached
        day["review_at_risk"] += review_risk
        if pay is not None:
            day["approved"] += 1
            day["payment_breached"] += pay[1]
            day["payment_at_risk"] += pay[2]
            if paid is not None:
                day["paid"] += 1
                day["payment_working_days"] += pay[0]
                day["payment_within_sla"] += not pay[1]
        if is_open:
            age = working_days_between(reported.date(), as_of)
            bucket = open_[(r.org_id, line, r.status, _age_band(age))]
            bucket["open_claims"] += 1
            bucket["at_risk"] += at_risk
            bucket["breached"] += breached
            bucket["amount_claimed_cents"] += round(float(r.amount_claimed or 0) * 100)

    def org_columns(org_id: int) -> dict[str, Any]:
        o = orgs[org_id]
        return {"org_id": org_id, "org_path": o.path, "org_name": o.name, "branch_name": o.branch_name}

    open_rows = [
        {
            "as_of_date": as_of,
            **org_columns(org_id),
            "product_line": line,
            "status": status,
            "age_band": band,
            "open_claims": c["open_claims"],
            "at_risk": c["at_risk"],
            "breached": c["breached"],
            "amount_claimed": c["amount_claimed_cents"] / 100,
        }
        for (org_id, line, status, band), c in sorted(open_.items())
    ]
    measures = [c.name for c in load_analytics_contract().tables["claims_sla_daily"].columns][6:]
    daily_rows = [
        {"reported_date": day, **org_columns(org_id), "product_line": line, **{m: c[m] for m in measures}}
        for (day, org_id, line), c in sorted(daily.items())
    ]
    return open_rows, daily_rows


# --- customers ----------------------------------------------------------------------------------------------


def _tiers(settings: Any) -> dict[int, str]:
    """customer_id -> tier from the serving store's current customer_profile (empty before a publish)."""
    from mo.serving_store.store import open_store

    try:
        store = open_store(settings)
    except Exception:  # noqa: BLE001 - no serving store configured or reachable: tiers stay 'unpublished'
        return {}
    try:
        store.ensure_schema()
        if store.current_refresh() is None:
            return {}
        with store.engine.connect() as conn:
            rows = conn.execute(text(f"SELECT customer_id, customer_tier FROM {store.qualified('customer_profile')}"))
            return {r[0]: r[1] for r in rows}
    finally:
        store.dispose()


def customer_rows(conn: Any, tiers: dict[int, str], as_of: date) -> tuple[list[dict], list[dict]]:
    """(customer_consent, customer_lines) rows."""
    province = {
        r.id: r.province for r in conn.execute(text("SELECT id, province FROM customers WHERE deleted_at IS NULL"))
    }
    latest: dict[tuple[int, str], tuple[datetime, str]] = {}
    for r in conn.execute(
        text("SELECT customer_id, channel, status, decided_at FROM consents WHERE deleted_at IS NULL")
    ):
        decided = _dt(r.decided_at) or datetime.min
        key = (r.customer_id, r.channel)
        if key not in latest or decided >= latest[key][0]:
            latest[key] = (decided, r.status)
    consent: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for p in sorted(set(province.values())):
        for channel in CONSENT_CHANNELS:
            consent[(p, channel)]["customers"] = 0
    for customer_id, p in province.items():
        for channel in CONSENT_CHANNELS:
            c = consent[(p, channel)]
            c["customers"] += 1
            c["opted_in"] += latest.get((customer_id, channel), (None, ""))[1] == "opt_in"
    lines: dict[int, set[str]] = defaultdict(set)
    for r in conn.execute(
        text(
            "SELECT p.customer_id, pr.line, p.start_date, p.end_date FROM policies p "
            "JOIN products pr ON pr.id = p.product_id WHERE p.deleted_at IS NULL AND p.status = 'in_force'"
        )
    ):
        lines[r.customer_id].add(r.line)
    held: Counter = Counter()
    for customer_id, p in province.items():
        label = ",".join(sorted(lines.get(customer_id, ()))) or "none"
        held[(p, label, tiers.get(customer_id, "unpublished"))] += 1
    consent_rows = [
        {"province": p, "channel": ch, "customers": c["customers"], "opted_in": c["opted_in"]}
        for (p, ch), c in sorted(consent.items())
    ]
    line_rows = [
        {"province": p, "lines_held": label, "customer_tier": tier, "customers": n}
        for (p, label, tier), n in sorted(held.items())
    ]
    return consent_rows, line_rows


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
    outbox = report.get("outbox") or {}
    refresh = (report.get("serving") or {}).get("refresh") or {}
    published = _dt(refresh.get("published_at")) if refresh.get("published_at") not in (None, "None") else None
    figures = {
        "events_landed": events.get("events"),
        "dead_letters": events.get("dead_letter"),
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
    settings: Any, *, status_report: dict[str, Any], as_of: date | None = None
) -> tuple[date, dict[str, list[pa.RecordBatch]]]:
    """The tables the platform computes in Python, as Arrow batches: from the source, the serving store and
    ``status_report`` (the contract's tables with a ``model`` come from the lake: :func:`lake_tables`)."""
    from mo.oltp.db import make_engine

    contract = load_analytics_contract()
    engine = make_engine(settings.resolved_source_url)
    try:
        with engine.connect() as conn:
            as_of = as_of or default_as_of(conn)
            orgs = organisations(conn)
            claims_open, claims_daily = claim_rows(conn, orgs, as_of)
            consent, lines = customer_rows(conn, _tiers(settings), as_of)
    finally:
        engine.dispose()
    platform_tables, platform_metrics, platform_problems = health_rows(status_report)
    rows = {
        "claims_open": claims_open,
        "claims_sla_daily": claims_daily,
        "customer_consent": consent,
        "customer_lines": lines,
        "platform_tables": platform_tables,
        "platform_metrics": platform_metrics,
        "platform_problems": platform_problems,
    }
    return as_of, {name: _batch(contract, name, r) for name, r in rows.items() if name in contract.tables}


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
    (:func:`lake_tables`; ``spark`` or the process's session). Without the lake those are published empty."""
    contract = contract or load_analytics_contract()
    if status_report is None:
        if with_lake:
            from mo.status import collect_status

            status_report = collect_status(settings)
        else:
            status_report = light_status(settings)
    as_of, tables = analytics_tables(settings, status_report=status_report, as_of=as_of)
    computed: dict[str, Iterable[pa.RecordBatch] | None] = {n: b for n, b in tables.items() if n in contract.tables}
    snapshots: dict[str, int | None] = {}
    if with_lake and any(t.model for t in contract.tables.values()):
        if spark is None:
            from spark_jobs.session import get_spark

            spark = get_spark(settings, app_name="mo-analytics-publish")
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
