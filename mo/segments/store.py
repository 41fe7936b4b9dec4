"""The segment definition store (core database, mo/oltp/segment_tables.py): readers and writers shared by the
serving API, ``mo segments import`` and ``build_profiles``, plus :func:`evaluate_now`, a segment's members on
the current published refresh (what a campaign snapshots as its audience).

One definition store: the API writes it, definition files are imported into it (:func:`import_folder`; a
file is imported again only while its segment has not been edited through the API since), and the segments
refresh reads its active segments (:func:`active_definitions`). Versions are numbered here and the lake's
``segments.definitions`` takes the same numbers, so a membership row's ``segment_version`` is this store's.

Every function takes a SQLAlchemy connection (the caller owns the transaction: the API writes its audit
entry and idempotency key in the same one) or an engine where it opens its own.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, and_, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from mo import pii
from mo.errors import MoError
from mo.oltp.segment_tables import Segment, SegmentDefinitionVersion, SegmentStaticMember
from mo.segments.definitions import (
    EXAMPLES_DIR,
    DefinitionError,
    SegmentDefinition,
    SegmentNotFound,
    load_definitions,
    parse_definition,
)

SEGMENTS = cast(Table, Segment.__table__)
VERSIONS = cast(Table, SegmentDefinitionVersion.__table__)
STATIC_MEMBERS = cast(Table, SegmentStaticMember.__table__)

MAX_UPLOAD_ROWS = 200_000  # customer ids or phones in one static list
MAX_REPORTED_LINES = 20
ID_CHUNK = 500  # ids per IN (...) query: well under every engine's bound-parameter limit
UPLOAD_COLUMNS = ("customer_id", "phone", "phone_token")
TOKEN_TEXT = re.compile(r"[0-9a-f]{64}")
MOBILE = re.compile(r"1[0-9]{10}")


class SegmentStoreError(MoError):
    """A request to the definition store cannot be done; ``field`` names the input at fault (a JSON pointer
    relative to the request, e.g. ``/rule/all/0/attr``) when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class SegmentExists(SegmentStoreError):
    """A segment with this id is already in the store."""


class SegmentArchived(SegmentStoreError):
    """The segment is archived: it takes no new version and no campaign."""


class NotEvaluable(SegmentStoreError):
    """The segment version has no members on the published refresh yet (a smart segment before its first
    build_profiles, a static segment without an uploaded list)."""


class UploadError(SegmentStoreError):
    """An uploaded static list is unreadable; ``problems`` lists (line, message), at most MAX_REPORTED_LINES."""

    def __init__(self, message: str, problems: Sequence[tuple[int, str]] = ()) -> None:
        super().__init__(message, field="/file")
        self.problems = list(problems)


@dataclass(frozen=True)
class StoredSegment:
    segment_id: str
    kind: str
    status: str
    origin: str
    latest_version: int
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    archived_at: dt.datetime | None
    archived_by: str | None


@dataclass(frozen=True)
class StoredVersion:
    segment_id: str
    version: int
    definition: SegmentDefinition
    content_hash: str
    member_count: int | None
    unknown_count: int | None
    source: str | None
    created_by: str
    created_at: dt.datetime


@dataclass(frozen=True)
class ActiveSegment:
    """What the refresh computes for one active segment: its latest version, and a static list's members."""

    version: StoredVersion
    static_members: list[int] | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _segment(row: Any) -> StoredSegment:
    return StoredSegment(**{k: row._mapping[k] for k in StoredSegment.__dataclass_fields__})


def _version(row: Any) -> StoredVersion:
    m = row._mapping
    return StoredVersion(
        segment_id=m["segment_id"],
        version=m["version"],
        definition=parse_definition(json.loads(m["definition"]), source=f"{m['segment_id']} v{m['version']}"),
        content_hash=m["content_hash"],
        member_count=m["member_count"],
        unknown_count=m["unknown_count"],
        source=m["source"],
        created_by=m["created_by"],
        created_at=m["created_at"],
    )


