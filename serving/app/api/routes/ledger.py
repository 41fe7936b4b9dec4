"""The contact ledger: a customer's touches (every decision about a message meant for them, with what became
of it), and the evidence export a regulator asks for (every touch in a period with the consent evidence and
the rule results at decision time), as JSON or CSV, audited as an export.

The queries are the platform's (mo/campaigns/ledger.py), shared with `mo campaigns evidence` and the marts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.api.deps import SourceDep, authorized
from app.api.routes.customers import CustomerId
from app.core.errors import ApiError, problem_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.roles import Scope
from app.core.timestamps import UtcDateTime, as_stored
from app.services import audit
from app.services.published import source_reads
from app.services.visibility import require_visible
from mo.campaigns import ledger

router = APIRouter(tags=["contact ledger"])
MAX_PERIOD = timedelta(days=3 * 366)  # a regulator's request covers a few years at most; bigger: several calls

Decision = Literal["send", "suppress", "defer"]


class DeliveryState(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"state": "delivered", "at": "2026-12-07T02:00:03Z", "provider": "sms",
                 "provider_message_id": "pm-88121", "detail": None}
            ]
        }
    )  # fmt: skip
    state: Literal["queued", "sent", "delivered", "failed", "opened", "clicked", "dead_letter"]
    at: UtcDateTime
    provider: str | None
    provider_message_id: str | None
    detail: str | None


class Touch(BaseModel):
    ledger_id: int
    touch_key: str
    attempt: int
    decided_at: UtcDateTime
    source: Literal["campaign", "journey", "service"]
    campaign_id: int | None
    occurrence: int | None
    channel: str | None
    purpose: Literal["marketing", "service"]
    product_line: str | None
    priority: int
    decision: Decision
    reason: str = Field(description="`ok` for a send, else the first rule that stopped or deferred it.")
    not_before: UtcDateTime | None = Field(description="A deferral: decided again from then.")
    message_id: str | None
    rule_results: dict[str, Any] = Field(description="Every rule's result at decision time.")
    deliveries: list[DeliveryState]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ledger_id": 8812,
                    "touch_key": "campaign:12:1:1001",
                    "attempt": 1,
                    "decided_at": "2026-12-07T02:00:00Z",
                    "source": "campaign",
                    "campaign_id": 12,
                    "occurrence": 1,
                    "channel": "app_push",
                    "purpose": "marketing",
                    "product_line": "auto",
                    "priority": 5,
                    "decision": "send",
                    "reason": "ok",
                    "not_before": None,
                    "message_id": "5f0c7a52-3d8e-4c11-9a51-0f6f7b1c2d3e",
                    "rule_results": {
                        "purpose": "marketing",
                        "consent": {"from": "hot", "app_push": ["opt_in", 5521], "sms": ["opt_in", 5522]},
                        "open_claims": [],
                        "open_complaints": [],
                        "risk": {"rating": "R3", "offer_level": "R2"},
                        "holdout": {"cycle": "2026", "bucket": 7311, "held_out": False, "share": "0.0500"},
                        "counts": {"7d": 1, "30d": 2, "channel_7d": {"app_push": 0, "sms": 1}},
                        "caps": {"7d": 2, "30d": 4, "channel_7d": 2},
                        "local": {"time": "2026-12-07T10:00:00+08:00", "zone": "Asia/Shanghai"},
                    },
                    "deliveries": [
                        {
                            "state": "delivered",
                            "at": "2026-12-07T02:00:03Z",
                            "provider": "push",
                            "provider_message_id": "pm-88121",
                            "detail": None,
                        }
                    ],
                }
            ]
        }
    )


class ConsentAtDecision(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"channel": "sms", "purpose": "marketing", "status_at_decision": "opt_in", "version": 5522,
                 "read_from": "hot", "evidence": {"evidence_id": 5522, "status": "opt_in", "text_version": "v3"}}
            ]
        }
    )  # fmt: skip
    channel: str
    purpose: Literal["marketing", "service"]
    status_at_decision: Literal["opt_in", "opt_out"] | None
    version: int | None = Field(description="The consent_evidence id the decision rested on (0: core systems).")
    read_from: Literal["hot", "source"] | None
    evidence: dict[str, Any] | None = Field(description="That consent_evidence row, as recorded.")


EVIDENCE_ROW_EXAMPLE: dict[str, Any] = {
    "ledger_id": 8813,
    "touch_key": "campaign:14:1:1001",
    "attempt": 1,
    "decided_at": "2026-12-08T02:00:00Z",
    "source": "campaign",
    "campaign_id": 14,
    "occurrence": 1,
    "customer_id": 1001,
    "channel": None,
    "purpose": "marketing",
    "product_line": "health",
    "priority": 3,
    "decision": "suppress",
    "reason": "consent_withdrawn",
    "not_before": None,
    "message_id": None,
    "consent_evidence": [
        {
            "channel": "sms",
            "purpose": "marketing",
            "status_at_decision": "opt_out",
            "version": 6120,
            "read_from": "hot",
            "evidence": {
                "evidence_id": 6120,
                "channel": "sms",
                "purpose": "marketing",
                "status": "opt_out",
                "text_version": "v3",
                "source": "app",
                "reason": "customer",
                "decided_at": "2026-12-08T01:59:59",
                "actor": "client:app-backend",
                "request_id": "req-7d1f",
            },
        }
    ],
    "rule_results": {
        "purpose": "marketing",
        "consent": {"from": "hot", "sms": ["opt_out", 6120]},
    },
    "deliveries": [],
}


class EvidenceRow(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EVIDENCE_ROW_EXAMPLE]})

    ledger_id: int
    touch_key: str
    attempt: int
    decided_at: UtcDateTime
    source: str
    campaign_id: int | None
    occurrence: int | None
    customer_id: int
    channel: str | None
    purpose: str
    product_line: str | None
    priority: int
    decision: Decision
    reason: str
    not_before: UtcDateTime | None
    message_id: str | None
    consent_evidence: list[ConsentAtDecision]
    rule_results: dict[str, Any]
    deliveries: list[DeliveryState]


class EvidenceExport(BaseModel):
    customer_id: int
    period_from: UtcDateTime
    period_to: UtcDateTime
    rows: list[EvidenceRow]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": 1001,
                    "period_from": "2026-12-01T00:00:00Z",
                    "period_to": "2027-01-01T00:00:00Z",
                    "rows": [EVIDENCE_ROW_EXAMPLE],
                }
            ]
        }
    )


def _invalid(field: str, message: str, detail: str) -> ApiError:
    return ApiError(422, detail, kind="validation", errors=[(field, message)])


@router.get(
    "/v1/contact-ledger/evidence",
    response_model=EvidenceExport,
    responses={
        **problem_responses(401, 403, 404, 422, 429, 503),
        200: {
            "description": "Every decision in the period (JSON), or the same as CSV with `format=csv`.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
    summary="Evidence for a regulator: a customer's touches in a period, with consent evidence and rule results",
)
def contact_evidence(
    caller: authorized(Scope.CONTACT_EVIDENCE, "contact_ledger.evidence"),
    source: SourceDep,
    customer_id: Annotated[int, Query(ge=1, le=2**63 - 1, description="The customer.", examples=[1001])],
    period_from: Annotated[
        datetime, Query(alias="from", description="Start of the period (inclusive; UTC if no offset).")
    ],
    period_to: Annotated[datetime, Query(alias="to", description="End of the period (exclusive).")],
    format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv.")] = "json",  # noqa: A002
) -> Any:
    """Every decision about a touch to the customer decided in [from, to), oldest first: the decision and its
    reason, the consent evidence row each channel's consent rested on at decision time, every rule's result,
    and the delivery states. Audited as an export (who, which customer, which period, how many rows)."""
    since, until = as_stored(period_from), as_stored(period_to)
    problem = None
    if until <= since:
        problem = _invalid("/query/to", "must be after from", "the period ends before it starts")
    elif until - since > MAX_PERIOD:
        problem = _invalid("/query/to", "at most three years after from", "the period is longer than three years")
    if problem is not None:  # a refused export is audited too (the middleware audits refused writes only)
        audit.record_alone(source, principal=caller.principal, action=caller.action, resource=caller.resource,
                           status=422, customer_id=customer_id, detail=problem.detail)  # fmt: skip
        raise problem
    try:
        with source.begin() as conn:
            require_visible(conn, caller.principal, customer_id)
            rows = ledger.evidence(conn, customer_id, since, until)
            audit.record(
                conn,
                principal=caller.principal,
                action=caller.action,
                resource=caller.resource,
                customer_id=customer_id,
                detail=f"export format={format} from={since.isoformat()} to={until.isoformat()} rows={len(rows)}",
            )
    except ApiError:
        raise
    except (DBAPIError, SQLAlchemyError) as exc:
        raise ApiError(503, f"core systems database unavailable: {type(exc).__name__}") from None
    if format == "csv":
        return Response(
            ledger.to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="contact-evidence-{customer_id}.csv"'},
        )
    return EvidenceExport(customer_id=customer_id, period_from=since, period_to=until, rows=rows)  # type: ignore[arg-type]


@router.get(
    "/v1/customers/{customer_id}/touches",
    response_model=Page[Touch],
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="The customer's touches: every send decision about them, newest first, with delivery states",
)
def customer_touches(
    customer_id: CustomerId,
    caller: authorized(Scope.CAMPAIGNS_READ, "customers.touches"),
    source: SourceDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Touch]:
    """Newest decision first (sends, suppressions with their reason, deferrals with their not-before time),
    each with its rule results and what the channel reported since."""
    after = decode_cursor(cursor, arity=2)
    last = None
    if after is not None:
        try:
            if not isinstance(after[0], str) or not isinstance(after[1], int) or isinstance(after[1], bool):
                raise ValueError
            last = (datetime.fromisoformat(after[0]), after[1])
        except ValueError:
            raise _invalid("/query/cursor", "invalid cursor", "cursor is not one this API returned") from None
    with source_reads(source) as conn:
        require_visible(conn, caller.principal, customer_id)
        rows = ledger.touches(conn, customer_id, after=last, limit=limit + 1)
    items = [
        Touch(
            ledger_id=r["id"],
            **{k: r[k] for k in Touch.model_fields if k in r and k not in ("ledger_id", "deliveries")},
            rule_results=r["detail"],
            deliveries=[DeliveryState(**d) for d in r["deliveries"]],
        )
        for r in rows[:limit]
    ]
    next_cursor = None
    if len(rows) > limit:
        tail = rows[limit - 1]
        next_cursor = encode_cursor([tail["decided_at"].isoformat(), int(tail["id"])])
    return Page[Touch](items=items, next_cursor=next_cursor)
