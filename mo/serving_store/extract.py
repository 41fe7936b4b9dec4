"""What a publish reads from the lakehouse, as Spark DataFrames pinned to one Iceberg snapshot each.

The SQL store and Redis both read the marts (profiles are read twice); pinning every input to the
snapshot current when the publish starts gives both stores the same data even if a build commits in
between, and the audit row records exactly which snapshots were published.

Rows leave Spark as Arrow record batches in chunks of about 200k rows (rows hashed on their first
column; a chunk is one Arrow collect done by the JVM), so a 1M-row mart never sits in driver memory
at once, no row is pickled one by one and the executors need no Python. The price is one scan of the
input per chunk, which Iceberg's columnar reads keep cheap next to the database load itself.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mo.serving_store.contract import ServingContract, ServingTable

# Rows per driver-side chunk: bounds driver memory (a profile row is about 1 KB in Arrow) for 1M+ row marts.
CHUNK_ROWS = 200_000

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class PublishInputs:
    """Fully qualified lakehouse tables a publish reads."""

    profile: str
    events: str
    membership: str
    definitions: str
    timeline: str | None = None  # the per-event timeline (optional: an older lake has none)
    runs: str | None = None  # every membership run per segment, empty ones included (optional)
    campaign_results: str | None = None  # the campaign results marts (optional: a lake before campaigns)
    campaign_uplift: str | None = None

    @classmethod
    def for_catalog(cls, catalog: str) -> PublishInputs:
        return cls(
            profile=f"{catalog}.marts.customer_profile",
            events=f"{catalog}.marts.customer_event_daily",
            membership=f"{catalog}.segments.membership",
            definitions=f"{catalog}.segments.definitions",
            timeline=f"{catalog}.marts.fct_customer_events",
            runs=f"{catalog}.segments.runs",
            campaign_results=f"{catalog}.marts.mart_campaign_results",
            campaign_uplift=f"{catalog}.marts.mart_campaign_uplift",
        )


@dataclass
class PinnedInputs:
    """Each input as a DataFrame at its pinned snapshot (None: the table does not exist)."""

    frames: dict[str, DataFrame | None]
    snapshots: dict[str, int | None]  # table -> snapshot id read (None: empty table)

    def source(self) -> dict[str, Any]:
        return {"tables": self.snapshots}


def pin_inputs(spark: SparkSession, inputs: PublishInputs, *, required: tuple[str, ...]) -> PinnedInputs:
    """Read each input at its current Iceberg snapshot. Tables in ``required`` must exist."""
    return pin_tables(spark, vars(inputs), required=required)


def pin_tables(
    spark: SparkSession, tables: Mapping[str, str | None], *, required: tuple[str, ...] = ()
) -> PinnedInputs:
    """Each fully qualified table of ``tables`` (key -> name) at its current snapshot: later commits to a table
    (a build running beside the publish) do not change what is read. Keys in ``required`` must exist; others
    that do not are None."""
    from mo.serving_store.store import ServingStoreError

    frames: dict[str, DataFrame | None] = {}
    snapshots: dict[str, int | None] = {}
    for key, table in tables.items():
        if table is None or not spark.catalog.tableExists(table):
            if key in required:
                raise ServingStoreError(f"input table {table} does not exist: build the marts before publishing")
            frames[key] = None
            continue
        row = spark.sql(f"SELECT snapshot_id FROM {table}.refs WHERE name = 'main'").first()
        snapshot = int(row[0]) if row else None
        snapshots[table] = snapshot
        query = f"SELECT * FROM {table}" + (f" VERSION AS OF {snapshot}" if snapshot is not None else "")
        frames[key] = spark.sql(query)
    return PinnedInputs(frames, snapshots)


def serving_columns(df: DataFrame, table: ServingTable) -> DataFrame:
    """The contract's columns in contract order; complex values (maps, arrays) as JSON text."""
    from pyspark.sql import functions as F

    missing = [c for c in table.column_names if c not in df.columns]
    if missing:
        from mo.serving_store.store import ServingStoreError

        raise ServingStoreError(f"{table.name}: input lacks contract column(s) {', '.join(missing)}")
    from pyspark.sql.types import ArrayType, MapType, StructType

    complex_types = (ArrayType, MapType, StructType)
    columns = []
    for c in table.columns:
        col = F.col(c.name)
        if isinstance(df.schema[c.name].dataType, complex_types):
            col = F.to_json(col)
        columns.append(col.alias(c.name))
    return df.select(*columns)