def content_hash(definition: SegmentDefinition, members: Sequence[int] | None = None) -> str:
    """The definition's content hash; a static list's members are part of its content."""
    if members is None:
        return definition.content_hash
    digest = hashlib.sha256(definition.canonical_json().encode())
    digest.update(b"\nmembers:" + ",".join(str(i) for i in sorted(members)).encode())
    return digest.hexdigest()[:16]


# --- reads -----------------------------------------------------------------------------------------------------


def get_segment(conn: Connection, segment_id: str, *, for_update: bool = False) -> StoredSegment:
    query = select(SEGMENTS).where(SEGMENTS.c.segment_id == segment_id)
    row = conn.execute(query.with_for_update() if for_update else query).first()
    if row is None:
        raise SegmentNotFound(f"segment {segment_id!r} is not in the segment store")
    return _segment(row)


def versions(conn: Connection, segment_id: str) -> list[StoredVersion]:
    """Every version of a segment, oldest first."""
    rows = conn.execute(select(VERSIONS).where(VERSIONS.c.segment_id == segment_id).order_by(VERSIONS.c.version))
    return [_version(r) for r in rows]


def get_version(conn: Connection, segment_id: str, version: int | None = None) -> StoredVersion:
    """A version of a segment (the latest when ``version`` is None)."""
    if version is None:
        version = get_segment(conn, segment_id).latest_version
    row = conn.execute(
        select(VERSIONS).where(VERSIONS.c.segment_id == segment_id, VERSIONS.c.version == version)
    ).first()
    if row is None:
        get_segment(conn, segment_id)  # SegmentNotFound for an unknown segment
        raise SegmentNotFound(f"segment {segment_id!r} has no version {version}")
    return _version(row)


def list_segments(
    conn: Connection, *, status: str | None = None, after: str | None = None, limit: int = 50
) -> list[StoredSegment]:
    """Segments ordered by id, starting after ``after`` (a cursor page)."""
    query = select(SEGMENTS)
    if status is not None:
        query = query.where(SEGMENTS.c.status == status)
    if after is not None:
        query = query.where(SEGMENTS.c.segment_id > after)
    return [_segment(r) for r in conn.execute(query.order_by(SEGMENTS.c.segment_id).limit(limit))]


def static_members(conn: Connection, segment_id: str, version: int) -> list[int]:
    rows = conn.execute(
        select(STATIC_MEMBERS.c.customer_id)
        .where(STATIC_MEMBERS.c.segment_id == segment_id, STATIC_MEMBERS.c.version == version)
        .order_by(STATIC_MEMBERS.c.customer_id)
    )
    return [int(r[0]) for r in rows]


def active_definitions(conn: Connection) -> list[ActiveSegment]:
    """The latest version of every active segment, by id, with each static list's members (what a segments
    refresh computes)."""
    rows = conn.execute(
        select(VERSIONS)
        .join(
            SEGMENTS,
            and_(SEGMENTS.c.segment_id == VERSIONS.c.segment_id, SEGMENTS.c.latest_version == VERSIONS.c.version),
        )
        .where(SEGMENTS.c.status == "active")
        .order_by(VERSIONS.c.segment_id)
    ).all()
    active = []
    for row in rows:
        stored = _version(row)
        members = None
        if stored.definition.kind == "static" and stored.member_count is not None:
            members = static_members(conn, stored.segment_id, stored.version)
        active.append(ActiveSegment(stored, members))
    return active


# --- writes ----------------------------------------------------------------------------------------------------


def _insert_version(
    conn: Connection,
    definition: SegmentDefinition,
    version: int,
    *,
    created_by: str,
    members: Sequence[int] | None,
    unknown_count: int | None,
    source: str | None,
    now: dt.datetime,
) -> None:
    conn.execute(
        insert(VERSIONS).values(
            segment_id=definition.id,
            version=version,
            kind=definition.kind,
            name=definition.name,
            definition=definition.canonical_json(),
            content_hash=content_hash(definition, members),
            member_count=None if members is None else len(members),
            unknown_count=unknown_count,
            source=source and source[:200],
            created_by=created_by,
            created_at=now,
        )
    )
    if members:
        ids = sorted(set(members))
        for start in range(0, len(ids), 5000):
            conn.execute(
                insert(STATIC_MEMBERS),
                [
                    {"segment_id": definition.id, "version": version, "customer_id": i}
                    for i in ids[start : start + 5000]
                ],
            )


