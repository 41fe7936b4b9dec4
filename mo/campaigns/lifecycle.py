"""A campaign's lifecycle as data, and the one function that records a move through it.

    draft -> submitted -> approved | rejected  (an approver who is not the author: four eyes)
    rejected -> submitted (after an edit)       approved -> scheduled -> running -> completed
    scheduled | running -> paused -> (back where it was)      anything not finished -> cancelled

``ACTIONS`` says, per action, the statuses it may start from, where it goes and who may take it: the serving
API checks requests against it (409 naming the allowed actions), the dispatcher uses it for start and
complete. ``record_transition`` writes the move: the campaign row under its optimistic ``version``, the
``campaign_events`` row and the ``campaign_status_changed`` outbox event, in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select, update

from mo.errors import MoError
from mo.oltp.campaign_tables import CAMPAIGN_STATUSES, Campaign, CampaignEvent

CAMPAIGNS = cast(Table, Campaign.__table__)
EVENTS = cast(Table, CampaignEvent.__table__)

WRITE = "campaigns:write"
APPROVE = "campaigns:approve"
SYSTEM = "system"  # the dispatcher: no person, no scope


@dataclass(frozen=True)
class Action:
    name: str
    from_statuses: tuple[str, ...]
    to_status: str | None  # None: back to the status before the pause (resume); edit keeps the status
    by: str  # the scope a person needs, or SYSTEM


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("edit", ("draft", "rejected"), None, WRITE),
        Action("submit", ("draft", "rejected"), "submitted", WRITE),
        Action("approve", ("submitted",), "approved", APPROVE),
        Action("reject", ("submitted",), "rejected", APPROVE),
        Action("schedule", ("approved",), "scheduled", WRITE),
        Action("pause", ("scheduled", "running"), "paused", WRITE),
        Action("resume", ("paused",), None, WRITE),
        Action(
            "cancel",
            ("draft", "submitted", "approved", "rejected", "scheduled", "running", "paused"),
            "cancelled",
            WRITE,
        ),  # fmt: skip
        Action("start", ("scheduled",), "running", SYSTEM),
        Action("complete", ("running",), "completed", SYSTEM),
    )
}
TERMINAL = ("completed", "cancelled")
PAUSABLE = ACTIONS["pause"].from_statuses
# The statuses the dispatcher picks due campaigns from (next_run_at <= now).
DUE_STATUSES = ("scheduled", "running")
assert {s for a in ACTIONS.values() for s in a.from_statuses} | set(TERMINAL) | {"paused"} == set(CAMPAIGN_STATUSES)


class IllegalTransition(MoError):
    """An action the campaign's status does not allow."""

    def __init__(self, action: str, status: str) -> None:
        self.action = action
        self.status = status
        self.allowed = allowed_actions(status)
        allowed = ", ".join(self.allowed) or "none"
        needs = " or ".join(ACTIONS[action].from_statuses) if action in ACTIONS else "?"
        super().__init__(f"a {status} campaign cannot {action} (it needs {needs}); allowed now: {allowed}")


class StaleVersion(MoError):
    """The campaign changed since the caller read it."""


def allowed_actions(status: str, *, by: str | None = None) -> list[str]:
    """The actions a campaign in ``status`` allows (those taken with scope ``by`` only, if given)."""
    return [a.name for a in ACTIONS.values() if status in a.from_statuses and (by is None or a.by == by)]


def target_status(action: str, status: str, *, paused_from: str | None = None) -> str:
    """Where ``action`` takes a campaign in ``status``; IllegalTransition otherwise. ``resume`` goes back to the
    status it was paused from (``paused_from``: the from_status of the pause event)."""
    spec = ACTIONS.get(action)
    if spec is None or status not in spec.from_statuses:
        raise IllegalTransition(action, status)
    if action == "resume":
        return paused_from if paused_from in PAUSABLE else "scheduled"
    return spec.to_status or status


def paused_from(conn: Connection, campaign_id: int) -> str | None:
    """The status the campaign was in when it was last paused."""
    return conn.execute(
        select(EVENTS.c.from_status)
        .where(EVENTS.c.campaign_id == campaign_id, EVENTS.c.to_status == "paused")
        .order_by(EVENTS.c.id.desc())
        .limit(1)
    ).scalar()


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def record_event(
    conn: Connection,
    campaign_id: int,
    *,
    from_status: str | None,
    to_status: str,
    actor: str,
    role: str | None,
    note: str | None,
    request_id: str,
    at: datetime,
) -> None:
    conn.execute(
        insert(EVENTS).values(
            campaign_id=campaign_id,
            from_status=from_status,
            to_status=to_status,
            actor=actor,
            role=role,
            note=note[:1000] if note else None,
            request_id=request_id[:64],
            at=at,
        )
    )


