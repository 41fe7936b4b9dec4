"""Reading the contact ledger: a customer's touches with their delivery states, marketing counts in the rolling
windows, and the evidence a regulator asks for (every touch in a period with the consent evidence and the
rule results at decision time).

One module for the API (serving/app/api/routes/ledger.py), the CLI (``mo campaigns evidence``), the send
decision's caps and the results marts to come: one query per question, not one per caller.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, case, func, or_, select

from mo.campaigns.sql import one_of
from mo.oltp.api_tables import AuditEntry
from mo.oltp.campaign_tables import Delivery, LedgerEntry
from mo.oltp.privacy import ConsentEvidence

LEDGER = cast(Table, LedgerEntry.__table__)
DELIVERIES = cast(Table, Delivery.__table__)
EVIDENCE = cast(Table, ConsentEvidence.__table__)
AUDIT = cast(Table, AuditEntry.__table__)
WEEK = timedelta(days=7)
MONTH = timedelta(days=30)
CHUNK = 5000
# The columns of an evidence row, in order (CSV header; JSON keys). JSON-valued columns are JSON text in CSV.
EVIDENCE_COLUMNS = (
    "ledger_id",
    "touch_key",
    "attempt",
    "decided_at",
    "source",
    "campaign_id",
    "occurrence",
    "customer_id",
    "channel",
    "purpose",
    "product_line",
    "priority",
    "decision",
    "reason",
    "not_before",
    "message_id",
    "consent_evidence",
    "rule_results",
    "deliveries",
)
JSON_COLUMNS = ("consent_evidence", "rule_results", "deliveries")
TOUCH_COLUMNS = (
    LEDGER.c.id,
    LEDGER.c.touch_key,
    LEDGER.c.attempt,
    LEDGER.c.decided_at,
    LEDGER.c.source,
    LEDGER.c.campaign_id,
    LEDGER.c.occurrence,
    LEDGER.c.customer_id,
    LEDGER.c.channel,
    LEDGER.c.purpose,
    LEDGER.c.product_line,
    LEDGER.c.priority,
    LEDGER.c.decision,
    LEDGER.c.reason,
    LEDGER.c.not_before,
    LEDGER.c.message_id,
    LEDGER.c.detail,
)


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def window_counts(conn: Connection, customer_ids: Sequence[int], now: datetime) -> dict[int, dict[str, list[int]]]:
    """customer -> channel -> [marketing sends in (now - 7 x 24 h, now], in (now - 30 x 24 h, now]], from the
    ledger's send rows (rolling windows to the microsecond, not calendar days)."""
    now = _naive(now)
    c = LEDGER.c
    found: dict[int, dict[str, list[int]]] = {}
    ids = list(customer_ids)
    for start in range(0, len(ids), CHUNK):
        rows = conn.execute(
            select(c.customer_id, c.channel, func.sum(case((c.decided_at > now - WEEK, 1), else_=0)), func.count())
            .where(
                one_of(conn, c.customer_id, ids[start : start + CHUNK]),
                c.decided_at > now - MONTH,
                c.decided_at <= now,
                c.decision == "send",
                c.purpose == "marketing",
            )
            .group_by(c.customer_id, c.channel)
        )
        for cid, channel, week, month in rows:
            found.setdefault(int(cid), {})[channel] = [int(week or 0), int(month or 0)]
    return found