def create_segment(
    conn: Connection,
    definition: SegmentDefinition,
    *,
    created_by: str,
    origin: str = "api",
    source: str | None = None,
    members: Sequence[int] | None = None,
) -> StoredVersion:
    """Version 1 of a new segment (a static one with ``members`` when its list is known); SegmentExists when
    the id is taken (archived segments keep their id)."""
    exists = conn.execute(select(SEGMENTS.c.status).where(SEGMENTS.c.segment_id == definition.id)).first()
    if exists is not None:
        raise SegmentExists(f"segment {definition.id!r} already exists ({exists.status})", field="/id")
    now = _now()
    head = insert(SEGMENTS).values(
        segment_id=definition.id,
        kind=definition.kind,
        status="active",
        origin=origin,
        latest_version=1,
        created_by=created_by,
        created_at=now,
        updated_at=now,
    )
    if conn.dialect.name == "sqlite":  # one writer at a time: the check above holds (pysqlite has no savepoints)
        conn.execute(head)
    else:
        try:  # two creators racing: the second waits on the first's row, then finds the id taken
            with conn.begin_nested():
                conn.execute(head)
        except IntegrityError:
            raise SegmentExists(f"segment {definition.id!r} already exists (active)", field="/id") from None
    _insert_version(
        conn, definition, 1, created_by=created_by, members=members, unknown_count=None, source=source, now=now
    )
    return get_version(conn, definition.id, 1)


def save_version(
    conn: Connection,
    definition: SegmentDefinition,
    *,
    created_by: str,
    origin: str = "api",
    members: Sequence[int] | None = None,
    unknown_count: int | None = None,
    source: str | None = None,
) -> tuple[StoredVersion, bool]:
    """(version, created): version n+1 of an existing segment when the content changed, else the latest.

    A static segment keeps its latest list unless ``members`` gives a new one. The segment's row is locked
    first, so two editors racing get versions n+1 and n+2, never one version twice. SegmentArchived for an
    archived segment; the kind of a segment never changes (SegmentStoreError naming /kind).
    """
    head = get_segment(conn, definition.id, for_update=True)
    if head.status == "archived":
        raise SegmentArchived(f"segment {definition.id!r} is archived: it takes no new version")
    if definition.kind != head.kind:
        raise SegmentStoreError(
            f"segment {definition.id!r} is {head.kind}; its kind cannot change to {definition.kind}", field="/kind"
        )
    latest = get_version(conn, definition.id, head.latest_version)
    if definition.kind == "static" and members is None and latest.member_count is not None:
        members = static_members(conn, definition.id, latest.version)
        unknown_count = latest.unknown_count
    if content_hash(definition, members) == latest.content_hash:
        return latest, False
    version = head.latest_version + 1
    now = _now()
    _insert_version(
        conn,
        definition,
        version,
        created_by=created_by,
        members=members,
        unknown_count=unknown_count,
        source=source,
        now=now,
    )
    conn.execute(
        update(SEGMENTS)
        .where(SEGMENTS.c.segment_id == definition.id)
        .values(latest_version=version, origin=origin, updated_at=now)
    )
    return get_version(conn, definition.id, version), True


def archive_segment(conn: Connection, segment_id: str, *, archived_by: str) -> tuple[StoredSegment, bool]:
    """(segment, changed): archive a segment; archiving an archived one changes nothing. Its versions stay."""
    head = get_segment(conn, segment_id, for_update=True)
    if head.status == "archived":
        return head, False
    now = _now()
    conn.execute(
        update(SEGMENTS)
        .where(SEGMENTS.c.segment_id == segment_id)
        .values(status="archived", archived_at=now, archived_by=archived_by, updated_at=now)
    )
    return get_segment(conn, segment_id), True


