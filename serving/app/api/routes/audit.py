"""The audit log, read-only, for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import and_, select

from app.api.deps import SourceDep, authorized
from app.core.errors import problem_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.roles import Scope
from mo.oltp.api_tables import AuditEntry

router = APIRouter(prefix="/v1/audit", tags=["audit"])
AUDIT = AuditEntry.__table__


class AuditRecord(BaseModel):
    id: int
    at: datetime
    request_id: str
    actor: str
    role: str | None
    action: str
    resource: str
    customer_id: int | None
    outcome: str
    status_code: int
    detail: str | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": 42,
                    "at": "2026-12-06T09:30:00.123456",
                    "request_id": "0b7d1c7e-4c57-4a7b-9f0a-5d1e2c3b4a59",
                    "actor": "user:agent.wang",
                    "role": "service_agent",
                    "action": "customers.read_pii",
                    "resource": "GET /v1/customers/1001",
                    "customer_id": 1001,
                    "outcome": "ok",
                    "status_code": 200,
                    "detail": None,
                }
            ]
        }
    }


@router.get("", response_model=Page[AuditRecord], responses=problem_responses(401, 403, 422))
def list_audit(
    caller: authorized(Scope.AUDIT_READ, "audit.read"),
    source: SourceDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    customer_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    actor: Annotated[str | None, Query(max_length=80)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[AuditRecord]:
    """Newest first; filter by customer, actor, action and period."""
    query = select(AUDIT).order_by(AUDIT.c.id.desc()).limit(limit + 1)
    after = decode_cursor(cursor, arity=1)
    if after is not None:
        query = query.where(AUDIT.c.id < int(after[0]))
    conditions = []
    if customer_id is not None:
        conditions.append(AUDIT.c.customer_id == customer_id)
    if actor is not None:
        conditions.append(AUDIT.c.actor == actor)
    if action is not None:
        conditions.append(AUDIT.c.action == action)
    if since is not None:
        conditions.append(AUDIT.c.at >= since.replace(tzinfo=None))
    if until is not None:
        conditions.append(AUDIT.c.at < until.replace(tzinfo=None))
    if conditions:
        query = query.where(and_(*conditions))
    with source.connect() as conn:
        rows = conn.execute(query).all()
    items = [AuditRecord.model_validate(r._mapping) for r in rows[:limit]]
    return Page[AuditRecord](items=items, next_cursor=encode_cursor([items[-1].id]) if len(rows) > limit else None)