def deliveries_of(conn: Connection, message_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """message id -> its delivery states in order."""
    found: dict[str, list[dict[str, Any]]] = {}
    ids = [m for m in message_ids if m]
    d = DELIVERIES.c
    for start in range(0, len(ids), CHUNK):
        rows = conn.execute(
            select(d.message_id, d.state, d.at, d.provider, d.provider_message_id, d.detail)
            .where(d.message_id.in_(ids[start : start + CHUNK]))
            .order_by(d.message_id, d.at, d.id)
        )
        for row in rows:
            found.setdefault(row.message_id, []).append(
                {
                    "state": row.state,
                    "at": row.at,
                    "provider": row.provider,
                    "provider_message_id": row.provider_message_id,
                    "detail": row.detail,
                }
            )
    return found


def touches(
    conn: Connection,
    customer_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, int] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The customer's ledger rows, newest first (decided_at, id), each with ``detail`` parsed and its
    ``deliveries``. ``after`` is the (decided_at, id) of the last row of the previous page."""
    query = select(*TOUCH_COLUMNS).where(LEDGER.c.customer_id == customer_id)
    if since is not None:
        query = query.where(LEDGER.c.decided_at >= _naive(since))
    if until is not None:
        query = query.where(LEDGER.c.decided_at < _naive(until))
    if after is not None:
        at, last = _naive(after[0]), after[1]
        query = query.where(or_(LEDGER.c.decided_at < at, and_(LEDGER.c.decided_at == at, LEDGER.c.id < last)))
    query = query.order_by(LEDGER.c.decided_at.desc(), LEDGER.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = [dict(r._mapping) for r in conn.execute(query)]
    states = deliveries_of(conn, [r["message_id"] for r in rows if r["message_id"]])
    for row in rows:
        row["detail"] = json.loads(row["detail"])
        row["deliveries"] = states.get(row["message_id"], []) if row["message_id"] else []
    return rows


def _evidence_rows(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    e = EVIDENCE.c
    found: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), CHUNK):
        rows = conn.execute(
            select(
                e.id,
                e.channel,
                e.purpose,
                e.status,
                e.text_version,
                e.source,
                e.reason,
                e.decided_at,
                e.actor,
                e.request_id,
            ).where(e.id.in_(ids[start : start + CHUNK]))  # fmt: skip
        )
        for row in rows:
            found[int(row.id)] = {
                "evidence_id": int(row.id),
                "channel": row.channel,
                "purpose": row.purpose,
                "status": row.status,
                "text_version": row.text_version,
                "source": row.source,
                "reason": row.reason,
                "decided_at": row.decided_at,
                "actor": row.actor,
                "request_id": row.request_id,
            }
    return found


def evidence(conn: Connection, customer_id: int, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Every decision about a touch to the customer decided in [since, until), oldest first, with the consent
    evidence each channel's consent rested on at decision time (the ``consent_evidence`` row whose id the
    decision recorded; none for a decision the core systems made without one) and every rule's result."""
    rows = list(reversed(touches(conn, customer_id, since=since, until=until)))
    wanted: set[int] = set()
    for row in rows:
        for value in row["detail"].get("consent", {}).values():
            if isinstance(value, list) and len(value) == 2 and value[1]:
                wanted.add(int(value[1]))
    proofs = _evidence_rows(conn, sorted(wanted))
    out = []
    for row in rows:
        detail = row["detail"]
        purpose = detail.get("purpose", row["purpose"])
        consent = []
        for channel, value in detail.get("consent", {}).items():
            if not isinstance(value, list) or len(value) != 2:
                continue
            status, version = value
            consent.append(
                {
                    "channel": channel,
                    "purpose": purpose,
                    "status_at_decision": status,
                    "version": version,
                    "read_from": detail["consent"].get("from"),
                    "evidence": proofs.get(int(version)) if version else None,
                }
            )
        out.append(
            {
                "ledger_id": int(row["id"]),
                **{k: row[k] for k in EVIDENCE_COLUMNS[1:16]},
                "consent_evidence": consent,
                "rule_results": detail,
                "deliveries": row["deliveries"],
            }
        )
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps([{k: row[k] for k in EVIDENCE_COLUMNS} for row in rows], default=_plain, ensure_ascii=False)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """One line per decision; the JSON-valued columns (consent evidence, rule results, deliveries) as JSON text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EVIDENCE_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                json.dumps(row[k], default=_plain, ensure_ascii=False, separators=(",", ":"))
                if k in JSON_COLUMNS
                else ("" if row[k] is None else _plain(row[k]))
                for k in EVIDENCE_COLUMNS
            ]
        )
    return buffer.getvalue()


def record_export(conn: Connection, *, actor: str, role: str | None, request_id: str, customer_id: int,
                  resource: str, detail: str) -> None:  # fmt: skip
    """The audit entry of an evidence export made outside the API (the CLI); the API writes its own."""
    conn.execute(
        AUDIT.insert().values(
            at=datetime.now(UTC).replace(tzinfo=None),
            request_id=request_id,
            actor=actor[:80],
            role=role,
            action="contact_ledger.evidence",
            resource=resource[:200],
            customer_id=customer_id,
            outcome="ok",
            status_code=200,
            detail=detail[:1000],
        )
    )