# --- files -----------------------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: dict[str, int] = field(default_factory=dict)  # segment id -> new version
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # segment id -> why

    def lines(self) -> list[str]:
        out = [f"{s}: created v1" for s in self.created]
        out += [f"{s}: new version v{v}" for s, v in self.updated.items()]
        out += [f"{s}: unchanged" for s in self.unchanged]
        out += [f"{s}: skipped ({why})" for s, why in self.skipped.items()]
        return out


def import_definitions(
    conn: Connection, definitions: Iterable[SegmentDefinition], *, imported_by: str = "import"
) -> ImportReport:
    """Import definitions read from files into the store. A file owns its segment until someone edits it
    through the API: then the API's versions win and the file is skipped (named in the report), so a
    refresh never silently reverts a marketer's edit. Archived segments are not brought back."""
    from mo.segments.membership import parse_static_csv

    report = ImportReport()
    for definition in definitions:
        source = Path(definition.source).name if definition.source else None
        members = None
        csv_path = definition.static_csv
        if csv_path is not None:  # a static list kept beside its definition file: imported as the list
            if not csv_path.is_file():
                raise SegmentStoreError(f"{definition.source}: static list not found: {csv_path}", field="/static/path")
            members, _ = parse_static_csv(csv_path.read_text(encoding="utf-8"), str(csv_path))
        head = conn.execute(select(SEGMENTS).where(SEGMENTS.c.segment_id == definition.id)).first()
        if head is None:
            create_segment(conn, definition, created_by=imported_by, origin="file", source=source, members=members)
            report.created.append(definition.id)
        elif head.status == "archived":
            report.skipped[definition.id] = "archived"
        elif head.origin != "file":
            report.skipped[definition.id] = "edited through the API since; the store's versions are kept"
        else:
            stored, created = save_version(
                conn, definition, created_by=imported_by, origin="file", source=source, members=members
            )
            if created:
                report.updated[definition.id] = stored.version
            else:
                report.unchanged.append(definition.id)
    return report


def import_folder(engine: Engine, folder: Path | None = None, *, imported_by: str = "import") -> ImportReport:
    """Import every definition file of ``folder`` (default schemas/segments/examples) in one transaction;
    invalid files stop the import with every problem listed (DefinitionError), nothing imported."""
    definitions = load_definitions(folder or EXAMPLES_DIR)
    with engine.begin() as conn:
        return import_definitions(conn, definitions, imported_by=imported_by)


# --- static lists ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedList:
    column: str  # customer_id | phone | phone_token
    customer_ids: list[int]  # for customer_id lists
    tokens: list[str]  # for phone / phone_token lists: keyed hashes, never the clear numbers
    rows: int
    duplicates: int


def parse_static_list(content: str, *, pii_key: bytes | None, max_rows: int = MAX_UPLOAD_ROWS) -> ParsedList:
    """A static list upload: a CSV whose single header is customer_id, phone or phone_token, one value a line.

    Phone numbers are normalised and tokenised with the platform's keyed hash (mo.pii) as they are read; the
    clear numbers are dropped at once and no message ever echoes one (bad lines are named by number).
    """
    reader = csv.reader(io.StringIO(content.lstrip("\ufeff")))
    header = next(reader, None)
    column = header[0].strip().lower() if header and len(header) == 1 else None
    if column not in UPLOAD_COLUMNS:
        raise UploadError(
            "line 1: the header must be the single column customer_id, phone or phone_token",
            [(1, "header must be customer_id, phone or phone_token")],
        )
    if column == "phone" and pii_key is None:
        raise SegmentStoreError("phone lists need the PII tokenisation key (MO_PII_KEY), which is not set")
    ids: list[int] = []
    tokens: list[str] = []
    seen: set[Any] = set()
    bad: list[tuple[int, str]] = []
    duplicates = rows = 0
    for number, row in enumerate(reader, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        rows += 1
        if rows > max_rows:
            raise UploadError(f"more than {max_rows} rows (the limit of one static list)", [(number, "too many rows")])
        if len(row) != 1:
            bad.append((number, "one value per line"))
            continue
        value = row[0].strip()
        key: Any
        if column == "customer_id":
            if not re.fullmatch(r"[0-9]{1,18}", value) or int(value) == 0:
                bad.append((number, "not a customer id (a positive integer)"))
                continue
            key = int(value)
        elif column == "phone":
            normalised = pii.normalise("phone", value) or ""
            if not MOBILE.fullmatch(normalised):
                bad.append((number, "not a mainland mobile number (11 digits starting with 1, optionally +86)"))
                continue
            key = pii.token(pii_key, "phone", normalised)  # type: ignore[arg-type]
        else:
            key = value.lower()
            if not TOKEN_TEXT.fullmatch(key):
                bad.append((number, "not a phone token (64 hexadecimal characters)"))
                continue
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        (ids if column == "customer_id" else tokens).append(key)
    if bad:
        listed = "; ".join(f"line {n}: {m}" for n, m in bad[:MAX_REPORTED_LINES])
        more = f" (and {len(bad) - MAX_REPORTED_LINES} more)" if len(bad) > MAX_REPORTED_LINES else ""
        raise UploadError(f"{len(bad)} bad lines: {listed}{more}", bad[:MAX_REPORTED_LINES])
    if not ids and not tokens:
        raise UploadError("the list has no values after the header", [(2, "no values")])
    return ParsedList(column, ids, tokens, rows, duplicates)


@dataclass(frozen=True)
class ResolvedList:
    customer_ids: list[int]
    unknown: int  # rows that matched no live customer


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), ID_CHUNK):
        yield values[start : start + ID_CHUNK]


