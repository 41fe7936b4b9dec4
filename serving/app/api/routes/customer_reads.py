"""Customer reads for apps beyond the profile: lookup by phone or ID number, timeline, segments with the
reasons, policies and next-best-offer recommendations.

Reads of the published serving store name the refresh they come from (``refresh_id``, ``as_of_date``) and
are read in one snapshot with it (app/services/published.py); reads of the core systems (policies) are live.
A customer outside the caller's organisation or agent is not found (404), exactly like one that does not
exist.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import and_, or_, select, text

from app.api.deps import SettingsDep, SourceDep, StoreDep, authorized
from app.api.routes.customers import CustomerId
from app.core.errors import ApiError, problem_responses
from app.core.pagination import Cursor, Limit, Page, decode_cursor, encode_cursor
from app.core.roles import Scope
from app.services import audit
from app.services.published import Snapshot, snapshot, source_reads
from app.services.recommendations import recommend
from app.services.visibility import can_see, require_visible
from mo import pii
from mo.catalogue import PRODUCTS, product_facts, product_rows
from mo.errors import ConfigError
from mo.oltp.models import Policy

router = APIRouter(prefix="/v1/customers", tags=["customers"])
POLICIES = Policy.__table__
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
PolicyStatus = Literal["quoted", "pending_payment", "in_force", "lapsed", "surrendered", "expired"]
POLICY_STATUSES = get_args(PolicyStatus)


def _day(value: Any) -> date | None:
    if value is None:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _bind_day(snap: Snapshot, value: date) -> Any:
    return value if snap.store.dialect == "postgresql" else value.isoformat()


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _invalid(field: str, message: str, detail: str) -> ApiError:
    return ApiError(422, detail, kind="validation", errors=[(field, message)])


def _visible(source: Any, caller: Any, customer_id: int) -> None:
    with source_reads(source) as conn:
        require_visible(conn, caller.principal, customer_id)


# --- lookup --------------------------------------------------------------------------------------------------


# A mainland mobile number (optionally +86, spaces or hyphens between digits); a resident ID number of 18
# characters (17 digits and a check digit or X) or the old 15 digits. The schema states what is accepted.
Phone = Annotated[str, StringConstraints(max_length=32, pattern=r"^ *(\+?86)?[ -]*1([ -]*[0-9]){10} *$")]
IdNumber = Annotated[str, StringConstraints(max_length=32, pattern=r"^ *([0-9]{17}[0-9Xx]|[0-9]{15}) *$")]


class LookupRequest(BaseModel):
    """Exactly one of phone or ID number. Sent in the body, never in the URL: clear values must not reach
    access logs, proxies or browser histories."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"phone": "+86 138 0013 8000"}, {"id_number": "11010519491231002X"}],
            "oneOf": [{"required": ["phone"]}, {"required": ["id_number"]}],
        },
    )
    # Absent means None (defaults are not validated); an explicit null is refused like any non-string.
    phone: Phone = None  # type: ignore[assignment]
    id_number: IdNumber = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _exactly_one(self) -> LookupRequest:
        if (self.phone is None) == (self.id_number is None):
            raise ValueError("give exactly one of phone or id_number")
        return self


class LookupMatch(BaseModel):
    customer_id: int
    name_masked: str | None
    phone_masked: str | None
    customer_tier: str | None


class LookupResult(BaseModel):
    refresh_id: str
    as_of_date: date
    matches: list[LookupMatch]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "refresh_id": "20261206020000123456a1b2c3",
                    "as_of_date": "2026-12-05",
                    "matches": [
                        {
                            "customer_id": 1001,
                            "name_masked": "王**",
                            "phone_masked": "138****8000",
                            "customer_tier": "gold",
                        }
                    ],
                }
            ]
        }
    )


