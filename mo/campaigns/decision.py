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
import os
import time as clock
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
from mo.hot_record import OPEN_COMPLAINT, QuietHours, hot_key, source_states
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


class Decision:
    """One touch's decision. ``detail`` (every rule's result) is held as the ledger row's JSON text until it is
    first read: a million-touch batch writes every detail but its callers read few of them."""

    __slots__ = ("touch_key", "customer_id", "attempt", "decision", "reason", "channel", "message_id", "not_before",
                 "_detail", "payload", "written", "conflict")  # fmt: skip

    def __init__(
        self,
        touch_key: str,
        customer_id: int,
        attempt: int,
        decision: str,  # send | suppress | defer
        reason: str,
        channel: str | None = None,
        message_id: str | None = None,
        not_before: datetime | None = None,
        detail: dict[str, Any] | str | None = None,  # a dict, or its JSON text
        payload: Mapping[str, Any] | None = None,  # the chosen channel's payload (send rows)
        written: bool = True,  # False: already decided (a final row, or a deferral not yet due), or lost to a racer
        conflict: bool = False,  # a concurrent decider wrote this touch first
    ) -> None:
        self.touch_key = touch_key
        self.customer_id = customer_id
        self.attempt = attempt
        self.decision = decision
        self.reason = reason
        self.channel = channel
        self.message_id = message_id
        self.not_before = not_before
        self._detail = {} if detail is None else detail
        self.payload = payload
        self.written = written
        self.conflict = conflict

    @property
    def detail(self) -> dict[str, Any]:
        value = self._detail
        if value.__class__ is str:
            value = self._detail = json.loads(cast(str, value))
        return cast(dict[str, Any], value)

    @detail.setter
    def detail(self, value: dict[str, Any]) -> None:
        self._detail = value

    def _fields(self) -> tuple:
        return (self.touch_key, self.customer_id, self.attempt, self.decision, self.reason, self.channel,
                self.message_id, self.not_before, self.detail, self.payload, self.written, self.conflict)  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return other.__class__ is Decision and self._fields() == cast(Decision, other)._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        names = ("touch_key", "customer_id", "attempt", "decision", "reason", "channel", "message_id", "not_before",
                 "detail", "payload", "written", "conflict")  # fmt: skip
        return f"Decision({', '.join(f'{n}={v!r}' for n, v in zip(names, self._fields(), strict=True))})"


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


class _Contact:
    """What the decision needs to know about a customer's consent and contact preferences (a hot record's
    fields, or the source's)."""

    __slots__ = ("consents", "versions", "open_complaints", "max_push_per_week", "erased", "time_zone", "quiet",
                 "origin")  # fmt: skip

    def __init__(self, consents: Mapping[tuple[str, str], str], versions: dict[tuple[str, str], int],
                 open_complaints: tuple[str, ...], max_push_per_week: int | None, erased: bool,
                 time_zone: str | None, quiet: tuple[time, time] | None, origin: str) -> None:  # fmt: skip
        self.consents = consents  # (channel, purpose) -> opt_in | opt_out
        self.versions = versions  # (channel, purpose) -> the consent evidence's id
        self.open_complaints = open_complaints
        self.max_push_per_week = max_push_per_week
        self.erased = erased
        self.time_zone = time_zone
        self.quiet = quiet
        self.origin = origin  # hot | source


def _quiet(prefs: Mapping | None) -> tuple[time, time] | None:
    if prefs and prefs.get("quiet_start") and prefs.get("quiet_end"):
        return _quiet_hours(prefs["quiet_start"], prefs["quiet_end"])
    return None


@lru_cache(maxsize=1024)
def _quiet_hours(start: str, end: str) -> tuple[time, time]:
    return time.fromisoformat(start), time.fromisoformat(end)