def resolve_static_list(
    source: Connection, serving: Connection | None, profile: str | None, parsed: ParsedList
) -> ResolvedList:
    """Customer ids of a parsed list, checked against the source's live customers.

    Phone tokens are matched against the published profiles' ``phone_token`` (the lake's keyed hash of each
    source customer's phone, indexed), then every id is confirmed in the source's customers: a customer deleted
    since the refresh is unknown. Several customers may share a phone; all of them are members.
    """
    from mo.oltp.models import Customer

    customers = Customer.__table__
    candidates: list[int] = []
    matched_rows = 0
    if parsed.column == "customer_id":
        candidates = parsed.customer_ids
    else:
        if serving is None or profile is None:
            raise SegmentStoreError("phone lists are resolved on the published profiles: nothing is published")
        found: dict[str, set[int]] = {}
        for chunk in _chunks(parsed.tokens):
            marks = ", ".join(f":t{i}" for i in range(len(chunk)))
            for row in serving.execute(
                text(f"SELECT phone_token, customer_id FROM {profile} WHERE phone_token IN ({marks})"),
                {f"t{i}": t for i, t in enumerate(chunk)},
            ):
                found.setdefault(row.phone_token, set()).add(int(row.customer_id))
        matched_rows = len(found)
        candidates = sorted({i for ids in found.values() for i in ids})
    live: set[int] = set()
    for chunk in _chunks(candidates):
        live.update(
            int(r[0])
            for r in source.execute(
                select(customers.c.id).where(customers.c.id.in_(list(chunk)), customers.c.deleted_at.is_(None))
            )
        )
    if parsed.column == "customer_id":
        unknown = len(parsed.customer_ids) - len(live)
    else:
        unknown = len(parsed.tokens) - matched_rows
    return ResolvedList(sorted(live), unknown)


# --- evaluation on the published refresh -----------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    customer_id: int
    reasons: tuple[str, ...] = ()  # '<json pointer>: <label>' of the clauses that held, or the list it came from


@dataclass(frozen=True)
class Evaluation:
    segment_id: str
    version: int
    kind: str
    method: str  # published_membership | rule_on_published_profile | static_list
    refresh_id: str
    as_of_date: dt.date
    members: list[Member]


def _json_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(str(v) for v in value)


