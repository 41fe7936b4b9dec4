"""Consent and contact preferences: written to the source and to the hot record, fail-safe.

The order (see mo/hot_record.py for the record itself):

1. in the database transaction: lock the customer's row (one writer per customer at a time, so evidence
   ids grow in commit order per customer), write the evidence, the synced ``consents`` row, the outbox
   event and the audit entry;
2. a withdrawal (or a preference change, marked *pending*) is written to Redis **before** the commit. If
   Redis does not answer, the request fails with 503 and the transaction is rolled back: nothing was
   committed, and the customer is told the withdrawal did not happen (they retry) rather than being told
   it did while campaigns could not see it;
3. after the commit, the committed state is copied to Redis (:func:`mo.hot_record.sync_from_source`). A
   grant reaches Redis only here; if Redis fails at this point the grant stands in the source, and Redis
   keeps the older, stricter state (no marketing) until the next write or ``mo hot rebuild``: the answer
   says so in ``hot_record: "stale"``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import Connection, Engine, insert, select, update

from app.core.context import request_id_var
from app.core.errors import ApiError
from app.services.audit import utcnow
from mo import hot_record
from mo.oltp.ids import allocate_id
from mo.oltp.models import Consent, Customer
from mo.oltp.outbox import add_event, new_event
from mo.oltp.privacy import ConsentEvidence, ContactPreference, ErasureRequest

log = logging.getLogger("app.contact")
CUSTOMERS = Customer.__table__
CONSENTS = Consent.__table__
EVIDENCE = ConsentEvidence.__table__
PREFS = ContactPreference.__table__
ERASURES = ErasureRequest.__table__
EVENT_SOURCE = {"app": "app", "wechat": "wechat"}  # consent source -> event envelope source; else "core"


def redis_unavailable(exc: Exception, what: str) -> ApiError:
    return ApiError(
        503,
        f"hot contact record (Redis) unavailable: {type(exc).__name__}; {what} was not recorded, retry later",
        headers={"Retry-After": "5"},
    )


def lock_customer(conn: Connection, customer_id: int) -> Any:
    """The live customer row, locked for this transaction (404 if there is none)."""
    row = conn.execute(
        select(CUSTOMERS.c.id, CUSTOMERS.c.deleted_at).where(CUSTOMERS.c.id == customer_id).with_for_update()
    ).first()
    if row is None or row.deleted_at is not None:
        raise ApiError(404, f"customer {customer_id} not found")
    return row


def is_erased(conn: Connection, customer_id: int) -> bool:
    return (
        conn.execute(
            select(ERASURES.c.id).where(ERASURES.c.customer_id == customer_id, ERASURES.c.status == "completed")
        ).first()
        is not None
    )


def record_decision(
    conn: Connection,
    *,
    customer_id: int,
    channel: str,
    purpose: str,
    status: str,
    text_version: str,
    source: str,
    actor: str,
    reason: str = "customer",
    at: datetime | None = None,
) -> int:
    """Evidence row, and for marketing the synced ``consents`` row (latest decision per channel), and the
    consent_changed event; all in the caller's transaction. Returns the evidence id (the version)."""
    at = at or utcnow()
    evidence_id = conn.execute(
        insert(EVIDENCE).values(
            customer_id=customer_id,
            channel=channel,
            purpose=purpose,
            status=status,
            text_version=text_version,
            source=source,
            reason=reason,
            decided_at=at,
            actor=actor,
            request_id=request_id_var.get() or "-",
        )
    ).inserted_primary_key[0]
    if purpose == "marketing":
        current = conn.execute(
            select(CONSENTS.c.id)
            .where(
                CONSENTS.c.customer_id == customer_id, CONSENTS.c.channel == channel, CONSENTS.c.deleted_at.is_(None)
            )
            .order_by(CONSENTS.c.decided_at.desc(), CONSENTS.c.id.desc())
        ).first()
        values = {"status": status, "decided_at": at, "source": source, "updated_at": at}
        if current is not None:
            conn.execute(update(CONSENTS).where(CONSENTS.c.id == current.id).values(**values))
        else:
            conn.execute(
                insert(CONSENTS).values(
                    id=allocate_id(conn, "consents"),
                    customer_id=customer_id,
                    channel=channel,
                    created_at=at,
                    deleted_at=None,
                    **values,
                )
            )
    add_event(
        conn,
        new_event(
            "consent_changed",
            customer_id=customer_id,
            source=EVENT_SOURCE.get(source, "core"),
            occurred_at=at,
            payload={
                "channel": channel,
                "purpose": purpose,
                "status": status,
                "text_version": text_version,
                "source": source,
            },
        ),
    )
    return int(evidence_id)


