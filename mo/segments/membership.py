"""Segment membership per run, in the lake: who was in which segment at each run, which definition version put
them there, and which clauses of the rule held for each member.

Tables (namespace ``<catalog>.segments``):
- ``membership``: one row per (run, segment, member) with ``matched_clauses`` ('<json pointer>: <label>' of the
  leaves that hold in the direction the rule asks: a leaf under NOT appears as 'not <label>' when it is false).
  Partitioned by ``as_of_date`` and ``run_id`` (identity): re-running a run replaces exactly its partition in
  one Iceberg commit, whatever compaction did to the files, and readers see the old or the new rows, never a
  mix. Written ordered by (segment_id, customer_id) so reads of one segment or one customer prune files.
- ``runs``: one row per (run, segment) with the member count, also for segments that matched nobody, so
  "membership on date D" can tell an empty segment from a segment that was not evaluated.
- ``static_uploads`` and ``static_members``: each CSV upload of a static segment is a frozen snapshot; every
  later run carries the latest snapshot unchanged, and older runs keep the snapshot they were computed with.

Point-in-time read-back (``members_at``) and explanations (``explain``) read these tables only.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mo.config import Settings
from mo.errors import MoError
from mo.segments.compiler import compile_rule, quote_identifier
from mo.segments.definitions import (
    SegmentDefinition,
    SegmentNotFound,
    get_definition,
    save_definitions,
)

RUN_ID = re.compile(r"^[A-Za-z0-9_.:+\-]{1,200}$")
MAX_REPORTED_LINES = 20


class StaticListError(MoError):
    """An uploaded static segment list is unreadable; the message lists the bad lines by number."""


@dataclass(frozen=True)
class SegmentResult:
    segment_id: str
    version: int
    kind: str
    members: int | None  # None when the segment was skipped
    note: str = ""


@dataclass
class RefreshReport:
    run_id: str
    as_of: dt.date
    segments: list[SegmentResult] = field(default_factory=list)

    @property
    def sizes(self) -> dict[str, int]:
        return {s.segment_id: s.members for s in self.segments if s.members is not None}

    @property
    def skipped(self) -> list[SegmentResult]:
        return [s for s in self.segments if s.members is None]


@dataclass(frozen=True)
class StaticUpload:
    segment_id: str
    snapshot_id: str
    members: int
    unknown_ids: list[int]
    duplicates: int
    source_file: str


@dataclass(frozen=True)
class SegmentMembers:
    segment_id: str
    run_id: str
    as_of_date: dt.date
    segment_version: int
    customer_ids: list[int]


@dataclass(frozen=True)
class MatchedClause:
    path: str
    label: str


@dataclass(frozen=True)
class Explanation:
    segment_id: str
    customer_id: int
    run_id: str
    as_of_date: dt.date
    segment_version: int
    is_member: bool
    matched: list[MatchedClause]

    def __str__(self) -> str:
        head = (
            f"customer {self.customer_id} {'is' if self.is_member else 'is not'} in {self.segment_id} "
            f"(v{self.segment_version}, run {self.run_id}, as of {self.as_of_date})"
        )
        return "\n".join([head, *(f"  {m.path}: {m.label}" for m in self.matched)])


# --- tables ----------------------------------------------------------------------------------------------------


def _table(settings: Settings, name: str) -> str:
    return f"{settings.catalog_name}.segments.{name}"


def profile_table(settings: Settings) -> str:
    return f"{settings.catalog_name}.marts.customer_profile"


def event_daily_table(settings: Settings) -> str:
    return f"{settings.catalog_name}.marts.customer_event_daily"


def ensure_tables(spark, settings: Settings) -> None:
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.segments")
    membership = _table(settings, "membership")
    if not spark.catalog.tableExists(membership):
        spark.sql(
            f"""CREATE TABLE IF NOT EXISTS {membership} (
                run_id string NOT NULL,
                as_of_date date NOT NULL,
                segment_id string NOT NULL,
                segment_version int NOT NULL,
                customer_id bigint NOT NULL,
                matched_clauses array<string> NOT NULL,
                computed_at timestamp NOT NULL
            ) USING iceberg
            PARTITIONED BY (as_of_date, run_id)
            TBLPROPERTIES ('write.metadata.metrics.column.segment_id' = 'full',
                           'write.metadata.metrics.column.run_id' = 'full')"""
        )
        spark.sql(f"ALTER TABLE {membership} WRITE ORDERED BY segment_id, customer_id")
    spark.sql(
        f"""CREATE TABLE IF NOT EXISTS {_table(settings, "runs")} (
            run_id string NOT NULL,
            as_of_date date NOT NULL,
            segment_id string NOT NULL,
            segment_version int NOT NULL,
            kind string NOT NULL,
            member_count bigint NOT NULL,
            computed_at timestamp NOT NULL
        ) USING iceberg"""
    )
    spark.sql(
        f"""CREATE TABLE IF NOT EXISTS {_table(settings, "static_uploads")} (
            segment_id string NOT NULL,
            snapshot_id string NOT NULL,
            uploaded_at timestamp NOT NULL,
            uploaded_by string NOT NULL,
            source_file string NOT NULL,
            member_count bigint NOT NULL,
            unknown_ids array<bigint> NOT NULL
        ) USING iceberg"""
    )
    spark.sql(
        f"""CREATE TABLE IF NOT EXISTS {_table(settings, "static_members")} (
            segment_id string NOT NULL,
            snapshot_id string NOT NULL,
            customer_id bigint NOT NULL
        ) USING iceberg"""
    )


def _now() -> dt.datetime:
    # Time-zone aware: PySpark converts naive datetimes with the Python process's local zone.
    return dt.datetime.now(dt.UTC)


# --- static segments -------------------------------------------------------------------------------------------


def parse_static_csv(text: str, source: str) -> tuple[list[int], int]:
    """Customer ids of a static list (header ``customer_id``), and how many repeated ids were dropped.

    Every bad line is reported with its line number (up to MAX_REPORTED_LINES), not just the first.
    """
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows or [c.strip().lower() for c in rows[0]] != ["customer_id"]:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise StaticListError(f"{source}: line 1: the header must be the single column customer_id, found {found!r}")
    ids: list[int] = []
    seen: set[int] = set()
    duplicates = 0
    bad: list[str] = []
    for number, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 1:
            bad.append(f"line {number}: expected one value, found {len(row)}")
            continue
        value = row[0].strip()
        if not re.fullmatch(r"\d{1,18}", value) or int(value) == 0:
            bad.append(f"line {number}: {value!r} is not a customer id (a positive integer)")
            continue
        customer_id = int(value)
        if customer_id in seen:
            duplicates += 1
            continue
        seen.add(customer_id)
        ids.append(customer_id)
    if bad:
        more = f" (and {len(bad) - MAX_REPORTED_LINES} more)" if len(bad) > MAX_REPORTED_LINES else ""
        raise StaticListError(f"{source}: {len(bad)} bad lines: " + "; ".join(bad[:MAX_REPORTED_LINES]) + more)
    if not ids:
        raise StaticListError(f"{source}: no customer ids after the header")
    return ids, duplicates


def upload_static(
    spark, settings: Settings, segment_id: str, csv_path: Path | str, *, uploaded_by: str = "mo"
) -> StaticUpload:
    """Freeze a CSV of customer ids as the static segment's new snapshot; later runs carry it unchanged.

    Ids that are not in customer_profile are reported (``unknown_ids``) and left out of the snapshot.
    """
    from pyspark.sql import functions as F

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", segment_id):
        raise MoError(f"{segment_id!r} is not a segment id (lowercase letters, digits and hyphens)")
    path = Path(csv_path)
    if not path.is_file():
        raise StaticListError(f"static segment list not found: {path}")
    ids, duplicates = parse_static_csv(path.read_text(encoding="utf-8"), str(path))
    try:
        stored = get_definition(spark, settings, segment_id)
    except SegmentNotFound:
        stored = None
    if stored is not None and stored.definition.kind != "static":
        kind = stored.definition.kind
        raise MoError(f"segment {segment_id!r} is {kind}, not static: only static segments take an uploaded list")
    ensure_tables(spark, settings)
    profile = profile_table(settings)
    if not spark.catalog.tableExists(profile):
        raise MoError(f"{profile} does not exist: build the marts before uploading a static segment")
    uploaded = spark.createDataFrame([(i,) for i in ids], "customer_id bigint")
    known = {r[0] for r in uploaded.join(spark.table(profile).select("customer_id"), "customer_id").collect()}
    unknown = sorted(set(ids) - known)
    members = [i for i in ids if i in known]
    now = _now()
    digest = hashlib.sha256(f"{segment_id}|{now.isoformat()}|{','.join(map(str, members))}".encode()).hexdigest()
    snapshot_id = digest[:16]
    # Members first, then the upload row that makes the snapshot current: a crash in between leaves an
    # unreferenced snapshot, never a current one with missing members.
    spark.createDataFrame([(i,) for i in members] or [], "customer_id bigint").select(
        F.lit(segment_id).alias("segment_id"), F.lit(snapshot_id).alias("snapshot_id"), "customer_id"
    ).writeTo(_table(settings, "static_members")).append()
    spark.createDataFrame(
        [(segment_id, snapshot_id, now, uploaded_by, path.name, len(members), unknown)],
        "segment_id string, snapshot_id string, uploaded_at timestamp, uploaded_by string, source_file string, "
        "member_count bigint, unknown_ids array<bigint>",
    ).writeTo(_table(settings, "static_uploads")).append()
    return StaticUpload(segment_id, snapshot_id, len(members), unknown, duplicates, path.name)


def _latest_static_snapshot(spark, settings: Settings, segment_id: str):
    rows = spark.sql(
        f"SELECT snapshot_id, uploaded_at, source_file FROM {_table(settings, 'static_uploads')} "
        "WHERE segment_id = :segment_id ORDER BY uploaded_at DESC, snapshot_id DESC LIMIT 1",
        args={"segment_id": segment_id},
    ).collect()
    return rows[0] if rows else None


# --- refresh ---------------------------------------------------------------------------------------------------


def _dynamic_members(spark, settings: Settings, definition: SegmentDefinition, as_of: dt.date):
    """customer_id and matched_clauses of every member, each leaf evaluated once per customer."""
    assert definition.rule is not None
    compiled = compile_rule(
        definition.rule,
        dialect="spark",
        as_of=as_of,
        profile=profile_table(settings),
        events=event_daily_table(settings),
    )
    leaf_columns = {c.path: f"c{i}" for i, c in enumerate(compiled.clauses)}
    args = dict(compiled.params)
    reasons = []
    for i, clause in enumerate(compiled.clauses):
        args[f"m{i}"] = clause.reason  # labels carry rule values: bound like every other value
        holds = f"(NOT c{i})" if clause.negated else f"c{i}"
        reasons.append(f"CASE WHEN {holds} THEN :m{i} END")
    leaves = ", ".join(f"{c.sql} AS {leaf_columns[c.path]}" for c in compiled.clauses)
    customer_id = quote_identifier("customer_id", "spark")
    query = (
        f"WITH leaves AS (SELECT p.{customer_id} AS customer_id, {leaves} FROM {profile_table(settings)} p) "
        f"SELECT customer_id, filter(array({', '.join(reasons)}), x -> x IS NOT NULL) AS matched_clauses "
        f"FROM leaves WHERE {compiled.where_over(leaf_columns)}"
    )
    return spark.sql(query, args=args)


def _static_members(spark, settings: Settings, definition: SegmentDefinition, uploaded_by: str):
    snapshot = _latest_static_snapshot(spark, settings, definition.id)
    if snapshot is None and definition.static_csv is not None:
        upload_static(spark, settings, definition.id, definition.static_csv, uploaded_by=uploaded_by)
        snapshot = _latest_static_snapshot(spark, settings, definition.id)
    if snapshot is None:
        return None, "no static list uploaded yet (mo segments upload-static)"
    uploaded = f"{snapshot.uploaded_at:%Y-%m-%d}"
    reason = f"static: snapshot {snapshot.snapshot_id} uploaded {uploaded} from {snapshot.source_file}"
    frame = spark.sql(
        f"SELECT customer_id, array(:reason) AS matched_clauses FROM {_table(settings, 'static_members')} "
        "WHERE segment_id = :segment_id AND snapshot_id = :snapshot_id",
        args={"reason": reason, "segment_id": definition.id, "snapshot_id": snapshot.snapshot_id},
    )
    return frame, f"snapshot {snapshot.snapshot_id}"


@dataclass(frozen=True)
class StoreList:
    """A static list of the definition store: its customer ids and when and by whom it was uploaded."""

    customer_ids: list[int]
    uploaded_at: dt.datetime
    uploaded_by: str


def _listed_members(spark, settings: Settings, listed: StoreList, version: int):
    reason = f"static: list v{version} uploaded {listed.uploaded_at:%Y-%m-%d} by {listed.uploaded_by}"
    ids = spark.createDataFrame([(i,) for i in listed.customer_ids] or [], "customer_id bigint")
    known = ids.join(spark.table(profile_table(settings)).select("customer_id"), "customer_id")
    from pyspark.sql import functions as F

    return known.select("customer_id", F.array(F.lit(reason)).alias("matched_clauses")), f"list v{version}"


def refresh_segments(
    spark,
    settings: Settings,
    definitions: Iterable[SegmentDefinition],
    *,
    as_of: dt.date,
    run_id: str,
    created_by: str = "segment-refresh",
    pinned: Mapping[str, tuple[int, str]] | None = None,
    lists: Mapping[str, StoreList] | None = None,
) -> RefreshReport:
    """Evaluate every static and dynamic segment for ``as_of`` and write run ``run_id``'s membership.

    Definitions from the definition store (mo.segments.store) come with ``pinned`` (segment id -> the store's
    version and content hash, saved under that very version) and, for static lists, ``lists`` (the list's
    customer ids, kept where they are in customer_profile).

    Definitions are saved first (a changed definition becomes version n+1) and each membership row records the
    version it was computed with. Re-running the same ``run_id`` replaces that run's rows in one commit.
    Smart segments take the latest model version trained on or before ``as_of`` (mo.segments.smart), scoring
    the customers first if needed; they are listed as skipped while their model has no trained version.
    """
    from pyspark.sql import functions as F

    if not RUN_ID.match(run_id):
        raise MoError(f"run id {run_id!r} must be 1-200 letters, digits or _ . : + -")
    definitions = list(definitions)
    ensure_tables(spark, settings)
    for table in (profile_table(settings), event_daily_table(settings)):
        if not spark.catalog.tableExists(table):
            raise MoError(f"{table} does not exist: build the marts (dbt) before refreshing segments")
    spark.sql(f"REFRESH TABLE {profile_table(settings)}")
    spark.sql(f"REFRESH TABLE {event_daily_table(settings)}")
    lists = lists or {}
    versions = save_definitions(spark, settings, definitions, created_by=created_by, pinned=pinned)
    computed_at = _now()
    report = RefreshReport(run_id=run_id, as_of=as_of)
    frames = []
    for definition in definitions:
        version = versions[definition.id]
        if definition.kind == "dynamic":
            frame, note = _dynamic_members(spark, settings, definition, as_of), ""
        elif definition.kind == "static" and definition.id in lists:
            frame, note = _listed_members(spark, settings, lists[definition.id], version)
        elif definition.kind == "static":
            frame, note = _static_members(spark, settings, definition, created_by)
        else:
            from mo.segments.smart import smart_members

            frame, note = smart_members(spark, settings, definition, as_of=as_of)
        if frame is None:
            report.segments.append(SegmentResult(definition.id, version, definition.kind, None, note))
            continue
        frames.append(
            (
                definition,
                version,
                frame.select(
                    F.lit(run_id).alias("run_id"),
                    F.lit(as_of).cast("date").alias("as_of_date"),
                    F.lit(definition.id).alias("segment_id"),
                    F.lit(version).cast("int").alias("segment_version"),
                    F.col("customer_id").cast("bigint").alias("customer_id"),
                    F.col("matched_clauses"),
                    F.lit(computed_at.strftime("%Y-%m-%d %H:%M:%S.%f")).cast("timestamp").alias("computed_at"),
                ),
                note,
            )
        )
    membership_table = _table(settings, "membership")
    if frames:
        union = frames[0][2]
        for _, _, frame, _ in frames[1:]:
            union = union.unionByName(frame)
        union = union.localCheckpoint()  # evaluate once: written and counted from the same result
        counts = {r.segment_id: r.n for r in union.groupBy("segment_id").agg(F.count("*").alias("n")).collect()}
        union.writeTo(membership_table).overwrite(F.col("run_id") == F.lit(run_id))
    else:
        counts = {}
        spark.sql(f"DELETE FROM {membership_table} WHERE run_id = :run_id", args={"run_id": run_id})
    run_rows = []
    for definition, version, _, note in frames:
        members = counts.get(definition.id, 0)
        report.segments.append(SegmentResult(definition.id, version, definition.kind, members, note))
        run_rows.append((run_id, as_of, definition.id, version, definition.kind, members, computed_at))
    record_runs(spark, settings, run_id, run_rows)
    report.segments.sort(key=lambda s: s.segment_id)
    return report


def record_runs(spark, settings: Settings, run_id: str, run_rows: list[tuple]) -> None:
    """Replace the rows of ``run_id`` in ``segments.runs`` by ``run_rows``, in one commit.

    A MERGE works row by row: an overwrite by ``run_id`` would only work while no data file holds rows of
    several runs, which any compaction of the table undoes.
    """
    if not RUN_ID.match(run_id):
        raise MoError(f"run id {run_id!r} must be 1-200 letters, digits or _ . : + -")
    spark.createDataFrame(
        run_rows,
        "run_id string, as_of_date date, segment_id string, segment_version int, kind string, "
        "member_count bigint, computed_at timestamp",
    ).createOrReplaceTempView("mo_segment_runs")
    spark.sql(
        f"""
        MERGE INTO {_table(settings, "runs")} t USING mo_segment_runs s
        ON t.run_id = s.run_id AND t.segment_id = s.segment_id
        WHEN MATCHED THEN UPDATE SET *
        WHEN NOT MATCHED THEN INSERT *
        WHEN NOT MATCHED BY SOURCE AND t.run_id = '{run_id}' THEN DELETE
        """
    )


def refresh_from_folder(
    settings: Settings,
    folder: Path | None = None,
    *,
    as_of: dt.date | None = None,
    run_id: str | None = None,
    created_by: str = "segment-refresh",
    import_files: bool = True,
) -> RefreshReport:
    """Refresh every active segment of the definition store (the core database, mo.segments.store) on the
    lake's marts: what ``mo segments refresh`` and build_profiles run. The definition files of ``folder``
    (default: schemas/segments/examples) are imported into the store first (``import_files``); a segment
    edited through the API since keeps the API's versions. ``as_of`` defaults to today (UTC); ``run_id`` to
    ``manual-<as_of>``, so running it twice on one day replaces that day's manual run."""
    from sqlalchemy.exc import SQLAlchemyError

    from mo.oltp.db import make_engine
    from mo.segments import store as segment_store
    from spark_jobs.session import get_spark

    engine = make_engine(settings.resolved_source_url)
    try:
        if import_files:  # invalid files stop here, before Spark starts
            segment_store.import_folder(engine, folder, imported_by=f"file:{created_by}"[:80])
        with engine.connect() as conn:
            active = segment_store.active_definitions(conn)
    except SQLAlchemyError as exc:
        raise MoError(
            "the segment definition store (segments, segment_definitions in the core database) cannot be read; "
            f"is the core database migrated (mo.oltp migrations 0008)? {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}"
        ) from None
    finally:
        engine.dispose()
    definitions = [a.version.definition for a in active]
    pinned = {a.version.segment_id: (a.version.version, a.version.content_hash) for a in active}
    lists = {
        a.version.segment_id: StoreList(a.static_members, a.version.created_at, a.version.created_by)
        for a in active
        if a.static_members is not None
    }
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    spark = get_spark(settings, app_name="segment-refresh")
    return refresh_segments(
        spark,
        settings,
        definitions,
        as_of=as_of,
        run_id=run_id or f"manual-{as_of}",
        created_by=created_by,
        pinned=pinned,
        lists=lists,
    )


