"""`mo advance-day`: play the synthetic world forward by one day.

Reads ``world_clock`` (the last simulated day D-1), simulates day D and records D as the new current day.
Volumes scale with the number of customers; everything is drawn from random streams seeded by (seed, D), and
every query reads rows in id order, so replaying the same day on the same world gives the same changes.

What a day brings, in this order (progress first, so a row born today is not also moved today):

- claims move along submitted -> under_review -> [docs_requested ->] approved | rejected -> paying -> paid,
  each step stamping its own ``*_at`` column after the previous one (with a cap on how long a claim waits in
  each state, so open claims are always recently updated and are found through the ``updated_at`` index);
- dual recordings pending review are completed or rejected; a rejection brings a re-recording of the same
  sale (the platform's rule); sampled recordings get their QC result;
- complaints go open -> in_progress -> resolved -> closed;
- quotes are accepted (pending_payment, with the sales recording for dual-recording products) and paid
  (in_force); quotes older than 30 days are soft-deleted, unpaid ones older than 15 days lapse;
- policies ending today are renewed (a new policy with ``renewal_of``) or expire; a few instalment policies
  lapse or are surrendered;
- new customers sign up with their first quote or policy; existing customers ask for new quotes;
- new claims are filed on policies in force; new complaints are opened;
- customers change phone or move city; consents are given or withdrawn;
- a few soft deletes (consents withdrawn by deletion, customers exercising erasure): ``deleted_at`` and
  ``updated_at`` both set;
- a few LATE-ARRIVING changes: rows (customer corrections keyed in late by a branch, portfolio transfers of
  policies between agents) whose ``updated_at`` is 1-12 hours BEFORE the start of day D, i.e. earlier than
  what a sync of day D-1 may already have read. They exist to prove the sync's look-back window; every
  other timestamp written for day D lies inside day D.

Rows are sampled by random ids and read with ``WHERE id IN (...)``, or through the indexed ``updated_at``;
policies ending on a date are found with one filtered scan of ``policies`` (an index on ``end_date`` would
make it a seek). Nothing loads a whole table, so the day costs about the same in any world size.

Events are emitted after the day's transaction commits, so a consumer never sees a claim the source does not
hold: business events (``claim_filed`` per new claim, ``policy_near_renewal`` for annual policies ending in 30
days) and behaviour events for about 1.5% of customers (app page views, WeChat follows and clicks, forms,
coupons, message opens). If emitting fails half-way, the day stays committed; events of a replayed day carry
the same ids, so a consumer can deduplicate.
"""

from __future__ import annotations

import math
import random
import time as clock_time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, select, update

from mo.errors import MoError
from mo.generator import events as ev
from mo.generator import reference as ref
from mo.generator.book import (
    ANNUAL_RENEWAL,
    KIND_CUSTOMER,
    KIND_DAY,
    ORG_BASE,
    BookMaker,
    Customer,
    Layout,
    add_months,
    choose,
    customer_from_row,
    midnight,
    money,
    office_time,
    stream,
)
from mo.generator.storage import BulkWriter, Clock, read_clock, write_clock
from mo.oltp.models import Base

T = Base.metadata.tables
CUSTOMERS, POLICIES, CLAIMS = T["customers"], T["policies"], T["claims"]
RECORDINGS, CONSENTS, COMPLAINTS = T["sales_recordings"], T["consents"], T["complaints"]

# Daily volumes per existing customer.
NEW_CUSTOMERS = 0.0006
NEW_QUOTES = 0.0004
NEW_CLAIMS = 0.0008
NEW_COMPLAINTS = 0.0001
CUSTOMER_UPDATES = 0.0008
CONSENT_CHANGES = 0.0006
POLICY_EXITS = 0.00008
SOFT_DELETES = 0.00003
ERASURES = 0.00001
LATE_ARRIVALS = 0.0001
ACTIVE_SHARE = 0.015  # customers with behaviour events on a day
NEAR_RENEWAL_DAYS = 30
CHUNK = 500

# Claim workflow: state -> (daily probability of moving on, longest wait in days, [(next state, weight)]).
CLAIM_FLOW: dict[str, tuple[float, int, list[tuple[str, float]]]] = {
    "submitted": (0.8, 2, [("under_review", 1)]),
    "under_review": (0.45, 9, [("approved", 0.7), ("docs_requested", 0.22), ("rejected", 0.08)]),
    "docs_requested": (0.3, 12, [("approved", 0.85), ("rejected", 0.15)]),
    "approved": (0.7, 3, [("paying", 1)]),
    "paying": (0.6, 4, [("paid", 1)]),
}
COMPLAINT_FLOW: dict[str, tuple[float, int, str]] = {
    "open": (0.6, 3, "in_progress"),
    "in_progress": (0.12, 25, "resolved"),
    "resolved": (0.2, 12, "closed"),
}
LOOKBACK_DAYS = 45  # every open workflow row was updated within this many days (see the waits above)


