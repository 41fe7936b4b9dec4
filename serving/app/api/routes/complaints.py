"""Complaints: file, assign, resolve. An open complaint is in the hot record before the filing commits, so
campaigns stop marketing to the customer at once; resolution reaches it after the commit."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection, insert, select, update

from app.api.deps import Authorize, Caller, RedisDep, SettingsDep, SourceDep, authorized
from app.core.errors import ApiError, problem_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.roles import Scope
from app.core.timestamps import UtcDateTime
from app.services import audit, contact
from app.services.idempotency import idempotency_key, run_once
from app.services.visibility import require_visible
from mo import hot_record
from mo.oltp.ids import allocate_id
from mo.oltp.models import Complaint, Policy
from mo.oltp.outbox import add_event, new_event
from mo.oltp.privacy import ComplaintHandling

router = APIRouter(prefix="/v1/complaints", tags=["complaints"])
COMPLAINTS = Complaint.__table__
HANDLING = ComplaintHandling.__table__
POLICIES = Policy.__table__
ComplaintNo = Annotated[str, Path(min_length=4, max_length=24, pattern=r"^[A-Z0-9]+$", examples=["TS2026120600001234"])]
# Which statuses each action may start from (409 names them otherwise).
TRANSITIONS = {"assign": ("open", "in_progress"), "resolve": ("open", "in_progress")}
EVENT_SOURCE = {"app": "app", "wechat": "wechat"}


def _plain_text(value: str | None) -> str | None:
    if value is not None and any(ord(ch) < 32 and ch not in "\n\t" for ch in value):
        raise ValueError("control characters are not allowed")
    return value


class ComplaintFiled(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": 1001,
                    "policy_no": "P202401150000123",
                    "channel": "app",
                    "category": "claim",
                    "summary": "理赔审核超过三个工作日仍无进展",
                }
            ]
        },
    )
    customer_id: int = Field(ge=1, le=2**63 - 1)
    policy_no: str | None = Field(None, min_length=1, max_length=24, description="The policy it is about, if any.")
    channel: Literal["hotline", "app", "wechat", "branch", "regulator"]
    category: Literal["claim", "sales", "service", "billing", "product"]
    summary: str = Field(min_length=1, max_length=1000, description="The customer's words, stored as given.")

    _text = field_validator("summary", "policy_no")(_plain_text)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"assignee": "user:agent.wang"}]})
    assignee: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._:@-]+$", description="Who handles it.")


class Resolution(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"resolution": "Claim reviewed and paid; apology sent."}]}
    )
    resolution: str = Field(min_length=1, max_length=1000)

    _text = field_validator("resolution")(_plain_text)


class ComplaintRead(BaseModel):
    complaint_no: str
    customer_id: int
    policy_no: str | None
    channel: str
    category: str
    status: Literal["open", "in_progress", "resolved", "closed"]
    opened_at: UtcDateTime
    resolved_at: UtcDateTime | None
    summary: str | None
    assigned_to: str | None
    resolution: str | None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "complaint_no": "TS2026120600001234",
                    "customer_id": 1001,
                    "policy_no": "P202401150000123",
                    "channel": "app",
                    "category": "claim",
                    "status": "open",
                    "opened_at": "2026-12-06T10:00:00",
                    "resolved_at": None,
                    "summary": "理赔审核超过三个工作日仍无进展",
                    "assigned_to": None,
                    "resolution": None,
                }
            ]
        }
    )


def _read(conn: Connection, complaint_no: str) -> dict[str, Any] | None:
    query = (
        select(
            COMPLAINTS.c.id,
            COMPLAINTS.c.complaint_no,
            COMPLAINTS.c.customer_id,
            POLICIES.c.policy_no,
            COMPLAINTS.c.channel,
            COMPLAINTS.c.category,
            COMPLAINTS.c.status,
            COMPLAINTS.c.opened_at,
            COMPLAINTS.c.resolved_at,
            HANDLING.c.summary,
            HANDLING.c.assigned_to,
            HANDLING.c.resolution,
        )
        .select_from(
            COMPLAINTS.outerjoin(POLICIES, POLICIES.c.id == COMPLAINTS.c.policy_id).outerjoin(
                HANDLING, HANDLING.c.complaint_id == COMPLAINTS.c.id
            )
        )
        .where(COMPLAINTS.c.complaint_no == complaint_no, COMPLAINTS.c.deleted_at.is_(None))
    )
    row = conn.execute(query).first()
    return dict(row._mapping) if row is not None else None


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "id"}


class AuthorizeReader(Authorize):
    """Complaints are read by those who file them and those who handle them: either scope will do. Checked as
    a dependency, so a refused role is answered 403 before its input is looked at."""

    def __call__(self, request: Request) -> Caller:
        caller = super().__call__(request)
        if not (caller.principal.has(Scope.COMPLAINTS_WRITE) or caller.principal.has(Scope.COMPLAINTS_HANDLE)):
            raise ApiError(
                403,
                f"role '{caller.principal.role}' may not read complaints: "
                "it needs scope 'complaints:write' or 'complaints:handle'",
            )
        return caller


Reader = Annotated[Caller, Depends(AuthorizeReader(None, "complaints.read"))]


WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422, 429, 503)


@router.post("", status_code=201, response_model=ComplaintRead, responses=WRITE_ERRORS, summary="File a complaint")
def file_complaint(
    body: ComplaintFiled,
    caller: authorized(Scope.COMPLAINTS_WRITE, "complaints.file"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
    redis_client: RedisDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Written to the core systems' complaints (status open) and to the hot record before the commit: if the hot
    record cannot be written the answer is 503 and nothing is filed (campaigns must see every open complaint)."""
    prefix = settings.redis_prefix

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        require_visible(conn, caller.principal, body.customer_id)
        contact.lock_customer(conn, body.customer_id)
        policy_id = None
        if body.policy_no is not None:
            policy_id = conn.execute(
                select(POLICIES.c.id).where(
                    POLICIES.c.policy_no == body.policy_no,
                    POLICIES.c.customer_id == body.customer_id,
                    POLICIES.c.deleted_at.is_(None),
                )
            ).scalar()
            if policy_id is None:
                raise ApiError(
                    422,
                    f"policy {body.policy_no} is not one of customer {body.customer_id}'s policies",
                    kind="validation",
                    errors=[("/body/policy_no", "not a policy of this customer")],
                )
        now = audit.utcnow()
        complaint_id = allocate_id(conn, "complaints")
        number = f"TS{now:%Y%m%d}{complaint_id:08d}"
        conn.execute(
            insert(COMPLAINTS).values(
                id=complaint_id,
                complaint_no=number,
                customer_id=body.customer_id,
                policy_id=policy_id,
                channel=body.channel,
                category=body.category,
                status="open",
                opened_at=now,
                resolved_at=None,
                created_at=now,
                updated_at=now,
                deleted_at=None,
            )
        )
        conn.execute(insert(HANDLING).values(complaint_id=complaint_id, summary=body.summary, updated_at=now))
        add_event(
            conn,
            new_event(
                "complaint_opened",
                customer_id=body.customer_id,
                source=EVENT_SOURCE.get(body.channel, "core"),
                occurred_at=now,
                payload={
                    "complaint_no": number,
                    "channel": body.channel,
                    "category": body.category,
                    "policy_no": body.policy_no,
                },
            ),
        )
        audit.record(
            conn,
            principal=caller.principal,
            action=caller.action,
            resource=caller.resource,
            customer_id=body.customer_id,
            status=201,
            detail=number,
        )
        try:  # an open complaint stops marketing: Redis first
            hot_record.open_complaint(redis_client, prefix, body.customer_id, number)
        except redis.RedisError as exc:
            raise contact.redis_unavailable(exc, "the complaint") from None
        return 201, _public(_read(conn, number) or {})

    response = run_once(source, caller, key, body.model_dump(mode="json"), write)
    if response.status_code == 201:
        contact.sync_after_commit(source, redis_client, prefix, body.customer_id)
    return response


