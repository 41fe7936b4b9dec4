"""The hot contact record: what campaign dispatch must check at send time, in Redis, one hash per customer.

The lake syncs hourly; a customer who withdraws marketing consent at 10:00:00 must not get a marketing push
at 10:00:01. So every API write that changes whether or how a customer may be contacted (consent,
contact preferences, complaints, erasure) also writes this record, and dispatch reads it with one
``HGETALL`` through :func:`hot_record`.

Key ``<prefix>:hot:<customer_id>``, fields:

- ``consent:<channel>:<purpose>``: ``opt_in|<version>`` or ``opt_out|<version>``; the version is the id of
  the decision's row in ``consent_evidence`` (0 for a decision the core systems made without one);
- ``complaint:<complaint_no>``: ``open`` while the complaint is open or in progress;
- ``prefs``: ``<json>|<version>`` (max pushes per week, quiet hours, time zone) or ``pending|<version>``
  while a change is being committed;
- ``erased``: ``1`` once the customer's marketing data was erased;
- ``built``: when the record was last made complete from the source. A record without it (Redis lost its
  data, or only a write's first half reached it) is *unknown*.

Reading: a missing or incomplete record is **unknown, not consent**: :attr:`HotRecord.known` is False and
the caller falls back to the source (:func:`record_from_source`; :func:`resolve` does both). Marketing
needs an explicit opt-in; service messages are allowed unless withdrawn; an erased customer or one with an
open complaint gets no marketing at all.

Writing is fail-safe (the order the API follows, serving/app/services/contact.py):

- a change towards *less* contact (withdrawal, complaint filed, erasure, a preference change marked
  ``pending``) is written to Redis **before** the database commits: if Redis is down the request fails
  and nothing is committed; if the commit then fails, Redis is stricter than the source (safe);
- a change towards *more* contact (grant, complaint resolved) reaches Redis **after** the commit, by
  :func:`sync_from_source`, which copies the committed state: if Redis is down then, it keeps the older,
  stricter state until the next sync or a rebuild.

Versions make concurrent writers converge: a field is only replaced by a value of the same or a newer
version (one Lua script, atomic in Redis). ``mo hot rebuild`` (:func:`rebuild`) remakes records from the
source for a Redis that lost its data, or after changes made in the core systems outside the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import Connection, Engine, and_, func, select

from mo.oltp.models import Complaint, Consent, Customer
from mo.oltp.privacy import CHANNELS, PURPOSES, ConsentEvidence, ContactPreference, ErasureRequest

OPEN_COMPLAINT = ("open", "in_progress")
DONE_COMPLAINT = ("resolved", "closed")
REBUILD_BATCH = 500


def hot_key(prefix: str, customer_id: int) -> str:
    return f"{prefix}:hot:{customer_id}"


def consent_field(channel: str, purpose: str) -> str:
    return f"consent:{channel}:{purpose}"


def complaint_field(complaint_no: str) -> str:
    return f"complaint:{complaint_no}"


@dataclass(frozen=True)
class QuietHours:
    """A local-time window (start inclusive, end exclusive; an end before the start spans midnight)."""

    start: str  # HH:MM
    end: str  # HH:MM
    time_zone: str  # IANA

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` (aware, or naive UTC) falls in the window in the customer's time zone."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        local = moment.astimezone(ZoneInfo(self.time_zone)).time()
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        if start == end:
            return False
        if start < end:
            return start <= local < end
        return local >= start or local < end


@dataclass(frozen=True)
class HotRecord:
    customer_id: int
    known: bool  # False: no complete record; read the source instead (record_from_source)
    consents: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (channel, purpose) -> opt_in|opt_out
    open_complaints: tuple[str, ...] = ()
    max_push_per_week: int | None = None
    quiet_hours: QuietHours | None = None
    erased: bool = False
    built_at: str | None = None

    def consent(self, channel: str, purpose: str = "marketing") -> str | None:
        """opt_in, opt_out, or None when the customer never decided (or the record is unknown)."""
        return self.consents.get((channel, purpose))

    def may_contact(self, channel: str, purpose: str = "marketing") -> bool | None:
        """True/False; None when the record is unknown (then ask the source, never assume consent)."""
        if not self.known:
            return None
        if purpose == "marketing":
            if self.erased or self.open_complaints:
                return False
            return self.consent(channel, purpose) == "opt_in"
        return self.consent(channel, purpose) != "opt_out"

    def as_dict(self) -> dict:
        return {
            "customer_id": self.customer_id,
            "known": self.known,
            "consents": [{"channel": c, "purpose": p, "status": s} for (c, p), s in sorted(self.consents.items())],
            "open_complaints": list(self.open_complaints),
            "max_push_per_week": self.max_push_per_week,
            "quiet_hours": None
            if self.quiet_hours is None
            else {
                "start": self.quiet_hours.start,
                "end": self.quiet_hours.end,
                "time_zone": self.quiet_hours.time_zone,
            },
            "erased": self.erased,
            "built_at": self.built_at,
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _split(value: str) -> tuple[str, int]:
    body, _, version = value.rpartition("|")
    return body, int(version or 0)


def parse_record(customer_id: int, raw: Mapping[bytes | str, bytes | str]) -> HotRecord:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    consents: dict[tuple[str, str], str] = {}
    complaints: list[str] = []
    prefs: dict | None = None
    pending = False
    for name, value in fields.items():
        if name.startswith("consent:"):
            _, channel, purpose = name.split(":", 2)
            consents[(channel, purpose)] = _split(value)[0]
        elif name.startswith("complaint:"):
            complaints.append(name.split(":", 1)[1])
        elif name == "prefs":
            body, _ = _split(value)
            if body == "pending":
                pending = True
            else:
                prefs = json.loads(body)
    quiet = None
    if prefs and prefs.get("quiet_start") and prefs.get("quiet_end"):
        quiet = QuietHours(prefs["quiet_start"], prefs["quiet_end"], prefs["time_zone"])
    return HotRecord(
        customer_id=customer_id,
        known="built" in fields and not pending,
        consents=consents,
        open_complaints=tuple(sorted(complaints)),
        max_push_per_week=prefs.get("max_push_per_week") if prefs else None,
        quiet_hours=quiet,
        erased=fields.get("erased") == "1",
        built_at=fields.get("built"),
    )


def hot_record(client: redis.Redis, customer_id: int, prefix: str) -> HotRecord:
    """The customer's hot record (one HGETALL). Raises redis.RedisError when Redis does not answer:
    the caller decides (dispatch: do not send, or fall back to the source)."""
    return parse_record(customer_id, client.hgetall(hot_key(prefix, customer_id)))  # type: ignore[arg-type]


# --- the source's view ------------------------------------------------------------------------------------


@dataclass
class SourceState:
    """What the source database says about one customer's contactability, with versions."""

    customer_id: int
    consents: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)  # -> (status, version)
    open_complaints: set[str] = field(default_factory=set)
    done_complaints: set[str] = field(default_factory=set)
    prefs: tuple[dict, int] | None = None
    erased: bool = False

    def record(self) -> HotRecord:
        prefs = self.prefs[0] if self.prefs else None
        quiet = None
        if prefs and prefs.get("quiet_start") and prefs.get("quiet_end"):
            quiet = QuietHours(prefs["quiet_start"], prefs["quiet_end"], prefs["time_zone"])
        return HotRecord(
            customer_id=self.customer_id,
            known=True,
            consents={k: s for k, (s, _) in self.consents.items()},
            open_complaints=tuple(sorted(self.open_complaints)),
            max_push_per_week=prefs.get("max_push_per_week") if prefs else None,
            quiet_hours=quiet,
            erased=self.erased,
        )


