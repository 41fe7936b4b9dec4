"""The append-only audit log: every write, every read of clear PII, every export, every refused attempt.

A write's entry goes into the write's own transaction (both commit or neither); a refused attempt's entry
is written on its own, after the refusal. The database refuses UPDATE and DELETE on the table (triggers
installed by the migration), and the API has no route that would try.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, insert

from app.core.context import request_id_var
from app.core.security import Principal
from mo.oltp.api_tables import AuditEntry

AUDIT = AuditEntry.__table__
DETAIL_MAX = 1000


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    if status == 409:
        return "conflict"
    if status < 500:
        return "invalid"
    return "error"


def record(
    conn: Connection,
    *,
    principal: Principal | None,
    action: str,
    resource: str,
    status: int = 200,
    customer_id: int | None = None,
    detail: str | None = None,
) -> None:
    conn.execute(
        insert(AUDIT).values(
            at=utcnow(),
            request_id=request_id_var.get() or "-",
            actor=principal.subject if principal else "anonymous",
            role=principal.role if principal else None,
            action=action,
            resource=resource[:200],
            customer_id=customer_id,
            outcome=outcome_of(status),
            status_code=status,
            detail=(detail or None) and detail[:DETAIL_MAX],
        )
    )


def record_alone(engine: Engine, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """An entry in its own transaction (a refused attempt: nothing else is written)."""
    with engine.begin() as conn:
        record(conn, **kwargs)
