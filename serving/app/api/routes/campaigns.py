"""Campaigns: drafted and edited by marketers, approved by another person (four eyes), scheduled, paused,
resumed, cancelled; previewed per channel before approval.

draft -> submitted -> approved | rejected -> scheduled -> running -> completed (running and completed are the
dispatcher's); pause, resume, cancel. An action the status does not allow is 409 with ``allowed_actions``; a
stale ``version`` is 409; a campaign that cannot go on (archived segment, unregistered signature, a template
missing a field, an SMS too long, a schedule in the past) is 422 naming each problem. Every change writes its
``campaign_events`` row, the audit entry and the ``campaign_status_changed`` event in one transaction, once per
Idempotency-Key. See app.services.campaigns and mo.campaigns.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import text

from app.api.deps import SourceDep, StoreDep, authorized
from app.core.errors import ApiError, problem_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.roles import Scope
from app.services import campaigns as service
from app.services.idempotency import idempotency_key, run_once
from app.services.published import snapshot, source_reads
from app.services.visibility import require_visible
from mo.oltp.campaign_tables import CAMPAIGN_STATUSES, OBJECTIVES

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CampaignId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The campaign's id.", examples=[42])]
Objective = Literal[OBJECTIVES]  # type: ignore[valid-type]
Status = Literal[CAMPAIGN_STATUSES]  # type: ignore[valid-type]
ProductLine = Literal["auto", "property", "accident", "health", "life"]
ChannelName = Literal["sms", "wechat", "push", "coupon"]
Key = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_]+$")]
Text = Annotated[str, StringConstraints(max_length=500)]


def _plain(value: str | None) -> str | None:
    if value is not None and CONTROL.search(value):
        raise ValueError("contains control characters")
    return value


class Offer(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"type": "product", "product_code": "AU-COMP"}]}
    )
    type: Literal["product", "service", "coupon"]
    product_code: str | None = Field(None, min_length=1, max_length=16, pattern=r"^[A-Z0-9-]+$")
    stock_id: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = Field(None, min_length=1, max_length=200)

    _text = field_validator("description")(_plain)


class ChannelTemplate(BaseModel):
    """One channel and its template (see docs/campaigns.md, "Campaigns", for each channel's fields)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channel": "sms",
                    "template": {
                        "sign_name": "中安保险",
                        "template_code": "SMS_RENEWAL_01",
                        "params": {
                            "name": "{{profile.name_masked}}",
                            "product": "{{product.name}}",
                            "renewal_date": "{{profile.next_renewal_date}}",
                            "link": "https://m.example.cn/r",
                        },
                    },
                }
            ]
        },
    )
    channel: ChannelName
    template: dict[Key, Text | dict[Key, Text]] = Field(max_length=12)


class Schedule(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"kind": "now"},
                {"kind": "at", "start_at": "2026-12-20T01:00:00Z"},
                {"kind": "recurring", "frequency": "weekly", "weekdays": [1, 4], "local_time": "09:30",
                 "time_zone": "Asia/Shanghai"},
            ]
        },
    )  # fmt: skip
    kind: Literal["now", "at", "recurring"]
    start_at: datetime | None = Field(None, description="'at': when; 'recurring': not before (with an offset).")
    frequency: Literal["daily", "weekly"] | None = None
    local_time: str | None = Field(None, max_length=5, pattern=r"^\d\d:\d\d$", description="HH:MM local time.")
    time_zone: str | None = Field(None, min_length=1, max_length=64, description="IANA, e.g. Asia/Shanghai.")
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] | None = Field(None, min_length=1, max_length=7)

    def document(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


CREATE_EXAMPLE: dict[str, Any] = {
    "name": "Auto renewal, December",
    "objective": "renewal",
    "product_line": "auto",
    "purpose": "marketing",
    "offer": {"type": "product", "product_code": "AU-COMP"},
    "segment_id": "auto-renewal-30d-push",
    "channels": [
        {
            "channel": "push",
            "template": {"title": "{{product.name}}续保提醒", "body": "您的保单即将到期，点击续保", "extras": {}},
        }
    ],
    "schedule": {"kind": "at", "start_at": "2030-12-20T01:00:00Z"},
    "priority": 50,
    "holdout_share": "0.1000",
    "ends_at": "2030-12-31T16:00:00Z",
}


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CREATE_EXAMPLE]})
    name: str = Field(min_length=1, max_length=120)
    objective: Objective
    product_line: ProductLine
    purpose: Literal["marketing", "service"]
    offer: Offer
    segment_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    channels: list[ChannelTemplate] = Field(min_length=1, max_length=4, description="By preference.")
    schedule: Schedule
    priority: int = Field(ge=0, le=1000, description="Higher wins a contested contact slot.")
    holdout_share: Decimal = Field(ge=0, le=Decimal("0.5"), max_digits=5, decimal_places=4)
    ends_at: datetime = Field(description="When the campaign ends (with an offset).")

    _text = field_validator("name")(_plain)

    @field_validator("ends_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs an offset (Z or +08:00)")
        return value


