"""Campaigns: the checks of a campaign document, its writes through the lifecycle, its views and previews.

The lifecycle itself (which action from which status, who may take it) is mo.campaigns.lifecycle, shared with
the dispatcher; templates and schedules are checked by mo.campaigns.templates and mo.campaigns.schedule;
whether a segment exists and is archived comes from mo.campaigns.segments. Every change writes the campaign,
its ``campaign_events`` row, the audit entry and (for a status change) the ``campaign_status_changed`` outbox
event in the caller's transaction.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select

from app.api.deps import Caller
from app.core.context import request_id_var
from app.core.errors import ApiError
from app.services import audit
from mo.campaigns import lifecycle, templates
from mo.campaigns import schedule as schedules
from mo.campaigns import segments as segment_store
from mo.campaigns.lifecycle import IllegalTransition, StaleVersion
from mo.catalogue import product_facts, product_row
from mo.oltp.campaign_tables import Campaign, CampaignEvent
from mo.oltp.outbox import add_event

CAMPAIGNS = Campaign.__table__
EVENTS = CampaignEvent.__table__
EDITABLE = ("name", "objective", "product_line", "purpose", "offer", "segment_id", "channels", "schedule", "priority",
            "holdout_share", "ends_at")  # fmt: skip


def request_id() -> str:
    return request_id_var.get() or "-"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else schedules.utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stored(moment: datetime) -> datetime:
    return schedules.utc(moment).replace(tzinfo=None)


# --- checks ----------------------------------------------------------------------------------------------------


def render_context(conn: Connection, values: dict[str, Any], profile: dict[str, Any] | None = None) -> Any:
    """The campaign's render context with the offered product's facts from the one catalogue."""
    product = None
    code = values["offer"].get("product_code")
    if code:
        row = product_row(conn, code)
        product = product_facts(row) if row is not None else None
    return templates.context_for(values, product, profile)


def problems_of(conn: Connection, values: dict[str, Any], *, now: datetime, prefix: str) -> list[tuple[str, str]]:
    """Every problem of a campaign document at ``now``: offer, segment, channels, schedule, end. Pointers start
    with ``prefix`` (``/body`` for a request's campaign, ``/campaign`` for a stored one)."""
    problems: list[tuple[str, str]] = []
    offer = values["offer"]
    kind = offer.get("type")
    if kind == "product":
        code = offer.get("product_code")
        row = product_row(conn, code) if code else None
        if not code:
            problems.append(("/offer/product_code", "required for a product offer"))
        elif row is None:
            problems.append(("/offer/product_code", f"product {code} is not in the catalogue"))
        else:
            if row.line != values["product_line"]:
                problems.append(("/offer/product_code", f"product {code} is a {row.line} product, the campaign's "
                                                        f"line is {values['product_line']}"))  # fmt: skip
            if row.status != "on_sale":
                problems.append(("/offer/product_code", f"product {code} is {row.status}, not on sale"))
    elif kind == "coupon":
        stock_id = offer.get("stock_id")
        if not stock_id:
            problems.append(("/offer/stock_id", "required for a coupon offer"))
        elif stock_id not in templates.registry()["coupon"]["stocks"]:
            problems.append(("/offer/stock_id", f"coupon stock {stock_id!r} is not registered"))
    elif kind == "service" and not offer.get("description"):
        problems.append(("/offer/description", "required for a service offer"))
    if values["purpose"] == "service" and kind != "service":
        problems.append(("/purpose", "a service message offers a service: a product or coupon offer is marketing"))

    ref = segment_store.lookup_segment(conn, values["segment_id"])
    if ref is None:
        problems.append(("/segment_id", f"segment {values['segment_id']!r} does not exist"))
    elif ref.archived:
        problems.append(("/segment_id", f"segment {values['segment_id']!r} is archived: choose a live segment"))

    context = render_context(conn, values)
    problems += [(f"/channels{p}", m) for p, m in templates.check_channels(values["channels"], context)]

    try:
        plan = schedules.parse_schedule(values["schedule"])
    except schedules.ScheduleError as exc:
        problems += [(f"/schedule{p}", m) for p, m in exc.problems]
    else:
        problems += schedules.schedule_problems(plan, ends_at=values["ends_at"], now=now)
    return [(prefix + p, m) for p, m in problems]


def _refuse(problems: list[tuple[str, str]], what: str) -> ApiError:
    count = len(problems)
    return ApiError(422, f"{what}: {problems[0][1]}" + (f" (and {count - 1} more)" if count > 1 else ""),
                    kind="validation", errors=problems)  # fmt: skip


# --- views -----------------------------------------------------------------------------------------------------


def _values_of(row: Any) -> dict[str, Any]:
    return templates.stored_campaign(row)


def view(row: Any) -> dict[str, Any]:
    values = _values_of(row)
    offer = {k: values["offer"].get(k) for k in ("type", "product_code", "stock_id", "description")}
    return {
        "id": row.id,
        "campaign_code": row.campaign_code,
        "name": row.name,
        "objective": row.objective,
        "product_line": row.product_line,
        "purpose": row.purpose,
        "offer": offer,
        "segment_id": row.segment_id,
        "segment_version": row.segment_version,
        "channels": values["channels"],
        "schedule": values["schedule"],
        "priority": row.priority,
        "holdout_share": f"{Decimal(row.holdout_share):.4f}",
        "ends_at": _iso(row.ends_at),
        "status": row.status,
        "author": row.author,
        "approver": row.approver,
        "decided_at": _iso(row.decided_at),
        "decision_note": row.decision_note,
        "next_run_at": _iso(row.next_run_at),
        "version": row.version,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "allowed_actions": [a for a in lifecycle.allowed_actions(row.status) if lifecycle.ACTIONS[a].by != "system"],
    }


def events_of(conn: Connection, campaign_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(select(EVENTS).where(EVENTS.c.campaign_id == campaign_id).order_by(EVENTS.c.id)).all()
    return [
        {
            "from_status": r.from_status,
            "to_status": r.to_status,
            "actor": r.actor,
            "role": r.role,
            "note": r.note,
            "request_id": r.request_id,
            "at": _iso(r.at),
        }  # fmt: skip
        for r in rows
    ]


def detail(conn: Connection, row: Any) -> dict[str, Any]:
    return {**view(row), "events": events_of(conn, row.id)}


def load(conn: Connection, campaign_id: int) -> Any:
    row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).first()
    if row is None:
        raise ApiError(404, f"campaign {campaign_id} not found")
    return row


def list_page(
    conn: Connection, *, status: str | None, after: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    query = select(CAMPAIGNS)
    if status is not None:
        query = query.where(CAMPAIGNS.c.status == status)
    if after is not None:
        query = query.where(CAMPAIGNS.c.id < after)
    rows = conn.execute(query.order_by(CAMPAIGNS.c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return [view(r) for r in rows], (rows[-1].id if more and rows else None)


# --- writes ----------------------------------------------------------------------------------------------------


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    offer = values["offer"]
    detail = {k: offer[k] for k in ("stock_id", "description") if offer.get(k) is not None}
    return {
        "name": values["name"],
        "objective": values["objective"],
        "product_line": values["product_line"],
        "purpose": values["purpose"],
        "offer_type": offer["type"],
        "offer_product_code": offer.get("product_code"),
        "offer_detail": json.dumps(detail, ensure_ascii=False) if detail else None,
        "segment_id": values["segment_id"],
        "channels": json.dumps(values["channels"], ensure_ascii=False),
        "schedule": json.dumps(schedules.parse_schedule(values["schedule"]).to_document()),
        "priority": values["priority"],
        "holdout_share": Decimal(values["holdout_share"]),
        "ends_at": _stored(values["ends_at"]),
    }


def _audit(conn: Connection, caller: Caller, status: int, detail: str) -> None:
    audit.record(conn, principal=caller.principal, action=caller.action, resource=caller.resource, status=status,
                 detail=detail)  # fmt: skip


def create(conn: Connection, caller: Caller, values: dict[str, Any]) -> dict[str, Any]:
    now = audit.utcnow()
    problems = problems_of(conn, values, now=now, prefix="/body")
    if problems:
        raise _refuse(problems, "campaign refused")
    code = f"CP{now:%Y%m%d}{secrets.token_hex(4).upper()}"
    result = conn.execute(
        insert(CAMPAIGNS).values(
            campaign_code=code,
            **_columns(values),
            segment_version=None,
            status="draft",
            author=caller.subject,
            approver=None,
            decided_at=None,
            decision_note=None,
            next_run_at=None,
            version=1,
            created_at=now,
            updated_at=now,
        )
    )
    campaign_id = int(result.inserted_primary_key[0])
    lifecycle.record_event(conn, campaign_id, from_status=None, to_status="draft", actor=caller.subject,
                           role=caller.principal.role, note=None, request_id=request_id(), at=now)  # fmt: skip
    event = lifecycle.status_event(campaign_id=campaign_id, campaign_code=code, next_run_at=None, action="create",
                                   from_status=None, to_status="draft", role=caller.principal.role, at=now)  # fmt: skip
    add_event(conn, event)
    _audit(conn, caller, 201, f"campaign {code} created (draft)")
    return detail(conn, load(conn, campaign_id))


def _check_version(row: Any, version: int | None) -> None:
    if version is not None and version != row.version:
        raise ApiError(
            409,
            f"campaign {row.id} is at version {row.version}, not {version}: someone changed it meanwhile; "
            "reload it and retry",
            kind="stale-version",
            errors=[("/body/version", f"stale: current version is {row.version}")],
            extra={"current_version": row.version},
        )


def _illegal(exc: IllegalTransition, campaign_id: int) -> ApiError:
    allowed = [a for a in exc.allowed if lifecycle.ACTIONS[a].by != "system"]
    return ApiError(
        409,
        f"campaign {campaign_id} is {exc.status}: it cannot {exc.action}; allowed now: {', '.join(allowed) or 'none'}",
        kind="illegal-transition",
        errors=[("/path/campaign_id", f"a {exc.status} campaign cannot {exc.action}")],
        extra={"current_status": exc.status, "allowed_actions": allowed},
    )


def _stale(campaign_id: int) -> ApiError:
    return ApiError(409, f"campaign {campaign_id} was changed by someone else meanwhile; reload it and retry",
                    kind="stale-version", errors=[("/body/version", "changed meanwhile")])  # fmt: skip


def edit(conn: Connection, caller: Caller, campaign_id: int, changes: dict[str, Any], version: int) -> dict[str, Any]:
    """Change a draft or rejected campaign (optimistic: ``version`` must be the current one)."""
    now = audit.utcnow()
    row = load(conn, campaign_id)
    _check_version(row, version)
    if row.status not in lifecycle.ACTIONS["edit"].from_statuses:
        raise _illegal(IllegalTransition("edit", row.status), campaign_id)
    if row.author != caller.subject:
        raise ApiError(403, f"campaign {campaign_id} is {row.author}'s: only its author edits it", kind="not-author")
    values = {**_values_of(row), **changes}
    problems = problems_of(conn, values, now=now, prefix="/body")
    if problems:
        raise _refuse(problems, "edit refused")
    try:
        lifecycle.record_transition(conn, row, "edit", actor=caller.subject, role=caller.principal.role,
                                    request_id=request_id(), note="edited: " + ", ".join(sorted(changes)),
                                    values=_columns(values), now=now)  # fmt: skip
    except StaleVersion:
        raise _stale(campaign_id) from None
    _audit(conn, caller, 200, f"campaign {row.campaign_code} edited: {', '.join(sorted(changes))}")
    return detail(conn, load(conn, campaign_id))


def act(
    conn: Connection, caller: Caller, campaign_id: int, action: str, *, version: int | None, note: str | None
) -> dict[str, Any]:
    """Take a lifecycle action: 409 with the allowed actions when the status forbids it, 403 for four eyes,
    422 naming what is wrong with the campaign when it cannot go on (segment, templates, schedule)."""
    now = audit.utcnow()
    row = load(conn, campaign_id)
    _check_version(row, version)
    try:
        lifecycle.target_status(action, row.status, paused_from="scheduled")
    except IllegalTransition as exc:
        raise _illegal(exc, campaign_id) from None
    values: dict[str, Any] = {}
    if action == "submit":
        if row.author != caller.subject:
            raise ApiError(403, f"campaign {campaign_id} is {row.author}'s: only its author submits it",
                           kind="not-author")  # fmt: skip
        problems = problems_of(conn, _values_of(row), now=now, prefix="/campaign")
        if problems:
            raise _refuse(problems, f"campaign {campaign_id} cannot be submitted")
        ref = segment_store.lookup_segment(conn, row.segment_id)
        values = {"segment_version": ref.version if ref else None}
    elif action in ("approve", "reject"):
        if row.author == caller.subject:
            raise ApiError(
                403,
                f"four eyes: {caller.subject} wrote campaign {campaign_id} and cannot {action} it; "
                "another approver must",
                kind="four-eyes",
                errors=[("/path/campaign_id", "approver must not be the author")],
            )
        if action == "reject" and not note:
            raise ApiError(422, "a rejection needs a note saying why", kind="validation",
                           errors=[("/body/note", "required to reject")])  # fmt: skip
        values = {"approver": caller.subject, "decided_at": now, "decision_note": note}
    elif action == "schedule":
        if row.approver is None or row.approver == row.author:
            raise ApiError(409, f"campaign {campaign_id} has no approval by another person: it cannot be scheduled",
                           kind="not-approved", errors=[("/path/campaign_id", "no approver")])  # fmt: skip
        plan = schedules.parse_schedule(json.loads(row.schedule))
        problems = schedules.schedule_problems(plan, ends_at=row.ends_at, now=now)
        if problems:
            raise _refuse([("/campaign" + p, m) for p, m in problems], f"campaign {campaign_id} cannot be scheduled")
        first = schedules.first_run_at(plan, now=now, ends_at=row.ends_at)
        values = {"next_run_at": _stored(first) if first else None}
    elif action == "resume":
        plan = schedules.parse_schedule(json.loads(row.schedule))
        if schedules.utc(row.ends_at) <= schedules.utc(now):
            raise _refuse([("/campaign/ends_at", "the campaign has ended: cancel it")], "cannot resume")
        if plan.kind == "recurring" and row.next_run_at is not None and row.next_run_at < now:
            later = schedules.next_run_at(plan, after=now - timedelta(microseconds=1), ends_at=row.ends_at)
            values = {"next_run_at": _stored(later) if later else None}
    elif action == "cancel":
        values = {"next_run_at": None}
    try:
        to_status = lifecycle.record_transition(conn, row, action, actor=caller.subject, role=caller.principal.role,
                                                request_id=request_id(), note=note, values=values, now=now)  # fmt: skip
    except StaleVersion:
        raise _stale(campaign_id) from None
    except IllegalTransition as exc:  # resume: where it was paused from
        raise _illegal(exc, campaign_id) from None
    _audit(conn, caller, 200, f"campaign {row.campaign_code}: {action} ({row.status} -> {to_status})")
    return detail(conn, load(conn, campaign_id))


def preview(conn: Connection, row: Any, profile: dict[str, Any] | None, channel: str | None) -> list[dict[str, Any]]:
    """Each channel's message for the customer of ``profile``, with its problems."""
    values = _values_of(row)
    context = render_context(conn, values, profile)
    out = []
    for document in values["channels"]:
        if channel is not None and document.get("channel") != channel:
            continue
        rendered = templates.render_channel(document, context)
        out.append(
            {
                "channel": rendered.channel,
                "ok": not rendered.problems,
                "message": rendered.preview,
                "payload": rendered.payload,
                "errors": [{"field": p, "message": m} for p, m in rendered.problems],
            }
        )
    return out
