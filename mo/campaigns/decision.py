"""The send decision: every intended touch, from a campaign, a journey or a service notice, decided once and
appended to the contact ledger with its reason and every rule's result.

Rules, in this order (the first that stops a touch is its ``reason``; docs/campaigns.md lists them):

1. ``campaign_ended``: the campaign's end has passed (or a deferral would pass it);
2. consent for the channel and purpose as of now: the hot record in Redis (one pipeline per chunk), or the
   source database for customers whose record is unknown or when Redis does not answer. Marketing needs an
   explicit opt-in (``no_consent``; ``consent_withdrawn`` when a channel was opted out); a service message goes
   unless withdrawn; an erased customer gets no marketing (``erased``);
3. ``no_channel``: none of the permitted channels is addressable (no app user for push, no openid for WeChat);
4. guardrails, marketing only: ``open_claim``, ``open_complaint`` (the hot record's and the source's),
   ``risk_above_rating`` (the offer's risk level above the customer's rating R1..R5);
5. ``holdout``, marketing of a product line only: the customer's stored assignment for the line's renewal
   cycle (mo/campaigns/holdout.py);
6. rolling caps, marketing only, counted from the ledger's send rows over exactly 7 x 24 h and 30 x 24 h
   before ``now`` plus the sends of this batch: ``cap_7d``, ``cap_30d`` (all channels), ``cap_channel_7d``
   (per channel), ``customer_frequency`` (the customer's own pushes per week). Touches of one customer are
   decided in priority order (highest first; ties by touch key), never arrival order, and a touch refused
   because this batch gave the slot away names the winner;
7. ``quiet_hours`` (the customer's own, any purpose) and ``send_window`` (marketing, local time in the
   customer's zone): deferred with ``not_before``, the next moment both allow; decided again by a later
   call, as attempt + 1.

Exactly once: a touch with a final row (send or suppress) is never decided again, and a deferral is decided
again only from its ``not_before``. Rows are appended in the caller's transaction, one multi-row insert per
chunk; a concurrent decider that got there first wins on ``final_key`` (or ``touch_key`` + ``attempt``) and
the chunk is retried without its touches. :func:`decide` wraps a call in its own transaction and retries it
when the database gives up on a lock (deadlock, SQLite busy).
"""

from __future__ import annotations

import gc
import io
import json
import time as clock
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
from sqlalchemy import Connection, Engine, Table, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from mo.campaigns import holdout
from mo.campaigns.ledger import window_counts
from mo.campaigns.sql import one_of
from mo.hot_record import OPEN_COMPLAINT, HotRecord, QuietHours, hot_key, source_states
from mo.oltp.campaign_tables import LedgerEntry
from mo.oltp.models import Claim, Complaint, Customer

LEDGER = cast(Table, LedgerEntry.__table__)
CLAIMS = cast(Table, Claim.__table__)
COMPLAINTS = cast(Table, Complaint.__table__)
CUSTOMERS = cast(Table, Customer.__table__)
CHUNK = 10_000
WEEK = timedelta(days=7)
MONTH = timedelta(days=30)
# A claim is open until it is paid or rejected (the marketing guardrail: no offers while a loss is in hand).
CLOSED_CLAIM = ("rejected", "paid")
# Channels that need an identity beyond the phone number every customer has (the core systems hold no email).
ADDRESS_COLUMN = {"app_push": "app_user_id", "wechat": "wechat_openid"}
ADDRESSLESS = ("email",)
# A campaign's message channels (mo.channels: sms, wechat, push, coupon) against the channels a customer consents
# to (mo.oltp.privacy.CHANNELS): an app push needs app_push consent; a coupon is issued to the WeChat wallet, so it
# needs WeChat consent and an openid. Consent channels given directly (app_push, email, phone) are themselves.
CONSENT_CHANNEL = {"push": "app_push", "coupon": "wechat"}


def consent_channel(channel: str) -> str:
    return CONSENT_CHANNEL.get(channel, channel)