# Every hash of a chunk in one reply, JSON-encoded by Redis: the pure-Python reply parser costs more per element
# than the lookups themselves, and a chunk's records then decode in one json.loads. (Keys of one chunk must
# live on one node: a single Redis, as configured here, or a cluster with hash tags.)
_HGETALL_MANY = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return cjson.encode(out)
"""
REDIS_KEYS_PER_CALL = 1000


_CONSENT_FIELDS: dict[str, tuple[str, str]] = {}  # "consent:<channel>:<purpose>" -> (channel, purpose)


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
        key = _CONSENT_FIELDS.get(name)
        if key is None and name.startswith("consent:"):
            _, channel, purpose = name.split(":", 2)
            key = (channel, purpose)
            if len(_CONSENT_FIELDS) < 1000:
                _CONSENT_FIELDS[name] = key
        if key is not None:
            status, _, version = value.rpartition("|")
            consents[key] = status
            versions[key] = int(version or 0)
        elif name.startswith("complaint:"):
            complaints.append(name[10:])
        elif name == "prefs":
            body = value.rpartition("|")[0]
            if body == "pending":
                return None
            prefs = json.loads(body)
    return _Contact(
        consents,
        versions,
        tuple(sorted(complaints)),
        prefs.get("max_push_per_week") if prefs else None,
        fields.get("erased") == "1",
        prefs.get("time_zone") if prefs else None,
        _quiet(prefs),
        "hot",
    )


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
        record = state.record()
        found[cid] = _Contact(
            record.consents,
            {k: v for k, (_, v) in state.consents.items()},
            record.open_complaints,
            record.max_push_per_week,
            record.erased,
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
        cid = int(intent.customer_id)
        group = by_customer.get(cid)
        if group is None:
            by_customer[cid] = [intent]
        else:
            group.append(intent)
    del seen
    chunks: list[list[Intent]] = []  # whole customers per chunk: their slots are decided together
    chunk_ids: list[list[int]] = []
    current: list[Intent] = []
    current_ids: list[int] = []
    for cid in sorted(by_customer):
        group = by_customer[cid]
        if current and len(current) + len(group) > CHUNK:
            chunks.append(current)
            chunk_ids.append(current_ids)
            current, current_ids = [], []
        current.extend(group)
        current_ids.append(cid)
    if current:
        chunks.append(current)
        chunk_ids.append(current_ids)
    del by_customer
    decisions: list[Decision] = []
    # Millions of small objects and no reference cycles: the cyclic collector's full passes over them would
    # cost more than the decisions (quadratic in the audience), so it rests until the batch is decided.
    collecting = gc.isenabled()
    gc.disable()
    # The hot records of the next chunk are read (and parsed) by a worker thread while this chunk waits on the
    # database and decides; a single chunk reads them in line.
    fetcher = ThreadPoolExecutor(max_workers=1) if redis_client is not None and len(chunks) > 1 else None
    # The connection's statements run in order on a thread of their own on PostgreSQL (the driver lets go of
    # the interpreter while the server works): the next chunk's reads and this chunk's COPY run on the server's
    # core while this chunk is decided on ours.
    db = _Statements(threaded=len(chunks) > 1 and conn.dialect.name == "postgresql")
    try:
        hot: list[Future | None] = [None] * len(chunks)
        if fetcher is not None:
            hot[0] = fetcher.submit(_hot, redis_client, redis_prefix, chunk_ids[0])
        reads = db.submit(_read_facts, conn, redis_client, redis_prefix, chunks[0], now, hot[0]) if chunks else None
        caps = {"7d": policy.cap_7d, "30d": policy.cap_30d, "channel_7d": policy.cap_channel_7d}
        batch = _Batch(now, policy, _encode(caps), conn.dialect.name == "postgresql")
        for number in range(len(chunks)):
            if fetcher is not None and number + 1 < len(chunks):
                hot[number + 1] = fetcher.submit(_hot, redis_client, redis_prefix, chunk_ids[number + 1])
            facts: _Facts = db.result(cast(Future, reads))
            hot[number] = None
            reads = None
            early, wanted = _early_pass(facts, batch) if facts.todo else ([], [])
            holdouts = db.submit(_holdouts, conn, wanted, now, policy) if wanted else None
            if number + 1 < len(chunks):
                reads = db.submit(_read_facts, conn, redis_client, redis_prefix, chunks[number + 1], now,
                                  hot[number + 1])  # fmt: skip
            cycles, assignments = db.result(holdouts) if holdouts is not None else ({}, {})
            made, rows, lines = _late_pass(facts, early, cycles, assignments, batch)
            if made:
                db.submit(_append, conn, rows, made, lines, now)
            decisions.extend(facts.done)
            decisions.extend(made)
        db.finish()
    finally:
        db.close()
        if fetcher is not None:
            fetcher.shutdown(wait=True, cancel_futures=True)
        if collecting:
            gc.enable()
    return decisions


class _Statements:
    """The connection's statements, one at a time in submission order: on a worker thread, or in line. A failure
    stops the statements queued after it, and is what :meth:`result` and :meth:`finish` raise."""

    def __init__(self, *, threaded: bool) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1) if threaded else None
        self.submitted: list[Future] = []
        self.failed = False

    def _run(self, fn: Any, *args: Any) -> Any:
        if self.failed:
            raise _Stopped
        try:
            return fn(*args)
        except BaseException:
            self.failed = True
            raise

    def submit(self, fn: Any, *args: Any) -> Future:
        if self.pool is not None:
            future = self.pool.submit(self._run, fn, *args)
        else:
            future = Future()
            try:
                future.set_result(self._run(fn, *args))
            except BaseException as exc:  # noqa: BLE001 - handed on through the future, as a thread would
                future.set_exception(exc)
        self.submitted.append(future)
        return future

    def result(self, future: Future) -> Any:
        try:
            return future.result()
        except BaseException:
            self._raise_first()
            raise

    def _raise_first(self) -> None:
        """The first failure in submission order (later statements only saw an aborted transaction)."""
        self.close()
        for future in self.submitted:
            if future.done() and not future.cancelled() and future.exception() is not None:
                exc = future.exception()
                if not isinstance(exc, _Stopped):
                    raise cast(BaseException, exc)

    def finish(self) -> None:
        for future in self.submitted:
            self.result(future)
        self.submitted.clear()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


class _Stopped(Exception):
    """A statement not run because one before it failed."""


@dataclass
class _Facts:
    """A chunk's touches and what the decision reads about them."""

    done: list[Decision]
    todo: list[tuple[Intent, int]]
    contacts: dict[int, _Contact] = field(default_factory=dict)
    redis_problem: str | None = None
    customers: dict[int, tuple[str, bool, bool]] = field(default_factory=dict)
    claims: dict[int, list[str]] = field(default_factory=dict)
    complaints: dict[int, list[str]] = field(default_factory=dict)
    counts: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    marketing_ids: list[int] = field(default_factory=list)