def sync_after_commit(source: Engine, client: redis.Redis, prefix: str, customer_id: int) -> str:
    """Copy the committed state to the hot record: "current", or "stale" if Redis did not answer (it then
    keeps its older, stricter state; the source is right and a rebuild or the next write repairs it)."""
    try:
        with source.connect() as conn:
            hot_record.sync_from_source(conn, client, prefix, customer_id)
        return "current"
    except redis.RedisError as exc:
        log.warning("hot record of customer %s not updated after commit: %s", customer_id, type(exc).__name__)
        return "stale"


def current_consents(conn: Connection, customer_id: int) -> list[dict[str, Any]]:
    """Each (channel, purpose) the customer decided on, with its latest decision and evidence."""
    state = hot_record.source_states(conn, [customer_id])[customer_id]
    marketing = {
        row.channel: row
        for row in conn.execute(
            select(CONSENTS.c.channel, CONSENTS.c.status, CONSENTS.c.decided_at, CONSENTS.c.source)
            .where(CONSENTS.c.customer_id == customer_id, CONSENTS.c.deleted_at.is_(None))
            .order_by(CONSENTS.c.decided_at, CONSENTS.c.id)
        )
    }
    evidence = {
        row.id: row
        for row in conn.execute(
            select(EVIDENCE).where(EVIDENCE.c.id.in_([v for (_, v) in state.consents.values() if v]))
        )
    }
    items = []
    for (channel, purpose), (status, version) in sorted(state.consents.items()):
        proof = evidence.get(version)
        row = marketing.get(channel) if purpose == "marketing" else None
        items.append(
            {
                "channel": channel,
                "purpose": purpose,
                "status": status,
                "decided_at": row.decided_at if row is not None else proof.decided_at if proof else None,
                "source": row.source if row is not None else proof.source if proof else None,
                # The evidence matches the current decision only if it says the same; a decision the core
                # systems made later without evidence has none.
                "text_version": proof.text_version if proof is not None and proof.status == status else None,
                "evidence_id": version or None,
            }
        )
    return items


def preferences(conn: Connection, customer_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(PREFS).where(PREFS.c.customer_id == customer_id)).first()
    if row is None:
        return None
    return {
        "max_push_per_week": row.max_push_per_week,
        "quiet_hours": {"start": row.quiet_start, "end": row.quiet_end} if row.quiet_start else None,
        "time_zone": row.time_zone,
        "version": row.version,
        "source": row.source,
        "updated_at": row.updated_at,
    }


def save_preferences(
    conn: Connection,
    *,
    customer_id: int,
    max_push_per_week: int | None,
    quiet_start: str | None,
    quiet_end: str | None,
    time_zone: str,
    source: str,
    actor: str,
) -> int:
    """Replace the customer's preferences (version + 1). Returns the new version."""
    now = utcnow()
    row = conn.execute(select(PREFS.c.version).where(PREFS.c.customer_id == customer_id)).first()
    values = {
        "max_push_per_week": max_push_per_week,
        "quiet_start": quiet_start,
        "quiet_end": quiet_end,
        "time_zone": time_zone,
        "source": source,
        "updated_by": actor,
        "updated_at": now,
    }
    if row is None:
        version = 1
        conn.execute(insert(PREFS).values(customer_id=customer_id, version=version, created_at=now, **values))
    else:
        version = int(row.version) + 1
        conn.execute(update(PREFS).where(PREFS.c.customer_id == customer_id).values(version=version, **values))
    return version