class CampaignEdit(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"version": 1, "name": "Auto renewal, December (v2)"}]}
    )
    version: int = Field(ge=1, le=2**31 - 1, description="The version you read: a stale one is refused (409).")
    name: str | None = Field(None, min_length=1, max_length=120)
    objective: Objective | None = None
    product_line: ProductLine | None = None
    purpose: Literal["marketing", "service"] | None = None
    offer: Offer | None = None
    segment_id: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    channels: list[ChannelTemplate] | None = Field(None, min_length=1, max_length=4)
    schedule: Schedule | None = None
    priority: int | None = Field(None, ge=0, le=1000)
    holdout_share: Decimal | None = Field(None, ge=0, le=Decimal("0.5"), max_digits=5, decimal_places=4)
    ends_at: datetime | None = None

    _text = field_validator("name")(_plain)

    @field_validator("ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs an offset (Z or +08:00)")
        return value


class ActionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"version": 2}, {"version": 2, "note": "Offer wording not approved"}]},
    )
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="The version you read (409 if stale).")
    note: str | None = Field(None, min_length=1, max_length=1000, description="Why; required to reject.")

    _text = field_validator("note")(_plain)


class OfferRead(BaseModel):
    type: str
    product_code: str | None
    stock_id: str | None
    description: str | None


class EventRead(BaseModel):
    from_status: str | None
    to_status: str
    actor: str
    role: str | None
    note: str | None
    request_id: str
    at: str


READ_EXAMPLE: dict[str, Any] = {
    "id": 42,
    "campaign_code": "CP20261206A1B2C3D4",
    **{k: v for k, v in CREATE_EXAMPLE.items() if k not in ("offer", "holdout_share")},
    "offer": {"type": "product", "product_code": "AU-COMP", "stock_id": None, "description": None},
    "segment_version": None,
    "holdout_share": "0.1000",
    "status": "draft",
    "author": "user:marketer.li",
    "approver": None,
    "decided_at": None,
    "decision_note": None,
    "next_run_at": None,
    "version": 1,
    "created_at": "2026-12-06T10:00:00Z",
    "updated_at": "2026-12-06T10:00:00Z",
    "allowed_actions": ["edit", "submit", "cancel"],
}


class CampaignRead(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [READ_EXAMPLE]})
    id: int
    campaign_code: str
    name: str
    objective: str
    product_line: str
    purpose: str
    offer: OfferRead
    segment_id: str
    segment_version: int | None
    channels: list[dict[str, Any]]
    schedule: dict[str, Any]
    priority: int
    holdout_share: str
    ends_at: str
    status: str
    author: str
    approver: str | None
    decided_at: str | None
    decision_note: str | None
    next_run_at: str | None
    version: int
    created_at: str
    updated_at: str
    allowed_actions: list[str]


class CampaignDetail(CampaignRead):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **READ_EXAMPLE,
                    "events": [
                        {"from_status": None, "to_status": "draft", "actor": "user:marketer.li", "role": "marketer",
                         "note": None, "request_id": "5b7c1e", "at": "2026-12-06T10:00:00Z"}
                    ],
                }
            ]
        }
    )  # fmt: skip
    events: list[EventRead]


