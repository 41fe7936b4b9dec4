"""Claims in the core systems: first notice of loss, the handlers' state machine, documents and the SLA clocks.

Every write goes to the ``claims`` table the platform syncs (so the lake sees it on the next sync), with a
``claim_status_history`` row, the audit entry and an outbox event in the same transaction (the caller's
``run_once`` transaction: all of it commits, or none).

State machine (handlers, scope ``claims:handle``)::

    submitted -> under_review -> approved -> paying -> paid
                 under_review -> docs_requested -> under_review (as often as needed)
                 under_review -> rejected

``claims.<status>_at`` keeps the FIRST time a claim reached a status (the marts start the review clock's
end at the first review action; a second round of review must not move it); every entry, the repeated ones
included, is in ``claim_status_history``.

Optimistic concurrency: a transition updates the row only where its status and ``updated_at`` are still what
the handler's request read; a concurrent transition that committed first leaves nothing to update and the
later one is answered 409 (PostgreSQL and MariaDB re-check the condition on the committed row).

SLA (seed 000; the marts' calendar and definitions, ``mo.workdays`` = dbt/macros/working_days.sql):
- review: the first review action (under review, documents requested, approved or rejected) within 3 working
  days of the report; payment: paid within 5 working days of approval. Dates are UTC calendar dates.
- ``breached``: a clock over its limit (a running clock is measured to today, so a claim nobody touched is
  in breach before anyone acts, as in the marts);
- ``at_risk``: a clock still running, not breached, with 1 working day or less left (due today or on the
  next working day), so a handler still has a working day to act.

Ids: the API assigns claim ids at random in a block of its own, [10^15, 2^53): far above the ids the core
systems' (here the generator's) counters hand out, so the two never collide without sharing a sequence,
and below 2^53 so every client's JSON number holds them exactly. ``claim_no`` is ``CL<year><id:016d>``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from app.api.deps import Caller
from app.core.errors import ApiError
from app.services import audit
from app.services.visibility import require_visible
from mo.config import Settings as PlatformSettings
from mo.generator import reference
from mo.oltp.claims_tables import ClaimDocument, ClaimStatusHistory
from mo.oltp.models import Claim, Customer, Policy, Product
from mo.oltp.outbox import add_event, new_event
from mo.workdays import (
    CLAIM_PAYMENT_SLA_WORKING_DAYS,
    CLAIM_REVIEW_SLA_WORKING_DAYS,
    add_working_days,
    latest_start_with_at_least,
    working_days_between,
)

CLAIMS = Claim.__table__
POLICIES = Policy.__table__
PRODUCTS = Product.__table__
CUSTOMERS = Customer.__table__
HISTORY = ClaimStatusHistory.__table__
DOCUMENTS = ClaimDocument.__table__

STATUSES = ("submitted", "under_review", "docs_requested", "approved", "rejected", "paying", "paid")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "submitted": ("under_review",),
    "under_review": ("docs_requested", "approved", "rejected"),
    "docs_requested": ("under_review",),
    "approved": ("paying",),
    "paying": ("paid",),
    "rejected": (),
    "paid": (),
}
NEEDS_REASON = frozenset({"docs_requested", "rejected"})
CLOSED = frozenset({"rejected", "paid"})
REVIEW_ACTIONS = ("under_review_at", "docs_requested_at", "approved_at", "rejected_at")
AT_RISK_WORKING_DAYS_LEFT = 1

ID_BLOCK_START = 10**15
ID_BLOCK_END = 2**53
EVENT_ROLES = frozenset(
    {"app", "service_agent", "claims_handler", "marketer", "approver", "analyst", "reviewer", "admin"}
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def today_utc() -> date:
    return datetime.now(UTC).date()


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def money(value: Decimal | None) -> str | None:
    return None if value is None else f"{Decimal(value):.2f}"


# --- reference: what an incident may be -----------------------------------------------------------------


@cache
def incident_types() -> tuple[str, ...]:
    """The incident types the claims contract allows (schemas/sources/claims.yaml)."""
    from mo.contracts import load_source_contracts

    return tuple(load_source_contracts()["claims"].column("incident_type").enum or ())


@cache
def _provinces() -> frozenset[str]:
    return frozenset(name for name, _, _, _ in reference.PROVINCES)


@cache
def _known_cities() -> dict[str, str]:
    return {city.name: city.province for city in reference.CITIES}


CITY_SUFFIXES = ("市", "州", "盟", "地区", "县", "区")


def _is_chinese_place(text: str) -> bool:
    return bool(text) and all("\u4e00" <= ch <= "\u9fff" for ch in text)


def check_place(province: str, city: str) -> list[tuple[str, str]]:
    """The 31 mainland provinces exactly; a city is a Chinese place name of a prefecture-level unit that, where
    the reference knows it, lies in that province (the reference lists the main cities, not all ~330)."""
    errors = []
    if province not in _provinces():
        errors.append(("/body/incident_province", "not a mainland province, e.g. 广东省, 北京市"))
    if not (_is_chinese_place(city) and city.endswith(CITY_SUFFIXES)):
        errors.append(
            ("/body/incident_city", "not a city name, e.g. 深圳市 (Chinese characters ending in 市/州/盟/地区/县/区)")
        )
    elif province in _provinces():
        known = _known_cities().get(city)
        if known is not None and known != province:
            errors.append(("/body/incident_city", f"{city} is in {known}, not {province}"))
    return errors


# --- SLA ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    started: date
    ended: date | None
    limit: int

    def used(self, today: date) -> int:
        return working_days_between(self.started, self.ended or today)

    def breached(self, today: date) -> bool:
        return self.used(today) > self.limit

    def at_risk(self, today: date) -> bool:
        used = self.used(today)
        return self.ended is None and self.limit - AT_RISK_WORKING_DAYS_LEFT <= used <= self.limit


def review_clock(row: Any) -> Clock:
    started = [getattr(row, name) for name in REVIEW_ACTIONS if getattr(row, name) is not None]
    return Clock(row.reported_at.date(), min(started).date() if started else None, CLAIM_REVIEW_SLA_WORKING_DAYS)


def payment_clock(row: Any) -> Clock | None:
    if row.approved_at is None:
        return None
    return Clock(row.approved_at.date(), row.paid_at.date() if row.paid_at else None, CLAIM_PAYMENT_SLA_WORKING_DAYS)


def sla_of(row: Any, today: date) -> dict[str, Any]:
    review, payment = review_clock(row), payment_clock(row)
    clocks = [c for c in (review, payment) if c is not None]
    return {
        "as_of": today.isoformat(),
        "review_due": add_working_days(review.started, review.limit).isoformat(),
        "review_working_days": review.used(today),
        "review_done": review.ended is not None,
        "payment_due": add_working_days(payment.started, payment.limit).isoformat() if payment else None,
        "payment_working_days": payment.used(today) if payment else None,
        "payment_done": (payment.ended is not None) if payment else None,
        "breached": any(c.breached(today) for c in clocks),
        "at_risk": any(c.at_risk(today) for c in clocks) and not any(c.breached(today) for c in clocks),
    }


# --- reads ----------------------------------------------------------------------------------------------------

CLAIM_COLUMNS = [*CLAIMS.c, POLICIES.c.policy_no]


def _claim_query():  # type: ignore[no-untyped-def]
    return (
        select(*CLAIM_COLUMNS)
        .select_from(CLAIMS.join(POLICIES, POLICIES.c.id == CLAIMS.c.policy_id))
        .where(CLAIMS.c.deleted_at.is_(None))
    )


def summary(row: Any, today: date) -> dict[str, Any]:
    return {
        "claim_no": row.claim_no,
        "customer_id": row.customer_id,
        "policy_no": row.policy_no,
        "status": row.status,
        "incident_at": iso(row.incident_at),
        "incident_type": row.incident_type,
        "incident_province": row.incident_province,
        "incident_city": row.incident_city,
        "amount_claimed": money(row.amount_claimed),
        "amount_approved": money(row.amount_approved),
        "amount_paid": money(row.amount_paid),
        "reported_at": iso(row.reported_at),
        "submitted_at": iso(row.submitted_at),
        "updated_at": iso(row.updated_at),
        "allowed_transitions": list(TRANSITIONS[row.status]),
        "sla": sla_of(row, today),
    }


def document_view(row: Any, claim_no: str) -> dict[str, Any]:
    return {
        "document_id": row.document_id,
        "claim_no": claim_no,
        "kind": row.kind,
        "file_name": row.file_name,
        "content_type": row.content_type,
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "uploaded_by": row.uploaded_by,
        "uploaded_at": iso(row.uploaded_at),
    }


def detail(conn: Connection, row: Any, today: date) -> dict[str, Any]:
    body = summary(row, today)
    history = conn.execute(select(HISTORY).where(HISTORY.c.claim_id == row.id).order_by(HISTORY.c.id)).all()
    body["history"] = [
        {
            "from_status": h.from_status,
            "to_status": h.to_status,
            "changed_by": h.changed_by,
            "changed_by_role": h.changed_by_role,
            "changed_at": iso(h.changed_at),
            "reason": h.reason,
            "amount": money(h.amount),
        }
        for h in history
    ]
    documents = conn.execute(select(DOCUMENTS).where(DOCUMENTS.c.claim_id == row.id).order_by(DOCUMENTS.c.id)).all()
    body["documents"] = [document_view(d, row.claim_no) for d in documents]
    return body


def load(conn: Connection, caller: Caller, claim_no: str) -> Any:
    """The claim, or 404 when it does not exist or its customer is outside the caller's scope."""
    query = _claim_query().where(CLAIMS.c.claim_no == claim_no)
    row = conn.execute(query).first()
    if row is None:
        raise ApiError(404, f"claim {claim_no} not found")
    try:
        require_visible(conn, caller.principal, row.customer_id)
    except ApiError:
        raise ApiError(404, f"claim {claim_no} not found") from None
    return row