def _chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def source_states(conn: Connection, customer_ids: Iterable[int]) -> dict[int, SourceState]:
    """The source's state for these customers, in a few queries per batch."""
    ids = sorted(set(customer_ids))
    states = {cid: SourceState(cid) for cid in ids}
    k, e, c = Consent.__table__.c, ConsentEvidence.__table__.c, Complaint.__table__.c
    p, r = ContactPreference.__table__.c, ErasureRequest.__table__.c
    for part in _chunks(ids, REBUILD_BATCH):
        versions: dict[tuple[int, str, str], int] = {}
        latest = (
            select(e.customer_id, e.channel, e.purpose, func.max(e.id).label("id"))
            .where(e.customer_id.in_(part))
            .group_by(e.customer_id, e.channel, e.purpose)
            .subquery()
        )
        evidence = select(e.customer_id, e.channel, e.purpose, e.status, e.id).join(latest, and_(e.id == latest.c.id))
        for cid, channel, purpose, status, version in conn.execute(evidence):
            versions[(cid, channel, purpose)] = int(version)
            if purpose != "marketing":  # service consent lives only in the evidence
                states[cid].consents[(channel, purpose)] = (status, int(version))
        # Marketing: the synced consents table is the truth (the core systems may change it without evidence).
        rows = conn.execute(
            select(k.customer_id, k.channel, k.status, k.decided_at, k.id)
            .where(k.customer_id.in_(part), k.deleted_at.is_(None))
            .order_by(k.customer_id, k.channel, k.decided_at, k.id)
        )
        for cid, channel, status, _decided, _id in rows:  # the latest decision per channel wins
            states[cid].consents[(channel, "marketing")] = (status, versions.get((cid, channel, "marketing"), 0))
        for cid, number, status in conn.execute(
            select(c.customer_id, c.complaint_no, c.status).where(c.customer_id.in_(part), c.deleted_at.is_(None))
        ):
            (states[cid].open_complaints if status in OPEN_COMPLAINT else states[cid].done_complaints).add(number)
        for row in conn.execute(select(ContactPreference.__table__).where(p.customer_id.in_(part))):
            states[row.customer_id].prefs = (
                {
                    "max_push_per_week": row.max_push_per_week,
                    "quiet_start": row.quiet_start,
                    "quiet_end": row.quiet_end,
                    "time_zone": row.time_zone,
                },
                int(row.version),
            )
        for (cid,) in conn.execute(
            select(r.customer_id).where(r.customer_id.in_(part), r.status == "completed").distinct()
        ):
            states[cid].erased = True
    return states


