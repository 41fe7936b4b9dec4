"""Ids for rows the API adds to source tables whose ids the writer assigns (``consents``, ``complaints``).

The core systems' tables carry a BIGINT id given by whoever writes the row (mo.oltp.models); in this
world that is the generator, which keeps the next free id per table in ``world_clock.next_ids``. An API
write takes its id from the same counter (and moves it on) under a row lock, so neither the API nor the
next simulated day hands out an id twice. Without a world clock (core systems that are not the
generator's) the next id is one above the table's largest.

Limit: the daily simulation (``mo advance-day``) reads the counter when it starts and writes it back when
it ends, so API writes must not run *during* a simulated day; they may run between days.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, func, select, update

from mo.oltp.models import Base, WorldClock


def allocate_id(conn: Connection, table: str) -> int:
    """The next free id of ``table``, taken in the caller's transaction (rolled back with it)."""
    target = Base.metadata.tables[table]
    clock = conn.execute(select(WorldClock.next_ids).where(WorldClock.id == 1).with_for_update()).scalar()
    largest = conn.execute(select(func.max(target.c.id))).scalar() or 0
    if clock is None:
        return int(largest) + 1
    next_ids = json.loads(clock)
    value = max(int(next_ids.get(table, 1)), int(largest) + 1)
    next_ids[table] = value + 1
    conn.execute(
        update(WorldClock)
        .where(WorldClock.id == 1)
        .values(next_ids=json.dumps(next_ids, sort_keys=True, separators=(",", ":")))
    )
    return value