@router.post(
    "/lookup",
    response_model=LookupResult,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="Find customers by phone or ID number (tokenised, never stored or logged)",
)
def lookup_customer(
    body: LookupRequest,
    caller: authorized(Scope.CUSTOMERS_READ, "customers.lookup"),
    store: StoreDep,
    source: SourceDep,
    settings: SettingsDep,
) -> LookupResult:
    """The value is normalised and tokenised with the platform's keyed hash (mo.pii) and matched against the
    published profiles' ``phone_token`` / ``id_number_token``; the clear value goes nowhere else. Several
    customers can share a phone; only those the caller may see are returned. Audited (the kind of lookup and
    the customers found, never the value)."""
    kind, value = ("phone", body.phone) if body.phone is not None else ("id_number", body.id_number)
    normalised = pii.normalise(kind, value) or ""
    if kind == "phone" and not re.fullmatch(r"1[0-9]{10}", normalised):
        raise ApiError(
            422,
            "not a mainland mobile number",
            kind="validation",
            errors=[("/body/phone", "11 digits starting with 1, optionally +86")],
        )
    if kind == "id_number" and not re.fullmatch(r"[0-9]{17}[0-9X]|[0-9]{15}", normalised):
        raise ApiError(
            422,
            "not a resident ID number",
            kind="validation",
            errors=[("/body/id_number", "18 characters (17 digits and a digit or X) or 15 digits")],
        )
    try:
        key = settings.platform.require_pii_key()
    except ConfigError as exc:
        raise ApiError(503, f"lookups are unavailable: {exc}") from None
    token = pii.token(key, kind, normalised)
    with snapshot(store) as snap:
        rows = snap.conn.execute(
            text(
                f"SELECT customer_id, name_masked, phone_masked, customer_tier FROM {snap.view('customer_profile')} "
                f"WHERE {kind}_token = :token ORDER BY customer_id LIMIT 20"
            ),
            {"token": token},
        ).all()
        refresh_id, as_of = snap.refresh_id, snap.as_of_date
    with source_reads(source) as conn:
        visible = [r for r in rows if can_see(conn, caller.principal, int(r.customer_id))]
    if not visible:
        raise ApiError(404, f"no customer with this {kind.replace('_', ' ')} in the published profiles")
    with source_reads(source) as conn, conn.begin():
        for r in visible:
            audit.record(
                conn,
                principal=caller.principal,
                action=caller.action,
                resource=caller.resource,
                customer_id=int(r.customer_id),
                detail=f"by {kind}",
            )
    return LookupResult(
        refresh_id=refresh_id,
        as_of_date=as_of,
        matches=[LookupMatch.model_validate(r._mapping) for r in visible],
    )


# --- timeline ------------------------------------------------------------------------------------------------


class TimelineEvent(BaseModel):
    event_id: str
    event_at: datetime
    event_type: str
    domain: str
    channel: str | None
    object_id: str | None = Field(description="The policy, claim, recording or complaint the event is about.")
    amount: float | None
    attributes: dict[str, Any] | None = Field(description="The event's remaining fields (no PII).")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "claims:88231:claim_filed",
                    "event_at": "2026-12-04T09:31:12Z",
                    "event_type": "claim_filed",
                    "domain": "claim",
                    "channel": "app",
                    "object_id": "88231",
                    "amount": 3200.0,
                    "attributes": {"incident_type": "collision"},
                }
            ]
        }
    )


class Timeline(Page[TimelineEvent]):
    customer_id: int
    refresh_id: str
    as_of_date: date
    covers_from: date = Field(description="First day the published window holds; older activity stays in the lake.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": 1001,
                    "refresh_id": "20261206020000123456a1b2c3",
                    "as_of_date": "2026-12-05",
                    "covers_from": "2026-06-09",
                    "items": [
                        {
                            "event_id": "claims:88231:claim_filed",
                            "event_at": "2026-12-04T09:31:12Z",
                            "event_type": "claim_filed",
                            "domain": "claim",
                            "channel": "app",
                            "object_id": "88231",
                            "amount": 3200.0,
                            "attributes": {"incident_type": "collision"},
                        }
                    ],
                    "next_cursor": "WyIyMDI2MTIwNjAyMDAwMDEyMzQ1NmExYjJjMyIsIjIwMjYtMTItMDQgMDk6MzE6MTIiLCJ4Il0",
                }
            ]
        }
    )