def record_from_source(conn: Connection, customer_id: int) -> HotRecord:
    """The record as the source database has it: what to use when :func:`hot_record` is unknown."""
    return source_states(conn, [customer_id])[customer_id].record()


def resolve(client: redis.Redis, source: Engine, customer_id: int, prefix: str) -> HotRecord:
    """What dispatch calls at send time: the hot record, or the source's state when the record is unknown or
    Redis does not answer (slower, never wrong). The answer is always known."""
    try:
        record = hot_record(client, customer_id, prefix)
        if record.known:
            return record
    except redis.RedisError:
        pass
    with source.connect() as conn:
        return record_from_source(conn, customer_id)


# --- writing ----------------------------------------------------------------------------------------------

# KEYS[1]: the record. ARGV: force (1: replace regardless of versions), built ('' to leave), erased (1/0),
# n, then n triples (field, value, version); m, then m open complaint fields; d, then d fields to delete;
# prune (1: delete complaint, consent and prefs fields the source does not have).
_MERGE = """
local key = KEYS[1]
local force = ARGV[1] == '1'
local built = ARGV[2]
local i = 4
local n = tonumber(ARGV[i]); i = i + 1
local given = {}
for _ = 1, n do
  local f, v, ver = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]); i = i + 3
  given[f] = true
  local keep = false
  if not force then
    local cur = redis.call('HGET', key, f)
    if cur then
      local cv = tonumber(string.match(cur, '|(%-?%d+)$'))
      if cv and cv > ver then keep = true end
    end
  end
  if not keep then redis.call('HSET', key, f, v .. '|' .. ver) end
end
local m = tonumber(ARGV[i]); i = i + 1
local open = {}
for _ = 1, m do redis.call('HSET', key, ARGV[i], 'open'); open[ARGV[i]] = true; i = i + 1 end
local d = tonumber(ARGV[i]); i = i + 1
for _ = 1, d do redis.call('HDEL', key, ARGV[i]); i = i + 1 end
if ARGV[i] == '1' then
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local complaint = string.sub(f, 1, 10) == 'complaint:' and not open[f]
    local consent = (string.sub(f, 1, 8) == 'consent:' or f == 'prefs') and not given[f]
    if complaint or consent then redis.call('HDEL', key, f) end
  end
end
if ARGV[3] == '1' then redis.call('HSET', key, 'erased', '1') end
if built ~= '' then redis.call('HSET', key, 'built', built) end
return 1
"""


def _merge(
    client: redis.Redis | redis.client.Pipeline,
    key: str,
    *,
    versioned: Sequence[tuple[str, str, int]] = (),
    open_complaints: Sequence[str] = (),
    delete: Sequence[str] = (),
    erased: bool = False,
    built: bool = False,
    force: bool = False,
    prune: bool = False,
) -> None:
    args: list[str | int] = ["1" if force else "0", _now() if built else "", "1" if erased else "0", len(versioned)]
    for name, value, version in versioned:
        args += [name, value, int(version)]
    args += [len(open_complaints), *open_complaints, len(delete), *delete, "1" if prune else "0"]
    client.eval(_MERGE, 1, key, *args)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _prefs_value(prefs: tuple[dict, int]) -> tuple[str, str, int]:
    return ("prefs", json.dumps(prefs[0], sort_keys=True, separators=(",", ":")), prefs[1])


def set_consent(client: redis.Redis, prefix: str, customer_id: int, channel: str, purpose: str, status: str,
                version: int) -> None:  # fmt: skip
    """One consent decision (kept only if no newer version is there)."""
    _merge(client, hot_key(prefix, customer_id), versioned=[(consent_field(channel, purpose), status, version)])


def mark_prefs_pending(client: redis.Redis, prefix: str, customer_id: int, version: int) -> None:
    """Before a preference change commits: the record is unknown until the committed value is copied."""
    _merge(client, hot_key(prefix, customer_id), versioned=[("prefs", "pending", version)])