def _read_facts(conn: Connection, client: redis.Redis | None, prefix: str, intents: list[Intent], now: datetime,
                hot: Future | None) -> _Facts:  # fmt: skip
    """``hot``: the chunk's hot records (every customer of the chunk), read ahead by :func:`decide_batch`."""
    state = _ledger_state(conn, [i.touch_key for i in intents])
    done: list[Decision] = []
    todo: list[tuple[Intent, int]] = []
    for intent in intents:
        known = state.get(intent.touch_key) if state else None
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
                        row.detail,
                        written=False,
                    )  # fmt: skip
                )
                continue
            todo.append((intent, attempt + 1))
        else:
            todo.append((intent, 1))
    facts = _Facts(done, todo)
    if not todo:
        return facts
    ids = sorted({i.customer_id for i, _ in todo})
    marketing_ids = sorted({i.customer_id for i, _ in todo if i.purpose == "marketing"})
    if hot is not None:
        contacts, redis_problem = hot.result()
    else:
        contacts, redis_problem = _hot(client, prefix, ids)
    unknown = [cid for cid in ids if cid not in contacts]
    if unknown:
        contacts.update(_from_source(conn, unknown))
    facts.contacts, facts.redis_problem, facts.marketing_ids = contacts, redis_problem, marketing_ids
    facts.customers = _customers(conn, ids)
    if marketing_ids:
        facts.claims = _open_claims(conn, marketing_ids)
        facts.complaints = _open_complaints(conn, marketing_ids)
        facts.counts = window_counts(conn, marketing_ids, now)
    return facts


_Cycles = dict[tuple[str, int], str]
_Assignments = dict[tuple[str, str, int], holdout.Assignment]


def _holdouts(conn: Connection, intents: list[Intent], now: datetime,
              policy: ContactPolicy) -> tuple[_Cycles, _Assignments]:  # fmt: skip
    """The renewal cycle and the stored holdout assignment of each (product line, customer) of ``intents``."""
    wanted = [(str(i.product_line), i.customer_id) for i in intents]
    cycles = holdout.renewal_cycle(conn, wanted, now.date())
    shares: dict[tuple[str, int], Decimal] = {}
    for i in intents:
        shares.setdefault((str(i.product_line), i.customer_id), Decimal(str(i.holdout_share)))
    assignments = holdout.assign(
        conn,
        [(line, cycles[(line, cid)], cid, shares[(line, cid)]) for line, cid in cycles],
        key=policy.holdout_key,
        now=now,
    )
    return cycles, assignments