# --- reading back ----------------------------------------------------------------------------------------------


def _run_on_or_before(spark, settings: Settings, segment_id: str, at: dt.date | None):
    ensure_tables(spark, settings)
    runs = _table(settings, "runs")
    spark.sql(f"REFRESH TABLE {runs}")
    condition = "segment_id = :segment_id" + (" AND as_of_date <= :at" if at is not None else "")
    args: dict = {"segment_id": segment_id}
    if at is not None:
        args["at"] = at
    rows = spark.sql(
        f"SELECT run_id, as_of_date, segment_version FROM {runs} WHERE {condition} "
        "ORDER BY as_of_date DESC, computed_at DESC LIMIT 1",
        args=args,
    ).collect()
    if not rows:
        when = f" on or before {at}" if at is not None else ""
        raise SegmentNotFound(f"segment {segment_id!r} has no membership run{when} in {runs}")
    return rows[0]


def membership_frame(spark, settings: Settings, segment_id: str, at: dt.date | None = None):
    """(run row, DataFrame of customer_id, matched_clauses) of the latest run on or before ``at``."""
    run = _run_on_or_before(spark, settings, segment_id, at)
    table = _table(settings, "membership")
    spark.sql(f"REFRESH TABLE {table}")
    frame = spark.sql(
        f"SELECT customer_id, matched_clauses FROM {table} "
        "WHERE run_id = :run_id AND as_of_date = :as_of AND segment_id = :segment_id",
        args={"run_id": run.run_id, "as_of": run.as_of_date, "segment_id": segment_id},
    )
    return run, frame