def open_complaint(client: redis.Redis, prefix: str, customer_id: int, complaint_no: str) -> None:
    _merge(client, hot_key(prefix, customer_id), open_complaints=[complaint_field(complaint_no)])


def mark_erased(client: redis.Redis, prefix: str, customer_id: int, withdrawn: Sequence[tuple[str, int]]) -> None:
    """Erasure, before its commit: erased, and each (channel, evidence id) of marketing withdrawn."""
    _merge(
        client,
        hot_key(prefix, customer_id),
        versioned=[(consent_field(channel, "marketing"), "opt_out", version) for channel, version in withdrawn],
        erased=True,
    )


def _apply(client: redis.Redis | redis.client.Pipeline, prefix: str, state: SourceState, *, force: bool) -> None:
    versioned = [(consent_field(ch, pu), status, v) for (ch, pu), (status, v) in sorted(state.consents.items())]
    if state.prefs is not None:
        versioned.append(_prefs_value(state.prefs))
    _merge(
        client,
        hot_key(prefix, state.customer_id),
        versioned=versioned,
        open_complaints=[complaint_field(n) for n in sorted(state.open_complaints)],
        delete=[complaint_field(n) for n in sorted(state.done_complaints)],
        erased=state.erased,
        built=True,
        force=force,
        prune=force,
    )


def sync_from_source(conn: Connection, client: redis.Redis, prefix: str, customer_id: int) -> HotRecord:
    """After a commit: copy the committed state into the record (versions decide against concurrent
    writers) and mark it complete. Returns what the source says."""
    state = source_states(conn, [customer_id])[customer_id]
    _apply(client, prefix, state, force=False)
    return state.record()


def rebuild(conn: Connection, client: redis.Redis, prefix: str, customer_ids: Iterable[int] | None = None) -> int:
    """Remake hot records from the source (all live customers unless ids are given): the source wins over
    whatever Redis holds, stale stricter values included. Returns the number of records written."""
    if customer_ids is None:
        cu = Customer.__table__.c
        ids = [int(i) for (i,) in conn.execute(select(cu.id).order_by(cu.id))]
    else:
        ids = sorted(set(customer_ids))
    written = 0
    for part in _chunks(ids, REBUILD_BATCH):
        states = source_states(conn, part)
        pipe = client.pipeline(transaction=False)
        for cid in part:
            _apply(pipe, prefix, states[cid], force=True)
        pipe.execute()
        written += len(part)
    return written


# Changes the core systems make without the API (a call centre's opt-out, a complaint logged in the complaint
# system) reach the hot records through refresh_changed: the source rows changed since the last pass, with this
# look-back for transactions that committed after a later one (their updated_at is older than what was seen).
CHANGES_LOOKBACK = timedelta(minutes=10)


def seen_key(prefix: str) -> str:
    return f"{prefix}:hot:seen"


def changed_customers(conn: Connection, since: datetime) -> set[int]:
    """Customers whose consents, complaints, consent evidence, contact preferences or erasure requests
    changed at or after ``since`` (naive UTC, as the source stores timestamps)."""
    k, c = Consent.__table__.c, Complaint.__table__.c
    e, p, r = ConsentEvidence.__table__.c, ContactPreference.__table__.c, ErasureRequest.__table__.c
    queries = [
        select(k.customer_id).where(k.updated_at >= since),
        select(c.customer_id).where(c.updated_at >= since),
        select(e.customer_id).where(e.decided_at >= since),
        select(p.customer_id).where(p.updated_at >= since),
        select(r.customer_id).where(r.requested_at >= since),
    ]
    return {int(cid) for query in queries for (cid,) in conn.execute(query.distinct())}


def refresh_changed(
    conn: Connection, client: redis.Redis, prefix: str, *, now: datetime | None = None,
    lookback: timedelta = CHANGES_LOOKBACK,
) -> int:  # fmt: skip
    """Remake the records of the customers whose contact facts changed in the source since the last pass
    (``<prefix>:hot:seen``), the source winning; the first pass (no mark yet) remakes every record. Returns the
    number of records written. Run it often (dispatch runs it before every round): between two passes a
    change made outside the API is not in Redis, which is why dispatch also checks the source."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    mark = client.get(seen_key(prefix))
    if mark is None:
        written = rebuild(conn, client, prefix)
    else:
        since = datetime.fromisoformat(_text(mark)) - lookback
        written = rebuild(conn, client, prefix, changed_customers(conn, since))
    # The next pass looks back from this one's start: a row committed while this pass ran is taken next time.
    client.set(seen_key(prefix), now.isoformat())
    return written


__all__ = [
    "CHANNELS",
    "PURPOSES",
    "HotRecord",
    "QuietHours",
    "hot_record",
    "record_from_source",
    "resolve",
    "rebuild",
    "refresh_changed",
    "sync_from_source",
]