REASONS = (
    "ok",
    "erased",
    "no_consent",
    "consent_withdrawn",
    "consent_unknown",
    "open_claim",
    "open_complaint",
    "risk_above_rating",
    "holdout",
    "cap_7d",
    "cap_30d",
    "cap_channel_7d",
    "customer_frequency",
    "quiet_hours",
    "send_window",
    "campaign_ended",
    "no_channel",
)
# Reasons a touch waits for, not stopped by: decided again from not_before.
DEFER_REASONS = ("quiet_hours", "send_window")
# Reasons a touch is suppressed for (every reason but a send and a deferral), in the order above.
SUPPRESS_REASONS = tuple(r for r in REASONS if r != "ok" and r not in DEFER_REASONS)


@dataclass(frozen=True)
class Intent:
    """One intended touch. ``channels`` in preference order; ``payload`` per channel, rendered by the caller."""

    touch_key: str
    source: str  # campaign | journey | service
    customer_id: int
    channels: tuple[str, ...]
    purpose: str = "marketing"  # marketing | service
    campaign_id: int | None = None
    occurrence: int | None = None
    product_line: str | None = None
    offer_risk_level: str | None = None  # R1..R5 of the offered product; None for no product
    priority: int = 0
    ends_at: datetime | None = None  # naive UTC
    holdout_share: Decimal | None = None  # the campaign's; None: no holdout (journeys, service)
    payload: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @staticmethod
    def campaign_key(campaign_id: int, occurrence: int, customer_id: int) -> str:
        return f"campaign:{campaign_id}:{occurrence}:{customer_id}"


@dataclass(frozen=True)
class ContactPolicy:
    cap_7d: int = 2
    cap_30d: int = 4
    cap_channel_7d: int = 2
    window_start: time = time(9, 0)
    window_end: time = time(21, 0)
    time_zone: str = "Asia/Shanghai"
    holdout_key: bytes = b""

    @classmethod
    def from_settings(cls, settings: Any) -> ContactPolicy:
        return cls(
            cap_7d=settings.contact_cap_7d,
            cap_30d=settings.contact_cap_30d,
            cap_channel_7d=settings.contact_cap_channel_7d,
            window_start=time.fromisoformat(settings.contact_window_start),
            window_end=time.fromisoformat(settings.contact_window_end),
            time_zone=settings.contact_time_zone,
            holdout_key=settings.require_holdout_key(),
        )


@dataclass(slots=True)
class Decision:
    touch_key: str
    customer_id: int
    attempt: int
    decision: str  # send | suppress | defer
    reason: str
    channel: str | None = None
    message_id: str | None = None
    not_before: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    payload: Mapping[str, Any] | None = None  # the chosen channel's payload (send rows)
    written: bool = True  # False: already decided (a final row, or a deferral not yet due), or lost to a racer
    conflict: bool = False  # a concurrent decider wrote this touch first


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _next_at(local: datetime, at: time) -> datetime:
    """The next moment at or after ``local`` whose wall-clock time is ``at``, in ``local``'s zone."""
    candidate = datetime.combine(local.date(), at, tzinfo=local.tzinfo)
    if candidate < local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=local.tzinfo)
    return candidate


def _inside(moment: time, start: time, end: time) -> bool:
    if start == end:
        return True
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end


def _timing(now: datetime, zone: ZoneInfo, window: tuple[time, time] | None,
            quiet: tuple[time, time] | None) -> tuple[str | None, datetime | None]:  # fmt: skip
    """(reason, not_before UTC naive) when ``now`` is in the customer's quiet hours or outside the send window;
    (None, None) when the touch may go now."""
    local = now.replace(tzinfo=UTC).astimezone(zone)
    reason = None
    for _ in range(4):
        t = local.time()
        if quiet is not None and quiet[0] != quiet[1] and _inside(t, quiet[0], quiet[1]):
            reason = reason or "quiet_hours"
            local = _next_at(local, quiet[1])
        elif window is not None and not _inside(t, window[0], window[1]):
            reason = reason or "send_window"
            local = _next_at(local, window[0])
        else:
            break
    if reason is None:
        return None, None
    return reason, local.astimezone(UTC).replace(tzinfo=None)


# --- facts, loaded in bulk per chunk -----------------------------------------------------------------------


