"""Freezing a campaign occurrence's audience: who was in the segment when it ran, and why.

``members`` is what the segments' evaluation yields: ``(customer_id, reason)`` pairs, the reason being the
matched clauses (any JSON value; stored as JSON text). The snapshot is idempotent: a rerun of the same
occurrence (a dispatcher that crashed half-way) inserts only the members not yet written, so nobody is written
twice and nobody is missed, and the first run's reasons stand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, update

from mo.oltp.campaign_tables import CampaignAudience, CampaignOccurrence

OCCURRENCES = cast(Table, CampaignOccurrence.__table__)
AUDIENCE = cast(Table, CampaignAudience.__table__)
CHUNK = 2000


@dataclass(frozen=True)
class Snapshot:
    campaign_id: int
    occurrence: int
    written: int  # members inserted by this call
    audience: int  # members of the occurrence in all


def _reason(reason: Any) -> str | None:
    if reason is None:
        return None
    if isinstance(reason, str):
        return json.dumps([reason], ensure_ascii=False)
    return json.dumps(reason, ensure_ascii=False, separators=(",", ":"), default=str)


def _campaign_id(campaign_row: Any) -> int:
    return int(campaign_row["id"] if isinstance(campaign_row, dict) else campaign_row.id)


def snapshot_audience(
    conn: Connection,
    campaign_row: Any,
    occurrence: int,
    members: Iterable[tuple[int, Any]],
    *,
    due_at: datetime | None = None,
    refresh_id: str | None = None,
    now: datetime | None = None,
) -> Snapshot:
    """Write the occurrence (if new) and its audience, inserting only members not yet there; in the caller's
    transaction. A customer listed twice in ``members`` is written once (the first reason)."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    campaign_id = _campaign_id(campaign_row)
    exists = conn.execute(
        select(OCCURRENCES.c.status).where(
            OCCURRENCES.c.campaign_id == campaign_id, OCCURRENCES.c.occurrence == occurrence
        )
    ).first()
    if exists is None:
        conn.execute(
            insert(OCCURRENCES).values(
                campaign_id=campaign_id,
                occurrence=occurrence,
                due_at=due_at or now,
                refresh_id=refresh_id,
                status="snapshotting",
                audience=None,
                started_at=now,
                finished_at=None,
            )
        )
    written = 0
    iterator = iter(members)
    while chunk := list(islice(iterator, CHUNK)):
        batch: dict[int, str | None] = {}
        for customer_id, reason in chunk:
            batch.setdefault(int(customer_id), _reason(reason))
        present = set(
            conn.execute(
                select(AUDIENCE.c.customer_id).where(
                    AUDIENCE.c.campaign_id == campaign_id,
                    AUDIENCE.c.occurrence == occurrence,
                    AUDIENCE.c.customer_id.in_(list(batch)),
                )
            ).scalars()
        )
        rows = [
            {"campaign_id": campaign_id, "occurrence": occurrence, "customer_id": cid, "reason": reason}
            for cid, reason in batch.items()
            if cid not in present
        ]
        if rows:
            conn.execute(insert(AUDIENCE), rows)
            written += len(rows)
    total = conn.execute(
        select(func.count())
        .select_from(AUDIENCE)
        .where(AUDIENCE.c.campaign_id == campaign_id, AUDIENCE.c.occurrence == occurrence)
    ).scalar_one()
    conn.execute(
        update(OCCURRENCES)
        .where(OCCURRENCES.c.campaign_id == campaign_id, OCCURRENCES.c.occurrence == occurrence)
        .values(audience=total)
    )
    conn.execute(
        update(OCCURRENCES)
        .where(
            OCCURRENCES.c.campaign_id == campaign_id,
            OCCURRENCES.c.occurrence == occurrence,
            OCCURRENCES.c.status == "snapshotting",
        )
        .values(status="deciding")
    )
    return Snapshot(campaign_id, occurrence, written, total)