def _rule_members(conn: Connection, store: Any, refresh: Any, rule: dict, as_of: dt.date) -> list[Member]:
    from mo.segments.compiler import compile_rule
    from mo.serving_store.preview import check_event_windows

    profile = store.physical("customer_profile", refresh.refresh_id)
    compiled = compile_rule(
        rule,
        dialect=store.dialect,
        as_of=as_of,
        profile=profile,
        events=store.physical("customer_event_daily", refresh.refresh_id),
    )
    check_event_windows(rule, as_of=as_of, refresh=refresh, retention_days=store.contract.event_retention_days)
    leaf_columns = {c.path: f"c{i}" for i, c in enumerate(compiled.clauses)}
    leaves = ", ".join(
        f"CASE WHEN {c.holds_sql} THEN 1 ELSE 0 END AS h{i}, {c.sql} AS c{i}" for i, c in enumerate(compiled.clauses)
    )
    holds = ", ".join(f"h{i}" for i in range(len(compiled.clauses)))
    query = (
        f"SELECT customer_id, {holds} FROM (SELECT p.customer_id AS customer_id, {leaves} FROM {profile} p) leaves "
        f"WHERE {compiled.where_over(leaf_columns)} ORDER BY customer_id"
    )
    members = []
    for row in conn.execute(text(query), compiled.params):
        reasons = tuple(c.reason for i, c in enumerate(compiled.clauses) if int(row[i + 1]))
        members.append(Member(int(row[0]), reasons))
    return members


def _known_in_profile(conn: Connection, profile: str, ids: Sequence[int]) -> list[int]:
    known: list[int] = []
    for chunk in _chunks(ids):
        marks = ", ".join(f":i{i}" for i in range(len(chunk)))
        known += [
            int(r[0])
            for r in conn.execute(
                text(f"SELECT customer_id FROM {profile} WHERE customer_id IN ({marks})"),
                {f"i{i}": v for i, v in enumerate(chunk)},
            )
        ]
    return sorted(known)


def evaluate_now(
    source: Engine | Connection,
    store: Any,
    segment_id: str,
    version: int | None = None,
    *,
    allow_archived: bool = False,
    timeout: float | None = None,
) -> Evaluation:
    """The members of ``segment_id`` at ``version`` (the latest when None) on the current published refresh,
    each with its reason, in customer id order; one refresh answers the whole evaluation.

    - the published membership (``segment_members``) when that refresh computed this very version (the
      reasons are the published matched clauses or the smart model's score);
    - else a dynamic rule evaluated on the refresh's ``customer_profile`` (and event counts) through the one
      segment compiler, with the clauses each member matched, as of the refresh's date;
    - else a static list's members that are in the refresh's profile ("static: list vN ...").

    ``source`` is the core database holding the definition store, ``store`` the published serving store
    (mo.serving_store.store.SqlServingStore). Raises SegmentNotFound (no such segment or version),
    SegmentArchived (unless ``allow_archived``), NotEvaluable (a smart segment no refresh has computed at
    this version, a static segment without a list), mo.serving_store.store.NothingPublished and
    mo.serving_store.preview.PreviewTimeout (the rule ran longer than ``timeout``, default the preview's).
    """
    from mo.serving_store.preview import PREVIEW_TIMEOUT_SECONDS, statement_timeout
    from mo.serving_store.store import NothingPublished

    def read(conn: Connection) -> tuple[StoredSegment, StoredVersion, list[int] | None]:
        head = get_segment(conn, segment_id)
        stored = get_version(conn, segment_id, version)
        listed = None
        if stored.definition.kind == "static" and stored.member_count is not None:
            listed = static_members(conn, segment_id, stored.version)
        return head, stored, listed

    if isinstance(source, Engine):
        with source.connect() as conn:
            head, stored, listed = read(conn)
    else:
        head, stored, listed = read(source)
    if head.status == "archived" and not allow_archived:
        raise SegmentArchived(f"segment {segment_id!r} is archived")
    kind = stored.definition.kind
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            refresh = store.current_refresh(conn)
            if refresh is None:
                raise NothingPublished(f"the serving store ({store.qualified('refreshes')}) has no current refresh")
            segments_table = store.physical("segments", refresh.refresh_id)
            published = conn.execute(
                text(f"SELECT segment_version FROM {segments_table} WHERE segment_id = :s"),
                {"s": segment_id},
            ).first()
            base = {
                "segment_id": segment_id,
                "version": stored.version,
                "kind": kind,
                "refresh_id": refresh.refresh_id,
                "as_of_date": refresh.as_of_date,
            }
            if published is not None and int(published[0]) == stored.version:
                members_table = store.physical("segment_members", refresh.refresh_id)
                rows = conn.execute(
                    text(
                        f"SELECT customer_id, matched_clauses FROM {members_table} "
                        "WHERE segment_id = :s ORDER BY customer_id"
                    ),
                    {"s": segment_id},
                )
                members = [Member(int(r[0]), _json_list(r[1])) for r in rows]
                return Evaluation(**base, method="published_membership", members=members)
            profile = store.physical("customer_profile", refresh.refresh_id)
            if kind == "dynamic":
                with statement_timeout(conn, timeout or PREVIEW_TIMEOUT_SECONDS):
                    members = _rule_members(conn, store, refresh, stored.definition.rule or {}, refresh.as_of_date)
                return Evaluation(**base, method="rule_on_published_profile", members=members)
            if kind == "static" and listed is not None:
                reason = (
                    f"static: list v{stored.version} uploaded {stored.created_at:%Y-%m-%d} by {stored.created_by}",
                )
                members = [Member(i, reason) for i in _known_in_profile(conn, profile, listed)]
                return Evaluation(**base, method="static_list", members=members)
    if kind == "static":
        raise NotEvaluable(f"static segment {segment_id!r} v{stored.version} has no uploaded list yet")
    raise NotEvaluable(
        f"{kind} segment {segment_id!r} v{stored.version} is not computed on the published refresh "
        f"{refresh.refresh_id}; the next build_profiles computes it"
    )