def status_event(
    *,
    campaign_id: int,
    campaign_code: str,
    next_run_at: datetime | None,
    action: str,
    from_status: str | None,
    to_status: str,
    role: str | None,
    at: datetime,
) -> dict[str, Any]:
    """The ``campaign_status_changed`` event. The envelope's customer_id (its partition key) carries the campaign
    id: a campaign's changes stay in order on one partition; the event is about no customer (see its contract)."""
    from mo.oltp.outbox import new_event

    return new_event(
        "campaign_status_changed",
        customer_id=int(campaign_id),
        source="core",
        occurred_at=at,
        payload={
            "campaign_id": int(campaign_id),
            "campaign_code": campaign_code,
            "action": action,
            "from_status": from_status,
            "to_status": to_status,
            "changed_by": role if role in EVENT_ROLES else "system",
            "next_run_at": None if next_run_at is None else next_run_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    )


EVENT_ROLES = ("marketer", "approver", "admin")


def record_transition(
    conn: Connection,
    row: Any,
    action: str,
    *,
    actor: str,
    role: str | None,
    request_id: str,
    note: str | None = None,
    values: dict[str, Any] | None = None,
    now: datetime | None = None,
    paused_from_status: str | None = None,
    settings: Any = None,
) -> str:
    """Move the campaign ``row`` (as read, with its version) by ``action``: update it where its version is still
    the one read (StaleVersion otherwise), append the event and the outbox event. Returns the new status."""
    from mo.oltp.outbox import add_event

    now = now or utcnow()
    if action == "resume" and paused_from_status is None:
        paused_from_status = paused_from(conn, row.id)
    to_status = target_status(action, row.status, paused_from=paused_from_status)
    changes = {"status": to_status, "version": row.version + 1, "updated_at": now, **(values or {})}
    changed = conn.execute(
        update(CAMPAIGNS).where(CAMPAIGNS.c.id == row.id, CAMPAIGNS.c.version == row.version).values(changes)
    ).rowcount
    if changed != 1:
        raise StaleVersion(f"campaign {row.id} changed meanwhile (version {row.version} is no longer current)")
    record_event(conn, row.id, from_status=row.status, to_status=to_status, actor=actor, role=role, note=note,
                 request_id=request_id, at=now)  # fmt: skip
    if to_status != row.status:
        event = status_event(
            campaign_id=row.id,
            campaign_code=row.campaign_code,
            next_run_at=changes.get("next_run_at", row.next_run_at),
            action=action,
            from_status=row.status,
            to_status=to_status,
            role=role,
            at=now,
        )
        add_event(conn, event, settings=settings)
    return to_status


def dispatcher_transition(
    conn: Connection, campaign_id: int, action: str, *, request_id: str, note: str | None = None,
    values: dict[str, Any] | None = None, now: datetime | None = None, settings: Any = None,
) -> str:  # fmt: skip
    """The dispatcher's moves (start: scheduled -> running; complete: running -> completed), with an audit
    entry like a person's change. IllegalTransition if the campaign is no longer in a status that allows it (a
    marketer paused or cancelled it meanwhile), StaleVersion if it changed under the dispatcher."""
    from mo.oltp.api_tables import AuditEntry

    if ACTIONS[action].by != SYSTEM:
        raise ValueError(f"{action} is not a dispatcher action")
    now = now or utcnow()
    row = conn.execute(select(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)).first()
    if row is None:
        raise MoError(f"campaign {campaign_id} not found")
    to_status = record_transition(conn, row, action, actor="system:dispatcher", role=None, request_id=request_id,
                                  note=note, values=values, now=now, settings=settings)  # fmt: skip
    conn.execute(
        insert(cast(Table, AuditEntry.__table__)).values(
            at=now,
            request_id=request_id[:64],
            actor="system:dispatcher",
            role=None,
            action=f"campaigns.{action}",
            resource=f"campaign {campaign_id}",
            customer_id=None,
            outcome="ok",
            status_code=200,
            detail=f"campaign {row.campaign_code}: {row.status} -> {to_status}",
        )
    )
    return to_status