def list_for(
    conn: Connection,
    *,
    customer_id: int | None,
    status: str | None,
    after: tuple[datetime, int] | None,
    limit: int,
    today: date,
) -> tuple[list[dict[str, Any]], tuple[datetime, int] | None]:
    """Newest first by submission (then id), keyset pages."""
    query = _claim_query()
    if customer_id is not None:
        query = query.where(CLAIMS.c.customer_id == customer_id)
    if status is not None:
        query = query.where(CLAIMS.c.status == status)
    if after is not None:
        at, claim_id = after
        query = query.where(or_(CLAIMS.c.submitted_at < at, and_(CLAIMS.c.submitted_at == at, CLAIMS.c.id < claim_id)))
    rows = conn.execute(query.order_by(CLAIMS.c.submitted_at.desc(), CLAIMS.c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [summary(r, today) for r in rows], ((rows[-1].submitted_at, rows[-1].id) if more and rows else None)


def at_risk(
    conn: Connection, *, after: tuple[datetime, int] | None, limit: int, today: date
) -> tuple[list[dict[str, Any]], tuple[datetime, int] | None]:
    """Open claims whose running clock is at risk or breached, oldest submission first.

    The SQL selects every claim whose clock has run at least (limit - 1) working days (one date bound per
    clock from the calendar); the flags are then computed per claim like on the claim itself."""
    review_bound = latest_start_with_at_least(today, CLAIM_REVIEW_SLA_WORKING_DAYS - AT_RISK_WORKING_DAYS_LEFT)
    payment_bound = latest_start_with_at_least(today, CLAIM_PAYMENT_SLA_WORKING_DAYS - AT_RISK_WORKING_DAYS_LEFT)
    day_after = timedelta(days=1)
    review_waiting = and_(
        CLAIMS.c.status == "submitted",
        *[CLAIMS.c[name].is_(None) for name in REVIEW_ACTIONS],
        CLAIMS.c.reported_at < datetime.combine(review_bound + day_after, datetime.min.time()),
    )
    payment_waiting = and_(
        CLAIMS.c.status.in_(("approved", "paying")),
        CLAIMS.c.paid_at.is_(None),
        CLAIMS.c.approved_at < datetime.combine(payment_bound + day_after, datetime.min.time()),
    )
    query = _claim_query().where(or_(review_waiting, payment_waiting))
    if after is not None:
        at, claim_id = after
        query = query.where(or_(CLAIMS.c.submitted_at > at, and_(CLAIMS.c.submitted_at == at, CLAIMS.c.id > claim_id)))
    rows = conn.execute(query.order_by(CLAIMS.c.submitted_at, CLAIMS.c.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [summary(r, today) for r in rows], ((rows[-1].submitted_at, rows[-1].id) if more and rows else None)


# --- writes ---------------------------------------------------------------------------------------------------


def _event_source(caller: Caller) -> str:
    return "app" if caller.principal.role == "app" else "core"


def _history(
    conn: Connection,
    claim_id: int,
    caller: Caller,
    *,
    from_status: str | None,
    to_status: str,
    at: datetime,
    reason: str | None = None,
    amount: Decimal | None = None,
) -> None:
    conn.execute(
        insert(HISTORY).values(
            claim_id=claim_id,
            from_status=from_status,
            to_status=to_status,
            changed_by=caller.subject,
            changed_by_role=caller.principal.role,
            changed_at=at,
            reason=reason,
            amount=amount,
        )
    )


def _new_id() -> int:
    """A random id in the API's block. No look-up first: at a million claims two draws meet with a probability
    of about 1e-10, and the primary key refuses the second (its request fails whole, nothing half-written)."""
    return ID_BLOCK_START + secrets.randbelow(ID_BLOCK_END - ID_BLOCK_START)


@cache
def _platform_settings() -> PlatformSettings:
    """The platform's settings for the outbox (event topics), read once rather than on every event."""
    return PlatformSettings()


def submit(conn: Connection, caller: Caller, body: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
    """A first notice of loss: checks, the claims row, its history, audit and ``claim_filed``; the claim's view."""
    now = now or utcnow()
    customer_id = body["customer_id"]
    require_visible(conn, caller.principal, customer_id)
    customer = conn.execute(
        select(CUSTOMERS.c.id).where(CUSTOMERS.c.id == customer_id, CUSTOMERS.c.deleted_at.is_(None))
    ).first()
    if customer is None:
        raise ApiError(
            422,
            f"customer {customer_id} not found",
            kind="validation",
            errors=[("/body/customer_id", "unknown customer")],
        )
    policy = conn.execute(
        select(POLICIES, PRODUCTS.c.line)
        .select_from(POLICIES.join(PRODUCTS, PRODUCTS.c.id == POLICIES.c.product_id))
        .where(POLICIES.c.policy_no == body["policy_no"], POLICIES.c.deleted_at.is_(None))
    ).first()
    if policy is None or policy.customer_id != customer_id:
        customer = conn.execute(
            select(CUSTOMERS.c.id).where(CUSTOMERS.c.id == customer_id, CUSTOMERS.c.deleted_at.is_(None))
        ).first()
        if customer is None:
            raise ApiError(
                422,
                f"customer {customer_id} not found",
                kind="validation",
                errors=[("/body/customer_id", "unknown customer")],
            )
        # One answer for "no such policy" and "someone else's policy": the caller learns nothing about others.
        raise ApiError(
            422,
            f"customer {customer_id} holds no policy {body['policy_no']}",
            kind="validation",
            errors=[("/body/policy_no", "not a policy this customer holds")],
        )
    incident_at: datetime = body["incident_at"]
    loss_date = incident_at.date()
    errors: list[tuple[str, str]] = []
    if incident_at > now:
        errors.append(("/body/incident_at", "the loss is in the future"))
    if policy.status != "in_force":
        errors.append(("/body/policy_no", f"policy is {policy.status}, not in force"))
    elif not (policy.start_date <= loss_date <= policy.end_date):
        errors.append(
            (
                "/body/incident_at",
                f"loss date {loss_date} is outside the policy period {policy.start_date} to {policy.end_date}",
            )
        )
    amount: Decimal = body["amount_claimed"]
    if amount > policy.sum_insured:
        errors.append(("/body/amount_claimed", f"above the policy's cover of {money(policy.sum_insured)}"))
    line_types = {name for name, _ in reference.INCIDENT_TYPES.get(policy.line, [])}
    if line_types and body["incident_type"] not in line_types:
        errors.append(
            ("/body/incident_type", f"not covered by a {policy.line} policy: one of {', '.join(sorted(line_types))}")
        )
    errors += check_place(body["incident_province"], body["incident_city"])
    if errors:
        raise ApiError(422, f"claim refused: {errors[0][1]}", kind="validation", errors=errors)

    claim_id = _new_id()
    claim_no = f"CL{now.year}{claim_id:016d}"
    values = {
        "id": claim_id,
        "claim_no": claim_no,
        "policy_id": policy.id,
        "customer_id": customer_id,
        "incident_at": incident_at,
        "incident_province": body["incident_province"],
        "incident_city": body["incident_city"],
        "incident_type": body["incident_type"],
        "reported_at": now,
        "amount_claimed": amount,
        "status": "submitted",
        "submitted_at": now,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(insert(CLAIMS).values(values))
    _history(conn, claim_id, caller, from_status=None, to_status="submitted", at=now)
    audit.record(
        conn,
        principal=caller.principal,
        action=caller.action,
        resource=caller.resource,
        customer_id=customer_id,
        status=201,
        detail=f"claim {claim_no} on policy {policy.policy_no}",
    )
    add_event(
        conn,
        new_event(
            "claim_filed",
            customer_id=customer_id,
            source=_event_source(caller),
            occurred_at=now,
            payload={
                "claim_no": claim_no,
                "policy_no": policy.policy_no,
                "incident_type": body["incident_type"],
                "amount_claimed": float(amount),
            },
        ),
        settings=_platform_settings(),
    )
    # The view of what was just written, without reading it back (a new claim has one history row, no documents).
    written = SimpleNamespace(**({c.name: None for c in CLAIMS.c} | values), policy_no=policy.policy_no)
    view = summary(written, now.date())
    view["history"] = [
        {
            "from_status": None,
            "to_status": "submitted",
            "changed_by": caller.subject,
            "changed_by_role": caller.principal.role,
            "changed_at": iso(now),
            "reason": None,
            "amount": None,
        }
    ]
    view["documents"] = []
    return view


def transition(
    conn: Connection, caller: Caller, claim_no: str, body: dict[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """Move a claim to ``body['to']``: 409 with the allowed transitions when the state machine forbids it."""
    now = now or utcnow()
    row = load(conn, caller, claim_no)
    target: str = body["to"]
    allowed = TRANSITIONS[row.status]
    if target not in allowed:
        raise ApiError(
            409,
            f"claim {claim_no} is {row.status}: it cannot move to {target}; allowed: {', '.join(allowed) or 'none'}",
            kind="illegal-transition",
            errors=[("/body/to", f"not allowed from {row.status}")],
            extra={"current_status": row.status, "allowed_transitions": list(allowed)},
        )
    reason = body.get("reason")
    approved, paid = body.get("amount_approved"), body.get("amount_paid")
    errors: list[tuple[str, str]] = []
    if target in NEEDS_REASON and not reason:
        errors.append(("/body/reason", f"required to move to {target}"))
    if target == "approved":
        if approved is None:
            errors.append(("/body/amount_approved", "required to approve"))
        elif approved > row.amount_claimed:
            errors.append(("/body/amount_approved", f"above the amount claimed ({money(row.amount_claimed)})"))
    elif approved is not None:
        errors.append(("/body/amount_approved", "only with to=approved"))
    if target == "paid":
        if paid is None:
            errors.append(("/body/amount_paid", "required to mark paid"))
        elif row.amount_approved is not None and paid > row.amount_approved:
            errors.append(("/body/amount_paid", f"above the amount approved ({money(row.amount_approved)})"))
    elif paid is not None:
        errors.append(("/body/amount_paid", "only with to=paid"))
    if errors:
        raise ApiError(422, f"transition refused: {errors[0][1]}", kind="validation", errors=errors)

    values: dict[str, Any] = {
        "status": target,
        f"{target}_at": (getattr(row, f"{target}_at") or now),
        "updated_at": now,
    }
    if target == "approved":
        values["amount_approved"] = approved
    if target == "paid":
        values["amount_paid"] = paid
    changed = conn.execute(
        update(CLAIMS)
        .where(CLAIMS.c.id == row.id, CLAIMS.c.status == row.status, CLAIMS.c.updated_at == row.updated_at)
        .values(values)
    ).rowcount
    if changed != 1:
        raise ApiError(
            409,
            f"claim {claim_no} was changed by someone else meanwhile (it was {row.status}); reload it and retry",
            kind="concurrent-change",
            errors=[("/path/claim_no", "changed meanwhile")],
        )
    _history(
        conn,
        row.id,
        caller,
        from_status=row.status,
        to_status=target,
        at=now,
        reason=reason,
        amount=approved if target == "approved" else paid if target == "paid" else None,
    )
    audit.record(
        conn,
        principal=caller.principal,
        action=caller.action,
        resource=caller.resource,
        customer_id=row.customer_id,
        status=200,
        detail=f"claim {claim_no}: {row.status} -> {target}",
    )
    add_event(
        conn,
        new_event(
            "claim_status_changed",
            customer_id=row.customer_id,
            source=_event_source(caller),
            occurred_at=now,
            payload={
                "claim_no": claim_no,
                "from_status": row.status,
                "to_status": target,
                "changed_by": caller.principal.role if caller.principal.role in EVENT_ROLES else "system",
                "reason": reason or None,
            },
        ),
        settings=_platform_settings(),
    )
    fresh = conn.execute(_claim_query().where(CLAIMS.c.id == row.id)).one()
    return detail(conn, fresh, now.date())


def attach_document(
    conn: Connection,
    caller: Caller,
    claim_no: str,
    *,
    kind: str,
    file_name: str,
    content_type: str,
    size_bytes: int,
    sha256: str,
    document_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or utcnow()
    row = load(conn, caller, claim_no)
    if row.status in CLOSED:
        raise ApiError(
            409,
            f"claim {claim_no} is {row.status}: documents can no longer be attached",
            kind="claim-closed",
            errors=[("/path/claim_no", f"claim is {row.status}")],
        )
    conn.execute(
        insert(DOCUMENTS).values(
            document_id=document_id,
            claim_id=row.id,
            kind=kind,
            file_name=file_name,
            content_type=content_type,
            size_bytes=size_bytes,
            sha256=sha256,
            uploaded_by=caller.subject,
            uploaded_at=now,
        )
    )
    audit.record(
        conn,
        principal=caller.principal,
        action=caller.action,
        resource=caller.resource,
        customer_id=row.customer_id,
        status=201,
        detail=f"claim {claim_no}: document {document_id} ({content_type}, {size_bytes} bytes)",
    )
    add_event(
        conn,
        new_event(
            "claim_document_attached",
            customer_id=row.customer_id,
            source=_event_source(caller),
            occurred_at=now,
            payload={
                "claim_no": claim_no,
                "document_id": document_id,
                "content_type": content_type,
                "size_bytes": size_bytes,
                "sha256": sha256,
            },
        ),
        settings=_platform_settings(),
    )
    doc = conn.execute(select(DOCUMENTS).where(DOCUMENTS.c.document_id == document_id)).one()
    return document_view(doc, claim_no)


def documents_of(
    conn: Connection, caller: Caller, claim_no: str, *, after_id: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the claim's documents in upload order, and the key of the next page."""
    row = load(conn, caller, claim_no)
    query = select(DOCUMENTS).where(DOCUMENTS.c.claim_id == row.id)
    if after_id is not None:
        query = query.where(DOCUMENTS.c.id > after_id)
    documents = conn.execute(query.order_by(DOCUMENTS.c.id).limit(limit + 1)).all()
    more = len(documents) > limit
    documents = documents[:limit]
    return [document_view(d, claim_no) for d in documents], (documents[-1].id if more and documents else None)