def _move(
    action: str,
    complaint_no: str,
    caller: Caller,
    key: str,
    body: BaseModel,
    source: Any,
    redis_client: redis.Redis,
    prefix: str,
) -> JSONResponse:
    holder: dict[str, int] = {}

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        row = _read(conn, complaint_no)
        if row is None:
            raise ApiError(404, f"complaint {complaint_no} not found")
        require_visible(conn, caller.principal, row["customer_id"])
        contact.lock_customer(conn, row["customer_id"])
        row = _read(conn, complaint_no) or row  # as of the lock
        holder["customer_id"] = row["customer_id"]
        allowed = TRANSITIONS[action]
        if row["status"] not in allowed:
            raise ApiError(
                409,
                f"complaint {complaint_no} is {row['status']}; {action} needs it {' or '.join(allowed)}",
                extra={"status_now": row["status"], "allowed_from": list(allowed)},
            )
        now = audit.utcnow()
        handling = conn.execute(select(HANDLING.c.complaint_id).where(HANDLING.c.complaint_id == row["id"])).first()
        if action == "assign":
            values: dict[str, Any] = {"status": "in_progress", "updated_at": now}
            extra = {"assigned_to": body.assignee, "assigned_at": now}  # type: ignore[attr-defined]
        else:
            values = {"status": "resolved", "resolved_at": now, "updated_at": now}
            extra = {"resolution": body.resolution, "resolved_by": caller.subject}  # type: ignore[attr-defined]
        conn.execute(update(COMPLAINTS).where(COMPLAINTS.c.id == row["id"]).values(**values))
        if handling is None:
            conn.execute(insert(HANDLING).values(complaint_id=row["id"], updated_at=now, **extra))
        else:
            conn.execute(update(HANDLING).where(HANDLING.c.complaint_id == row["id"]).values(updated_at=now, **extra))
        if action == "resolve":
            add_event(
                conn,
                new_event(
                    "complaint_resolved",
                    customer_id=row["customer_id"],
                    source="core",
                    occurred_at=now,
                    payload={
                        "complaint_no": complaint_no,
                        "category": row["category"],
                        "resolved_by": caller.principal.role,
                    },
                ),
            )
        audit.record(
            conn,
            principal=caller.principal,
            action=caller.action,
            resource=caller.resource,
            customer_id=row["customer_id"],
            status=200,
            detail=complaint_no,
        )
        return 200, _public(_read(conn, complaint_no) or {})

    response = run_once(source, caller, key, body.model_dump(mode="json"), write)
    if response.status_code == 200 and "customer_id" in holder:
        contact.sync_after_commit(source, redis_client, prefix, holder["customer_id"])
    return response


