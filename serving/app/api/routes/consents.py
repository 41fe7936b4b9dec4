"""Consent per channel and purpose, and contact preferences: effective at once (source + hot record)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select

from app.api.deps import RedisDep, SettingsDep, SourceDep, authorized
from app.core.errors import ApiError, problem_responses
from app.core.pagination import Cursor, Limit, decode_cursor, encode_cursor
from app.core.roles import Scope
from app.core.timestamps import UtcDateTime
from app.services import audit, contact
from app.services.idempotency import idempotency_key, run_once
from app.services.visibility import require_visible
from mo import hot_record
from mo.oltp.privacy import ConsentEvidence

router = APIRouter(prefix="/v1/customers", tags=["consents"])
EVIDENCE = ConsentEvidence.__table__
CustomerId = Annotated[
    int, Path(ge=1, le=2**63 - 1, description="The customer's id in the core systems.", examples=[1001])
]
Channel = Literal["app_push", "sms", "wechat", "email", "phone"]
Purpose = Literal["marketing", "service"]
ConsentSource = Literal["app", "wechat", "agent", "call_center", "web"]
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class ConsentDecision(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channel": "sms",
                    "purpose": "marketing",
                    "status": "opt_out",
                    "text_version": "mkt-sms-2026.3",
                    "source": "app",
                }
            ]
        },
    )
    channel: Channel
    purpose: Purpose
    status: Literal["opt_in", "opt_out"] = Field(description="opt_in grants, opt_out withdraws.")
    text_version: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Version of the consent text the customer was shown (the evidence).",
    )
    source: ConsentSource = Field(description="Where the customer decided.")


class ConsentChanged(BaseModel):
    customer_id: int
    channel: Channel
    purpose: Purpose
    status: Literal["opt_in", "opt_out"]
    text_version: str
    source: ConsentSource
    decided_at: UtcDateTime
    evidence_id: int
    hot_record: Literal["current", "stale"] = Field(
        description="current: campaigns see the decision now; stale: the grant is recorded but the hot record "
        "still holds the older, stricter state until it is rebuilt (withdrawals are never stale)."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": 1001,
                    "channel": "sms",
                    "purpose": "marketing",
                    "status": "opt_out",
                    "text_version": "mkt-sms-2026.3",
                    "source": "app",
                    "decided_at": "2026-12-06T10:00:00.000000",
                    "evidence_id": 42,
                    "hot_record": "current",
                }
            ]
        }
    )


class CurrentConsent(BaseModel):
    channel: Channel
    purpose: Purpose
    status: Literal["opt_in", "opt_out"]
    decided_at: UtcDateTime | None
    source: str | None
    text_version: str | None = Field(description="Consent text version of the evidence; None without evidence.")
    evidence_id: int | None


class Evidence(BaseModel):
    id: int
    channel: Channel
    purpose: Purpose
    status: Literal["opt_in", "opt_out"]
    text_version: str
    source: str
    reason: Literal["customer", "erasure"]
    decided_at: UtcDateTime
    actor: str
    request_id: str


class QuietHoursBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"start": "22:00", "end": "08:00"}]})
    start: str = Field(pattern=HHMM, max_length=5, description="Local time HH:MM, inclusive.")
    end: str = Field(pattern=HHMM, max_length=5, description="Local time HH:MM, exclusive; before start: overnight.")

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursBody:
        if self.start == self.end:
            raise ValueError("start and end are equal: an empty window; send null for no quiet hours")
        return self


class Preferences(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "max_push_per_week": 3,
                    "quiet_hours": {"start": "22:00", "end": "08:00"},
                    "time_zone": "Asia/Shanghai",
                    "source": "app",
                }
            ]
        },
    )
    max_push_per_week: int | None = Field(ge=0, le=100, description="Pushes per week at most; null: no limit.")
    quiet_hours: QuietHoursBody | None = Field(description="No contact in this local window; null: none.")
    time_zone: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$",
        description="The customer's IANA time zone.",
    )  # fmt: skip
    source: ConsentSource

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone '{value[:64]}': use an IANA name such as Asia/Shanghai") from None
        return value


class PreferencesRead(BaseModel):
    max_push_per_week: int | None
    quiet_hours: dict[str, str] | None
    time_zone: str
    version: int
    source: str
    updated_at: UtcDateTime


class PreferencesSaved(BaseModel):
    customer_id: int
    preferences: PreferencesRead
    hot_record: Literal["current", "stale"]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": 1001,
                    "preferences": {
                        "max_push_per_week": 3,
                        "quiet_hours": {"start": "22:00", "end": "08:00"},
                        "time_zone": "Asia/Shanghai",
                        "version": 2,
                        "source": "app",
                        "updated_at": "2026-12-06T10:00:00",
                    },
                    "hot_record": "current",
                }
            ]
        }
    )


class ConsentState(BaseModel):
    customer_id: int
    erased: bool
    current: list[CurrentConsent]
    contact_preferences: PreferencesRead | None
    evidence: list[Evidence] = Field(description="Every grant and withdrawal, newest first (paginated).")
    next_cursor: str | None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": 1001,
                    "erased": False,
                    "current": [
                        {
                            "channel": "sms",
                            "purpose": "marketing",
                            "status": "opt_out",
                            "decided_at": "2026-12-06T10:00:00",
                            "source": "app",
                            "text_version": "mkt-sms-2026.3",
                            "evidence_id": 42,
                        }
                    ],
                    "contact_preferences": None,
                    "evidence": [
                        {
                            "id": 42,
                            "channel": "sms",
                            "purpose": "marketing",
                            "status": "opt_out",
                            "text_version": "mkt-sms-2026.3",
                            "source": "app",
                            "reason": "customer",
                            "decided_at": "2026-12-06T10:00:00",
                            "actor": "client:wechat-mini",
                            "request_id": "0b7d1c7e-4c57-4a7b-9f0a-5d1e2c3b4a59",
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )


WRITE_ERRORS = problem_responses(401, 403, 404, 409, 422, 429, 503)


@router.post(
    "/{customer_id}/consents",
    status_code=201,
    response_model=ConsentChanged,
    responses=WRITE_ERRORS,
    summary="Grant or withdraw consent for a channel and purpose",
)
def post_consent(
    customer_id: CustomerId,
    body: ConsentDecision,
    caller: authorized(Scope.CONSENTS_WRITE, "consents.write"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
    redis_client: RedisDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Effective immediately: written to the core systems and to the hot record campaigns check at send time.
    A withdrawal reaches the hot record before the database commits; if it cannot, the answer is 503 and
    nothing is recorded. An erased customer cannot grant marketing consent again (409)."""
    prefix = settings.redis_prefix

    def write(conn) -> tuple[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
        require_visible(conn, caller.principal, customer_id)
        contact.lock_customer(conn, customer_id)
        if body.status == "opt_in" and body.purpose == "marketing" and contact.is_erased(conn, customer_id):
            raise ApiError(
                409,
                f"customer {customer_id}'s marketing data was erased; marketing consent cannot be granted again",
                errors=[("/body/status", "opt_in refused for an erased customer")],
            )
        at = audit.utcnow()
        evidence_id = contact.record_decision(
            conn,
            customer_id=customer_id,
            channel=body.channel,
            purpose=body.purpose,
            status=body.status,
            text_version=body.text_version,
            source=body.source,
            actor=caller.subject,
            at=at,
        )
        audit.record(
            conn,
            principal=caller.principal,
            action=caller.action,
            resource=caller.resource,
            customer_id=customer_id,
            status=201,
            detail=f"{body.channel}/{body.purpose} {body.status} text {body.text_version}",
        )
        if body.status == "opt_out":  # less contact: Redis first, so a failure leaves nothing committed
            try:
                hot_record.set_consent(
                    redis_client, prefix, customer_id, body.channel, body.purpose, "opt_out", evidence_id
                )
            except redis.RedisError as exc:
                raise contact.redis_unavailable(exc, "the withdrawal") from None
        answer = {
            "customer_id": customer_id,
            **body.model_dump(mode="json"),
            "decided_at": at,
            "evidence_id": evidence_id,
            "hot_record": "current",
        }
        return 201, answer

    response = run_once(source, caller, key, body.model_dump(mode="json"), write)
    if response.status_code == 201 and contact.sync_after_commit(source, redis_client, prefix, customer_id) == "stale":
        response = _mark_stale(response)
    return response


def _mark_stale(response: JSONResponse) -> JSONResponse:
    import json

    answer = json.loads(response.body)
    answer["hot_record"] = "stale"
    kept = {k: v for k, v in response.headers.items() if k.lower() == "idempotent-replayed"}
    return JSONResponse(answer, status_code=response.status_code, headers=kept)


@router.post(
    "/{customer_id}/contact-preferences",
    status_code=201,
    response_model=PreferencesSaved,
    responses=WRITE_ERRORS,
    summary="Set push frequency and quiet hours (replaces the previous preferences)",
)
def post_preferences(
    customer_id: CustomerId,
    body: Preferences,
    caller: authorized(Scope.CONSENTS_WRITE, "contact_preferences.write"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
    redis_client: RedisDep,
    settings: SettingsDep,
) -> JSONResponse:
    """The whole preference set, replacing the last one. The hot record is marked pending before the commit
    (campaigns then read the source), and holds the new preferences once it is committed."""
    prefix = settings.redis_prefix

    def write(conn) -> tuple[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
        require_visible(conn, caller.principal, customer_id)
        contact.lock_customer(conn, customer_id)
        version = contact.save_preferences(
            conn,
            customer_id=customer_id,
            max_push_per_week=body.max_push_per_week,
            quiet_start=body.quiet_hours.start if body.quiet_hours else None,
            quiet_end=body.quiet_hours.end if body.quiet_hours else None,
            time_zone=body.time_zone,
            source=body.source,
            actor=caller.subject,
        )
        audit.record(
            conn,
            principal=caller.principal,
            action=caller.action,
            resource=caller.resource,
            customer_id=customer_id,
            status=201,
            detail=f"version {version}",
        )
        try:
            hot_record.mark_prefs_pending(redis_client, prefix, customer_id, version)
        except redis.RedisError as exc:
            raise contact.redis_unavailable(exc, "the preference change") from None
        saved = contact.preferences(conn, customer_id)
        return 201, {"customer_id": customer_id, "preferences": saved, "hot_record": "current"}

    response = run_once(source, caller, key, body.model_dump(mode="json"), write)
    if response.status_code == 201 and contact.sync_after_commit(source, redis_client, prefix, customer_id) == "stale":
        response = _mark_stale(response)
    return response


@router.get(
    "/{customer_id}/consents",
    response_model=ConsentState,
    responses=problem_responses(401, 403, 404, 422, 429),
    summary="Current consents, contact preferences and the evidence history",
)
def get_consents(
    customer_id: CustomerId,
    caller: authorized(Scope.CONSENTS_READ, "consents.read"),
    source: SourceDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ConsentState:
    """The current decision per channel and purpose (marketing from the core systems' consents, service from
    the evidence), the contact preferences, and every recorded decision, newest first."""
    after = decode_cursor(cursor, arity=1)
    with source.connect() as conn:
        require_visible(conn, caller.principal, customer_id)
        contact_row = conn.execute(select(contact.CUSTOMERS.c.id).where(contact.CUSTOMERS.c.id == customer_id)).first()
        if contact_row is None:
            raise ApiError(404, f"customer {customer_id} not found")
        query = select(EVIDENCE).where(EVIDENCE.c.customer_id == customer_id).order_by(EVIDENCE.c.id.desc())
        if after is not None:
            query = query.where(EVIDENCE.c.id < int(after[0]))
        rows = conn.execute(query.limit(limit + 1)).all()
        items = [Evidence.model_validate(r._mapping, from_attributes=False) for r in rows[:limit]]
        return ConsentState(
            customer_id=customer_id,
            erased=contact.is_erased(conn, customer_id),
            current=[CurrentConsent(**c) for c in contact.current_consents(conn, customer_id)],
            contact_preferences=contact.preferences(conn, customer_id),
            evidence=items,
            next_cursor=encode_cursor([items[-1].id]) if len(rows) > limit else None,
        )