def campaign_frames(pinned: PinnedInputs, contract: ServingContract) -> dict[str, DataFrame | None]:
    """The campaign results marts in their serving tables' columns (None: the mart is not built yet)."""
    frames: dict[str, DataFrame | None] = {}
    for table, key in (("campaign_results", "campaign_results"), ("campaign_uplift", "campaign_uplift")):
        frame = pinned.frames.get(key)
        frames[table] = serving_columns(frame, contract.tables[table]) if frame is not None else None
    return frames


def profile_frame(pinned: PinnedInputs, contract: ServingContract) -> DataFrame:
    profile = pinned.frames["profile"]
    assert profile is not None
    return serving_columns(profile, contract.tables["customer_profile"])


def event_frame(pinned: PinnedInputs, contract: ServingContract, as_of: date) -> DataFrame | None:
    from pyspark.sql import functions as F

    events = pinned.frames["events"]
    if events is None:
        return None
    first_day = as_of - timedelta(days=contract.event_retention_days - 1)
    recent = events.where((F.col("event_date") >= F.lit(first_day)) & (F.col("event_date") <= F.lit(as_of)))
    return serving_columns(recent, contract.tables["customer_event_daily"])


def timeline_frame(pinned: PinnedInputs, contract: ServingContract, as_of: date) -> DataFrame | None:
    """The per-event timeline in the same window as the daily counts (None: the lake has no timeline)."""
    from pyspark.sql import functions as F

    timeline = pinned.frames.get("timeline")
    if timeline is None:
        return None
    first_day = as_of - timedelta(days=contract.event_retention_days - 1)
    recent = timeline.where((F.col("event_date") >= F.lit(first_day)) & (F.col("event_date") <= F.lit(as_of)))
    return serving_columns(recent, contract.tables["customer_events"])


