"""Durable holdouts: whether a customer is kept out of a product line's marketing for one renewal cycle.

The comparison group of a product line must survive reruns, new campaigns and the renewal campaign at the end
of the cycle, or the uplift the results marts measure compares nothing. So an assignment is made once per
(product line, cycle, customer) and stored in ``holdout_assignments``; afterwards it is read, never recomputed:

- ``bucket`` = HMAC-SHA256(key, "<line>|<cycle>|<customer>") -> 0..9999, deterministic for a key, and not
  guessable from the customer id without the key (MO_HOLDOUT_KEY, else MO_PII_KEY);
- ``held_out`` = bucket < share x 10000, with the share of the first campaign that saw the customer in that
  cycle; a later campaign with another share does not reshuffle anyone already assigned;
- stored with an insert of the missing rows only (a concurrent decider's identical row is ignored), then read
  back, so what the ledger records is what the table says.

The cycle (:func:`renewal_cycle`) is the year in which the customer's current renewal cycle in that line
began: the last anniversary of their latest policy's start date in the line, on or before the decision day.
A customer with no policy in the line is in the calendar year's cycle. docs/campaigns.md ("Send decision")
says why.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, and_, func, or_, select, text

from mo.campaigns.sql import insert_ignore, one_of, pg_array
from mo.oltp.campaign_tables import HoldoutAssignment
from mo.oltp.models import Policy, Product

HOLDOUTS = cast(Table, HoldoutAssignment.__table__)
POLICIES = cast(Table, Policy.__table__)
PRODUCTS = cast(Table, Product.__table__)
BUCKETS = 10_000
CHUNK = 10_000
# Policies that made a renewal cycle: issued at some point (quotes and unpaid proposals never started one).
CYCLE_STATUSES = ("in_force", "lapsed", "surrendered", "expired")


class Assignment(NamedTuple):  # a tuple: a batch makes one per customer, and a tuple is the cheapest to make
    product_line: str
    cycle: str
    customer_id: int
    held_out: bool
    bucket: int
    share: Decimal

    def as_detail(self) -> dict:
        return {"cycle": self.cycle, "bucket": self.bucket, "held_out": self.held_out, "share": str(self.share)}


def bucket_of(key: bytes, product_line: str, cycle: str, customer_id: int) -> int:
    digest = hmac.digest(key, f"{product_line}|{cycle}|{customer_id}".encode(), "sha256")
    return int.from_bytes(digest[:8], "big") % BUCKETS


def _anniversary(start: date, year: int) -> date:
    day = 28 if (start.month, start.day) == (2, 29) else start.day
    return date(year, start.month, day)


def cycle_of(latest_start: date | None, today: date) -> str:
    """The cycle label for a customer whose latest policy in the line started ``latest_start``."""
    if latest_start is None or latest_start > today:
        return str(today.year)
    year = today.year
    return str(year if _anniversary(latest_start, year) <= today else year - 1)


def renewal_cycle(conn: Connection, pairs: Iterable[tuple[str, int]], today: date) -> dict[tuple[str, int], str]:
    """The cycle of each (product line, customer) on ``today``, from their latest policy start in the line."""
    wanted = sorted(set(pairs), key=lambda p: (p[0], p[1]))
    by_line: dict[str, list[int]] = {}
    for line, cid in wanted:
        by_line.setdefault(line, []).append(cid)
    latest: dict[tuple[str, int], date] = {}
    for line, ids in by_line.items():
        for start in range(0, len(ids), CHUNK):
            part = ids[start : start + CHUNK]
            rows = conn.execute(
                select(POLICIES.c.customer_id, func.max(POLICIES.c.start_date))
                .join(PRODUCTS, PRODUCTS.c.id == POLICIES.c.product_id)
                .where(
                    one_of(conn, POLICIES.c.customer_id, part),
                    PRODUCTS.c.line == line,
                    POLICIES.c.status.in_(CYCLE_STATUSES),
                    POLICIES.c.deleted_at.is_(None),
                    POLICIES.c.start_date <= today,
                )
                .group_by(POLICIES.c.customer_id)
            )
            for cid, started in rows:
                latest[(line, int(cid))] = started if isinstance(started, date) else date.fromisoformat(str(started))
    return {pair: cycle_of(latest.get(pair), today) for pair in wanted}


def assign(
    conn: Connection,
    wanted: Sequence[tuple[str, str, int, Decimal]],
    *,
    key: bytes,
    now: datetime,
) -> dict[tuple[str, str, int], Assignment]:
    """The stored assignment of each (product line, cycle, customer, share-if-new), assigning the missing ones.

    Runs in the caller's transaction. Rows already stored keep their values whatever share is asked now."""
    result: dict[tuple[str, str, int], Assignment] = {}
    share_of: dict[tuple[str, str, int], Decimal] = {}
    for line, cycle, cid, share in wanted:
        share_of.setdefault((line, cycle, int(cid)), Decimal(share))
    keys = sorted(share_of)
    c = HOLDOUTS.c
    postgres = conn.dialect.name == "postgresql"
    threshold = {share: int(share * BUCKETS) for share in set(share_of.values())}
    for start in range(0, len(keys), CHUNK):
        part = keys[start : start + CHUNK]
        # PostgreSQL: insert first, and read back only when some rows were there already (one statement for a
        # first sight); elsewhere: read, then insert what is missing.
        found = {} if postgres else _read(conn, part)
        missing = [k for k in part if k not in found]
        if missing:
            if postgres:
                lines, cycles, ids, held, shares, buckets = [], [], [], [], [], []
                for line, cycle, cid in missing:
                    share = share_of[(line, cycle, cid)]
                    bucket = bucket_of(key, line, cycle, cid)
                    lines.append(line)
                    cycles.append(cycle)
                    ids.append(cid)
                    held.append(bucket < threshold[share])
                    shares.append(share)
                    buckets.append(bucket)
                if _insert_postgres(conn, now, lines, cycles, ids, held, shares, buckets) == len(missing):
                    for k, h, b, share in zip(missing, held, buckets, shares, strict=True):
                        found[k] = Assignment(k[0], k[1], k[2], h, b, share)
                    lost = []
                else:  # a concurrent decider stored some first: what is stored, for all of them
                    lost = missing
            else:
                rows: list[dict[str, Any]] = []
                for line, cycle, cid in missing:
                    share = share_of[(line, cycle, cid)]
                    bucket = bucket_of(key, line, cycle, cid)
                    rows.append(
                        {
                            "product_line": line,
                            "cycle": cycle,
                            "customer_id": cid,
                            "held_out": bucket < threshold[share],
                            "share": share,
                            "bucket": bucket,
                            "assigned_at": now,
                        }
                    )
                conn.execute(insert_ignore(conn, HOLDOUTS, [c.product_line, c.cycle, c.customer_id]), rows)
                lost = missing
            if lost:
                # What is stored, ours or a concurrent decider's; a locking read on MariaDB, whose plain reads
                # would still see the transaction's first snapshot, without the other decider's row.
                found.update(_read(conn, lost, latest=conn.dialect.name in ("mysql", "mariadb")))
        result.update(found)
    return result