def _attributes(value: Any) -> dict[str, Any] | None:
    """The event's attributes object; anything else the lake holds there is served as no attributes."""
    try:
        parsed = _json(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _event_at(value: Any) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@router.get(
    "/{customer_id}/timeline",
    response_model=Timeline,
    responses=problem_responses(401, 403, 404, 409, 422, 429, 503),
    summary="The customer's events, newest first",
)
def customer_timeline(
    customer_id: CustomerId,
    caller: authorized(Scope.CUSTOMERS_READ, "customers.timeline"),
    store: StoreDep,
    source: SourceDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    event_type: Annotated[
        str | None, Query(max_length=48, pattern=EVENT_TYPE.pattern, description="Only this event type.")
    ] = None,
    since: Annotated[date | None, Query(description="First day (inclusive, UTC).")] = None,
    until: Annotated[date | None, Query(description="Last day (inclusive, UTC).")] = None,
) -> Timeline:
    """One entry per event (policies, claims, recordings, consents, complaints, app, WeChat, forms, coupons,
    messages) from the published timeline: the serving contract's event_retention_days up to the refresh's
    as-of date, newest first. A cursor belongs to the refresh it was issued in: after a publish the listing
    must start again (409), so a page never mixes two refreshes."""
    if event_type is not None and not EVENT_TYPE.match(event_type):
        raise _invalid("/query/event_type", "lowercase letters, digits and _", "unknown event type")
    if since and until and since > until:
        raise _invalid("/query/since", "after until", "the period ends before it starts")
    after = decode_cursor(cursor, arity=3)
    if after is not None:
        try:
            if not all(isinstance(part, str) for part in after):
                raise ValueError
            last_at = datetime.fromisoformat(after[1])
        except ValueError:
            raise _invalid("/query/cursor", "invalid cursor", "cursor is not one this API returned") from None
    _visible(source, caller, customer_id)
    with snapshot(store) as snap:
        covers_from = snap.as_of_date - timedelta(days=store.contract.event_retention_days - 1)
        if until is not None and until < covers_from:
            raise _invalid(
                "/query/until",
                f"before {covers_from}",
                f"the published timeline covers {covers_from} to {snap.as_of_date}; "
                "older activity is kept in the lakehouse",
            )
        if after is not None and after[0] != snap.refresh_id:
            raise ApiError(409, "the published data changed since the first page (new refresh): start again")
        conditions = ["customer_id = :cid"]
        params: dict[str, Any] = {"cid": customer_id, "n": limit + 1}
        if event_type is not None:
            conditions.append("event_type = :etype")
            params["etype"] = event_type
        if since is not None:
            conditions.append("event_date >= :since")
            params["since"] = _bind_day(snap, since)
        if until is not None:
            conditions.append("event_date <= :until")
            params["until"] = _bind_day(snap, until)
        if after is not None:
            conditions.append("(event_at < :last_at OR (event_at = :last_at AND event_id < :last_id))")
            # PostgreSQL compares timestamps; SQLite the ISO text exactly as the store holds it
            params.update(last_at=last_at if snap.store.dialect == "postgresql" else str(after[1]), last_id=after[2])
        rows = snap.conn.execute(
            text(
                "SELECT event_id, event_at, event_type, domain, channel, object_id, amount, attributes "
                f"FROM {snap.view('customer_events')} WHERE {' AND '.join(conditions)} "
                "ORDER BY event_at DESC, event_id DESC LIMIT :n"
            ),
            params,
        ).all()
        refresh_id, as_of = snap.refresh_id, snap.as_of_date
    page = rows[:limit]
    items = [
        TimelineEvent(
            event_id=r.event_id,
            event_at=_event_at(r.event_at),
            event_type=r.event_type,
            domain=r.domain,
            channel=r.channel,
            object_id=r.object_id,
            amount=r.amount,
            attributes=_attributes(r.attributes),
        )
        for r in page
    ]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        raw_at = last.event_at.isoformat() if isinstance(last.event_at, datetime) else str(last.event_at)
        next_cursor = encode_cursor([refresh_id, raw_at, last.event_id])
    return Timeline(
        customer_id=customer_id,
        refresh_id=refresh_id,
        as_of_date=as_of,
        covers_from=covers_from,
        items=items,
        next_cursor=next_cursor,
    )


# --- segments ------------------------------------------------------------------------------------------------


class SegmentMembership(BaseModel):
    segment_id: str
    name: str | None
    kind: str | None
    segment_version: int
    run_id: str | None
    run_as_of_date: date | None = Field(description="The reference date of the segment's latest published run.")
    member_since: date | None = Field(
        None, description="First day of this stretch of membership (same version and reasons), if published."
    )
    member_until: date | None = Field(None, description="Last day of the stretch (null: still so in the latest run).")
    why: list[str] = Field(description="The rule clauses (or the smart model's score) the customer matched.")


class NotCovered(BaseModel):
    segment_id: str
    reason: str


class CustomerSegments(BaseModel):
    customer_id: int
    refresh_id: str
    as_of_date: date = Field(description="The published refresh's as-of date.")
    membership_date: date = Field(description="The day the membership answers for (?as_of, else the refresh's).")
    items: list[SegmentMembership]
    not_covered: list[NotCovered] = Field(
        description="Segments whose published run does not cover membership_date (their answer is unknown here)."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": 1001,
                    "refresh_id": "20261206020000123456a1b2c3",
                    "as_of_date": "2026-12-05",
                    "membership_date": "2026-12-05",
                    "items": [
                        {
                            "segment_id": "auto_renewal_30d",
                            "name": "Auto renewal in 30 days",
                            "kind": "dynamic",
                            "segment_version": 3,
                            "run_id": "run-20261205",
                            "run_as_of_date": "2026-12-05",
                            "member_since": "2026-11-20",
                            "member_until": None,
                            "why": ["/all/0: has_auto = true", "/all/1: days_to_renewal <= 30"],
                        }
                    ],
                    "not_covered": [],
                }
            ]
        }
    )