# --- the rules, touch by touch, writing each touch's detail as the ledger's JSON text ------------------------
#
# ``detail`` is written straight as JSON text, piece by piece in the order the rules add their results, equal
# byte for byte to json.dumps(<the dict>, separators=(",", ":"), default=str): every value goes through
# :func:`_json`, which is what the encoder does to a value of that type.

_json_str = cast(Any, json.encoder).encode_basestring_ascii


def _json(value: Any) -> str:
    if value is None:
        return "null"
    kind = value.__class__
    if kind is str:
        return cast(str, _json_str(value))
    if kind is int:
        return int.__repr__(value)
    return _encode(value)


def _json_list(values: Iterable[Any]) -> str:
    return "[" + ",".join(map(_json, values)) + "]"


_HEX_VARIANT = {h: "89ab"[int(h, 16) & 3] for h in "0123456789abcdef"}


def _message_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs in their text form, from one read of the system's random source."""
    hexes = os.urandom(16 * count).hex()
    variant = _HEX_VARIANT
    return [
        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant[h[16]]}{h[17:20]}-{h[20:]}"
        for h in (hexes[k : k + 32] for k in range(0, 32 * count, 32))
    ]


class _Batch:
    """What the rules share across a batch's chunks: the clock, the policy and memoised JSON pieces."""

    def __init__(self, now: datetime, policy: ContactPolicy, caps: str, copy: bool) -> None:
        self.now = now
        self.policy = policy
        self.caps = caps
        self.copy = copy  # build the COPY lines (PostgreSQL)
        self.decided_at = str(now)
        self.window = (policy.window_start, policy.window_end)
        self.shapes: dict[tuple[tuple[str, ...], str], _Shape] = {}
        self.risks: dict[tuple[str | None, str], tuple[str, bool]] = {}
        self.timings: dict[tuple, tuple[str | None, datetime | None, str]] = {}
        self.texts: dict[Any, str] = {}  # value -> its JSON text (statuses, origins, purposes; holdout parts)
        self.names: dict[str, str] = {}  # channel -> its JSON text as a key ('"sms":')
        self.fields: dict[tuple, tuple[str, str]] = {}  # an intent's shared columns -> their COPY text


class _Shape:
    """An intent's channel list seen once per batch: each distinct channel with its consent channel, its JSON key
    and what makes it addressable."""

    __slots__ = ("channels", "unique", "distinct", "needs")

    def __init__(self, channels: tuple[str, ...], purpose: str) -> None:
        self.channels = channels
        distinct = list(dict.fromkeys(channels))
        self.distinct = len(distinct) == len(channels)
        # (channel, (consent channel, purpose), '"channel":', needs: 0 nothing, 1 an app user, 2 an openid, -1 never)
        self.unique = []
        for c in distinct:
            cc = consent_channel(c)
            needs = -1 if cc in ADDRESSLESS else 1 if cc == "app_push" else 2 if cc == "wechat" else 0
            self.unique.append((c, (cc, purpose), _json_str(c) + ":", needs))
        self.needs = {u[0]: u[3] for u in self.unique}


def _name(names: dict[str, str], key: str) -> str:
    name = names[key] = _json_str(key) + ":"
    return cast(str, name)


def _text(batch: _Batch, value: Any) -> str:
    text = batch.texts.get(value)
    if text is None:
        text = batch.texts[value] = _json(value)
    return text