_UNNEST_INSERT = text(
    "INSERT INTO holdout_assignments (product_line, cycle, customer_id, held_out, share, bucket, assigned_at) "
    "SELECT u.l, u.c, u.i, u.h, u.s, u.b, :at FROM unnest(CAST(:lines AS varchar[]), CAST(:cycles AS varchar[]), "
    "CAST(:ids AS bigint[]), CAST(:held AS boolean[]), CAST(:shares AS numeric[]), CAST(:buckets AS integer[])) "
    "AS u(l, c, i, h, s, b) ON CONFLICT DO NOTHING"
)


def _insert_postgres(conn: Connection, at: datetime, *columns: list) -> int:
    """One statement with the rows as arrays in their text form (far cheaper to send and parse than a VALUES list
    or psycopg2's ARRAY[...] expressions); how many rows it inserted (the others a concurrent decider stored
    first)."""
    lines, cycles, ids, held, shares, buckets = columns
    result = conn.execute(
        _UNNEST_INSERT,
        {
            "at": at,
            "lines": pg_array(lines),
            "cycles": pg_array(cycles),
            "ids": pg_array(ids),
            "held": pg_array(held),
            "shares": pg_array(shares),
            "buckets": pg_array(buckets),
        },
    )
    return int(result.rowcount)


def _read(
    conn: Connection, keys: Sequence[tuple[str, str, int]], *, latest: bool = False
) -> dict[tuple[str, str, int], Assignment]:
    c = HOLDOUTS.c
    groups: dict[tuple[str, str], list[int]] = {}
    for line, cycle, cid in keys:
        groups.setdefault((line, cycle), []).append(cid)
    condition = or_(
        *(
            and_(c.product_line == line, c.cycle == cycle, one_of(conn, c.customer_id, ids))
            for (line, cycle), ids in groups.items()
        )
    )
    found = {}
    query = select(HOLDOUTS).where(condition)
    if latest:
        query = query.with_for_update(read=True)
    for row in conn.execute(query):
        k = (row.product_line, row.cycle, int(row.customer_id))
        found[k] = Assignment(row.product_line, row.cycle, int(row.customer_id), bool(row.held_out), int(row.bucket),
                              Decimal(row.share))  # fmt: skip
    return found


__all__ = ["Assignment", "assign", "bucket_of", "cycle_of", "renewal_cycle"]
