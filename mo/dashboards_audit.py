"""The platform's audit of Superset: who opened which dashboard, who ran which SQL, who took data out.

Superset records its requests in its own metadata database: the event log (table ``logs``, one row per logged
API call, written in the request) and SQL Lab's queries (table ``query``: the SQL, the user, the status, the
rows). :func:`sync_audit` (``mo dashboards audit-sync``) copies what the platform audits into its own audit log
(``audit_log`` in the source database: the table the serving API writes and ``GET /v1/audit`` reads):

==========================  =====================================================================================
action                      from
==========================  =====================================================================================
``dashboards.view``         ``DashboardRestApi.get`` with a dashboard id (the dashboard page loads it once per open)
``dashboards.sql``          a finished SQL Lab query: its SQL (digit runs and non-ASCII literals masked, truncated),
                            database, schema, rows, and the error of a refused or failed one
``dashboards.export``       exports (dashboards, charts, datasets, SQL Lab CSV) and chart data as CSV or Excel
``dashboards.chart_rows``   chart data of row-level kinds (samples, drill to detail, the query results view)
==========================  =====================================================================================

Chart data that only draws a dashboard's charts is not copied: the dashboard view stands for it. Which events
are audited is one rule (:func:`mo.superset_events.audited_as`) that Superset's event logger applies too
(dashboards/event_log.py): Superset writes only those events, not a row per chart drawn.

Why a copy and not an ``EVENT_LOGGER`` writing straight to the audit log: Superset runs in its own
environment (SQLAlchemy 1.4, no MariaDB driver), so it could not share the platform's audit module; it would need a
write login on the platform's OLTP database, and a slow or unreachable audit database would slow or fail
dashboards. Superset already commits its log in the request's transaction; copying it by id watermark loses
nothing while the audit database is down and is idempotent: each entry's ``request_id`` is
``superset:logs:<id>`` or ``superset:query:<id>``, and a sync starts after the highest id of each kind already
copied. SQL Lab queries are copied once finished: the watermark stops before one still running (copied as
``running`` once older than :data:`RUNNING_GIVE_UP_S`). Run one sync at a time (the scheduler's job, or by
hand); two at once could copy an entry twice.

Clear PII never reaches the audit log: SQL text may hold a phone or ID number typed into a WHERE clause, so every
run of 11 or more digits (phones, ID numbers, bank cards) is masked the way :func:`mo.pii.mask` shows phones and
ID numbers, 17 digits with an X check digit as an ID number, and a quoted literal with non-ASCII characters (a
name, an address) keeps its first character only. Other request fields (Superset logs the whole request body) are
not copied.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, create_engine, insert, select, text
from sqlalchemy.engine import Engine

from mo.oltp.api_tables import AuditEntry
from mo.pii import mask
from mo.superset_events import CHART_ROWS, EXPORT, VIEW, audited_as

AUDIT: Table = AuditEntry.__table__  # type: ignore[assignment]
DETAIL_MAX = 1000  # the audit log's detail column
SQL_TEXT_MAX = 700  # of the detail, for the SQL; the rest for the database, rows and the error
BATCH = 2000
RUNNING_GIVE_UP_S = 3600
FINISHED = {"success": ("ok", 200), "failed": ("error", 500), "stopped": ("error", 499), "timed_out": ("error", 504)}
ROLES = {"Admin": "admin", "mo_analyst": "analyst", "mo_marketer": "marketer"}
_LONG_DIGITS = re.compile(r"(?<![0-9A-Za-z_])(\d{17}[0-9Xx]|\d{11,})(?![0-9A-Za-z_])")
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


def mask_sql(sql: str) -> str:
    """SQL text as the audit may keep it: long digit runs and non-ASCII literals masked."""

    def digits(m: re.Match[str]) -> str:
        run = m.group(1)
        if len(run) == 11 or (len(run) == 13 and run.startswith("86")):
            return mask("phone", run) or ""
        if len(run) in (15, 18):
            return mask("id_number", run) or ""
        return run[:3] + "*" * (len(run) - 7) + run[-4:]

    def literal(m: re.Match[str]) -> str:
        value = m.group(1)
        if value.isascii():
            return m.group(0)
        return "'" + (mask("name", value) or "") + "'"

    return _LITERAL.sub(literal, _LONG_DIGITS.sub(digits, sql))


def superset_metadata_url(home: Path) -> str:
    """Superset's metadata database, as dashboards/superset_config.py reads it."""
    return os.environ.get("SUPERSET_DATABASE_URL") or f"sqlite:///{home / 'superset' / 'superset.db'}"