class FieldProblem(BaseModel):
    field: str
    message: str


class ChannelPreview(BaseModel):
    channel: str
    ok: bool
    message: dict[str, Any] = Field(description="SMS: text, length, parts; WeChat: title, data, url; push: title, "
                                                "body and their lengths; coupon: stock and value.")  # fmt: skip
    payload: dict[str, Any] = Field(description="What the channel adapter would send.")
    errors: list[FieldProblem]


class Preview(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": 42,
                    "customer_id": 1001,
                    "refresh_id": "r20261206",
                    "channels": [
                        {
                            "channel": "sms",
                            "ok": True,
                            "message": {"text": "【中安保险】尊敬的张*，...", "length": 52, "parts": 1},
                            "payload": {"sign_name": "中安保险", "template_code": "SMS_RENEWAL_01",
                                        "template_param": {"name": "张*"}},
                            "errors": [],
                        }
                    ],
                }
            ]
        }
    )  # fmt: skip
    campaign_id: int
    customer_id: int
    refresh_id: str
    channels: list[ChannelPreview]


WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 422, 429)


@router.post("", status_code=201, response_model=CampaignDetail, responses=WRITE_ERRORS, summary="Draft a campaign")
def create_campaign(
    body: CampaignCreate,
    caller: authorized(Scope.CAMPAIGNS_WRITE, "campaigns.create"),
    key: Annotated[str, Depends(idempotency_key)],
    source: SourceDep,
) -> Any:
    """A draft: its offer, segment, channel templates and schedule are checked now (422 naming each problem)."""
    values = body.model_dump()
    values["schedule"] = body.schedule.document()
    return run_once(
        source, caller, key, body.model_dump(mode="json"), lambda conn: (201, service.create(conn, caller, values))
    )