@dataclass
class _Contact:
    """What the decision needs to know about a customer's consent and contact preferences."""

    record: HotRecord
    versions: dict[tuple[str, str], int]
    time_zone: str | None
    quiet: tuple[time, time] | None
    origin: str  # hot | source


def _quiet(prefs: Mapping | None) -> tuple[time, time] | None:
    if prefs and prefs.get("quiet_start") and prefs.get("quiet_end"):
        return time.fromisoformat(prefs["quiet_start"]), time.fromisoformat(prefs["quiet_end"])
    return None


# Every hash of a chunk in one reply, JSON-encoded by Redis: the pure-Python reply parser costs more per element
# than the lookups themselves, and a chunk's records then decode in one json.loads. (Keys of one chunk must
# live on one node: a single Redis, as configured here, or a cluster with hash tags.)
_HGETALL_MANY = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return cjson.encode(out)
"""
REDIS_KEYS_PER_CALL = 1000


def _contact_from_fields(cid: int, fields: Mapping[str, str]) -> _Contact | None:
    """The hot record's fields (as mo.hot_record.parse_record reads them), with the consent versions and the
    preferences' time zone; None when the record is unknown (not built, or a preference change pending)."""
    if "built" not in fields:
        return None
    consents: dict[tuple[str, str], str] = {}
    versions: dict[tuple[str, str], int] = {}
    complaints = []
    prefs = None
    for name, value in fields.items():
        if name.startswith("consent:"):
            _, channel, purpose = name.split(":", 2)
            status, _, version = value.rpartition("|")
            consents[(channel, purpose)] = status
            versions[(channel, purpose)] = int(version or 0)
        elif name.startswith("complaint:"):
            complaints.append(name[10:])
        elif name == "prefs":
            body = value.rpartition("|")[0]
            if body == "pending":
                return None
            prefs = json.loads(body)
    quiet = _quiet(prefs)
    record = HotRecord(
        customer_id=cid,
        known=True,
        consents=consents,
        open_complaints=tuple(sorted(complaints)),
        max_push_per_week=prefs.get("max_push_per_week") if prefs else None,
        quiet_hours=QuietHours(prefs["quiet_start"], prefs["quiet_end"], prefs["time_zone"])
        if quiet and prefs
        else None,
        erased=fields.get("erased") == "1",
        built_at=fields.get("built"),
    )
    return _Contact(record, versions, prefs.get("time_zone") if prefs else None, quiet, "hot")


def _hot(client: redis.Redis | None, prefix: str, ids: Sequence[int]) -> tuple[dict[int, _Contact], str | None]:
    if client is None:
        return {}, "no redis client"
    try:
        script = client.register_script(_HGETALL_MANY)
        pipe = client.pipeline(transaction=False)
        for start in range(0, len(ids), REDIS_KEYS_PER_CALL):
            script(keys=[hot_key(prefix, cid) for cid in ids[start : start + REDIS_KEYS_PER_CALL]], client=pipe)
        replies = pipe.execute()
    except redis.RedisError as exc:
        return {}, f"redis unavailable: {type(exc).__name__}"
    found: dict[int, _Contact] = {}
    position = 0
    for reply in replies:
        for flat in json.loads(reply):
            cid = ids[position]
            position += 1
            if not flat or isinstance(flat, dict):  # an empty hash encodes as {}
                continue
            contact = _contact_from_fields(cid, dict(zip(flat[::2], flat[1::2], strict=True)))
            if contact is not None:
                found[cid] = contact
    return found, None


def _from_source(conn: Connection, ids: Sequence[int]) -> dict[int, _Contact]:
    found = {}
    for cid, state in source_states(conn, ids).items():
        prefs = state.prefs[0] if state.prefs else None
        found[cid] = _Contact(
            state.record(),
            {k: v for k, (_, v) in state.consents.items()},
            prefs.get("time_zone") if prefs else None,
            _quiet(prefs),
            "source",
        )
    return found