@router.get(
    "/{customer_id}/segments",
    response_model=CustomerSegments,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="The customer's segments and why, now or on a past date",
)
def customer_segments(
    customer_id: CustomerId,
    caller: authorized(Scope.CUSTOMERS_READ, "customers.segments"),
    store: StoreDep,
    source: SourceDep,
    as_of: Annotated[
        date | None, Query(description="Membership on this day (YYYY-MM-DD); default: the refresh's.")
    ] = None,
) -> CustomerSegments:
    """Why the customer is in each segment (the rule clauses or the smart model's score each member matched),
    now or on a past day. The store publishes each segment's membership history over the retention window
    (segment_member_history, from the segment's ``history_from``) and its latest run on or before the
    refresh's as-of date. A day neither covers is answered honestly: such segments are listed in
    ``not_covered``; a day no segment covers, or after the refresh, is a 422 naming the span. Older
    membership stays in the lakehouse (segments.membership)."""
    _visible(source, caller, customer_id)
    with snapshot(store) as snap:
        day = as_of or snap.as_of_date
        if day > snap.as_of_date:
            raise _invalid(
                "/query/as_of",
                f"after {snap.as_of_date}",
                f"membership on {day} is not published: the current refresh is as of {snap.as_of_date}",
            )
        segments = snap.conn.execute(
            text(
                "SELECT segment_id, name, kind, segment_version, run_id, as_of_date, history_from "
                f"FROM {snap.view('segments')}"
            )
        ).all()
        members = snap.conn.execute(
            text(f"SELECT segment_id, matched_clauses FROM {snap.view('segment_members')} WHERE customer_id = :cid"),
            {"cid": customer_id},
        ).all()
        stretches = snap.conn.execute(
            text(
                "SELECT segment_id, valid_from, valid_to, segment_version, matched_clauses "
                f"FROM {snap.view('segment_member_history')} WHERE customer_id = :cid AND valid_from <= :day "
                "AND (valid_to IS NULL OR valid_to >= :day)"
            ),
            {"cid": customer_id, "day": _bind_day(snap, day)},
        ).all()
        refresh_id, refresh_as_of = snap.refresh_id, snap.as_of_date
    latest = {m.segment_id: _json(m.matched_clauses) or [] for m in members}
    on_day = {h.segment_id: h for h in stretches}
    items, not_covered = [], []
    for s in sorted(segments, key=lambda s: s.segment_id):
        run_day, history_from = _day(s.as_of_date), _day(s.history_from)
        item = {
            "segment_id": s.segment_id,
            "name": s.name,
            "kind": s.kind,
            "segment_version": int(s.segment_version),
            "run_id": s.run_id,
            "run_as_of_date": run_day,
        }
        if history_from is not None and day >= history_from:
            stretch = on_day.get(s.segment_id)
            if stretch is not None:
                item.update(
                    segment_version=int(stretch.segment_version),
                    member_since=_day(stretch.valid_from),
                    member_until=_day(stretch.valid_to),
                    why=[str(c) for c in _json(stretch.matched_clauses) or []],
                )
                items.append(SegmentMembership(**item))
        elif run_day is not None and day >= run_day:
            if s.segment_id in latest:  # the latest run holds from its own day to the refresh's
                items.append(SegmentMembership(**item, why=[str(c) for c in latest[s.segment_id]]))
        else:
            since = history_from or run_day
            reason = (
                f"membership is published from {since}; older membership is kept in the lakehouse"
                if since
                else "the segment has no published membership run"
            )
            not_covered.append(NotCovered(segment_id=s.segment_id, reason=reason))
    if as_of is not None and segments and len(not_covered) == len(segments):
        earliest = min((_day(s.history_from) or _day(s.as_of_date) for s in segments if s.as_of_date), default=None)
        raise _invalid(
            "/query/as_of",
            "not covered by the published membership",
            f"no published membership covers {day}"
            + (f": the earliest published day is {earliest}" if earliest else "")
            + "; older membership is kept in the lakehouse",
        )
    return CustomerSegments(
        customer_id=customer_id,
        refresh_id=refresh_id,
        as_of_date=refresh_as_of,
        membership_date=day,
        items=items,
        not_covered=not_covered,
    )