@router.get(
    "",
    response_model=Page[CampaignRead],
    responses=problem_responses(401, 403, 422, 429),
    summary="Campaigns, newest first",
)
def list_campaigns(
    caller: authorized(Scope.CAMPAIGNS_READ, "campaigns.list"),
    source: SourceDep,
    status: Annotated[Status | None, Query(description="Only campaigns in this status.")] = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Any:
    key = decode_cursor(cursor, arity=1)
    after = None
    if key is not None:
        if not isinstance(key[0], int) or isinstance(key[0], bool) or not 0 < key[0] < 2**63:
            raise ApiError(422, "cursor is not one this API returned", kind="validation",
                           errors=[("/query/cursor", "invalid cursor")])  # fmt: skip
        after = key[0]
    with source_reads(source) as conn:
        items, last = service.list_page(conn, status=status, after=after, limit=limit)
    return {"items": items, "next_cursor": None if last is None else encode_cursor([last])}


@router.get(
    "/{campaign_id}",
    response_model=CampaignDetail,
    responses=problem_responses(401, 403, 404, 422, 429),
    summary="A campaign with its history",
)
def get_campaign(
    campaign_id: CampaignId, caller: authorized(Scope.CAMPAIGNS_READ, "campaigns.read"), source: SourceDep
) -> Any:
    with source_reads(source) as conn:
        return service.detail(conn, service.load(conn, campaign_id))


@router.patch(
    "/{campaign_id}",
    response_model=CampaignDetail,
    responses=WRITE_ERRORS,
    summary="Edit a draft or rejected campaign (optimistic version)",
)
def edit_campaign(
    campaign_id: CampaignId,
    body: CampaignEdit,
    caller: authorized(Scope.CAMPAIGNS_WRITE, "campaigns.edit"),
    source: SourceDep,
) -> Any:
    """Only in draft or rejected (409 otherwise), only by its author, only at the version read (409 if stale);
    the whole campaign is checked again (422)."""
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    changes = {k: v for k, v in changes.items() if v is not None}
    if body.schedule is not None:
        changes["schedule"] = body.schedule.document()
    if not changes:
        raise ApiError(422, "nothing to change: name at least one field besides version", kind="validation",
                       errors=[("/body", "no field to change")])  # fmt: skip
    with source.begin() as conn:
        return service.edit(conn, caller, campaign_id, changes, body.version)


def _action(action: str, summary: str, scope: Scope, doc: str) -> None:
    def take(
        campaign_id: CampaignId,
        body: ActionRequest,
        caller: Any,
        key: Annotated[str, Depends(idempotency_key)],
        source: SourceDep,
    ) -> Any:
        return run_once(
            source, caller, key, {"campaign_id": campaign_id, **body.model_dump(mode="json")},
            lambda conn: (200, service.act(conn, caller, campaign_id, action, version=body.version, note=body.note)),
        )  # fmt: skip

    take.__annotations__["caller"] = authorized(scope, f"campaigns.{action}")  # a closure: not a string
    take.__doc__ = doc
    take.__name__ = f"{action}_campaign"
    router.add_api_route(
        f"/{{campaign_id}}/{action}",
        take,
        methods=["POST"],
        response_model=CampaignDetail,
        responses=WRITE_ERRORS,
        summary=summary,
        name=f"{action}_campaign",
    )


_action("submit", "Submit for approval (pins the segment version)", Scope.CAMPAIGNS_WRITE,
        "draft | rejected -> submitted, by its author. The campaign is checked again (segment live, templates, "
        "schedule not in the past); the segment's current version is pinned.")  # fmt: skip
_action("approve", "Approve (another person than the author)", Scope.CAMPAIGNS_APPROVE,
        "submitted -> approved. Four eyes: the author cannot approve (403).")  # fmt: skip
_action("reject", "Reject with a note (another person than the author)", Scope.CAMPAIGNS_APPROVE,
        "submitted -> rejected; `note` is required. The author may edit and submit again.")  # fmt: skip
_action("schedule", "Schedule an approved campaign", Scope.CAMPAIGNS_WRITE,
        "approved -> scheduled; sets next_run_at (now, the time set, or the first recurring run). A time in the "
        "past is refused (422).")  # fmt: skip
_action("pause", "Pause a scheduled or running campaign", Scope.CAMPAIGNS_WRITE,
        "scheduled | running -> paused: the dispatcher stops picking it.")  # fmt: skip
_action("resume", "Resume a paused campaign", Scope.CAMPAIGNS_WRITE,
        "paused -> the status it was paused from; a recurring campaign skips the runs missed meanwhile.")  # fmt: skip
_action("cancel", "Cancel a campaign that has not finished", Scope.CAMPAIGNS_WRITE,
        "any status but completed or cancelled -> cancelled.")  # fmt: skip


@router.get(
    "/{campaign_id}/preview",
    response_model=Preview,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="Each channel's message rendered for a customer of the published profile",
)
def preview_campaign(
    campaign_id: CampaignId,
    caller: authorized(Scope.CAMPAIGNS_READ, "campaigns.preview"),
    source: SourceDep,
    store: StoreDep,
    channel: Annotated[ChannelName | None, Query(description="Only this channel.")] = None,
    customer_id: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="The sample customer (default: the first published).")
    ] = None,
) -> Any:
    """SMS text with its length and parts as the provider counts them, WeChat template data, push title and
    body: rendered from the catalogue's product facts and the customer's published profile, with every problem."""
    if customer_id is None and caller.principal.scoped_to_customers:
        raise ApiError(422, "customer_id is required for a caller limited to an organisation or agent",
                       kind="validation", errors=[("/query/customer_id", "required for your scope")])  # fmt: skip
    with source_reads(source) as conn:
        row = service.load(conn, campaign_id)
        if customer_id is not None:
            require_visible(conn, caller.principal, customer_id)
    with snapshot(store) as snap:
        query = f"SELECT * FROM {snap.view('customer_profile')}"
        if customer_id is not None:
            found = snap.conn.execute(text(query + " WHERE customer_id = :cid"), {"cid": customer_id}).first()
        else:
            found = snap.conn.execute(text(query + " ORDER BY customer_id LIMIT 1")).first()
        refresh_id = snap.refresh_id
    if found is None:
        raise ApiError(404, f"customer {customer_id} is not in the published profiles",
                       errors=[("/query/customer_id", "not published")])  # fmt: skip
    profile = dict(found._mapping)
    with source_reads(source) as conn:
        channels = service.preview(conn, row, profile, channel)
    if channel is not None and not channels:
        raise ApiError(422, f"campaign {campaign_id} has no {channel} channel", kind="validation",
                       errors=[("/query/channel", "not a channel of this campaign")])  # fmt: skip
    return {"campaign_id": campaign_id, "customer_id": int(profile["customer_id"]), "refresh_id": refresh_id,
            "channels": channels}  # fmt: skip