def advance_day(engine: Engine, *, emit: Callable[[dict], None] | None = None, pii_key: bytes | None = None) -> dict:
    """Simulate the next day of the world; return counts of changes and events.

    ``pii_key`` keys the WeChat openid tokens in events (default: the platform's ``MO_PII_KEY``).
    """
    started = clock_time.perf_counter()
    if pii_key is None:
        from mo.config import get_settings

        configured = get_settings().pii_key
        pii_key = configured.encode() if configured else None
    writer = BulkWriter(engine)
    with engine.begin() as conn:
        world = read_clock(conn)
        if world is None:
            raise MoError("no synthetic world in the source database: run `mo generate` first")
        day = Day(conn, world, writer)
        day.run()
        world.current_date = day.day
        write_clock(conn, world)
    events: Counter[str] = Counter()
    business = sorted(day.business_events, key=lambda e: (e["occurred_at"], e["event_id"]))
    for event in business:
        events[event["event_type"]] += 1
        if emit:
            emit(event)
    for event in day.behaviour(engine, pii_key):
        events[event["event_type"]] += 1
        if emit:
            emit(event)
    return {
        "date": day.day.isoformat(),
        "changes": dict(day.changes),
        "rows_inserted": day.inserted,
        "events": dict(sorted(events.items())),
        "events_total": sum(events.values()),
        "seconds": round(clock_time.perf_counter() - started, 3),
    }


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    n, p, limit = 0, rng.random(), math.exp(-lam)
    while p > limit:
        n += 1
        p *= rng.random()
    return n


def _chunks(ids: list[int], size: int = CHUNK) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