def _early_pass(facts: _Facts, batch: _Batch) -> tuple[list[tuple[str, str, str, list[str]]], list[Intent]]:
    """Campaign end, consent, addressability and the guardrails for every touch of the chunk, in chunk order:
    (reason, the JSON of ``consent``'s members, the JSON of the members after it, permitted channels), and the
    touches that go on to a holdout."""
    now = batch.now
    contacts, customers, claims, complaints = facts.contacts, facts.customers, facts.claims, facts.complaints
    shapes, texts, risks = batch.shapes, batch.texts, batch.risks
    out: list[tuple[str, str, str, list[str]]] = []
    wanted: list[Intent] = []
    for intent, _ in facts.todo:
        purpose = intent.purpose
        shape = shapes.get((intent.channels, purpose))
        if shape is None:
            shape = shapes[(intent.channels, purpose)] = _Shape(intent.channels, purpose)
        cid = intent.customer_id
        contact = contacts[cid]
        statuses, versions = contact.consents, contact.versions
        marketing = purpose == "marketing"
        status_of: dict[str, str | None] = {}
        origin = texts.get(contact.origin) or _text(batch, contact.origin)
        parts = ['"from":' + origin]
        for c, key, name, _needs in shape.unique:
            status = statuses.get(key)
            version = versions.get(key)
            status_of[c] = status
            parts.append(name + "[" + (texts.get(status) or _text(batch, status)) + ","
                         + (int.__repr__(version) if version.__class__ is int else _json(version)) + "]")  # fmt: skip
        consent = ",".join(parts)
        if intent.ends_at is not None and now >= _naive_utc(intent.ends_at):
            out.append(("campaign_ended", consent, "", []))
            continue
        if marketing and contact.erased:
            out.append(("erased", consent, ',"erased":true', []))
            continue
        channels = intent.channels
        if marketing:
            permitted = [c for c in channels if status_of[c] == "opt_in"]
        else:
            permitted = [c for c in channels if status_of[c] != "opt_out"]
        if not permitted:
            withdrawn = any(status_of[c] == "opt_out" for c in channels)
            out.append(("consent_withdrawn" if withdrawn else "no_consent", consent, "", []))
            continue
        customer = customers.get(cid)
        addressable = []
        if customer is not None:
            needs_of = shape.needs
            for c in permitted:
                needs = needs_of[c]
                if needs == 0 or (needs == 1 and customer[1]) or (needs == 2 and customer[2]):
                    addressable.append(c)
        if not addressable:
            out.append(("no_channel", consent, ',"addressable":[]', []))
            continue
        if not marketing:
            out.append(("ok", consent, "", addressable))
            continue
        open_claims = claims.get(cid)
        mine = complaints.get(cid)
        if mine or contact.open_complaints:
            open_complaints = sorted(set(mine or ()) | set(contact.open_complaints))
        else:
            open_complaints = None
        if open_claims or open_complaints:
            tail = (
                ',"open_claims":'
                + _json_list(open_claims or ())
                + ',"open_complaints":'
                + _json_list(open_complaints or ())
            )
            out.append(("open_claim" if open_claims else "open_complaint", consent, tail, addressable))
            continue
        tail = ',"open_claims":[],"open_complaints":[]'
        if intent.offer_risk_level is not None:
            rating = customer[0] if customer else None
            risk = risks.get((rating, intent.offer_risk_level))
            if risk is None:
                level, allowed = _rating(intent.offer_risk_level), _rating(rating)
                risk = risks[(rating, intent.offer_risk_level)] = (
                    ',"risk":{"rating":' + _json(rating) + ',"offer_level":' + _json(intent.offer_risk_level) + "}",
                    level is None or allowed is None or level > allowed,
                )
            tail += risk[0]
            if risk[1]:
                out.append(("risk_above_rating", consent, tail, addressable))
                continue
        out.append(("ok", consent, tail, addressable))
        if intent.product_line and intent.holdout_share is not None:
            wanted.append(intent)
    return out, wanted


def _holdout_json(assignment: holdout.Assignment, batch: _Batch) -> str:
    """Assignment.as_detail() as JSON text."""
    head = batch.texts.get(("cycle", assignment.cycle))
    if head is None:
        head = batch.texts[("cycle", assignment.cycle)] = '{"cycle":' + _json(assignment.cycle) + ',"bucket":'
    held, share = assignment.held_out, assignment.share
    tail = batch.texts.get(("held", held, share))
    if tail is None:
        tail = batch.texts[("held", held, share)] = (
            ',"held_out":' + ("true" if held is True else "false" if held is False else _json(held))
            + ',"share":' + _json(str(share)) + "}"
        )  # fmt: skip
    return head + _json(assignment.bucket) + tail