class UpliftRead(BaseModel):
    treated: int = Field(description="Eligible customers (past consent and guardrails) not held out.")
    treated_converted: int
    holdout: int = Field(description="Eligible customers held out of the product line for the renewal cycle.")
    holdout_converted: int
    treated_rate: float | None
    holdout_rate: float | None
    difference: float | None = Field(description="Treated rate minus holdout rate.")
    low: float | None = Field(description="95% interval of the difference, low end (Newcombe hybrid score).")
    high: float | None


class FunnelRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": 42,
                    "product_line": "auto",
                    "attribution_days": 30,
                    "audience": 1200,
                    "decided": 1180,
                    "waiting": 20,
                    "suppressed": {"holdout": 118, "no_consent": 240, "open_claim": 12, "cap_7d": 30},
                    "sent": 780,
                    "delivered": 741,
                    "failed": 9,
                    "dead_letter": 1,
                    "opened": 233,
                    "clicked": 97,
                    "converted": 41,
                    "by_channel": {
                        "sms": {"queued": 500, "sent": 500, "delivered": 480, "failed": 5, "dead_letter": 0,
                                "opened": 0, "clicked": 60}
                    },
                    "uplift": {"treated": 810, "treated_converted": 43, "holdout": 118, "holdout_converted": 3,
                               "treated_rate": 0.0531, "holdout_rate": 0.0254, "difference": 0.0277,
                               "low": -0.0099, "high": 0.0519},
                }
            ]
        }
    )  # fmt: skip
    campaign_id: int
    product_line: str
    attribution_days: int
    audience: int = Field(description="Members frozen in the campaign's snapshots, all occurrences.")
    decided: int = Field(description="Touches with a final decision (send or suppress).")
    waiting: int = Field(description="Touches deferred (quiet hours, send window) and not decided again yet.")
    suppressed: dict[str, int] = Field(description="Suppressed touches by the first rule that stopped them.")
    sent: int
    delivered: int
    failed: int
    dead_letter: int
    opened: int
    clicked: int
    converted: int = Field(description="Sent customers who bought or renewed in the line within the window.")
    by_channel: dict[str, dict[str, int]]
    uplift: UpliftRead | None


@router.get(
    "/{campaign_id}/funnel",
    response_model=FunnelRead,
    responses=problem_responses(401, 403, 404, 422, 429),
    summary="The campaign's live funnel from the contact ledger, with the uplift over the holdout",
)
def campaign_funnel(
    campaign_id: CampaignId,
    caller: authorized(Scope.CAMPAIGNS_READ, "campaigns.funnel"),
    source: SourceDep,
    attribution_days: Annotated[int, Query(ge=1, le=365, description="Days after a touch a purchase counts.")] = 30,
) -> Any:
    """Audience, suppressed by reason, delivery states (all and per channel), conversions in the campaign's product
    line, and the uplift over the durable holdout with its 95% interval: read live from the ledger, the delivery
    records and the core systems' policies (the lake's results marts give the same figures per week and month)."""
    from mo.campaigns.results import campaign_funnel as funnel_of

    with source_reads(source) as conn:
        funnel = funnel_of(conn, campaign_id, attribution_days=attribution_days)
    if funnel is None:
        raise ApiError(404, f"campaign {campaign_id} not found")
    return funnel.as_dict()
