"""Claims: first notice of loss, documents, the handlers' state machine and the SLA flags (seed 000).

Writes go to the core systems' ``claims`` table with the status history, the audit entry and an outbox event
in one transaction, once per Idempotency-Key. See app.services.claims for the rules (state machine, SLA, ids).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.deps import SettingsDep, SourceDep, authorized
from app.core.errors import ApiError, problem_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.roles import Scope
from app.services import claims as service
from app.services.documents import DocumentStore, check_file
from app.services.idempotency import idempotency_key, run_once
from app.services.visibility import can_see, require_visible

router = APIRouter(prefix="/v1/claims", tags=["claims"])

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ClaimNo = Annotated[
    str,
    Path(
        min_length=3,
        max_length=24,
        pattern=r"^[A-Z0-9]+$",
        description="The claim number.",
        examples=["CL20260001000000123456"],
    ),
]
IncidentType = Literal[
    "collision",
    "theft",
    "glass",
    "natural_disaster",
    "fire",
    "water_damage",
    "injury",
    "illness",
    "hospitalisation",
    "death",
    "other",
]  # fmt: skip  (the claims contract's enum; a test holds them equal)
Status = Literal["submitted", "under_review", "docs_requested", "approved", "rejected", "paying", "paid"]
DocumentKind = Literal[
    "loss_report", "police_report", "medical_record", "invoice", "photo", "id_document", "bank_details", "other"
]
MAX_AMOUNT = Decimal("999999999999.99")


def _no_control(value: str | None) -> str | None:
    if value is not None and CONTROL.search(value):
        raise ValueError("contains control characters")
    return value


class ClaimSubmission(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": 1001,
                    "policy_no": "PA2026000000012345",
                    "incident_at": "2026-12-04T08:30:00Z",
                    "incident_type": "collision",
                    "incident_province": "广东省",
                    "incident_city": "深圳市",
                    "amount_claimed": "4500.00",
                }
            ]
        },
    )

    customer_id: int = Field(ge=1, le=2**63 - 1, description="The customer filing (the policy holder).")
    policy_no: str = Field(min_length=1, max_length=24, pattern=r"^[A-Za-z0-9-]+$")
    incident_at: datetime = Field(description="When the loss happened (ISO 8601; without an offset: UTC).")
    incident_type: IncidentType
    incident_province: str = Field(min_length=2, max_length=16)
    incident_city: str = Field(min_length=2, max_length=32)
    amount_claimed: Decimal = Field(gt=0, le=MAX_AMOUNT, max_digits=14, decimal_places=2, description="CNY.")

    @field_validator("incident_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is not None:
            try:
                value = value.astimezone(UTC).replace(tzinfo=None)
            except OverflowError:
                raise ValueError("out of range once converted to UTC") from None
        return value

    @field_validator("incident_province", "incident_city")
    @classmethod
    def _clean(cls, value: str) -> str:
        return _no_control(value)  # type: ignore[return-value]


class Transition(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"to": "under_review"},
                {"to": "docs_requested", "reason": "Need the repair shop's invoice"},
                {"to": "approved", "amount_approved": "4200.00"},
                {"to": "paid", "amount_paid": "4200.00"},
            ]
        },
    )

    to: Status
    reason: str | None = Field(
        None, min_length=1, max_length=500, description="Required for docs_requested and rejected."
    )
    amount_approved: Decimal | None = Field(None, gt=0, le=MAX_AMOUNT, max_digits=14, decimal_places=2)
    amount_paid: Decimal | None = Field(None, gt=0, le=MAX_AMOUNT, max_digits=14, decimal_places=2)

    @field_validator("reason")
    @classmethod
    def _clean(cls, value: str | None) -> str | None:
        return _no_control(value)


class Sla(BaseModel):
    as_of: str = Field(description="The UTC date the running clocks are measured to (today).")
    review_due: str = Field(description="3rd working day after the report: the first review action is due by then.")
    review_working_days: int
    review_done: bool
    payment_due: str | None = Field(description="5th working day after approval; null until approved.")
    payment_working_days: int | None
    payment_done: bool | None
    at_risk: bool = Field(description="A running clock with 1 working day or less left, not yet breached.")
    breached: bool = Field(description="A clock over its limit (running clocks measured to today).")


class StatusChange(BaseModel):
    from_status: str | None
    to_status: str
    changed_by: str
    changed_by_role: str
    changed_at: str
    reason: str | None
    amount: str | None


class ClaimDocumentView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "document_id": "3f1c6d1e-8a0b-4c55-9d7e-0f3b2a1c9e77",
                    "claim_no": "CL20260001000000123456",
                    "kind": "invoice",
                    "file_name": "repair-invoice.pdf",
                    "content_type": "application/pdf",
                    "size_bytes": 48213,
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "uploaded_by": "client:wechat-mini",
                    "uploaded_at": "2026-12-06T07:30:00.000000Z",
                }
            ]
        }
    )

    document_id: str
    claim_no: str
    kind: str
    file_name: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_by: str
    uploaded_at: str


SUMMARY_EXAMPLE: dict[str, Any] = {
    "claim_no": "CL20260001000000123456",
    "customer_id": 1001,
    "policy_no": "PA2026000000012345",
    "status": "under_review",
    "incident_at": "2026-12-04T08:30:00.000000Z",
    "incident_type": "collision",
    "incident_province": "广东省",
    "incident_city": "深圳市",
    "amount_claimed": "4500.00",
    "amount_approved": None,
    "amount_paid": None,
    "reported_at": "2026-12-04T10:00:00.000000Z",
    "submitted_at": "2026-12-04T10:00:00.000000Z",
    "updated_at": "2026-12-07T09:00:00.000000Z",
    "allowed_transitions": ["docs_requested", "approved", "rejected"],
    "sla": {
        "as_of": "2026-12-08",
        "review_due": "2026-12-09",
        "review_working_days": 1,
        "review_done": True,
        "payment_due": None,
        "payment_working_days": None,
        "payment_done": None,
        "at_risk": False,
        "breached": False,
    },
}


class ClaimSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SUMMARY_EXAMPLE]})

    claim_no: str
    customer_id: int
    policy_no: str
    status: str
    incident_at: str
    incident_type: str
    incident_province: str
    incident_city: str
    amount_claimed: str
    amount_approved: str | None
    amount_paid: str | None
    reported_at: str
    submitted_at: str
    updated_at: str
    allowed_transitions: list[str]
    sla: Sla


class ClaimDetail(ClaimSummary):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **SUMMARY_EXAMPLE,
                    "history": [
                        {
                            "from_status": None,
                            "to_status": "submitted",
                            "changed_by": "client:wechat-mini",
                            "changed_by_role": "app",
                            "changed_at": "2026-12-04T10:00:00.000000Z",
                            "reason": None,
                            "amount": None,
                        }
                    ],
                    "documents": [],
                }
            ]
        }
    )

    history: list[StatusChange]
    documents: list[ClaimDocumentView]


def _after(cursor: str | None) -> tuple[datetime, int] | None:
    key = decode_cursor(cursor, arity=2)
    if key is None:
        return None
    try:
        if not isinstance(key[1], int) or not 0 < key[1] < 2**63:
            raise ValueError
        return datetime.fromisoformat(str(key[0])).replace(tzinfo=None), key[1]
    except (TypeError, ValueError):
        raise ApiError(
            422, "cursor is not one this API returned", kind="validation", errors=[("/query/cursor", "invalid cursor")]
        ) from None


def _cursor(after: tuple[datetime, int] | None) -> str | None:
    return None if after is None else encode_cursor([after[0].isoformat(), after[1]])


@router.post(
    "",
    status_code=201,
    response_model=ClaimDetail,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
    summary="File a claim (first notice of loss)",
)
def submit_claim(
    body: ClaimSubmission,
    caller: authorized(Scope.CLAIMS_SUBMIT, "claims.submit"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
) -> Any:
    """For a policy the customer holds and that is in force on the loss date, within its cover. Written to the
    core systems with its status history, audit entry and `claim_filed` event, once per Idempotency-Key."""
    values = body.model_dump()
    return run_once(
        source, caller, key, body.model_dump(mode="json"), lambda conn: (201, service.submit(conn, caller, values))
    )


@router.get(
    "",
    response_model=Page[ClaimSummary],
    responses=problem_responses(401, 403, 404, 422, 429),
    summary="A customer's claims, newest first",
)
def list_claims(
    caller: authorized(Scope.CLAIMS_READ, "claims.list"),
    source: SourceDep,
    customer_id: Annotated[
        int | None,
        Query(
            ge=1, le=2**63 - 1, description="The customer (required for callers scoped to an organisation or agent)."
        ),
    ] = None,
    status: Annotated[Status | None, Query(description="Only claims in this status.")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    if customer_id is None and caller.principal.scoped_to_customers:
        raise ApiError(
            422,
            "customer_id is required for a caller scoped to an organisation or agent",
            kind="validation",
            errors=[("/query/customer_id", "required")],
        )
    after = _after(cursor)
    with source.connect() as conn:
        if customer_id is not None:
            require_visible(conn, caller.principal, customer_id)
        items, last = service.list_for(
            conn, customer_id=customer_id, status=status, after=after, limit=limit, today=service.today_utc()
        )
    return {"items": items, "next_cursor": _cursor(last)}


@router.get(
    "/at-risk",
    response_model=Page[ClaimSummary],
    responses=problem_responses(401, 403, 422, 429),
    summary="Open claims at risk of missing their SLA or already past it, oldest first",
)
def claims_at_risk(
    caller: authorized(Scope.CLAIMS_HANDLE, "claims.at_risk"),
    source: SourceDep,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    """Claims waiting for review (3 working days from the report) or payment (5 from approval) with 1 working
    day or less left, or already over; oldest submission first."""
    after = _after(cursor)
    with source.connect() as conn:
        items, last = service.at_risk(conn, after=after, limit=limit, today=service.today_utc())
    if caller.principal.scoped_to_customers:
        with source.connect() as conn:
            items = [i for i in items if can_see(conn, caller.principal, i["customer_id"])]
    return {"items": items, "next_cursor": _cursor(last)}


@router.get(
    "/{claim_no}",
    response_model=ClaimDetail,
    responses=problem_responses(401, 403, 404, 422, 429),
    summary="A claim with its status history, documents and SLA flags",
)
def get_claim(claim_no: ClaimNo, caller: authorized(Scope.CLAIMS_READ, "claims.read"), source: SourceDep) -> Any:
    with source.connect() as conn:
        row = service.load(conn, caller, claim_no)
        return service.detail(conn, row, service.today_utc())


@router.post(
    "/{claim_no}/transitions",
    response_model=ClaimDetail,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429),
    summary="Move a claim through its states (claims handlers)",
)
def transition_claim(
    claim_no: ClaimNo,
    body: Transition,
    caller: authorized(Scope.CLAIMS_HANDLE, "claims.transition"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
) -> Any:
    """submitted -> under_review -> docs_requested -> under_review ...; under_review -> approved | rejected;
    approved -> paying -> paid. An illegal move is 409 with `allowed_transitions`; two handlers moving the
    same claim at once: one wins, the other gets 409."""
    values = body.model_dump()
    return run_once(
        source, caller, key, {"claim_no": claim_no, **body.model_dump(mode="json")},
        lambda conn: (200, service.transition(conn, caller, claim_no, values)),
    )  # fmt: skip


@router.post(
    "/{claim_no}/documents",
    status_code=201,
    response_model=ClaimDocumentView,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429),
    summary="Attach a document to a claim (PDF, JPEG or PNG, by content)",
)
def upload_document(
    claim_no: ClaimNo,
    caller: authorized(Scope.CLAIMS_SUBMIT, "claims.attach_document"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="The document: PDF, JPEG or PNG (checked by its content).")],
    kind: Annotated[DocumentKind, Form(description="What the document is.")] = "other",
) -> Any:
    file_name = file.filename or ""
    if not file_name or len(file_name) > 255 or CONTROL.search(file_name) or "/" in file_name or "\\" in file_name:
        raise ApiError(
            422,
            "file name is missing, too long (255) or not a plain name",
            kind="validation",
            errors=[("/body/file/filename", "1-255 characters, no path or control characters")],
        )
    content = file.file.read(settings.max_upload_bytes + 1)
    detected = check_file(
        content, file_name=file_name, declared_type=file.content_type, max_bytes=settings.max_upload_bytes
    )
    request = {"claim_no": claim_no, "kind": kind, "file_name": file_name, "sha256": detected.sha256}

    def write(conn):  # type: ignore[no-untyped-def]
        service.load(conn, caller, claim_no)  # 404 before anything is stored
        DocumentStore(settings.resolved_document_dir).put(content, detected.sha256)
        return 201, service.attach_document(
            conn, caller, claim_no, kind=kind, file_name=file_name, content_type=detected.content_type,
            size_bytes=detected.size_bytes, sha256=detected.sha256, document_id=str(uuid.uuid4()),
        )  # fmt: skip

    return run_once(source, caller, key, request, write)


@router.get(
    "/{claim_no}/documents",
    response_model=Page[ClaimDocumentView],
    responses=problem_responses(401, 403, 404, 422, 429),
    summary="The documents attached to a claim, in upload order",
)
def list_documents(
    claim_no: ClaimNo,
    caller: authorized(Scope.CLAIMS_READ, "claims.documents"),
    source: SourceDep,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    key = decode_cursor(cursor, arity=1)
    if key is not None and (not isinstance(key[0], int) or isinstance(key[0], bool) or not 0 < key[0] < 2**63):
        raise ApiError(
            422, "cursor is not one this API returned", kind="validation", errors=[("/query/cursor", "invalid cursor")]
        )
    with source.connect() as conn:
        items, last = service.documents_of(conn, caller, claim_no, after_id=key[0] if key else None, limit=limit)
    return {"items": items, "next_cursor": None if last is None else encode_cursor([last])}