@dataclass
class SyncResult:
    copied: dict[str, int] = field(default_factory=lambda: {"logs": 0, "query": 0})
    skipped: dict[str, int] = field(default_factory=lambda: {"logs": 0, "query": 0})
    watermark: dict[str, int] = field(default_factory=lambda: {"logs": 0, "query": 0})

    def as_dict(self) -> dict[str, Any]:
        return {"copied": self.copied, "skipped": self.skipped, "watermark": self.watermark}


def _watermark(audit: Engine, kind: str) -> int:
    prefix = f"superset:{kind}:"
    with audit.connect() as conn:
        last = conn.execute(
            select(AUDIT.c.request_id).where(AUDIT.c.request_id.like(f"{prefix}%")).order_by(AUDIT.c.id.desc()).limit(1)
        ).scalar_one_or_none()
    return int(last.removeprefix(prefix)) if last else 0


def _people(superset: Engine) -> dict[int, tuple[str, str | None]]:
    """Superset user id -> (username, product role)."""
    with superset.connect() as conn:
        users: dict[int, str] = {r[0]: r[1] for r in conn.execute(text("SELECT id, username FROM ab_user"))}
        roles: dict[int, list[str]] = {}
        for user_id, name in conn.execute(
            text("SELECT ur.user_id, r.name FROM ab_user_role ur JOIN ab_role r ON r.id = ur.role_id")
        ):
            roles.setdefault(user_id, []).append(name)
    out = {}
    for user_id, username in users.items():
        names = roles.get(user_id, [])
        role = next((ROLES[n] for n in ROLES if n in names), names[0] if names else None)
        out[user_id] = (username, role)
    return out


def _names(superset: Engine, table: str, column: str) -> dict[int, str]:
    with superset.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(text(f"SELECT id, {column} FROM {table}"))}  # noqa: S608 (fixed names)


def _naive_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=None)
    return datetime.now(UTC).replace(tzinfo=None)


def _entry(kind: str, row_id: int, who: tuple[str, str | None] | None, **values: Any) -> dict[str, Any]:
    username, role = who if who else (None, None)
    detail = values.pop("detail", None)
    return {
        "request_id": f"superset:{kind}:{row_id}",
        "actor": f"user:{username}"[:80] if username else "anonymous",
        "role": role,
        "customer_id": None,
        "detail": detail[:DETAIL_MAX] if detail else None,
        **values,
    }


def _log_entry(row: Any, people: dict, dashboards: dict, charts: dict) -> dict[str, Any] | None:
    """The audit entry of one Superset event log row, or None when it is not one the platform audits."""
    try:
        payload = json.loads(row.json) if row.json else {}
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    action, path = row.action or "", str(payload.get("path") or "")[:120]
    name = audited_as(action, payload)
    chart = f"chart {row.slice_id} {charts.get(row.slice_id, '?')}" if row.slice_id else f"chart data {path}"
    if name == VIEW and row.dashboard_id:
        resource, detail = f"dashboard {row.dashboard_id} {dashboards.get(row.dashboard_id, '?')}", None
    elif name == EXPORT and action.startswith("ChartDataRestApi."):
        resource, detail = chart, f"chart data as {str(payload.get('result_format') or payload.get('format')).lower()}"
    elif name == EXPORT:
        ids = payload.get("rison")  # the exported objects' ids (dashboards, charts, datasets)
        resource = f"{action} {path}"
        detail = f"ids {json.dumps(ids)[:200]}" if isinstance(ids, list) else None
    elif name == CHART_ROWS:
        resource = chart
        detail = f"result type {str(payload.get('result_type') or payload.get('type')).lower()}"
    else:
        return None
    return _entry(
        "logs", row.id, people.get(row.user_id), at=_naive_utc(row.dttm), action=name, resource=resource[:200],
        outcome="ok", status_code=200, detail=detail,
    )  # fmt: skip


