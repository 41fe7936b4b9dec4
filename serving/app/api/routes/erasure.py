"""Erasure of a customer's marketing data, with what is under legal hold kept, and the request recorded."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

import redis
from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, func, insert, select

from app.api.deps import RedisDep, SettingsDep, SourceDep, authorized
from app.core.context import request_id_var
from app.core.errors import ApiError, problem_responses
from app.core.roles import Scope
from app.core.timestamps import UtcDateTime
from app.services import audit, contact
from app.services.idempotency import idempotency_key, run_once
from mo import hot_record
from mo.oltp.models import Claim, Complaint, Policy, SalesRecording
from mo.oltp.outbox import add_event, new_event
from mo.oltp.privacy import CHANNELS, ConsentEvidence, ErasureRequest
from mo.serving_store.redis_store import ProfileKeys

router = APIRouter(prefix="/v1/customers", tags=["erasure"])
ERASURES = ErasureRequest.__table__
EVIDENCE = ConsentEvidence.__table__
CustomerId = Annotated[
    int, Path(ge=1, le=2**63 - 1, description="The customer's id in the core systems.", examples=[1001])
]
ERASURE_TEXT_VERSION = "erasure"

# What stays, and why: counted per customer from the core systems (table, category in the event, reason).
LEGAL_HOLD = (
    (Policy.__table__, "policies", "insurance contracts: kept for the statutory retention period after they end"),
    (Claim.__table__, "claims", "claim files: kept for the statutory retention period and possible litigation"),
    (Complaint.__table__, "complaints", "complaint handling records: the regulator may inspect them"),
    (
        SalesRecording.__table__,
        "sales_recordings",
        "sales dual recordings: the regulator requires the recording of each recorded sale",
    ),
)


class ErasureBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"basis": "customer_request", "source": "call_center"}]},
    )
    basis: Literal["customer_request", "regulator_order"] = Field(description="Why the data is erased.")
    source: Literal["app", "wechat", "agent", "call_center", "web"] = Field(description="Where the customer asked.")


class ErasedItem(BaseModel):
    category: str
    detail: str


class KeptItem(BaseModel):
    category: str
    count: int | None
    reason: str


class ErasureDone(BaseModel):
    request_no: str
    customer_id: int
    basis: str
    status: Literal["completed"]
    erased: list[ErasedItem]
    kept: list[KeptItem]
    requested_at: UtcDateTime
    completed_at: UtcDateTime

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_no": "5b0f3c8e-8a1d-4d8e-9a53-1f2e3d4c5b6a",
                    "customer_id": 1001,
                    "basis": "customer_request",
                    "status": "completed",
                    "erased": [
                        {"category": "profile", "detail": "published profile keys in Redis: 2 refreshes"},
                        {"category": "marketing_consents", "detail": "withdrawn on 5 channels, kept as evidence"},
                    ],
                    "kept": [
                        {
                            "category": "policies",
                            "count": 2,
                            "reason": "insurance contracts: kept for the statutory retention period after they end",
                        }
                    ],
                    "requested_at": "2026-12-06T10:00:00",
                    "completed_at": "2026-12-06T10:00:00",
                }
            ]
        }
    )


def _erase_profile(client: redis.Redis, prefix: str, customer_id: int) -> int:
    """Unlink the customer's published profile in every refresh Redis still holds (current and previous
    included); the keys carry the tags and segment memberships too. Returns how many keys existed."""
    keys = ProfileKeys(prefix)
    refreshes = {m.decode() if isinstance(m, bytes) else m for m in client.smembers(keys.refreshes)}  # type: ignore[union-attr]
    for pointer in (keys.current, keys.previous):
        value = client.get(pointer)
        if value:
            refreshes.add(value.decode() if isinstance(value, bytes) else value)
    names = [keys.profile(r, customer_id) for r in sorted(refreshes)]
    return int(client.unlink(*names)) if names else 0


@router.post(
    "/{customer_id}/erasure",
    status_code=201,
    response_model=ErasureDone,
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
    summary="Erase a customer's marketing data (legal-hold data is kept)",
)
def erase_customer(
    customer_id: CustomerId,
    body: ErasureBody,
    caller: authorized(Scope.ERASURE, "customers.erase"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
    redis_client: RedisDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Anonymises the marketing data: the published profile in Redis (tags and segments with it), marketing
    consent on every channel (withdrawn, kept as evidence that marketing must not happen), and the hot record
    (erased: campaigns stop at once). Policies, claims, complaints, sales recordings, service consent and the
    audit log stay under legal hold. The request, what was erased and what was kept and why are recorded;
    the lake drops the customer's clear PII on its next sync. Redis is written before the commit: if it is
    down the answer is 503 and nothing is recorded."""
    prefix = settings.redis_prefix

    def write(conn: Connection) -> tuple[int, dict[str, Any]]:
        contact.lock_customer(conn, customer_id)
        earlier = conn.execute(
            select(ERASURES.c.request_no).where(ERASURES.c.customer_id == customer_id, ERASURES.c.status == "completed")
        ).scalar()
        if earlier is not None:
            raise ApiError(
                409, f"customer {customer_id} was already erased (request {earlier})", extra={"request_no": earlier}
            )
        now = audit.utcnow()
        withdrawn = [
            (
                channel,
                contact.record_decision(
                    conn,
                    customer_id=customer_id,
                    channel=channel,
                    purpose="marketing",
                    status="opt_out",
                    text_version=ERASURE_TEXT_VERSION,
                    source=body.source,
                    actor=caller.subject,
                    reason="erasure",
                    at=now,
                ),
            )
            for channel in CHANNELS
        ]
        kept: list[dict[str, Any]] = []
        for table, category, reason in LEGAL_HOLD:
            count = conn.execute(
                select(func.count()).select_from(table).where(table.c.customer_id == customer_id)
            ).scalar()
            kept.append({"category": category, "count": int(count or 0), "reason": reason})
        service = conn.execute(
            select(func.count(func.distinct(EVIDENCE.c.channel))).where(
                EVIDENCE.c.customer_id == customer_id, EVIDENCE.c.purpose == "service"
            )
        ).scalar()
        kept += [
            {"category": "service_consents", "count": int(service or 0),
             "reason": "service messages about the policies and claims under legal hold"},
            {"category": "audit_log", "count": None, "reason": "append-only record of who did what; never erased"},
            {"category": "identity", "count": 1,
             "reason": "the policy holder of record for the policies under legal hold, in the core systems only; "
                       "the lake drops the clear identity on its next sync"},
        ]  # fmt: skip
        try:  # campaigns must stop at once: the hot record and the profile go before the commit
            hot_record.mark_erased(redis_client, prefix, customer_id, withdrawn)
            profile_keys = _erase_profile(redis_client, prefix, customer_id)
        except redis.RedisError as exc:
            raise contact.redis_unavailable(exc, "the erasure") from None
        erased = [
            {"category": "profile", "detail": f"published profile keys in Redis unlinked: {profile_keys}"},
            {"category": "tags", "detail": "carried by the published profile; the next profile build leaves them out"},
            {"category": "segment_memberships", "detail": "carried by the published profile"},
            {"category": "marketing_consents",
             "detail": f"withdrawn on {len(withdrawn)} channels, kept as evidence that marketing must not happen"},
            {"category": "hot_record", "detail": "marked erased: campaign dispatch sends no marketing"},
        ]  # fmt: skip
        request_no = str(uuid.uuid4())
        conn.execute(
            insert(ERASURES).values(
                request_no=request_no,
                customer_id=customer_id,
                basis=body.basis,
                status="completed",
                erased=json.dumps(erased, ensure_ascii=False),
                kept=json.dumps(kept, ensure_ascii=False),
                requested_by=caller.subject,
                request_id=request_id_var.get() or "-",
                requested_at=now,
                completed_at=now,
            )
        )
        event_kept = [k["category"] for k in kept if k["category"] != "identity"]
        add_event(
            conn,
            new_event(
                "customer_erased",
                customer_id=customer_id,
                source="core",
                occurred_at=now,
                payload={
                    "request_id": request_no,
                    "erased": [e["category"] for e in erased],
                    "kept_under_legal_hold": event_kept,
                },
            ),
        )
        audit.record(
            conn,
            principal=caller.principal,
            action=caller.action,
            resource=caller.resource,
            customer_id=customer_id,
            status=201,
            detail=f"erasure {request_no} ({body.basis})",
        )
        answer = {
            "request_no": request_no,
            "customer_id": customer_id,
            "basis": body.basis,
            "status": "completed",
            "erased": erased,
            "kept": kept,
            "requested_at": now,
            "completed_at": now,
        }
        return 201, answer

    response = run_once(source, caller, key, body.model_dump(mode="json"), write)
    if response.status_code == 201:
        contact.sync_after_commit(source, redis_client, prefix, customer_id)
    return response