class Day:
    """One simulated day on an open transaction."""

    def __init__(self, conn: Connection, world: Clock, writer: BulkWriter) -> None:
        self.conn = conn
        self.world = world
        self.writer = writer
        self.seed = world.seed
        self.day: date = world.current_date + timedelta(days=1)
        self.start = midnight(self.day)
        self.end = self.start + timedelta(days=1)
        self.ids = world.next_ids
        self.world_customers = int(self.ids.get("world_customers", self.ids["customers"] - 1))
        self.layout = Layout(self.world_customers)
        self.old_customers = self.ids["customers"] - 1  # customers before today
        self.maker = BookMaker(seed=self.seed, horizon=self.end, layout=self.layout, ids=self.ids)
        self.changes: Counter = Counter()
        self.inserted: dict[str, int] = {}
        self.business_events: list[dict] = []
        self._step = 0

    # --- helpers -------------------------------------------------------------------------------------

    def rng(self) -> random.Random:
        """A fresh stream per step, so adding a step later does not reshuffle the others."""
        self._step += 1
        return stream(self.seed, KIND_DAY, self.day.toordinal() * 64 + self._step)

    def scaled(self, rng: random.Random, rate: float, minimum: int = 0) -> int:
        return max(minimum, _poisson(rng, self.old_customers * rate))

    def moment(self, rng: random.Random, after: datetime | None = None) -> datetime:
        """An office-hours moment today, strictly after ``after`` (a row's previous timestamp) if given."""
        t = office_time(rng, self.day)
        if after is not None and t <= after:
            t = after + timedelta(seconds=1 + rng.random() * max((self.end - after).total_seconds() - 2, 0) * 0.5)
        return min(t, self.end - timedelta(microseconds=1))

    def update_rows(self, table, rows: list[dict]) -> None:
        """Executemany UPDATE ... WHERE id = :row_id, grouped by the set of columns changed."""
        groups: dict[tuple[str, ...], list[dict]] = {}
        for row in rows:
            groups.setdefault(tuple(sorted(k for k in row if k != "id")), []).append(row)
        for cols, group in groups.items():
            stmt = update(table).where(table.c.id == bindparam("row_id")).values({c: bindparam(f"v_{c}") for c in cols})
            params = [{"row_id": r["id"], **{f"v_{c}": r[c] for c in cols}} for r in group]
            self.conn.execute(stmt, params)

    def fetch(self, stmt) -> list:
        return list(self.conn.execute(stmt).all())

    def random_ids(self, rng: random.Random, upper: int, k: int) -> list[int]:
        if upper < 1 or k < 1:
            return []
        return sorted({1 + int(rng.random() * upper) for _ in range(k)})

    def by_ids(self, table, cols: list, ids: list[int], *extra) -> list:
        rows = []
        for part in _chunks(ids):
            rows += self.fetch(select(*cols).where(table.c.id.in_(part), *extra).order_by(table.c.id))
        return rows

    # --- the day -------------------------------------------------------------------------------------

    def run(self) -> None:
        self.claim_progress()
        self.recording_reviews()
        self.complaint_progress()
        self.quote_progress()
        self.policies_ending()
        self.policy_exits()
        self.new_customers()
        self.new_quotes()
        self.new_claims()
        self.new_complaints()
        self.customer_updates()
        self.consent_changes()
        self.soft_deletes()
        self.late_arrivals()
        self.near_renewals()
        batch = self.maker.batch
        for table in batch.TABLES:
            self.writer.insert(self.conn, table, getattr(batch, table))
        self.inserted = {t: n for t, n in batch.counts().items() if n}

    def claim_progress(self) -> None:
        rng = self.rng()
        c = CLAIMS.c
        rows = self.fetch(
            select(c.id, c.status, c.updated_at, c.amount_claimed, c.amount_approved)
            .where(
                c.updated_at >= self.start - timedelta(days=LOOKBACK_DAYS),
                c.updated_at < self.start,
                c.status.in_(list(CLAIM_FLOW)),
                c.deleted_at.is_(None),
            )
            .order_by(c.id)
        )
        updates = []
        for cid, status, updated, claimed, approved in rows:
            p_move, longest, nexts = CLAIM_FLOW[status]
            waited = (self.day - updated.date()).days
            if rng.random() >= p_move and waited < longest:
                continue
            nxt = choose(rng, nexts)
            t = self.moment(rng, updated)
            row = {"id": cid, "status": nxt, f"{nxt}_at": t, "updated_at": t}
            if nxt == "approved":
                row["amount_approved"] = money(float(claimed) * (0.6 + 0.4 * rng.random()))
            elif nxt == "paid":
                row["amount_paid"] = float(approved) if approved is not None else float(claimed)
            updates.append(row)
        self.update_rows(CLAIMS, updates)
        self.changes["claim_transitions"] += len(updates)

    def recording_reviews(self) -> None:
        rng = self.rng()
        c = RECORDINGS.c
        since = self.start - timedelta(days=LOOKBACK_DAYS)
        rows = self.fetch(
            select(
                c.id,
                c.review_status,
                c.qc_sampled,
                c.qc_result,
                c.updated_at,
                c.policy_id,
                c.agent_id,
                c.org_id,
                c.product_id,
                c.customer_id,
            )  # fmt: skip
            .where(
                c.updated_at >= since,
                c.updated_at < self.start,
                c.deleted_at.is_(None),
                (c.review_status == "pending")
                | ((c.review_status == "completed") & c.qc_sampled & c.qc_result.is_(None)),
            )  # fmt: skip
            .order_by(c.id)
        )
        updates = []
        for rid, status, _sampled, _qc, updated, pid, agent_id, org_id, product_id, customer_id in rows:
            waited = (self.day - updated.date()).days
            spec = ref.PRODUCTS[product_id - 1]
            city = ref.CITIES[org_id - ORG_BASE - 1] if org_id > ORG_BASE else ref.CITIES[0]
            if status == "pending":
                if rng.random() >= 0.6 and waited < 3:
                    continue
                t = self.moment(rng, updated)
                reviewer = f"QC{city.code}{1 + int(rng.random() * 12):02d}"
                if rng.random() < 0.1:
                    reason = ref.RECORDING_REJECT_REASONS[int(rng.random() * len(ref.RECORDING_REJECT_REASONS))]
                    updates.append({"id": rid, "review_status": "rejected", "reviewer_code": reviewer,
                                    "review_comment": reason, "reviewed_at": t, "updated_at": t})  # fmt: skip
                    self._re_record(rng, pid, agent_id, org_id, product_id, customer_id, t)
                else:
                    sampled = rng.random() < spec.qc_sample_ratio
                    comment = ref.RECORDING_PASS_COMMENTS[int(rng.random() * len(ref.RECORDING_PASS_COMMENTS))]
                    updates.append({"id": rid, "review_status": "completed", "reviewer_code": reviewer,
                                    "review_comment": comment, "reviewed_at": t, "qc_sampled": sampled,
                                    "updated_at": t})  # fmt: skip
                self.changes["recording_reviews"] += 1
            else:
                if rng.random() >= 0.3 and waited < 10:
                    continue
                t = self.moment(rng, updated)
                updates.append({"id": rid, "qc_result": "pass" if rng.random() < 0.93 else "fail", "updated_at": t})
                self.changes["recording_qc"] += 1
        self.update_rows(RECORDINGS, updates)

    def _re_record(self, rng, pid, agent_id, org_id, product_id, customer_id, rejected_at: datetime) -> None:
        """The sale is recorded again after a rejection; the new ticket waits for review."""
        room = (self.end - rejected_at).total_seconds() - 4_200
        if room <= 600:
            return  # recorded tomorrow at the earliest; the rejection stands until then
        recorded = rejected_at + timedelta(seconds=600 + rng.random() * (room - 600))
        self.changes["re_recordings"] += self._record_sale(
            rng, pid, agent_id, org_id, product_id, customer_id, recorded
        )

    def _record_sale(self, rng, pid, agent_id, org_id, product_id, customer_id, recorded: datetime) -> int:
        city_idx = max(org_id - ORG_BASE - 1, 0)
        cust = Customer(customer_id, city_idx, self.day, "M", "agent", recorded, False, False)
        before = len(self.maker.batch.sales_recordings)
        spec = ref.PRODUCTS[product_id - 1]
        self.maker.recordings(rng, cust, pid, product_id - 1, agent_id, org_id, recorded, spec.line == "life")
        return len(self.maker.batch.sales_recordings) - before

    def complaint_progress(self) -> None:
        rng = self.rng()
        c = COMPLAINTS.c
        rows = self.fetch(
            select(c.id, c.status, c.updated_at)
            .where(
                c.updated_at >= self.start - timedelta(days=LOOKBACK_DAYS),
                c.updated_at < self.start,
                c.status.in_(list(COMPLAINT_FLOW)),
                c.deleted_at.is_(None),
            )  # fmt: skip
            .order_by(c.id)
        )
        updates = []
        for kid, status, updated in rows:
            p_move, longest, nxt = COMPLAINT_FLOW[status]
            if rng.random() >= p_move and (self.day - updated.date()).days < longest:
                continue
            t = self.moment(rng, updated)
            row = {"id": kid, "status": nxt, "updated_at": t}
            if nxt == "resolved":
                row["resolved_at"] = t
            updates.append(row)
        self.update_rows(COMPLAINTS, updates)
        self.changes["complaint_transitions"] += len(updates)

    def quote_progress(self) -> None:
        rng = self.rng()
        c = POLICIES.c
        rows = self.fetch(
            select(
                c.id,
                c.status,
                c.created_at,
                c.updated_at,
                c.start_date,
                c.product_id,
                c.customer_id,
                c.agent_id,
                c.org_id,
            )  # fmt: skip
            .where(
                c.updated_at >= self.start - timedelta(days=LOOKBACK_DAYS),
                c.updated_at < self.start,
                c.status.in_(["quoted", "pending_payment"]),
                c.deleted_at.is_(None),
            )  # fmt: skip
            .order_by(c.id)
        )
        updates = []
        for pid, status, created, updated, start_date, product_id, customer_id, agent_id, org_id in rows:
            spec = ref.PRODUCTS[product_id - 1]
            t = self.moment(rng, updated)
            if status == "quoted":
                if (self.day - created.date()).days > 30:
                    updates.append({"id": pid, "deleted_at": t, "updated_at": t})
                    self.changes["soft_deletes"] += 1
                    self.changes["stale_quotes_retired"] += 1
                elif rng.random() < 0.2:
                    updates.append({"id": pid, "status": "pending_payment", "updated_at": t})
                    self.changes["quotes_accepted"] += 1
                    if spec.dual_recording and agent_id is not None:
                        recorded = max(t - timedelta(minutes=5 + rng.random() * 40), updated + timedelta(seconds=1))
                        self.changes["sales_recorded"] += self._record_sale(
                            rng, pid, agent_id, org_id, product_id, customer_id, recorded
                        )
            elif (self.day - updated.date()).days > 15:
                updates.append({"id": pid, "status": "lapsed", "updated_at": t})
                self.changes["unpaid_quotes_lapsed"] += 1
            elif rng.random() < 0.35:
                start = max(start_date, self.day + timedelta(days=1))
                end = add_months(start, spec.term_months) - timedelta(days=1)
                updates.append({"id": pid, "status": "in_force", "issued_at": t, "start_date": start,
                                "end_date": end, "updated_at": t})  # fmt: skip
                self.changes["quotes_converted"] += 1
        self.update_rows(POLICIES, updates)

    def policies_ending(self) -> None:
        """Policies whose last day is today: annual ones are renewed or expire; the batch runs late evening."""
        rng = self.rng()
        c = POLICIES.c
        rows = self.fetch(
            select(
                c.id,
                c.customer_id,
                c.product_id,
                c.agent_id,
                c.org_id,
                c.subject_type,
                c.vehicle_plate,
                c.vehicle_model,
                c.vehicle_value,
                c.vehicle_first_registered,
                c.property_address,
                c.sum_insured,
                c.premium,
                c.payment_mode,
                c.updated_at,
            )  # fmt: skip
            .where(c.end_date == self.day, c.status == "in_force", c.deleted_at.is_(None))
            .order_by(c.id)
        )
        updates = []
        for (pid, customer_id, product_id, agent_id, org_id, subject, plate, model, value, registered, address,
             insured, premium, payment, updated) in rows:  # fmt: skip
            spec = ref.PRODUCTS[product_id - 1]
            closing = self.start + timedelta(hours=23, seconds=rng.random() * 3_000)
            closing = max(closing, updated + timedelta(seconds=1))
            updates.append(
                {"id": pid, "status": "expired", "updated_at": min(closing, self.end - timedelta(microseconds=1))}
            )
            if spec.term_months != 12 or rng.random() >= ANNUAL_RENEWAL[spec.line]:
                self.changes["policies_expired"] += 1
                continue
            new_id = self.maker.take("policies")
            issued = office_time(rng, self.day)
            created = issued - timedelta(minutes=5 + rng.random() * 120)
            created = max(created, self.start + timedelta(seconds=rng.random() * 60))
            issued = max(issued, created + timedelta(seconds=30))
            start = self.day + timedelta(days=1)
            end = add_months(start, 12) - timedelta(days=1)
            new_value = money(float(value) * 0.88) if value is not None else None
            new_insured = new_value if (subject == "vehicle" and spec.sum_insured == 0) else float(insured)
            new_premium = money(float(premium) * (0.95 if spec.line == "auto" else 1.0 + 0.04 * rng.random()))
            city = ref.CITIES[max(org_id - ORG_BASE - 1, 0)]
            self.maker.batch.policies.append(
                (new_id, f"P{self.day.year}{city.code}{new_id:010d}", customer_id, product_id, agent_id, org_id,
                 subject, plate, model, new_value, registered, address, money(new_insured or 0.0), new_premium, payment,
                 start, end, "in_force", pid, issued, created, issued, None)
            )  # fmt: skip
            self.changes["policies_renewed"] += 1
        self.update_rows(POLICIES, updates)

    def policy_exits(self) -> None:
        rng = self.rng()
        upper = self.ids["policies"] - 1
        c = POLICIES.c
        ids = self.random_ids(rng, upper, self.scaled(rng, POLICY_EXITS * 2, minimum=1))
        rows = self.by_ids(POLICIES, [c.id, c.product_id, c.payment_mode, c.updated_at, c.end_date], ids,
                           c.status == "in_force", c.deleted_at.is_(None), c.start_date <= self.day)  # fmt: skip
        updates = []
        for pid, product_id, payment, updated, end in rows:
            spec = ref.PRODUCTS[product_id - 1]
            if end <= self.day:
                continue
            if spec.term_months > 12:
                status = "lapsed" if payment != "single" and rng.random() < 0.5 else "surrendered"
            elif rng.random() < 0.3:
                status = "surrendered"  # car sold, home sold
            else:
                continue
            t = self.moment(rng, updated)
            updates.append({"id": pid, "status": status, "updated_at": t})
            self.changes[f"policies_{status}"] += 1
        self.update_rows(POLICIES, updates)

    def new_customers(self) -> None:
        rng = self.rng()
        n = self.scaled(rng, NEW_CUSTOMERS, minimum=1)
        times = sorted(self.start + timedelta(seconds=27_000 + rng.random() * 50_400) for _ in range(n))
        for created in times:
            cid = self.maker.take("customers")
            cust_rng = stream(self.seed, KIND_CUSTOMER, cid)
            self.maker.customer_book(cust_rng, cid, created, recent_from=self.end)
        self.changes["new_customers"] += n

    def _customers(self, ids: list[int]) -> list[Customer]:
        c = CUSTOMERS.c
        cols = [c.id, c.province, c.city, c.birth_date, c.gender, c.acquisition_channel, c.created_at,
                c.wechat_openid, c.app_user_id]  # fmt: skip
        rows = self.by_ids(CUSTOMERS, cols, ids, c.deleted_at.is_(None))
        return [customer_from_row(tuple(r)) for r in rows]

    def new_quotes(self) -> None:
        rng = self.rng()
        ids = self.random_ids(rng, self.old_customers, self.scaled(rng, NEW_QUOTES, minimum=1))
        for cust in self._customers(ids):
            line = self.maker.pick_line(rng, cust, set())
            before = len(self.maker.batch.policies)
            self.maker.holding(rng, cust, office_time(rng, self.day), line)
            self.changes["new_quotes"] += len(self.maker.batch.policies) - before

    def new_claims(self) -> None:
        rng = self.rng()
        wanted = self.scaled(rng, NEW_CLAIMS, minimum=1)
        ids = self.random_ids(rng, self.old_customers, wanted * 3)
        c = POLICIES.c
        rows = []
        for part in _chunks(ids):
            rows += self.fetch(
                select(c.id, c.policy_no, c.customer_id, c.product_id, c.org_id, c.sum_insured)
                .where(
                    c.customer_id.in_(part),
                    c.status == "in_force",
                    c.start_date <= self.day,
                    c.end_date >= self.day,
                    c.deleted_at.is_(None),
                )  # fmt: skip
                .order_by(c.customer_id, c.id)
            )
        seen: set[int] = set()
        filed = 0
        for pid, policy_no, customer_id, product_id, org_id, insured in rows:
            if filed >= wanted or customer_id in seen:
                continue
            seen.add(customer_id)
            spec = ref.PRODUCTS[product_id - 1]
            cust = Customer(
                customer_id, max(org_id - ORG_BASE - 1, 0), self.day, "M", "agent", self.start, False, False
            )
            # Reported (up to an hour before submission) within the day too; the incident may be older.
            submitted = self.start + timedelta(seconds=3_600 + rng.random() * 82_000)
            before = len(self.maker.batch.claims)
            self.maker.claim(rng, cust, pid, spec.line, None, float(insured), submitted_at=submitted)
            if len(self.maker.batch.claims) == before:
                continue
            row = self.maker.batch.claims[-1]
            filed += 1
            self.business_events.append(
                ev.claim_filed(
                    rng,
                    ts=row[13],
                    customer_id=customer_id,
                    claim_no=row[1],
                    policy_no=policy_no,
                    incident_type=row[7],
                    amount_claimed=row[9],
                )  # fmt: skip
            )
        self.changes["claims_filed"] += filed

    def new_complaints(self) -> None:
        rng = self.rng()
        ids = self.random_ids(rng, self.old_customers, self.scaled(rng, NEW_COMPLAINTS))
        customers = self._customers(ids)
        if not customers:
            return
        c = POLICIES.c
        held: dict[int, list[tuple[int, str]]] = {}
        for part in _chunks([cu.id for cu in customers]):
            for pid, customer_id in self.fetch(
                select(c.id, c.customer_id).where(c.customer_id.in_(part), c.issued_at.is_not(None)).order_by(c.id)
            ):
                held.setdefault(customer_id, []).append((pid, ""))
        for cust in customers:
            cust.policies = held.get(cust.id, [])
            self.maker.complaint(rng, cust, office_time(rng, self.day))
            self.changes["complaints_opened"] += 1

    def customer_updates(self) -> None:
        rng = self.rng()
        ids = self.random_ids(rng, self.old_customers, self.scaled(rng, CUSTOMER_UPDATES, minimum=1))
        c = CUSTOMERS.c
        rows = self.by_ids(CUSTOMERS, [c.id, c.province, c.city, c.updated_at], ids, c.deleted_at.is_(None))
        updates = []
        for cid, province, city, updated in rows:
            t = self.moment(rng, updated)
            if rng.random() < 0.6:
                phone = (
                    ref.PHONE_PREFIXES[int(rng.random() * len(ref.PHONE_PREFIXES))] + f"{int(rng.random() * 1e8):08d}"
                )
                updates.append({"id": cid, "phone": phone, "updated_at": t})
            else:
                province, city = _move(rng, province)
                updates.append({"id": cid, "province": province, "city": city, "updated_at": t})
        self.update_rows(CUSTOMERS, updates)
        self.changes["customer_updates"] += len(updates)

    def consent_changes(self) -> None:
        rng = self.rng()
        ids = self.random_ids(rng, self.old_customers, self.scaled(rng, CONSENT_CHANGES, minimum=1))
        c = CONSENTS.c
        rows = []
        for part in _chunks(ids):
            rows += self.fetch(
                select(c.id, c.customer_id, c.channel, c.status, c.updated_at)
                .where(c.customer_id.in_(part), c.deleted_at.is_(None))
                .order_by(c.customer_id, c.id)
            )
        by_customer: dict[int, list] = {}
        for row in rows:
            by_customer.setdefault(row[1], []).append(row)
        live = {cu.id for cu in self._customers(ids)}
        updates = []
        for cid in ids:
            if cid not in live:
                continue
            mine = by_customer.get(cid, [])
            have = {r[2] for r in mine}
            missing = [ch for ch in ("email", "phone") if ch not in have]
            if mine and (not missing or rng.random() < 0.8):
                kid, _, channel, status, updated = mine[int(rng.random() * len(mine))]
                t = self.moment(rng, updated)
                source = {"app_push": "app", "wechat": "wechat"}.get(channel) or (
                    "web" if rng.random() < 0.5 else "call_center"
                )
                updates.append({"id": kid, "status": "opt_out" if status == "opt_in" else "opt_in", "decided_at": t,
                                "source": source, "updated_at": t})  # fmt: skip
            elif missing:
                t = self.moment(rng)
                channel = missing[int(rng.random() * len(missing))]
                self.maker.batch.consents.append(
                    (self.maker.take("consents"), cid, channel, "opt_in" if rng.random() < 0.6 else "opt_out", t,
                     "web" if rng.random() < 0.5 else "call_center", t, t, None)
                )  # fmt: skip
            else:
                continue
            self.changes["consent_changes"] += 1
        self.update_rows(CONSENTS, updates)

    def soft_deletes(self) -> None:
        """Consents removed by deletion and customers exercising their right to erasure (rows kept, marked)."""
        rng = self.rng()
        c = CONSENTS.c
        ids = self.random_ids(rng, self.ids["consents"] - 1, self.scaled(rng, SOFT_DELETES, minimum=1))
        rows = self.by_ids(CONSENTS, [c.id, c.updated_at], ids, c.deleted_at.is_(None), c.updated_at < self.start)
        updates = []
        for kid, updated in rows:
            t = self.moment(rng, updated)
            updates.append({"id": kid, "deleted_at": t, "updated_at": t})
        self.update_rows(CONSENTS, updates)
        self.changes["soft_deletes"] += len(updates)

        # Erasure removes a customer record only when no policy, claim, recording or complaint evidence
        # refers to it: that evidence stays under legal hold, and so does the customer it belongs to.
        wanted = self.scaled(rng, ERASURES)
        candidates = self.random_ids(rng, self.old_customers, wanted * 20) if wanted else []
        cc = CUSTOMERS.c
        rows = [
            (cid, updated)
            for cid, updated in self.by_ids(CUSTOMERS, [cc.id, cc.updated_at], candidates, cc.deleted_at.is_(None))
            if not self.holds_evidence(cid)
        ][:wanted]
        customer_updates, consent_updates, quote_updates = [], [], []
        for cid, updated in rows:
            t = self.moment(rng, updated)
            customer_updates.append({"id": cid, "deleted_at": t, "updated_at": t})
            p = POLICIES.c
            for pid, p_updated in self.fetch(
                select(p.id, p.updated_at).where(p.customer_id == cid, p.deleted_at.is_(None)).order_by(p.id)
            ):
                at = max(t, p_updated + timedelta(seconds=1))
                quote_updates.append({"id": pid, "deleted_at": at, "updated_at": at})
            for kid, k_updated in self.fetch(
                select(c.id, c.updated_at).where(c.customer_id == cid, c.deleted_at.is_(None)).order_by(c.id)
            ):
                at = max(t, k_updated + timedelta(seconds=1))
                consent_updates.append({"id": kid, "deleted_at": at, "updated_at": at})
        self.update_rows(CUSTOMERS, customer_updates)
        self.update_rows(CONSENTS, consent_updates)
        self.update_rows(POLICIES, quote_updates)
        self.changes["soft_deletes"] += len(customer_updates) + len(consent_updates) + len(quote_updates)
        self.changes["customers_erased"] += len(customer_updates)

    def holds_evidence(self, customer_id: int) -> bool:
        """True if a live policy (beyond an open quote), claim, recording or complaint refers to the customer."""
        p, cl, r, co = POLICIES.c, CLAIMS.c, RECORDINGS.c, COMPLAINTS.c
        checks = (
            select(p.id).where(p.customer_id == customer_id, p.deleted_at.is_(None), p.status != "quoted"),
            select(cl.id).where(cl.customer_id == customer_id, cl.deleted_at.is_(None)),
            select(r.id).where(r.customer_id == customer_id, r.deleted_at.is_(None)),
            select(co.id).where(co.customer_id == customer_id, co.deleted_at.is_(None)),
        )
        return any(self.fetch(query.limit(1)) for query in checks)

    def late_arrivals(self) -> None:
        """Changes that happened yesterday but reach the source only now (updated_at before today)."""
        rng = self.rng()
        n = self.scaled(rng, LATE_ARRIVALS, minimum=2)
        c = CUSTOMERS.c
        ids = self.random_ids(rng, self.old_customers, (n + 1) // 2)
        rows = self.by_ids(CUSTOMERS, [c.id, c.province, c.updated_at], ids, c.deleted_at.is_(None))
        updates = []
        for cid, province, updated in rows:
            late = self.start - timedelta(seconds=3_600 + rng.random() * 39_600)
            if updated >= late:
                continue
            province, city = _move(rng, province)
            updates.append({"id": cid, "province": province, "city": city, "updated_at": late})
        self.update_rows(CUSTOMERS, updates)
        self.changes["late_arrivals"] += len(updates)

        p = POLICIES.c
        ids = self.random_ids(rng, self.ids["policies"] - 1, n // 2 * 4)
        rows = self.by_ids(POLICIES, [p.id, p.org_id, p.agent_id, p.updated_at], ids, p.deleted_at.is_(None),
                           p.status == "in_force", p.agent_id.is_not(None))  # fmt: skip
        updates = []
        for pid, org_id, _agent, updated in rows[: n // 2]:
            late = self.start - timedelta(seconds=3_600 + rng.random() * 39_600)
            if updated >= late:
                continue
            new_agent = self.layout.pick_agent(rng, max(org_id - ORG_BASE - 1, 0))
            updates.append({"id": pid, "agent_id": new_agent, "updated_at": late})
        self.update_rows(POLICIES, updates)
        self.changes["late_arrivals"] += len(updates)

    def near_renewals(self) -> None:
        rng = self.rng()
        c = POLICIES.c
        target = self.day + timedelta(days=NEAR_RENEWAL_DAYS)
        annual = [i + 1 for i, spec in enumerate(ref.PRODUCTS) if spec.term_months == 12]
        rows = self.fetch(
            select(c.id, c.policy_no, c.customer_id, c.product_id)
            .where(c.end_date == target, c.status == "in_force", c.deleted_at.is_(None), c.product_id.in_(annual))
            .order_by(c.id)
        )
        for _pid, policy_no, customer_id, product_id in rows:
            ts = self.start + timedelta(hours=2, seconds=rng.random() * 1_800)  # the nightly renewal batch
            self.business_events.append(
                ev.policy_near_renewal(
                    rng,
                    ts=ts,
                    customer_id=customer_id,
                    policy_no=policy_no,
                    product_code=ref.PRODUCTS[product_id - 1].code,
                    end_date=target,
                    today=self.day,
                )  # fmt: skip
            )

    # --- behaviour events (after commit) ------------------------------------------------------------

    def behaviour(self, engine: Engine, key: bytes | None) -> Iterable[dict]:
        """Behaviour events of the day, produced chunk by chunk so memory stays flat in any world size."""
        rng = self.rng()
        total = self.ids["customers"] - 1
        ids = self.random_ids(rng, total, self.scaled(rng, ACTIVE_SHARE, minimum=1))
        c = CUSTOMERS.c
        for part in _chunks(ids, 2_000):
            with engine.connect() as conn:
                rows = conn.execute(
                    select(c.id, c.wechat_openid, c.app_user_id)
                    .where(c.id.in_(part), c.deleted_at.is_(None))
                    .order_by(c.id)
                ).all()
            chunk: list[dict] = []
            for cid, openid, app_user_id in rows:
                chunk += ev.behaviour_events(rng, day=self.day, customer_id=cid, openid=openid,
                                             app_user_id=app_user_id, key=key)  # fmt: skip
            chunk.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
            yield from chunk


def _move(rng: random.Random, province: str) -> tuple[str, str]:
    """Where a customer moves: mostly within their province, otherwise to a big city."""
    same = ref.CITIES_BY_PROVINCE.get(province, [])
    if same and rng.random() < 0.7:
        city = ref.CITIES[same[int(rng.random() * len(same))]]
    else:
        from bisect import bisect

        city = ref.CITIES[bisect(ref.CITY_CUM_WEIGHTS, rng.random() * ref.CITY_CUM_WEIGHTS[-1])]
    return city.province, city.name