def preview_members(store: Any, ids: Sequence[int], *, sample_size: int = 20) -> Any:
    """A Preview (count, sample, distributions) of a list of customer ids on the current published refresh:
    the ones in its profile (a static list, or a segment's evaluated members)."""
    from mo.serving_store.preview import DISTRIBUTION_COLUMNS, Preview
    from mo.serving_store.store import NothingPublished

    with store.read_transaction() as conn:
        refresh = store.current_refresh(conn)
        if refresh is None:
            raise NothingPublished(f"the serving store ({store.qualified('refreshes')}) has no current refresh")
        profile = store.physical("customer_profile", refresh.refresh_id)
        columns = ", ".join(DISTRIBUTION_COLUMNS)
        distributions: dict[str, dict[Any, int]] = {c: {} for c in DISTRIBUTION_COLUMNS}
        known: list[int] = []
        for chunk in _chunks(sorted(set(ids))):
            marks = ", ".join(f":i{i}" for i in range(len(chunk)))
            for row in conn.execute(
                text(f"SELECT customer_id, {columns} FROM {profile} WHERE customer_id IN ({marks})"),
                {f"i{i}": v for i, v in enumerate(chunk)},
            ):
                known.append(int(row[0]))
                for column, value in zip(DISTRIBUTION_COLUMNS, row[1:], strict=True):
                    distributions[column][value] = distributions[column].get(value, 0) + 1
    return Preview(
        count=len(known),
        sample_ids=sorted(known)[:sample_size],
        distributions={
            c: dict(sorted(d.items(), key=lambda kv: (-kv[1], str(kv[0])))) for c, d in distributions.items()
        },
        as_of=refresh.as_of_date,
        refresh_id=refresh.refresh_id,
    )


def definition_from(data: Any) -> SegmentDefinition:
    """A validated definition (DefinitionError lists every problem with its JSON pointer)."""
    return parse_definition(data)


def count_versions(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(VERSIONS)).scalar() or 0)


__all__ = [
    "ActiveSegment",
    "DefinitionError",
    "Evaluation",
    "ImportReport",
    "Member",
    "NotEvaluable",
    "SegmentArchived",
    "SegmentExists",
    "SegmentNotFound",
    "SegmentStoreError",
    "StoredSegment",
    "StoredVersion",
    "UploadError",
    "active_definitions",
    "archive_segment",
    "content_hash",
    "create_segment",
    "evaluate_now",
    "get_segment",
    "get_version",
    "import_definitions",
    "import_folder",
    "list_segments",
    "parse_static_list",
    "preview_members",
    "resolve_static_list",
    "save_version",
    "static_members",
    "versions",
]