def _late_pass(facts: _Facts, early: list[tuple[str, str, str, list[str]]],
               cycles: Mapping[tuple[str, int], str], assignments: Mapping[tuple[str, str, int], holdout.Assignment],
               batch: _Batch) -> tuple[list[Decision], list[tuple], list[str]]:  # fmt: skip
    """Holdout, rolling caps (in priority order), quiet hours and the send window: the chunk's decisions, their
    ledger rows (as tuples for :func:`_row`) and, for PostgreSQL, their COPY lines."""
    now, policy, timings = batch.now, batch.policy, batch.timings
    contacts = facts.contacts
    slots: dict[int, _Slots] = {}
    for cid in facts.marketing_ids:
        s = _Slots()
        for counted, (week, month) in facts.counts.get(cid, {}).items():
            s.week += week
            s.month += month
            s.channel_week[counted or ""] = week
        slots[cid] = s
    consent_end = (',"redis":' + _json(facts.redis_problem) if facts.redis_problem else "") + "}"
    heads: dict[str, str] = {}
    names = batch.names
    todo = facts.todo
    keys = [(-i.priority, i.touch_key) for i, _ in todo]
    order = sorted(range(len(todo)), key=keys.__getitem__)
    sends = sum(1 for e in early if e[0] == "ok")
    message_ids = iter(_message_ids(sends))
    made: list[Decision] = []
    rows: list[tuple] = []
    lines: list[str] = []
    copy = batch.copy
    plain = copy and _plain_chunk(todo)
    decided_at = batch.decided_at
    cap_7d, cap_30d, cap_channel_7d = policy.cap_7d, policy.cap_30d, policy.cap_channel_7d
    NULL = "\\N"  # noqa: N806 - COPY's null
    for k in order:
        intent, attempt = todo[k]
        reason, consent, tail, channels = early[k]
        cid = intent.customer_id
        purpose = intent.purpose
        marketing = purpose == "marketing"
        channel: str | None = None
        not_before: datetime | None = None
        head = heads.get(purpose)
        if head is None:
            head = heads[purpose] = '{"purpose":' + _json(purpose) + ',"consent":{'
        detail = head + consent + consent_end + tail
        if reason == "ok" and marketing and intent.product_line and intent.holdout_share is not None:
            assignment = assignments[(intent.product_line, cycles[(intent.product_line, cid)], cid)]
            detail += ',"holdout":' + _holdout_json(assignment, batch)
            if assignment.held_out:
                reason = "holdout"
        if reason == "ok" and marketing:
            s = slots[cid]
            push_limit = contacts[cid].max_push_per_week
            week_of = s.channel_week
            shown = (
                channels if len(channels) < 2 or len(set(channels)) == len(channels) else list(dict.fromkeys(channels))
            )
            detail += (',"counts":{"7d":' + _json(s.week) + ',"30d":' + _json(s.month) + ',"channel_7d":{'
                       + ",".join([(names.get(c) or _name(names, c)) + _json(week_of.get(c, 0)) for c in shown]) + "}"
                       + ("" if push_limit is None else ',"max_push_per_week":' + _json(push_limit))
                       + '},"caps":' + batch.caps)  # fmt: skip
            if s.week >= cap_7d:
                reason = "cap_7d"
            elif s.month >= cap_30d:
                reason = "cap_30d"
            else:
                open_channels = []
                first_refusal = None
                for c in channels:
                    if week_of.get(c, 0) >= cap_channel_7d:
                        first_refusal = first_refusal or "cap_channel_7d"
                    elif (
                        consent_channel(c) == "app_push" and push_limit is not None and week_of.get(c, 0) >= push_limit
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
                detail += (',"winner":{"touch_key":' + _json(winner[0]) + ',"priority":' + _json(winner[1])
                           + ',"channel":' + _json(winner[2]) + "}")  # fmt: skip
        if reason == "ok":
            contact = contacts[cid]
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
                    *_timing(now, zone, batch.window if marketing else None, contact.quiet),
                    ',"local":' + _encode(local),
                )
            why, not_before, local_json = timing
            detail += local_json
            if why is not None:
                reason = why
                if intent.ends_at is not None and cast(datetime, not_before) >= _naive_utc(intent.ends_at):
                    reason, not_before = "campaign_ended", None
                    detail += ',"deferral_past_end":true'
        detail += "}"
        if reason == "ok":
            channel = channels[0]
            if marketing:
                s = slots[cid]
                s.week += 1
                s.month += 1
                s.channel_week[channel] = s.channel_week.get(channel, 0) + 1
                s.taken_by.append((intent.touch_key, intent.priority, channel))
            verdict = "send"
            message_id: str | None = next(message_ids)
        else:
            verdict = "defer" if not_before is not None else "suppress"
            message_id = None
        made.append(
            Decision(
                intent.touch_key,
                cid,
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
        rows.append((intent, attempt, verdict, reason, channel, not_before, message_id, detail))
        if plain:
            key = intent.touch_key
            fixed = batch.fields.get((intent.source, intent.campaign_id, intent.occurrence, purpose,
                                      intent.product_line, intent.priority))  # fmt: skip
            if fixed is None:
                fixed = _fixed_fields(batch, intent)
            if "\\" in detail:
                detail = detail.replace("\\", "\\\\")
            lines.append(
                f"{key}\t{attempt}\t{NULL if verdict == 'defer' else key}\t{fixed[0]}\t{cid}\t"
                f"{NULL if channel is None else channel}\t{fixed[1]}\t{verdict}\t{reason}\t{detail}\t"
                f"{NULL if not_before is None else not_before}\t{NULL if message_id is None else message_id}\t"
                f"{decided_at}"
            )
    if copy and not plain:
        lines = [_copy_line(_row(r, now)) for r in rows]
    return made, rows, lines


def _plain_chunk(todo: list[tuple[Intent, int]]) -> bool:
    """True when no touch key or channel of the chunk needs escaping in COPY text and every customer id is an int
    (the common case: their text is then written as it is)."""
    try:
        text = "".join([i.touch_key for i, _ in todo]) + "".join(["".join(i.channels) for i, _ in todo])
    except TypeError:
        return False
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return False
    return all(i.customer_id.__class__ is int for i, _ in todo)


def _fixed_fields(batch: _Batch, intent: Intent) -> tuple[str, str]:
    """The COPY text of an intent's columns that many touches share: (source, campaign, occurrence) and
    (purpose, product line, priority)."""
    key = (intent.source, intent.campaign_id, intent.occurrence, intent.purpose, intent.product_line, intent.priority)
    fixed = (
        "\t".join(map(_copy_text, key[:3])),
        "\t".join(map(_copy_text, key[3:])),
    )
    batch.fields[key] = fixed
    return fixed


def _row(r: tuple, decided_at: datetime) -> dict[str, Any]:
    """A ledger row as a dict, from :func:`_late_pass`'s tuple."""
    intent, attempt, verdict, reason, channel, not_before, message_id, detail = r
    return {
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
        "detail": detail,
        "not_before": not_before,
        "message_id": message_id,
        "decided_at": decided_at,
    }


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
    _copy_lines(conn, table, columns, lines)


def _copy_line(row: Mapping[str, Any]) -> str:
    return "\t".join([_copy_text(row[c]) for c in LEDGER_COLUMNS])


def _copy_lines(conn: Connection, table: str, columns: Sequence[str], lines: list[str]) -> None:
    """COPY of ``lines`` (COPY text, one row each) into ``table``."""
    lines.append("")
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", io.StringIO("\n".join(lines)))
    finally:
        cursor.close()
        lines.pop()


def _append(conn: Connection, rows: list[tuple], made: list[Decision], lines: list[str], now: datetime) -> None:
    """One bulk write per chunk (COPY of ``lines`` on PostgreSQL, a multi-row insert elsewhere); when a concurrent
    decider got some of these touches first, the chunk is retried row by row and the touches it lost are marked
    (not written, conflict)."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # One writer at a time, and savepoints are not dependable through pysqlite: a touch a racer committed
        # since our read fails the whole call, which decide() reruns (the rerun skips what the racer decided).
        conn.execute(insert(LEDGER), [_row(r, now) for r in rows])
        return
    try:
        with conn.begin_nested():
            if dialect == "postgresql":
                _copy_lines(conn, "contact_ledger", LEDGER_COLUMNS, lines)
            else:
                conn.execute(insert(LEDGER), [_row(r, now) for r in rows])
        return
    except IntegrityError:
        pass
    except Exception as exc:  # COPY's unique violation comes from the driver itself, not through SQLAlchemy
        if getattr(exc, "pgcode", None) != "23505":
            raise
    for r, decision in zip(rows, made, strict=True):
        try:
            with conn.begin_nested():
                conn.execute(insert(LEDGER), [_row(r, now)])
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
