"""`mo generate`: write a deterministic synthetic insurer book into the source tables.

The world's history lies before ``start_date`` (default 2026-01-01), the first day the daily simulation
(`mo advance-day`) will play; ``world_clock.current_date`` is the last day already in the data (the day
before ``start_date``). Customers sign up over the six years before that, faster in recent years, so ids
grow with sign-up time as they do in a real core system.

Same seed and customer count give identical rows, timestamps included, whatever the batch size. Memory does
not grow with the customer count: customers are produced and written one batch at a time, each batch with
all its child rows and its own commit, and nothing of a written batch is kept (20M customers run in the same
few hundred MB as 20k). Organisations and agents are laid out from the customer count alone, so a policy
finds its agent by arithmetic instead of a lookup table.
"""

from __future__ import annotations

import logging
import queue
import threading
import time as clock
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, func, select

from mo.errors import MoError
from mo.generator import reference as ref
from mo.generator.book import (
    BRANCH_ID,
    KIND_AGENT,
    KIND_CUSTOMER,
    ORG_BASE,
    Batch,
    BookMaker,
    Layout,
    _chinese_name,
    midnight,
    office_time,
    stream,
)
from mo.generator.storage import ID_TABLES, BulkWriter, Clock, read_clock, write_clock
from mo.oltp.models import Customer

log = logging.getLogger(__name__)

DEFAULT_START_DATE = date(2026, 1, 1)
HISTORY_YEARS = 6
SIGNUP_GROWTH = 1.6  # cumulative sign-ups grow like t**1.6: the book grew faster in recent years
RECENT_QUOTE_DAYS = 30  # open quotes are at most this old; the daily sweep retires older ones
REFERENCE_EPOCH = datetime(2012, 3, 1, 9, 0)


def generate_world(
    engine: Engine,
    *,
    customers: int,
    seed: int,
    start_date: date | None = None,
    batch_size: int = 10_000,
) -> dict:
    """Write organisations, agents, products and ``customers`` customers with their books; return a report."""
    if customers < 1:
        raise MoError(f"customers must be at least 1 (got {customers})")
    if batch_size < 1:
        raise MoError(f"batch_size must be at least 1 (got {batch_size})")
    start = start_date or DEFAULT_START_DATE
    if start.year < 2000:
        raise MoError(f"start_date {start} is too early: the product shelf and history begin in the 2010s")
    _refuse_existing_world(engine)

    started = clock.perf_counter()
    horizon = midnight(start)
    history_start = midnight(date(start.year - HISTORY_YEARS, start.month, min(start.day, 28)))
    layout = Layout(customers)
    ids = dict.fromkeys(ID_TABLES, 1)
    writer = BulkWriter(engine)
    rows: dict[str, int] = {}

    with engine.begin() as conn:
        orgs = _organizations()
        products = _products()
        writer.insert(conn, "organizations", orgs)
        writer.insert(conn, "products", products)
    ids["organizations"] = len(orgs) + 1
    ids["products"] = len(products) + 1
    rows["organizations"], rows["products"] = len(orgs), len(products)

    rows["agents"] = 0
    for lo in range(1, layout.agent_total + 1, batch_size):
        hi = min(lo + batch_size, layout.agent_total + 1)
        agents = [_agent(seed, aid, layout, horizon) for aid in range(lo, hi)]
        with engine.begin() as conn:
            writer.insert(conn, "agents", agents)
        rows["agents"] += len(agents)
    ids["agents"] = layout.agent_total + 1

    span = (horizon - history_start).total_seconds()
    recent_from = horizon - timedelta(days=RECENT_QUOTE_DAYS)
    for table in Batch.TABLES:
        rows[table] = 0
    with _BackgroundWriter(engine, writer) as background:
        for lo in range(1, customers + 1, batch_size):
            hi = min(lo + batch_size, customers + 1)
            maker = BookMaker(seed=seed, horizon=horizon, layout=layout, ids=ids)
            for cid in range(lo, hi):
                rng = stream(seed, KIND_CUSTOMER, cid)
                fraction = (cid - rng.random()) / customers
                signup_day = (history_start + timedelta(seconds=span * fraction ** (1 / SIGNUP_GROWTH))).date()
                created = min(office_time(rng, signup_day), horizon - timedelta(hours=2))
                maker.customer_book(rng, cid, created, recent_from=recent_from)
            background.put(maker.batch, f"customers {lo}-{hi - 1}")
            for table, n in maker.batch.counts().items():
                rows[table] += n

    ids["customers"] = customers + 1
    world_date = start - timedelta(days=1)
    with engine.begin() as conn:
        write_clock(conn, Clock(world_date, seed, {**ids, "world_customers": customers}), insert=True)

    seconds = clock.perf_counter() - started
    total = sum(rows.values())
    return {
        "customers": customers,
        "seed": seed,
        "start_date": start.isoformat(),
        "world_date": world_date.isoformat(),
        "rows": rows,
        "rows_total": total,
        "seconds": round(seconds, 3),
        "rows_per_second": round(total / seconds) if seconds > 0 else None,
    }