@router.post(
    "/{complaint_no}/assign",
    response_model=ComplaintRead,
    responses=WRITE_ERRORS,
    summary="Assign a complaint (open or in progress -> in progress)",
)
def assign_complaint(
    complaint_no: ComplaintNo,
    body: Assignment,
    caller: authorized(Scope.COMPLAINTS_HANDLE, "complaints.assign"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
    redis_client: RedisDep,
    settings: SettingsDep,
) -> JSONResponse:
    return _move("assign", complaint_no, caller, key, body, source, redis_client, settings.redis_prefix)


@router.post(
    "/{complaint_no}/resolve",
    response_model=ComplaintRead,
    responses=WRITE_ERRORS,
    summary="Resolve a complaint (open or in progress -> resolved)",
)
def resolve_complaint(
    complaint_no: ComplaintNo,
    body: Resolution,
    caller: authorized(Scope.COMPLAINTS_HANDLE, "complaints.resolve"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
    redis_client: RedisDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Committed first, then the hot record drops the complaint (if Redis fails then, campaigns keep seeing it
    open, the stricter state, until the next write or a rebuild)."""
    return _move("resolve", complaint_no, caller, key, body, source, redis_client, settings.redis_prefix)


@router.get("", response_model=Page[ComplaintRead], responses=problem_responses(401, 403, 404, 422, 429))
def list_complaints(
    caller: Reader,
    source: SourceDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    customer_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    status: Annotated[Literal["open", "in_progress", "resolved", "closed"] | None, Query()] = None,
) -> Page[ComplaintRead]:
    """Newest first. Callers limited to an organisation or agent must name a customer they can see."""
    if customer_id is None and caller.principal.scoped_to_customers:
        raise ApiError(
            422,
            "customer_id is required for a caller limited to an organisation or agent",
            kind="validation",
            errors=[("/query/customer_id", "required for your scope")],
        )
    after = decode_cursor(cursor, arity=1)
    with source.connect() as conn:
        if customer_id is not None:
            require_visible(conn, caller.principal, customer_id)
        query = select(COMPLAINTS.c.complaint_no, COMPLAINTS.c.id).where(COMPLAINTS.c.deleted_at.is_(None))
        if customer_id is not None:
            query = query.where(COMPLAINTS.c.customer_id == customer_id)
        if status is not None:
            query = query.where(COMPLAINTS.c.status == status)
        if after is not None:
            query = query.where(COMPLAINTS.c.id < int(after[0]))
        rows = conn.execute(query.order_by(COMPLAINTS.c.id.desc()).limit(limit + 1)).all()
        items = [ComplaintRead(**_public(_read(conn, r.complaint_no) or {})) for r in rows[:limit]]
    next_cursor = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return Page[ComplaintRead](items=items, next_cursor=next_cursor)


@router.get("/{complaint_no}", response_model=ComplaintRead, responses=problem_responses(401, 403, 404, 422, 429))
def get_complaint(complaint_no: ComplaintNo, caller: Reader, source: SourceDep) -> ComplaintRead:
    with source.connect() as conn:
        row = _read(conn, complaint_no)
        if row is None:
            raise ApiError(404, f"complaint {complaint_no} not found")
        require_visible(conn, caller.principal, row["customer_id"])
    return ComplaintRead(**_public(row))
