"""Campaign dispatch: due occurrences -> frozen audience -> send decisions -> sends on Kafka.

A round (:func:`run_round`), run by the dispatcher worker (``mo campaigns dispatch``) every few seconds:

1. **Hot records catch up** with changes the core systems made outside the API (:func:`mo.hot_record.refresh_changed`).
2. **Claim due campaigns**: ``scheduled`` or ``running`` with ``next_run_at`` passed. Each is locked for the claim
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL and MariaDB: two dispatchers never take the same campaign in the same
   round; SQLite runs one dispatcher). An occurrence left unfinished by a crashed round is resumed, never started
   again; otherwise the next occurrence is opened (``campaign_occurrences``: its due time and, once frozen, the
   published refresh its audience came from).
3. **Freeze the audience** of a new occurrence: the segment version pinned at submission, evaluated on the current
   published refresh, written with each member's reason (``campaign_audience``, insert-missing only).
4. **Decide** every member of every claimed occurrence that has no final decision yet and is not waiting on a
   deferral, *in one batch across campaigns*, so that when campaigns compete for a customer's last contact slot
   priority decides, not which campaign the loop reached first (:func:`mo.campaigns.decision.decide_batch`, which
   appends the ledger rows; a touch already decided is skipped, so a rerun after a crash decides only the rest).
5. **Send**: every ``send`` row of these occurrences without a delivery record yet is rendered from its customer's
   published profile (read from Redis one pipeline per chunk) and produced to Kafka
   (``<prefix>.sends``, keyed by customer). Producing again after a crash is harmless: the channel worker records
   each message once and passes its id to the provider as the client message id.
6. **Finish**: an occurrence whose every member has a final decision is ``done``; a one-off campaign is then
   ``completed``; a recurring one gets its next due time; touches deferred by quiet hours bring the campaign back
   at the earliest ``not_before``.

Exactly once per (campaign, customer, occurrence) rests on the ledger's unique ``final_key`` and on the order
above: nothing is produced before its decision is committed, and nothing is decided twice.

One dispatcher decides at a time (:class:`DispatchLease`): contact caps are counted from the ledger, and two
deciders racing over *different* touches of one customer could each see the other's slot as free. The lease is a
row in ``dispatch_leases`` with its holder and expiry, taken or renewed before every round and every decision
chunk; a second dispatcher started beside the first waits (its rounds do nothing) and takes over once the
holder stops renewing (stopped, killed, or cut off from the database) for the lease's duration.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from mo.campaigns.lifecycle import DUE_STATUSES
from mo.oltp.campaign_tables import (
    Campaign,
    CampaignAudience,
    CampaignOccurrence,
    Delivery,
    DispatcherLease,
    LedgerEntry,
)

log = logging.getLogger("mo.campaigns.dispatch")

CAMPAIGNS = cast(Table, Campaign.__table__)
OCCURRENCES = cast(Table, CampaignOccurrence.__table__)
AUDIENCE = cast(Table, CampaignAudience.__table__)
LEDGER = cast(Table, LedgerEntry.__table__)
DELIVERIES = cast(Table, Delivery.__table__)
LEASES = cast(Table, DispatcherLease.__table__)
DISPATCHER = "system:dispatcher"
DECIDE_CHUNK = 5_000
LEASE_NAME = "campaign-dispatcher"


class DispatchLease:
    """The one-dispatcher lease (see the module's docstring). ``hold()`` takes it when free or expired and renews
    it when ours; False while another dispatcher holds it."""

    def __init__(self, engine: Engine, *, ttl_s: float = 60.0, holder: str | None = None) -> None:
        import socket
        import uuid

        self.engine, self.ttl = engine, ttl_s
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:128]
        self.held = False

    def hold(self, now: datetime | None = None) -> bool:
        from datetime import timedelta

        now = _naive(now or datetime.now(UTC))
        until = now + timedelta(seconds=self.ttl)
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(LEASES)
                .where(LEASES.c.name == LEASE_NAME, or_(LEASES.c.holder == self.holder, LEASES.c.expires_at <= now))
                .values(holder=self.holder, expires_at=until, acquired_at=now)
            ).rowcount
            if not taken and conn.execute(select(LEASES.c.name).where(LEASES.c.name == LEASE_NAME)).first() is None:
                try:
                    with conn.begin_nested():
                        values = {"name": LEASE_NAME, "holder": self.holder, "expires_at": until, "acquired_at": now}
                        conn.execute(insert(LEASES).values(**values))
                    taken = 1
                except IntegrityError:  # another dispatcher created it first
                    taken = 0
        if bool(taken) != self.held:
            log.info("dispatch lease %s by %s", "taken" if taken else "held elsewhere; waiting", self.holder)
        self.held = bool(taken)
        return self.held

    def current(self) -> tuple[str, datetime] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(LEASES.c.holder, LEASES.c.expires_at).where(LEASES.c.name == LEASE_NAME)).first()
        return None if row is None else (row.holder, row.expires_at)

    def release(self) -> None:
        """Give the lease up at a clean stop, so the next dispatcher need not wait for it to expire."""
        with self.engine.begin() as conn:
            conn.execute(
                update(LEASES)
                .where(LEASES.c.name == LEASE_NAME, LEASES.c.holder == self.holder)
                .values(expires_at=datetime(1970, 1, 1))
            )
        self.held = False


class LeaseLost(RuntimeError):
    """Another dispatcher holds the lease: this round stops before deciding more."""


@dataclass
class OccurrenceReport:
    campaign_id: int
    occurrence: int
    audience: int = 0
    decided: int = 0
    sent: int = 0
    produced: int = 0
    waiting: int = 0
    done: bool = False


@dataclass
class RoundReport:
    hot_records: int = 0
    occurrences: list[OccurrenceReport] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"hot_records": self.hot_records, "occurrences": [vars(o) for o in self.occurrences]}


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def touch_key(campaign_id: int, occurrence: int, customer_id: int) -> str:
    return f"campaign:{campaign_id}:{occurrence}:{customer_id}"


def _locking(conn: Connection, query):  # type: ignore[no-untyped-def]
    return query if conn.dialect.name == "sqlite" else query.with_for_update(skip_locked=True)


def require_campaign_tables(engine: Engine) -> None:
    """One-line error when the source database has no campaign tables (migrations not applied)."""
    from sqlalchemy import inspect

    from mo.errors import MoError

    if not inspect(engine).has_table(CAMPAIGNS.name):
        raise MoError(
            f"no campaign tables in the source database at {engine.url.render_as_string(hide_password=True)}: "
            "run `mo db migrate`"
        )


def claim_due(engine: Engine, now: datetime) -> list[tuple[Any, int, bool]]:
    """(campaign row, occurrence, new) for every due campaign; opens the next occurrence where none is open."""
    claimed: list[tuple[Any, int, bool]] = []
    with engine.begin() as conn:
        rows = conn.execute(
            _locking(
                conn,
                select(CAMPAIGNS)
                .where(CAMPAIGNS.c.status.in_(DUE_STATUSES), CAMPAIGNS.c.next_run_at <= now)
                .order_by(CAMPAIGNS.c.priority.desc(), CAMPAIGNS.c.id),
            )
        ).all()
        for row in rows:
            open_one = conn.execute(
                select(OCCURRENCES.c.occurrence)
                .where(OCCURRENCES.c.campaign_id == row.id, OCCURRENCES.c.status != "done")
                .order_by(OCCURRENCES.c.occurrence)
            ).scalar()
            if open_one is not None:
                claimed.append((row, int(open_one), False))
                continue
            if _naive(row.ends_at) <= now:
                _finish_campaign(conn, row, now, "the campaign's end passed")
                continue
            last = conn.execute(
                select(func.max(OCCURRENCES.c.occurrence)).where(OCCURRENCES.c.campaign_id == row.id)
            ).scalar()
            occurrence = int(last or 0) + 1
            conn.execute(
                insert(OCCURRENCES).values(
                    campaign_id=row.id, occurrence=occurrence, due_at=row.next_run_at, status="snapshotting",
                    started_at=now,
                )
            )  # fmt: skip
            if row.status == "scheduled":
                from mo.campaigns.lifecycle import dispatcher_transition

                dispatcher_transition(
                    conn, row.id, "start", request_id=_request_id(now), note=f"occurrence {occurrence}", now=now
                )
            claimed.append((row, occurrence, True))
    return claimed


def _request_id(now: datetime) -> str:
    return f"dispatch-{now:%Y%m%dT%H%M%S%f}"


def _finish_campaign(conn: Connection, row: Any, now: datetime, note: str) -> None:
    from mo.campaigns.lifecycle import dispatcher_transition

    if row.status == "scheduled":  # ended before it ever ran
        dispatcher_transition(conn, row.id, "start", request_id=_request_id(now), note=note, now=now)
    dispatcher_transition(
        conn, row.id, "complete", request_id=_request_id(now), note=note, values={"next_run_at": None}, now=now
    )


def undecided_members(conn: Connection, campaign_id: int, occurrence: int, now: datetime) -> list[int]:
    """Members of the occurrence without a final decision whose latest deferral (if any) has come due."""
    prefix = f"campaign:{campaign_id}:{occurrence}:"
    finals = {
        key
        for (key,) in conn.execute(
            select(LEDGER.c.final_key).where(
                LEDGER.c.campaign_id == campaign_id, LEDGER.c.occurrence == occurrence, LEDGER.c.final_key.is_not(None)
            )
        )
    }
    waiting_until: dict[str, datetime] = {}
    for key, not_before in conn.execute(
        select(LEDGER.c.touch_key, func.max(LEDGER.c.not_before))
        .where(LEDGER.c.campaign_id == campaign_id, LEDGER.c.occurrence == occurrence, LEDGER.c.decision == "defer")
        .group_by(LEDGER.c.touch_key)
    ):
        waiting_until[key] = _naive(not_before) if not_before is not None else now
    members = conn.execute(
        select(AUDIENCE.c.customer_id)
        .where(AUDIENCE.c.campaign_id == campaign_id, AUDIENCE.c.occurrence == occurrence)
        .order_by(AUDIENCE.c.customer_id)
    ).scalars()
    out = []
    for customer_id in members:
        key = prefix + str(customer_id)
        if key in finals or waiting_until.get(key, now) > now:
            continue
        out.append(int(customer_id))
    return out


def unsent(conn: Connection, campaign_id: int, occurrence: int) -> list[Any]:
    """``send`` rows of the occurrence not yet produced to Kafka (past ``produced_to``; a crash between the
    broker's acknowledgement and moving the mark produces them again, which the channel worker absorbs)."""
    mark = conn.execute(
        select(OCCURRENCES.c.produced_to).where(
            OCCURRENCES.c.campaign_id == campaign_id, OCCURRENCES.c.occurrence == occurrence
        )
    ).scalar()
    query = select(LEDGER).where(
        LEDGER.c.campaign_id == campaign_id, LEDGER.c.occurrence == occurrence, LEDGER.c.decision == "send"
    )
    if mark is not None:
        query = query.where(LEDGER.c.id > mark)
    return list(conn.execute(query.order_by(LEDGER.c.id)).all())


def occurrence_state(conn: Connection, campaign_id: int, occurrence: int) -> tuple[int, int, datetime | None]:
    """(audience, members with a final decision, earliest pending not_before)."""
    audience = conn.execute(
        select(func.count())
        .select_from(AUDIENCE)
        .where(AUDIENCE.c.campaign_id == campaign_id, AUDIENCE.c.occurrence == occurrence)
    ).scalar_one()
    final = conn.execute(
        select(func.count())
        .select_from(LEDGER)
        .where(LEDGER.c.campaign_id == campaign_id, LEDGER.c.occurrence == occurrence, LEDGER.c.final_key.is_not(None))
    ).scalar_one()
    finals = select(LEDGER.c.final_key).where(
        LEDGER.c.campaign_id == campaign_id, LEDGER.c.occurrence == occurrence, LEDGER.c.final_key.is_not(None)
    )
    earliest = conn.execute(
        select(func.min(LEDGER.c.not_before)).where(
            and_(
                LEDGER.c.campaign_id == campaign_id,
                LEDGER.c.occurrence == occurrence,
                LEDGER.c.decision == "defer",
                LEDGER.c.touch_key.not_in(finals),
            )
        )
    ).scalar()
    return int(audience), int(final), _naive(earliest) if earliest is not None else None


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_forever(round_once: Callable[[], RoundReport], *, interval_s: float, stop: threading.Event) -> None:
    """Call ``round_once`` every ``interval_s`` until ``stop``; a failed round is logged and retried next time."""
    while not stop.is_set():
        try:
            report = round_once()
            if report.occurrences:
                log.info("dispatch round: %s", json.dumps(report.as_dict()))
        except Exception:  # noqa: BLE001 - a worker keeps going; the next round resumes where this one stopped
            log.exception("dispatch round failed; retrying in %.0fs", interval_s)
        stop.wait(interval_s)


FAULT_ENV = "MO_DISPATCH_FAULT"


def _fault(point: str) -> None:
    """Tests only: die like a killed process (no cleanup, no rollback of what committed) at ``point``."""
    if os.environ.get(FAULT_ENV) == point:
        os._exit(137)


def _set_occurrence(conn: Connection, campaign_id: int, occurrence: int, **values: Any) -> None:
    conn.execute(
        update(OCCURRENCES)
        .where(OCCURRENCES.c.campaign_id == campaign_id, OCCURRENCES.c.occurrence == occurrence)
        .values(**values)
    )


def _occurrence_status(conn: Connection, campaign_id: int, occurrence: int) -> str | None:
    return conn.execute(
        select(OCCURRENCES.c.status).where(
            OCCURRENCES.c.campaign_id == campaign_id, OCCURRENCES.c.occurrence == occurrence
        )
    ).scalar()


def _freeze(engine: Engine, store: Any, row: Any, occurrence: int, now: datetime) -> int:
    """The occurrence's audience, frozen from the current published refresh (a rerun adds only what is missing)."""
    from mo.campaigns.audience import snapshot_audience
    from mo.segments.store import evaluate_now

    evaluation = evaluate_now(engine, store, row.segment_id, row.segment_version, allow_archived=True)
    with engine.begin() as conn:
        members = ((m.customer_id, list(m.reasons)) for m in evaluation.members)
        snapshot_audience(
            conn, row, occurrence, members, refresh_id=evaluation.refresh_id, due_at=row.next_run_at, now=now
        )
        audience = conn.execute(
            select(func.count())
            .select_from(AUDIENCE)
            .where(AUDIENCE.c.campaign_id == row.id, AUDIENCE.c.occurrence == occurrence)
        ).scalar_one()
        _set_occurrence(
            conn, row.id, occurrence, status="deciding", audience=audience, refresh_id=evaluation.refresh_id
        )
    return int(audience)


def _offer_product(conn: Connection, code: str | None) -> dict[str, Any] | None:
    from mo.catalogue import product_facts
    from mo.oltp.models import Product

    if not code:
        return None
    row = conn.execute(select(Product.__table__).where(Product.__table__.c.product_code == code)).first()
    return None if row is None else product_facts(row)


def run_round(
    engine: Engine,
    redis_client: Any,
    store: Any,
    settings: Any,
    *,
    producer: Any,
    now: datetime | None = None,
    lease: DispatchLease | None = None,
) -> RoundReport:
    """One dispatch round (see the module's docstring). ``store``: the published serving store the audiences are
    frozen from; ``producer``: a Kafka producer for the sends (mo.channels.messages.send_producer); ``lease``: the
    one-dispatcher lease, held before the round and each decision chunk (without it, nothing is checked: one
    process, as in tests). A round without the lease does nothing."""
    import redis

    from mo.campaigns.decision import ContactPolicy, Intent, decide_batch
    from mo.campaigns.templates import stored_campaign
    from mo.hot_record import refresh_changed

    now = _naive(now or datetime.now(UTC))
    report = RoundReport()
    if lease is not None and not lease.hold():
        return report
    prefix = settings.redis_prefix
    try:
        with engine.connect() as conn:
            report.hot_records = refresh_changed(conn, redis_client, prefix)
    except redis.RedisError as exc:  # the decision then reads the source for every customer
        log.warning("dispatch: hot records not refreshed (Redis: %s); deciding from the source", exc)
        redis_client = None
    policy = ContactPolicy.from_settings(settings)
    claimed = claim_due(engine, now)
    intents: list[Intent] = []
    work: list[tuple[Any, int, dict[str, Any], dict[str, Any] | None, OccurrenceReport]] = []
    for row, occurrence, _new in claimed:
        item = OccurrenceReport(row.id, occurrence)
        report.occurrences.append(item)
        with engine.connect() as conn:
            status = _occurrence_status(conn, row.id, occurrence)
            product = _offer_product(conn, row.offer_product_code)
        if status == "snapshotting":
            item.audience = _freeze(engine, store, row, occurrence, now)
        campaign = stored_campaign(row)
        channels = tuple(str(doc["channel"]) for doc in campaign["channels"])
        with engine.connect() as conn:
            members = undecided_members(conn, row.id, occurrence, now)
        intents.extend(
            Intent(
                touch_key=touch_key(row.id, occurrence, customer_id),
                source="campaign",
                customer_id=customer_id,
                channels=channels,
                purpose=row.purpose,
                campaign_id=row.id,
                occurrence=occurrence,
                product_line=row.product_line,
                offer_risk_level=product["risk_level"] if product else None,
                priority=row.priority,
                ends_at=_naive(row.ends_at),
                holdout_share=row.holdout_share if row.purpose == "marketing" else None,
            )
            for customer_id in members
        )
        work.append((row, occurrence, campaign, product, item))

    # One decision batch across every claimed campaign, whole customers per transaction: a customer's competing
    # touches are decided together, highest priority first.
    by_customer: dict[int, list[Intent]] = {}
    for intent in intents:
        by_customer.setdefault(intent.customer_id, []).append(intent)
    customers = sorted(by_customer)
    decided: Counter[int] = Counter()
    for part in chunks(customers, DECIDE_CHUNK):
        if lease is not None and not lease.hold():
            raise LeaseLost(f"dispatch lease lost to another dispatcher ({lease.current()}); round stopped")
        with engine.begin() as conn:
            for decision in decide_batch(
                conn, redis_client, prefix, [i for c in part for i in by_customer[c]], now=now, policy=policy
            ):
                if decision.written and decision.decision != "defer":
                    decided[int(decision.touch_key.split(":")[1])] += 1
    _fault("after_decide")
    for row, occurrence, campaign, product, item in work:
        item.decided = decided[row.id]
        item.produced = _produce(engine, redis_client, settings, producer, row, occurrence, campaign, product)
        item.done = _finish(engine, row, occurrence, campaign, now, item)
    return report


def _produce(
    engine: Engine, redis_client: Any, settings: Any, producer: Any, row: Any, occurrence: int,
    campaign: dict[str, Any], product: dict[str, Any] | None,
) -> int:  # fmt: skip
    """Render and produce the occurrence's unsent messages; a message whose template cannot be rendered for its
    customer is recorded failed with the reason, not sent."""
    import redis

    from mo.campaigns.templates import TemplateError, context_for, render, sms_links
    from mo.channels.links import LinkError, check_target, store_short_links
    from mo.channels.messages import new_send, produce_sends
    from mo.serving_store.redis_store import read_profiles

    with engine.connect() as conn:
        rows = unsent(conn, row.id, occurrence)
    if not rows:
        return 0
    documents = {str(doc["channel"]): doc for doc in campaign["channels"]}
    produced = 0
    for part in chunks(rows, PRODUCE_CHUNK):
        messages, failed = [], []
        profiles: dict[int, tuple[str, dict[str, Any]]] = {}
        if redis_client is not None:  # the chunk's profiles in one round trip
            try:
                profiles = read_profiles(redis_client, (r.customer_id for r in part), prefix=settings.redis_prefix)
            except redis.RedisError:
                profiles = {}
        ready = []
        for ledger in part:
            found = profiles.get(int(ledger.customer_id))
            profile = found[1] if found else None
            try:
                rendered = render(documents[ledger.channel], context_for(campaign, product, profile, settings))
                targets = sms_links(rendered.payload) if ledger.channel == "sms" else {}
                for url in targets.values():
                    check_target(url, settings)
            except (TemplateError, LinkError, KeyError) as exc:
                failed.append((ledger, f"template not rendered for this customer: {exc}"[:1000]))
                continue
            ready.append((ledger, rendered, targets))
        # SMS links become short codes, stored before any message carrying one is produced
        wanted = [(ledger.message_id, url) for ledger, _, targets in ready for url in targets.values()]
        codes: dict[tuple[str, str], str] = {}
        if wanted:
            with engine.begin() as conn:
                codes = store_short_links(conn, wanted, settings)
        for ledger, rendered, _ in ready:
            payload = tracked(rendered.payload, ledger.channel, ledger.message_id, settings, codes)
            messages.append(
                new_send(
                    ledger_id=ledger.id, touch_key=ledger.touch_key, customer_id=ledger.customer_id,
                    channel=ledger.channel, payload=payload, campaign_id=row.id, purpose=row.purpose,
                    message_id=ledger.message_id,
                )
            )  # fmt: skip
        if messages:
            produce_sends(producer, messages, settings)
            _fault("after_produce")
        with engine.begin() as conn:
            for ledger, reason in failed:
                conn.execute(
                    insert(DELIVERIES).values(
                        message_id=ledger.message_id, ledger_id=ledger.id, customer_id=ledger.customer_id,
                        state="failed", provider=None, detail=reason, at=datetime.now(UTC).replace(tzinfo=None),
                    )
                )  # fmt: skip
            _set_occurrence(conn, row.id, occurrence, produced_to=part[-1].id)
        produced += len(messages)
    return produced


def tracked(
    payload: dict[str, Any], channel: str, message_id: str, settings: Any,
    short_codes: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The payload with its links replaced by the serving API's redirect (/v1/t/...), so a click is recorded
    against this message: WeChat's ``url`` and a push's ``extras.url`` with a signed token; an SMS's link variables
    with their short link (``short_codes``: (message id, target) -> code, stored by
    mo.channels.links.store_short_links), since a provider caps each variable at 35 characters."""
    from mo.campaigns.templates import sms_links
    from mo.channels.links import short_url, tracked_url

    if channel == "wechat" and payload.get("url"):
        return {**payload, "url": tracked_url(message_id, str(payload["url"]), settings)}
    extras = payload.get("extras")
    if channel == "push" and isinstance(extras, dict) and extras.get("url"):
        return {**payload, "extras": {**extras, "url": tracked_url(message_id, str(extras["url"]), settings)}}
    targets = sms_links(payload) if channel == "sms" else {}
    if targets:
        codes = short_codes or {}
        params = dict(payload["template_param"])
        for name, url in targets.items():
            params[name] = short_url(codes[(message_id, url)], settings)
        return {**payload, "template_param": params}
    return payload


def _finish(engine: Engine, row: Any, occurrence: int, campaign: dict[str, Any], now: datetime,
            item: OccurrenceReport) -> bool:  # fmt: skip
    """Close the occurrence when every member has a final decision, and say when the campaign is due next."""
    from mo.campaigns.lifecycle import dispatcher_transition
    from mo.campaigns.schedule import next_run_at, parse_schedule
    from mo.errors import MoError

    with engine.begin() as conn:
        audience, final, earliest = occurrence_state(conn, row.id, occurrence)
        item.audience = audience
        item.waiting = audience - final
        current = conn.execute(select(CAMPAIGNS.c.status).where(CAMPAIGNS.c.id == row.id)).scalar()
        if final < audience:
            if earliest is not None and current == "running":
                conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.id == row.id).values(next_run_at=max(earliest, now)))
            return False
        _set_occurrence(conn, row.id, occurrence, status="done", finished_at=now)
        schedule = parse_schedule(campaign["schedule"])
        due = next_run_at(schedule, after=now, ends_at=_naive(row.ends_at)) if schedule.kind == "recurring" else None
        if current != "running":  # paused or cancelled meanwhile: the marketer's move stands
            return True
        if due is None:
            try:
                dispatcher_transition(
                    conn, row.id, "complete", request_id=_request_id(now),
                    note=f"occurrence {occurrence}: {final} of {audience} decided", values={"next_run_at": None},
                    now=now,
                )  # fmt: skip
            except MoError as exc:
                log.warning("dispatch: campaign %s not completed: %s", row.id, exc)
        else:
            conn.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.id == row.id).values(next_run_at=due))
    return True


PRODUCE_CHUNK = 1_000