def _open_claims(conn: Connection, ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    rows = conn.execute(
        select(CLAIMS.c.customer_id, CLAIMS.c.claim_no).where(
            one_of(conn, CLAIMS.c.customer_id, ids), CLAIMS.c.status.not_in(CLOSED_CLAIM), CLAIMS.c.deleted_at.is_(None)
        )
    )
    for cid, number in rows:
        found.setdefault(int(cid), []).append(number)
    return found


def _open_complaints(conn: Connection, ids: Sequence[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    rows = conn.execute(
        select(COMPLAINTS.c.customer_id, COMPLAINTS.c.complaint_no).where(
            one_of(conn, COMPLAINTS.c.customer_id, ids),
            COMPLAINTS.c.status.in_(OPEN_COMPLAINT),
            COMPLAINTS.c.deleted_at.is_(None),
        )
    )
    for cid, number in rows:
        found.setdefault(int(cid), []).append(number)
    return found


def _customers(conn: Connection, ids: Sequence[int]) -> dict[int, tuple[str, bool, bool]]:
    """customer -> (risk rating, has an app user, has a WeChat openid); missing or deleted customers absent."""
    c = CUSTOMERS.c
    rows = conn.execute(
        select(c.id, c.risk_rating, c.app_user_id.is_not(None), c.wechat_openid.is_not(None)).where(
            one_of(conn, c.id, ids), c.deleted_at.is_(None)
        )
    )
    return {int(cid): (rating, bool(app), bool(wechat)) for cid, rating, app, wechat in rows}


def _ledger_state(conn: Connection, keys: Sequence[str]) -> dict[str, tuple[int, Any]]:
    """touch key -> (highest attempt, the final row or the latest deferral)."""
    c = LEDGER.c
    rows = conn.execute(
        select(c.touch_key, c.attempt, c.decision, c.reason, c.channel, c.message_id, c.not_before, c.detail).where(
            one_of(conn, c.touch_key, keys)
        )
    )
    highest: dict[str, int] = {}
    chosen: dict[str, Any] = {}
    for row in rows:
        highest[row.touch_key] = max(row.attempt, highest.get(row.touch_key, 0))
        known = chosen.get(row.touch_key)
        if known is None or (known.decision == "defer" and (row.decision != "defer" or row.attempt > known.attempt)):
            chosen[row.touch_key] = row
    state = {key: (highest[key], row) for key, row in chosen.items()}
    return state


# --- deciding ----------------------------------------------------------------------------------------------


def _rating(value: str | None) -> int | None:
    if value and len(value) == 2 and value[0] == "R" and value[1].isdigit():
        return int(value[1])
    return None


@dataclass
class _Slots:
    """A customer's marketing sends in the windows (ledger + this batch) and who took this batch's slots."""

    week: int = 0
    month: int = 0
    channel_week: dict[str, int] = field(default_factory=dict)
    taken_by: list[tuple[str, int, str]] = field(default_factory=list)  # (touch key, priority, channel)


def decide_batch(
    conn: Connection,
    redis_client: redis.Redis | None,
    redis_prefix: str,
    intents: Iterable[Intent],
    *,
    now: datetime,
    policy: ContactPolicy,
) -> list[Decision]:
    """Decide every intent and append the ledger rows in the caller's transaction. Returns one decision per
    distinct touch key (``written`` False for touches already decided, deferrals not yet due, and touches a
    concurrent decider wrote first)."""
    now = _naive_utc(now)
    by_customer: dict[int, list[Intent]] = {}
    seen: set[str] = set()
    for intent in intents:
        if intent.touch_key in seen:
            continue
        seen.add(intent.touch_key)
        by_customer.setdefault(int(intent.customer_id), []).append(intent)
    customers = sorted(by_customer)
    chunks: list[list[int]] = []  # whole customers per chunk: their slots are decided together
    start = 0
    while start < len(customers):
        end, size = start, 0
        while end < len(customers) and (size == 0 or size + len(by_customer[customers[end]]) <= CHUNK):
            size += len(by_customer[customers[end]])
            end += 1
        chunks.append(customers[start:end])
        start = end
    decisions: list[Decision] = []
    # Millions of small objects and no reference cycles: the cyclic collector's full passes over them would
    # cost more than the decisions (quadratic in the audience), so it rests until the batch is decided.
    collecting = gc.isenabled()
    gc.disable()
    # The hot records of the next chunk are read (and parsed) by a worker thread while this chunk waits on the
    # database and decides; a single chunk reads them in line.
    fetcher = ThreadPoolExecutor(max_workers=1) if redis_client is not None and len(chunks) > 1 else None
    try:
        pending: Future | None = None
        if fetcher is not None and chunks:
            pending = fetcher.submit(_hot, redis_client, redis_prefix, chunks[0])
        for number, chunk_ids in enumerate(chunks):
            hot = pending
            pending = None
            if fetcher is not None and number + 1 < len(chunks):
                pending = fetcher.submit(_hot, redis_client, redis_prefix, chunks[number + 1])
            chunk = [i for cid in chunk_ids for i in by_customer[cid]]
            decisions.extend(_decide_chunk(conn, redis_client, redis_prefix, chunk, now, policy, hot))
    finally:
        if fetcher is not None:
            fetcher.shutdown(wait=True, cancel_futures=True)
        if collecting:
            gc.enable()
    return decisions


def _decide_chunk(conn: Connection, client: redis.Redis | None, prefix: str, intents: list[Intent],
                  now: datetime, policy: ContactPolicy,
                  hot: Future | None = None) -> list[Decision]:  # fmt: skip
    """``hot``: the chunk's hot records (every customer of the chunk), read ahead by :func:`decide_batch`."""
    state = _ledger_state(conn, [i.touch_key for i in intents])
    done: list[Decision] = []
    todo: list[tuple[Intent, int]] = []
    for intent in intents:
        known = state.get(intent.touch_key)
        if known is not None:
            attempt, row = known
            if row.decision != "defer" or (row.not_before is not None and row.not_before > now):
                done.append(
                    Decision(
                        intent.touch_key,
                        intent.customer_id,
                        row.attempt,
                        row.decision,
                        row.reason,
                        row.channel,
                        row.message_id,
                        row.not_before,
                        json.loads(row.detail),
                        written=False,
                    )  # fmt: skip
                )
                continue
            todo.append((intent, attempt + 1))
        else:
            todo.append((intent, 1))
    if not todo:
        return done

    ids = sorted({i.customer_id for i, _ in todo})
    marketing_ids = sorted({i.customer_id for i, _ in todo if i.purpose == "marketing"})
    if hot is not None:
        contacts, redis_problem = hot.result()
    else:
        contacts, redis_problem = _hot(client, prefix, ids)
    unknown = [cid for cid in ids if cid not in contacts]
    if unknown:
        contacts.update(_from_source(conn, unknown))
    customers = _customers(conn, ids)
    claims = _open_claims(conn, marketing_ids) if marketing_ids else {}
    complaints = _open_complaints(conn, marketing_ids) if marketing_ids else {}
    counts = window_counts(conn, marketing_ids, now) if marketing_ids else {}

    # Rules that do not depend on order first; the survivors of a product line's marketing get their holdout.
    early: dict[str, tuple[str, str | None, dict, list[str]]] = {}  # touch -> (reason, ..., detail, channels)
    for intent, _ in todo:
        early[intent.touch_key] = _early_rules(intent, contacts[intent.customer_id], customers, claims,
                                               complaints, now)  # fmt: skip
    holdout_intents = [
        i
        for i, _ in todo
        if i.purpose == "marketing" and i.product_line and i.holdout_share is not None and early[i.touch_key][0] == "ok"
    ]
    wanted = [(str(i.product_line), i.customer_id) for i in holdout_intents]
    assignments: dict[tuple[str, str, int], holdout.Assignment] = {}
    cycles: dict[tuple[str, int], str] = {}
    if wanted:
        cycles = holdout.renewal_cycle(conn, wanted, now.date())
        shares: dict[tuple[str, int], Decimal] = {}
        for i in holdout_intents:
            shares.setdefault((str(i.product_line), i.customer_id), Decimal(str(i.holdout_share)))
        assignments = holdout.assign(
            conn,
            [(line, cycles[(line, cid)], cid, shares[(line, cid)]) for line, cid in cycles],
            key=policy.holdout_key,
            now=now,
        )

    slots: dict[int, _Slots] = {}
    for cid in marketing_ids:
        s = _Slots()
        for counted, (week, month) in counts.get(cid, {}).items():
            s.week += week
            s.month += month
            s.channel_week[counted or ""] = week
        slots[cid] = s
    window = (policy.window_start, policy.window_end)
    caps = {"7d": policy.cap_7d, "30d": policy.cap_30d, "channel_7d": policy.cap_channel_7d}
    timings: dict[tuple, tuple] = {}
    rows: list[dict[str, Any]] = []
    made: list[Decision] = []
    decided_at = now
    for intent, attempt in sorted(todo, key=lambda t: (-t[0].priority, t[0].touch_key)):
        reason, _, detail, channels = early[intent.touch_key]
        contact = contacts[intent.customer_id]
        channel: str | None = None
        not_before: datetime | None = None
        marketing = intent.purpose == "marketing"
        if redis_problem:
            detail["consent"]["redis"] = redis_problem
        if reason == "ok" and marketing and intent.product_line and intent.holdout_share is not None:
            pair = (intent.product_line, intent.customer_id)
            assignment = assignments[(intent.product_line, cycles[pair], intent.customer_id)]
            detail["holdout"] = assignment.as_detail()
            if assignment.held_out:
                reason = "holdout"
        if reason == "ok" and marketing:
            s = slots[intent.customer_id]
            push_limit = contact.record.max_push_per_week
            detail["counts"] = {
                "7d": s.week,
                "30d": s.month,
                "channel_7d": {c: s.channel_week.get(c, 0) for c in channels},
            }
            if push_limit is not None:
                detail["counts"]["max_push_per_week"] = push_limit
            detail["caps"] = caps
            if s.week >= policy.cap_7d:
                reason = "cap_7d"
            elif s.month >= policy.cap_30d:
                reason = "cap_30d"
            else:
                open_channels = []
                first_refusal = None
                for c in channels:
                    if s.channel_week.get(c, 0) >= policy.cap_channel_7d:
                        first_refusal = first_refusal or "cap_channel_7d"
                    elif (
                        consent_channel(c) == "app_push"
                        and push_limit is not None
                        and s.channel_week.get(c, 0) >= push_limit
                    ):
                        first_refusal = first_refusal or "customer_frequency"
                    else:
                        open_channels.append(c)
                if not open_channels:
                    reason = first_refusal or "no_channel"
                else:
                    channels = open_channels
            if reason != "ok" and s.taken_by:
                winner = s.taken_by[-1]
                detail["winner"] = {"touch_key": winner[0], "priority": winner[1], "channel": winner[2]}
        if reason == "ok":
            zone_name = contact.time_zone or policy.time_zone
            timing_key = (zone_name, contact.quiet, marketing)
            timing = timings.get(timing_key)
            if timing is None:  # one clock for the whole batch: the same zone and hours give the same answer
                try:
                    zone = _zone(zone_name)
                    local = {"time": now.replace(tzinfo=UTC).astimezone(zone).isoformat(), "zone": zone_name}
                except (ZoneInfoNotFoundError, ValueError):  # a zone the source holds but tzdata does not know
                    zone = _zone(policy.time_zone)
                    local = {"time": now.replace(tzinfo=UTC).astimezone(zone).isoformat(), "zone": policy.time_zone,
                             "unknown_zone": zone_name[:64]}  # fmt: skip
                timing = timings[timing_key] = (
                    *_timing(now, zone, window if marketing else None, contact.quiet),
                    local,
                )
            why, not_before, detail["local"] = timing
            if why is not None:
                reason = why
                if intent.ends_at is not None and not_before >= _naive_utc(intent.ends_at):
                    reason, not_before = "campaign_ended", None
                    detail["deferral_past_end"] = True
        if reason == "ok":
            channel = channels[0]
            if marketing:
                s = slots[intent.customer_id]
                s.week += 1
                s.month += 1
                s.channel_week[channel] = s.channel_week.get(channel, 0) + 1
                s.taken_by.append((intent.touch_key, intent.priority, channel))
        verdict = "send" if reason == "ok" else ("defer" if not_before is not None else "suppress")
        message_id = str(uuid.uuid4()) if verdict == "send" else None
        made.append(
            Decision(
                intent.touch_key,
                intent.customer_id,
                attempt,
                verdict,
                reason,
                channel,
                message_id,
                not_before,
                detail,
                intent.payload.get(channel) if channel else None,
            )  # fmt: skip
        )
        rows.append(
            {
                "touch_key": intent.touch_key,
                "attempt": attempt,
                "final_key": None if verdict == "defer" else intent.touch_key,
                "source": intent.source,
                "campaign_id": intent.campaign_id,
                "occurrence": intent.occurrence,
                "customer_id": intent.customer_id,
                "channel": channel,
                "purpose": intent.purpose,
                "product_line": intent.product_line,
                "priority": intent.priority,
                "decision": verdict,
                "reason": reason,
                "detail": _encode(detail),
                "not_before": not_before,
                "message_id": message_id,
                "decided_at": decided_at,
            }
        )
    _append(conn, rows, made)
    return done + made


def _early_rules(intent: Intent, contact: _Contact, customers: Mapping[int, tuple[str, bool, bool]],
                 claims: Mapping[int, list[str]], complaints: Mapping[int, list[str]],
                 now: datetime) -> tuple[str, str | None, dict, list[str]]:  # fmt: skip
    """campaign end, consent, addressability and the guardrails: (reason, None, detail, permitted channels)."""
    record = contact.record
    marketing = intent.purpose == "marketing"
    consent: dict[str, Any] = {"from": contact.origin}
    purpose = intent.purpose
    statuses, versions = record.consents, contact.versions
    for c in intent.channels:
        cc = consent_channel(c)
        consent[c] = [statuses.get((cc, purpose)), versions.get((cc, purpose))]
    detail: dict[str, Any] = {"purpose": intent.purpose, "consent": consent}
    if intent.ends_at is not None and now >= _naive_utc(intent.ends_at):
        return "campaign_ended", None, detail, []
    if marketing and record.erased:
        detail["erased"] = True
        return "erased", None, detail, []
    if marketing:
        permitted = [c for c in intent.channels if consent[c][0] == "opt_in"]
    else:
        permitted = [c for c in intent.channels if consent[c][0] != "opt_out"]
    if not permitted:
        withdrawn = any(consent[c][0] == "opt_out" for c in intent.channels)
        return ("consent_withdrawn" if withdrawn else "no_consent"), None, detail, []
    customer = customers.get(intent.customer_id)
    addressable = []
    for c in permitted:
        cc = consent_channel(c)
        if customer is None or cc in ADDRESSLESS:
            continue
        if (cc == "app_push" and not customer[1]) or (cc == "wechat" and not customer[2]):
            continue
        addressable.append(c)
    if not addressable:
        detail["addressable"] = []
        return "no_channel", None, detail, []
    if not marketing:
        return "ok", None, detail, addressable
    open_claims = claims.get(intent.customer_id, [])
    open_complaints = sorted(set(complaints.get(intent.customer_id, [])) | set(record.open_complaints))
    detail["open_claims"] = open_claims
    detail["open_complaints"] = open_complaints
    if open_claims:
        return "open_claim", None, detail, addressable
    if open_complaints:
        return "open_complaint", None, detail, addressable
    rating = customer[0] if customer else None
    if intent.offer_risk_level is not None:
        detail["risk"] = {"rating": rating, "offer_level": intent.offer_risk_level}
        level, allowed = _rating(intent.offer_risk_level), _rating(rating)
        if level is None or allowed is None or level > allowed:
            return "risk_above_rating", None, detail, addressable
    return "ok", None, detail, addressable


# json.dumps(detail, separators=(",", ":"), default=str) without building an encoder per row.
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
LEDGER_COLUMNS = [c.name for c in LEDGER.columns if c.name != "id"]
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat(" ")
    return str(value)


def _copy_field(value: Any) -> str:
    """:func:`_copy_text`, cheaper for the common case (a str without a character to escape: four scans in C
    instead of a per-character translation)."""
    if value.__class__ is str:
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_COPY_ESCAPES)
        return value
    return _copy_text(value)


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """PostgreSQL's COPY of ``rows`` into ``table`` in the connection's transaction (text format)."""
    text = _copy_field
    if len(columns) > 1:
        get = itemgetter(*columns)
        tabs = len(columns) - 1
        lines = []
        for row in rows:
            # str() is the COPY text of every value but None and a str with a character to escape (str(datetime)
            # is isoformat(" ")); those are rare, so the whole line is checked once (one backslash per \N, one
            # tab per separator) and redone field by field when a value needs escaping.
            values = get(row)
            line = "\t".join(["\\N" if v is None else v if v.__class__ is str else str(v) for v in values])
            if (line.count("\\") != values.count(None) or line.count("\t") != tabs or "\n" in line
                    or "\r" in line):  # fmt: skip
                line = "\t".join(map(text, values))
            lines.append(line)
    else:
        lines = [text(row[columns[0]]) for row in rows]
    lines.append("")
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO("\n".join(lines)))
    finally:
        cursor.close()


def _append(conn: Connection, rows: list[dict[str, Any]], made: list[Decision]) -> None:
    """One bulk write per chunk (COPY on PostgreSQL, a multi-row insert elsewhere); when a concurrent decider got
    some of these touches first, the chunk is retried row by row and the touches it lost are marked (not
    written, conflict)."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # One writer at a time, and savepoints are not dependable through pysqlite: a touch a racer committed
        # since our read fails the whole call, which decide() reruns (the rerun skips what the racer decided).
        conn.execute(insert(LEDGER), rows)
        return
    try:
        with conn.begin_nested():
            if dialect == "postgresql":
                copy_rows(conn, "contact_ledger", LEDGER_COLUMNS, rows)
            else:
                conn.execute(insert(LEDGER), rows)
        return
    except IntegrityError:
        pass
    except Exception as exc:  # COPY's unique violation comes from the driver itself, not through SQLAlchemy
        if getattr(exc, "pgcode", None) != "23505":
            raise
    for row, decision in zip(rows, made, strict=True):
        try:
            with conn.begin_nested():
                conn.execute(insert(LEDGER), [row])
        except IntegrityError:
            decision.written = False
            decision.conflict = True


# --- one call in its own transaction -----------------------------------------------------------------------


def _retryable(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    retry = ("deadlock", "database is locked", "could not serialize", "lock wait timeout", "unique constraint failed")
    # MariaDB rolls the whole transaction back on a deadlock inside a savepoint; the rollback to the savepoint
    # then fails with 1305 (the savepoint is gone with it): the call is rerun like any deadlock.
    lost_savepoint = "savepoint" in text and "does not exist" in text
    return lost_savepoint or any(s in text for s in retry)


def decide(
    engine: Engine,
    redis_client: redis.Redis | None,
    redis_prefix: str,
    intents: Sequence[Intent],
    *,
    now: datetime,
    policy: ContactPolicy,
    attempts: int = 8,
) -> list[Decision]:
    """:func:`decide_batch` in a transaction of its own, retried (it is idempotent) when the database gave up
    on a lock: a deadlock between concurrent deciders on MariaDB, a busy SQLite."""
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                return decide_batch(conn, redis_client, redis_prefix, intents, now=now, policy=policy)
        except DBAPIError as exc:
            if attempt == attempts or not _retryable(exc):
                raise
            clock.sleep(0.02 * attempt)
    raise AssertionError("unreachable")


def ledger_ids(conn: Connection, message_ids: Sequence[str]) -> dict[str, int]:
    """message id -> ledger row id, for the send messages (the decision's insert does not return ids)."""
    found: dict[str, int] = {}
    for start in range(0, len(message_ids), CHUNK):
        part = list(message_ids[start : start + CHUNK])
        for mid, lid in conn.execute(
            select(LEDGER.c.message_id, LEDGER.c.id).where(one_of(conn, LEDGER.c.message_id, part))
        ):
            found[mid] = int(lid)
    return found


__all__ = ["REASONS", "ContactPolicy", "Decision", "Intent", "decide", "decide_batch", "ledger_ids", "QuietHours"]