def segment_frames(
    pinned: PinnedInputs, contract: ServingContract, as_of: date, history_from: DataFrame | None = None
) -> tuple[DataFrame | None, DataFrame | None]:
    """(segments, segment_members): each segment's latest membership run on or before ``as_of``; with
    ``history_from`` (segment_id, history_from), the first day the published membership history covers."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    membership, definitions = pinned.frames["membership"], pinned.frames["definitions"]
    if membership is None and definitions is None:
        return None, None

    latest_runs = members = None
    if membership is not None:
        current = membership.where(F.col("as_of_date") <= F.lit(as_of))
        run_columns = ["segment_id", "run_id", "as_of_date", "computed_at", "segment_version"]
        runs = current.select(*run_columns)
        listed = pinned.frames.get("runs")
        if listed is not None:
            # segments.runs also lists runs that matched nobody: without them, a segment whose latest run is
            # empty would be published with the members of the run before it, as if they were current.
            runs = runs.unionByName(listed.where(F.col("as_of_date") <= F.lit(as_of)).select(*run_columns))
        runs = runs.groupBy("segment_id", "run_id").agg(
            F.max("as_of_date").alias("as_of_date"),
            F.max("computed_at").alias("refreshed_at"),
            F.max("segment_version").cast("int").alias("run_version"),
        )
        newest_first = Window.partitionBy("segment_id").orderBy(
            F.desc("as_of_date"), F.desc("refreshed_at"), F.desc("run_id")
        )
        latest_runs = runs.withColumn("_n", F.row_number().over(newest_first)).where("_n = 1").drop("_n")
        members = current.join(latest_runs.select("segment_id", "run_id"), ["segment_id", "run_id"])
        members = serving_columns(members, contract.tables["segment_members"])

    spark = (membership if membership is not None else definitions).sparkSession  # type: ignore[union-attr]
    if definitions is not None:
        version = "segment_version" if "segment_version" in definitions.columns else "version"
        # segments.definitions keeps each version's whole definition as JSON (mo.segments.definitions);
        # flat name/rule columns are taken as they are where an input provides them
        name = F.col("name") if "name" in definitions.columns else F.get_json_object("definition", "$.name")
        rule = F.col("rule") if "rule" in definitions.columns else F.get_json_object("definition", "$.rule")
        defs = definitions.select(
            "segment_id",
            F.col(version).cast("int").alias("def_version"),
            name.alias("name"),
            "kind",
            rule.cast("string").alias("rule"),
        )
    else:
        defs = spark.createDataFrame([], "segment_id string, def_version int, name string, kind string, rule string")
    newest_def = Window.partitionBy("segment_id").orderBy(F.desc("def_version"))
    latest_defs = defs.withColumn("_n", F.row_number().over(newest_def)).where("_n = 1").drop("_n")
    if latest_runs is None:
        latest_runs = spark.createDataFrame(
            [], "segment_id string, run_id string, as_of_date date, refreshed_at timestamp, run_version int"
        )
        sizes = spark.createDataFrame([], "segment_id string, size bigint")
    else:
        sizes = members.groupBy("segment_id").agg(F.count("*").alias("size"))  # type: ignore[union-attr]

    ids = latest_defs.select("segment_id").union(latest_runs.select("segment_id")).distinct()
    run_defs = defs.select(
        "segment_id",
        F.col("def_version").alias("run_version"),
        F.col("name").alias("run_name"),
        F.col("kind").alias("run_kind"),
        F.col("rule").alias("run_rule"),
    )
    if history_from is None:
        history_from = spark.createDataFrame([], "segment_id string, history_from date")
    segments = (
        ids.join(latest_runs, "segment_id", "left")
        .join(history_from, "segment_id", "left")
        .join(latest_defs, "segment_id", "left")
        .join(run_defs, ["segment_id", "run_version"], "left")
        .join(sizes, "segment_id", "left")
        .select(
            "segment_id",
            F.coalesce("run_version", "def_version").alias("segment_version"),
            # The definition of the version the members were computed with; the newest one if never run.
            F.coalesce("run_name", "name").alias("name"),
            F.coalesce("run_kind", "kind").alias("kind"),
            F.coalesce("run_rule", "rule").alias("rule"),
            F.coalesce("size", F.lit(0)).cast("bigint").alias("size"),
            "run_id",
            "as_of_date",
            "refreshed_at",
            "history_from",
        )
    )
    return serving_columns(segments, contract.tables["segments"]), members


def membership_history_frames(
    pinned: PinnedInputs, contract: ServingContract, as_of: date
) -> tuple[DataFrame | None, DataFrame | None]:
    """(segment_member_history, history_from per segment) over the retention window up to ``as_of``.

    One run per segment and day counts (the latest computed that day). A member's consecutive runs with the
    same definition version and the same matched clauses become one row ``[valid_from, valid_to]``: valid_from
    is the first run's as-of date, valid_to the day before the next run of the segment that no longer has the
    member that way (null: the member is so in the segment's latest run). Runs come from the membership rows
    and, where the lake has it, segments.runs (which also lists runs that matched nobody: without it, an
    empty run would look like no run at all and stretch the members of the run before it)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    membership = pinned.frames["membership"]
    if membership is None:
        return None, None
    first_day = as_of - timedelta(days=contract.event_retention_days - 1)
    window = (F.col("as_of_date") >= F.lit(first_day)) & (F.col("as_of_date") <= F.lit(as_of))
    current = membership.where(window)
    runs = current.select("segment_id", "run_id", "as_of_date", "computed_at")
    listed = pinned.frames.get("runs")
    if listed is not None:
        runs = runs.unionByName(listed.where(window).select("segment_id", "run_id", "as_of_date", "computed_at"))
    runs = runs.groupBy("segment_id", "run_id").agg(
        F.max("as_of_date").alias("run_date"), F.max("computed_at").alias("computed_at")
    )
    latest_of_day = Window.partitionBy("segment_id", "run_date").orderBy(F.desc("computed_at"), F.desc("run_id"))
    in_order = Window.partitionBy("segment_id").orderBy("run_date")
    day_runs = (
        runs.withColumn("_n", F.row_number().over(latest_of_day))
        .where("_n = 1")
        .withColumn("run_seq", F.row_number().over(in_order))
        .withColumn("next_run_date", F.lead("run_date").over(in_order))
        .select("segment_id", "run_id", "run_date", "run_seq", "next_run_date")
    )
    clauses = F.to_json(F.col("matched_clauses"))
    members = current.select(
        "segment_id",
        "run_id",
        "customer_id",
        F.col("segment_version").cast("int").alias("segment_version"),
        clauses.alias("clauses"),
    ).join(day_runs, ["segment_id", "run_id"])
    same_way = Window.partitionBy("segment_id", "customer_id", "segment_version", "clauses").orderBy("run_seq")
    stretches = (
        members.withColumn("_island", F.col("run_seq") - F.row_number().over(same_way))
        .groupBy("segment_id", "customer_id", "segment_version", "clauses", "_island")
        .agg(F.min("run_date").alias("valid_from"), F.max("run_seq").alias("last_seq"))
    )
    ends = day_runs.select("segment_id", F.col("run_seq").alias("last_seq"), "next_run_date")
    history = stretches.join(ends, ["segment_id", "last_seq"]).select(
        "segment_id",
        "customer_id",
        "valid_from",
        F.date_sub(F.col("next_run_date"), 1).alias("valid_to"),
        "segment_version",
        F.col("clauses").alias("matched_clauses"),
    )
    history_from = day_runs.groupBy("segment_id").agg(F.min("run_date").alias("history_from"))
    return serving_columns(history, contract.tables["segment_member_history"]), history_from


def redis_profile_frame(profile: DataFrame, members: DataFrame | None) -> DataFrame:
    """Profile rows plus ``segments``: the comma-separated, sorted ids of the customer's segments."""
    from pyspark.sql import functions as F

    if members is None:
        return profile.withColumn("segments", F.lit(""))
    per_customer = members.groupBy("customer_id").agg(
        F.concat_ws(",", F.array_sort(F.collect_set("segment_id"))).alias("segments")
    )
    return profile.join(per_customer, "customer_id", "left").withColumn(
        "segments", F.coalesce(F.col("segments"), F.lit(""))
    )


def iter_arrow_batches(df: DataFrame, *, rows_per_chunk: int = CHUNK_ROWS) -> Iterator[pa.RecordBatch]:
    """Stream a DataFrame to the driver as Arrow record batches, ``rows_per_chunk`` rows (about) at a time.

    Each chunk (rows whose first column hashes to it) is collected with Spark's Arrow collect, which runs
    in the JVM: no Python worker (the executors need no pyarrow) and no row pickled one by one."""
    from pyspark.sql import functions as F

    total = df.count()
    if total == 0:
        return
    chunks = max(1, math.ceil(total / rows_per_chunk))
    key = F.pmod(F.xxhash64(F.col(df.columns[0])), F.lit(chunks))
    for chunk in range(chunks):
        part = df if chunks == 1 else df.where(key == chunk)
        yield from _collect_arrow(part)


def _collect_arrow(df: DataFrame) -> Iterator[pa.RecordBatch]:
    to_arrow = getattr(df, "toArrow", None)  # public from Spark 4.0
    if to_arrow is not None:
        yield from to_arrow().to_batches()
    else:
        yield from df._collect_as_arrow()  # what toPandas uses in Spark 3.5