# --- policies ------------------------------------------------------------------------------------------------


class PolicySummary(BaseModel):
    policy_no: str
    product_code: str
    product_name: str
    line: str
    status: str
    start_date: date
    end_date: date
    premium: float
    payment_mode: str
    sum_insured: float

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "policy_no": "P2025310100000012345",
                    "product_code": "AU-COMP",
                    "product_name": "机动车商业保险综合套餐",
                    "line": "auto",
                    "status": "in_force",
                    "start_date": "2026-03-01",
                    "end_date": "2027-02-28",
                    "premium": 4120.5,
                    "payment_mode": "annual",
                    "sum_insured": 182000.0,
                }
            ]
        }
    )


@router.get(
    "/{customer_id}/policies",
    response_model=Page[PolicySummary],
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="The customer's policies and their status (core systems, live)",
)
def customer_policies(
    customer_id: CustomerId,
    caller: authorized(Scope.CUSTOMERS_READ, "customers.policies"),
    source: SourceDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: Annotated[PolicyStatus | None, Query(description="Only policies in this status.")] = None,
) -> Page[PolicySummary]:
    """Newest start date first, from the core systems' policies (not the lake: a policy issued a minute ago is
    here)."""
    if status is not None and status not in POLICY_STATUSES:
        raise ApiError(
            422,
            "unknown policy status",
            kind="validation",
            errors=[("/query/status", f"one of {', '.join(POLICY_STATUSES)}")],
        )
    after = decode_cursor(cursor, arity=2)
    query = (
        select(
            POLICIES.c.id,
            POLICIES.c.policy_no,
            PRODUCTS.c.product_code,
            PRODUCTS.c.name.label("product_name"),
            PRODUCTS.c.line,
            POLICIES.c.status,
            POLICIES.c.start_date,
            POLICIES.c.end_date,
            POLICIES.c.premium,
            POLICIES.c.payment_mode,
            POLICIES.c.sum_insured,
        )
        .join(PRODUCTS, PRODUCTS.c.id == POLICIES.c.product_id)
        .where(POLICIES.c.customer_id == customer_id, POLICIES.c.deleted_at.is_(None))
        .order_by(POLICIES.c.start_date.desc(), POLICIES.c.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(POLICIES.c.status == status)
    if after is not None:
        try:
            if not isinstance(after[0], str) or not isinstance(after[1], int) or isinstance(after[1], bool):
                raise ValueError
            last_start, last_id = date.fromisoformat(after[0]), after[1]
        except ValueError:
            raise ApiError(
                422,
                "cursor is not one this API returned",
                kind="validation",
                errors=[("/query/cursor", "invalid cursor")],
            ) from None
        query = query.where(
            or_(
                POLICIES.c.start_date < last_start,
                and_(POLICIES.c.start_date == last_start, POLICIES.c.id < last_id),
            )
        )
    with source_reads(source) as conn:
        require_visible(conn, caller.principal, customer_id)
        rows = conn.execute(query).all()
    items = [
        PolicySummary(
            **{k: v for k, v in r._mapping.items() if k != "id"},
        )
        for r in rows[:limit]
    ]
    next_cursor = (
        encode_cursor([rows[limit - 1].start_date.isoformat(), rows[limit - 1].id]) if len(rows) > limit else None
    )
    return Page[PolicySummary](items=items, next_cursor=next_cursor)


# --- recommendations -----------------------------------------------------------------------------------------


class Recommendation(BaseModel):
    product_code: str
    name: str
    line: str
    risk_level: str
    coverage_region: str | None
    excluded_regions: list[str]
    score: float
    reasons: list[str]


class Recommendations(BaseModel):
    customer_id: int
    refresh_id: str
    as_of_date: date
    risk_rating: str
    lines_held: list[str]
    items: list[Recommendation]
    excluded: dict[str, int] = Field(description="Shelf products left out, by hard rule.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer_id": 1001,
                    "refresh_id": "20261206020000123456a1b2c3",
                    "as_of_date": "2026-12-05",
                    "risk_rating": "R2",
                    "lines_held": ["auto"],
                    "items": [
                        {
                            "product_code": "AC-DRIVE",
                            "name": "驾乘人员意外伤害保险",
                            "line": "accident",
                            "risk_level": "R1",
                            "coverage_region": "中国大陆 (mainland China)",
                            "excluded_regions": [],
                            "score": 1.0,
                            "reasons": [
                                "risk level R1 within the customer's rating R2; line accident not held (auto held)",
                                "holds motor cover: driver and passenger accident cover complements it",
                            ],
                        }
                    ],
                    "excluded": {
                        "above_risk_rating": 9,
                        "line_already_held": 5,
                        "not_on_sale": 1,
                        "catalogue_incomplete": 0,
                    },
                }
            ]
        }
    )