def members_at(spark, settings: Settings, segment_id: str, at: dt.date) -> SegmentMembers:
    """The membership of ``segment_id`` in the latest run whose as-of date is on or before ``at``."""
    run, frame = membership_frame(spark, settings, segment_id, at)
    ids = sorted(r.customer_id for r in frame.select("customer_id").collect())
    return SegmentMembers(segment_id, run.run_id, run.as_of_date, run.segment_version, ids)


def explain(spark, settings: Settings, segment_id: str, customer_id: int, at: dt.date | None = None) -> Explanation:
    """Why ``customer_id`` is (or is not) in ``segment_id`` in the latest run on or before ``at`` (latest run
    when None): the clauses of the rule that held for that customer, as recorded by the run."""
    run, frame = membership_frame(spark, settings, segment_id, at)
    rows = frame.where(frame.customer_id == int(customer_id)).collect()
    matched = []
    if rows:
        for reason in rows[0].matched_clauses:
            path, _, label = reason.partition(": ")
            matched.append(MatchedClause(path, label))
    return Explanation(
        segment_id=segment_id,
        customer_id=int(customer_id),
        run_id=run.run_id,
        as_of_date=run.as_of_date,
        segment_version=run.segment_version,
        is_member=bool(rows),
        matched=matched,
    )