def _query_entry(row: Any, people: dict, databases: dict) -> dict[str, Any]:
    outcome, status = FINISHED.get(row.status, ("error", 500))
    error = (row.error_message or "").strip()
    if outcome == "error" and any(w in error for w in ("DML", "not allowed", "permission", "access")):
        outcome, status = "denied", 403
    elif row.status == "failed":
        outcome, status = "invalid", 400
    if row.status not in FINISHED:
        outcome, status = "error", 500
        error = error or f"still {row.status} after {RUNNING_GIVE_UP_S} s"
    sql = mask_sql(row.sql or "")
    sql = sql if len(sql) <= SQL_TEXT_MAX else sql[: SQL_TEXT_MAX - 1] + "…"
    parts = [f"sql: {sql}"]
    if row.rows is not None and outcome == "ok":
        parts.append(f"rows: {row.rows}")
    if error:
        parts.append(f"error: {mask_sql(error)}")
    at = datetime.fromtimestamp(float(row.start_time) / 1000, UTC) if row.start_time else None
    database = databases.get(row.database_id, "?")
    return _entry(
        "query", row.id, people.get(row.user_id), at=_naive_utc(at), action="dashboards.sql",
        resource=f"database {row.database_id} {database} schema {row.schema or '-'}"[:200], outcome=outcome,
        status_code=status, detail="; ".join(parts),
    )  # fmt: skip


def sync_audit(audit: Engine, superset: Engine, *, batch: int = BATCH) -> SyncResult:
    """Copy Superset's audited events and finished SQL Lab queries after the watermarks into the audit log."""
    result = SyncResult()
    people = _people(superset)
    dashboards = _names(superset, "dashboards", "dashboard_title")
    charts = _names(superset, "slices", "slice_name")
    databases = _names(superset, "dbs", "database_name")

    after = _watermark(audit, "logs")
    while True:
        with superset.connect() as conn:
            rows = conn.execute(
                text("SELECT id, action, user_id, dashboard_id, slice_id, json, dttm FROM logs WHERE id > :after "
                     "ORDER BY id LIMIT :n"), {"after": after, "n": batch},
            ).all()  # fmt: skip
        if not rows:
            break
        entries = [e for e in (_log_entry(r, people, dashboards, charts) for r in rows) if e is not None]
        # The watermark is the last copied entry: rows after it that are not audited are read again next time,
        # which writes nothing.
        if entries:
            with audit.begin() as conn:
                conn.execute(insert(AUDIT), entries)
        result.copied["logs"] += len(entries)
        result.skipped["logs"] += len(rows) - len(entries)
        after = rows[-1].id
        if len(rows) < batch:
            break
    result.watermark["logs"] = _watermark(audit, "logs")

    after = _watermark(audit, "query")
    now_ms = time.time() * 1000
    while True:
        with superset.connect() as conn:
            rows = conn.execute(
                text("SELECT id, user_id, database_id, schema, sql, status, rows, error_message, start_time "
                     "FROM query WHERE id > :after ORDER BY id LIMIT :n"), {"after": after, "n": batch},
            ).all()  # fmt: skip
        ready = []
        for row in rows:
            started = float(row.start_time or 0)
            if row.status not in FINISHED and now_ms - started < RUNNING_GIVE_UP_S * 1000:
                break  # still running: stop before it so that it is copied once, finished
            ready.append(row)
        if ready:
            with audit.begin() as conn:
                conn.execute(insert(AUDIT), [_query_entry(r, people, databases) for r in ready])
        result.copied["query"] += len(ready)
        if len(ready) < len(rows) or len(rows) < batch:
            break
        after = rows[-1].id
    result.watermark["query"] = _watermark(audit, "query")
    return result


def sync_audit_for(settings: Any) -> SyncResult:
    """:func:`sync_audit` between this install's source database and Superset's metadata database."""
    from mo.oltp.db import make_engine

    home = Path(settings.home)
    url = superset_metadata_url(home)
    if url.startswith("sqlite") and not Path(url.split("///", 1)[-1]).exists():
        from mo.dashboards import DashboardError

        raise DashboardError(f"no Superset metadata database at {url} (run `make dashboards` first)")
    audit, superset = make_engine(settings.resolved_source_url), create_engine(url)
    try:
        return sync_audit(audit, superset)
    finally:
        audit.dispose()
        superset.dispose()