class _BackgroundWriter:
    """Writes batches on a second thread while the next batch is being generated.

    The database's share of the work (SQLite's engine, the server round trips of MariaDB and PostgreSQL)
    runs without the GIL, so it overlaps with generation. The queue holds one batch: at most three batches
    exist at once (being generated, queued, being written), which keeps memory flat. Batches are written in
    order, each in its own transaction; the first failure stops the run and is raised to the caller.
    """

    def __init__(self, engine: Engine, writer: BulkWriter) -> None:
        self.engine = engine
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="generator-writer", daemon=True)

    def __enter__(self) -> _BackgroundWriter:
        self.thread.start()
        return self

    def put(self, batch: Batch, label: str) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.queue.put((batch, label), timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain after a failure so the producer never blocks
            batch, label = item
            try:
                with self.engine.begin() as conn:
                    for table in Batch.TABLES:
                        self.writer.insert(conn, table, getattr(batch, table))
                log.info("%s written", label)
            except BaseException as exc:  # handed to the generating thread
                self.error = exc

    def __exit__(self, exc_type, exc, tb) -> None:
        self.queue.put(None)
        self.thread.join()
        if exc is None and self.error is not None:
            raise self.error


def _refuse_existing_world(engine: Engine) -> None:
    with engine.connect() as conn:
        existing = read_clock(conn)
        if existing is not None:
            raise MoError(
                f"the source database already holds a world (day {existing.current_date}, seed {existing.seed}); "
                "generate into an empty database or use `mo advance-day`"
            )
        if conn.execute(select(func.count()).select_from(Customer)).scalar_one():
            raise MoError("the source database already holds customers; generate into an empty database")


def _organizations() -> list[tuple]:
    ts = REFERENCE_EPOCH
    rows: list[tuple] = [(1, "000000", "总公司", "head_office", None, "北京市", "北京市", ts, ts, None)]
    for i, (province, code, _, capital) in enumerate(ref.PROVINCES):
        opened = ts + timedelta(days=30 + 7 * i)
        rows.append((BRANCH_ID[province], f"{code}0000", f"{ref.PROVINCE_SHORT[province]}分公司", "branch", 1,
                     province, capital, opened, opened, None))  # fmt: skip
    for i, city in enumerate(ref.CITIES):
        opened = ts + timedelta(days=400 + 5 * i)
        name = city.name.removesuffix("市")
        rows.append((ORG_BASE + 1 + i, f"{city.code}00", f"{name}中心支公司", "sub_branch", BRANCH_ID[city.province],
                     city.province, city.name, opened, opened, None))  # fmt: skip
    return rows


def _products() -> list[tuple]:
    rows = []
    for i, p in enumerate(ref.PRODUCTS):
        launched = datetime(2018, 1, 8, 10, 0) + timedelta(days=21 * i)
        updated = datetime(2023, 6, 30, 18, 0) if p.status == "withdrawn" else launched
        rows.append((i + 1, p.code, p.name, p.line, p.risk_level, p.dual_recording, float(p.base_premium),
                     p.term_months, p.qc_sample_ratio, p.status, launched, updated, None))  # fmt: skip
    return rows


def _agent(seed: int, aid: int, layout: Layout, horizon: datetime) -> tuple:
    rng = stream(seed, KIND_AGENT, aid)
    r = rng.random
    city_idx = layout.agent_city(aid)
    city = ref.CITIES[city_idx]
    hired = date(2010, 1, 1) + timedelta(days=int(r() * ((horizon.date() - date(2010, 1, 1)).days - 60)))
    birth_year = hired.year - 22 - int(r() * 20)
    name = _chinese_name(rng, "M" if r() < 0.45 else "F", birth_year)
    phone = ref.PHONE_PREFIXES[int(r() * len(ref.PHONE_PREFIXES))] + f"{int(r() * 100_000_000):08d}"
    created = office_time(rng, hired)
    roll = r()
    status = "active" if roll < 0.84 else "suspended" if roll < 0.87 else "terminated"
    updated = created
    if status != "active":
        updated = min(created + timedelta(days=30 + r() * 2_000), horizon - timedelta(hours=1))
    return (aid, f"AG{city.code}{aid:08d}", name, phone, layout.city_org_id(city_idx),
            f"0201{city.code}{hired:%Y}{aid:08d}", status, hired, created, updated, None)  # fmt: skip