@router.get(
    "/{customer_id}/recommendations",
    response_model=Recommendations,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="Next-best-offer products with reasons",
)
def customer_recommendations(
    customer_id: CustomerId,
    caller: authorized(Scope.CUSTOMERS_READ, "customers.recommendations"),
    store: StoreDep,
    source: SourceDep,
    limit: Annotated[int, Query(ge=1, le=10, description="Offers to return (1-10).")] = 3,
) -> Recommendations:
    """Never a product above the customer's risk rating, never a line already held; ranked by published
    facts (profile, smart-segment scores), each offer with its reasons (app/services/recommendations.py)."""
    with source_reads(source) as conn:
        require_visible(conn, caller.principal, customer_id)
        products = [product_facts(r) for r in product_rows(conn, limit=1000)]
    with snapshot(store) as snap:
        row = snap.conn.execute(
            text(f"SELECT * FROM {snap.view('customer_profile')} WHERE customer_id = :cid"), {"cid": customer_id}
        ).first()
        if row is None:
            raise ApiError(404, f"customer {customer_id} is not in the published profiles")
        members = snap.conn.execute(
            text(
                f"SELECT m.segment_id, m.matched_clauses, s.kind FROM {snap.view('segment_members')} m "
                f"JOIN {snap.view('segments')} s ON s.segment_id = m.segment_id WHERE m.customer_id = :cid"
            ),
            {"cid": customer_id},
        ).all()
        refresh_id, as_of = snap.refresh_id, snap.as_of_date
    profile = dict(row._mapping)
    for flag in ("has_auto", "has_property", "has_accident", "has_health", "has_life"):
        profile[flag] = bool(profile.get(flag))
    memberships = [
        {"segment_id": m.segment_id, "kind": m.kind, "matched_clauses": _json(m.matched_clauses) or []} for m in members
    ]
    offers, excluded = recommend(profile, memberships, products, limit=limit)
    return Recommendations(
        customer_id=customer_id,
        refresh_id=refresh_id,
        as_of_date=as_of,
        risk_rating=profile.get("risk_rating") or "R1",
        lines_held=[x for x in (profile.get("lines_held") or "").split(",") if x],
        items=[
            Recommendation(
                product_code=o.product["product_code"],
                name=o.product["name"],
                line=o.product["line"],
                risk_level=o.product["risk_level"],
                coverage_region=o.product["coverage_region"],
                excluded_regions=o.product["excluded_regions"],
                score=round(o.score, 3),
                reasons=o.reasons,
            )
            for o in offers
        ],
        excluded=excluded,
    )
