"""Bronze batches stay correct whatever the file layout: compaction, crashes and reruns in any order.

A batch is read back by its rows (``_batch_id = X``), never by which files hold it, so maintenance that
merges many batches into one file changes nothing for the sync.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sync_world import SourceWorld, canonical, count_gate, expected_silver, frame_rows

import spark_jobs.sync as sync
from mo.oltp.db import make_engine, migrate
from spark_jobs.lake import (
    bronze_table,
    catalog_relative,
    restricted_columns,
    restricted_staging_table,
    restricted_table,
    silver_table,
)
from spark_jobs.maintenance import maintain_lake
from spark_jobs.pii import token
from spark_jobs.sync import extract_to_bronze, run_sync

pytestmark = pytest.mark.spark

TABLES = ["customers"]


@pytest.fixture
def world(settings) -> SourceWorld:
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    yield SourceWorld(engine)
    engine.dispose()


def _batches_per_file(spark, table: str) -> list[int]:
    """How many distinct batches each data file of ``table`` holds (read from the rows, not metadata)."""
    from pyspark.sql import functions as F

    frame = spark.table(table).select("_batch_id", F.input_file_name().alias("file"))
    return [r["n"] for r in frame.groupBy("file").agg(F.countDistinct("_batch_id").alias("n")).collect()]


def test_sync_goes_on_after_maintenance_merged_batches_into_one_file(spark, settings, world):
    key = settings.require_pii_key()
    world.seed(customers=6)
    run_sync(spark, settings, TABLES, gate=count_gate)
    world.update("customers", 1)
    run_sync(spark, settings, TABLES, gate=count_gate)
    world.update("customers", 2)
    world.insert("customers", 1)
    extract_to_bronze(spark, settings, TABLES)  # the run dies after writing its batch to bronze

    maintain_lake(spark, settings, TABLES, force=True)  # the daily compaction
    assert max(_batches_per_file(spark, bronze_table(settings, "customers"))) >= 3

    world.soft_delete("customers", 3)
    run_sync(spark, settings, TABLES, gate=count_gate)  # the retry of the dead run's batch
    world.update("customers", 4)
    run_sync(spark, settings, TABLES, gate=count_gate)  # and the next hourly run
    expected = expected_silver(world.contracts["customers"], world.live_rows("customers"), key)
    assert frame_rows(spark.table(silver_table(settings, "customers"))) == expected


# --- randomized interleaving -------------------------------------------------------------------------

SEED = int(os.environ.get("MO_SYNC_INTERLEAVE_SEED", "20261206"))
STEPS = int(os.environ.get("MO_SYNC_INTERLEAVE_STEPS", "14"))
CRASH_POINTS = ("between_writes", "after_extract", "after_merge", "before_publish", "mid_publish")
# The first crash point a rerun from each step can still reach (a rerun starts past the extract).
REACHED_BY = {
    "extracted": "after_extract",
    "merged": "after_merge",
    "gated": "before_publish",
    "publishing": "mid_publish",
}


class Crash(BaseException):
    """The process dies: not an Exception, so no clean-up of the step runs (as with a kill)."""


@contextmanager
def crash_after_first_batch_write() -> Iterator[None]:
    """The extract dies right after its first bronze or staging commit, before the other one."""
    from pyspark.sql.readwriter import DataFrameWriterV2

    init, append, overwrite = DataFrameWriterV2.__init__, DataFrameWriterV2.append, DataFrameWriterV2.overwrite

    def recording_init(self, df, table):
        init(self, df, table)
        self._mo_table = table

    def then_crash(write):
        def wrapped(self, *args):
            write(self, *args)
            if ".bronze." in self._mo_table or self._mo_table.endswith("_pii_staging"):
                raise Crash(f"killed after writing {self._mo_table}")

        return wrapped

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DataFrameWriterV2, "__init__", recording_init)
        patch.setattr(DataFrameWriterV2, "append", then_crash(append))
        patch.setattr(DataFrameWriterV2, "overwrite", then_crash(overwrite))
        yield


@contextmanager
def crash_before_watermarks() -> Iterator[None]:
    """Publish dies after fast-forwarding silver and emptying staging, before the watermarks move."""

    def killed(*args, **kwargs):
        raise Crash("killed before advancing the watermarks")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync, "advance_watermarks", killed)
        yield


def expected_restricted(contract, rows, key: bytes) -> list[dict]:
    """The restricted table for these live source rows: id, clear PII with tokens, updated_at."""
    out = []
    for row in rows:
        shaped = {}
        for name, _ in restricted_columns(contract):
            if name.endswith("_token") and name.removesuffix("_token") in row:
                column = contract.column(name.removesuffix("_token"))
                shaped[name] = token(key, column.pii, row[column.name])
            else:
                shaped[name] = row[name]
        out.append({k: canonical(v) for k, v in shaped.items()})
    return out


class Interleaving:
    """Source changes, sync attempts that die at chosen points, reruns and maintenance, in a seeded order.

    After every publish, silver and the restricted table must equal the source as the published run read
    it, staging must hold no clear values, and bronze no version twice.
    """

    def __init__(self, spark, settings, world: SourceWorld, rng: random.Random) -> None:
        self.spark, self.settings, self.world, self.rng = spark, settings, world, rng
        self.key = settings.require_pii_key()
        self.contract = world.contracts["customers"]
        self.pending: tuple[str, dict, list[dict]] | None = None  # (step reached, manifest, source as read)
        self.publishes = 0
        self.reruns = 0
        self.crashes: Counter[str] = Counter()
        self.most_batches_in_a_file = 0

    # source
    def change_source(self) -> str:
        world, done = self.world, []
        for _ in range(self.rng.randint(1, 3)):
            live = [r["id"] for r in world.live_rows("customers")]
            kind = self.rng.choice(["insert", "update", "update", "delete"] if live else ["insert"])
            if kind == "insert":
                world.insert("customers", self.rng.randint(1, 2))
            elif kind == "update":
                world.update("customers", self.rng.choice(live))
            else:
                world.soft_delete("customers", self.rng.choice(live))
            done.append(kind)
        return "change " + ",".join(done)

    # sync attempts
    def crash_point(self, reachable: tuple[str, ...]) -> str | None:
        """Where this attempt dies: the first crash point not hit yet, in turn, until every one was hit (so
        any seed covers them all); then a random one 45% of the time."""
        random_draw = self.rng.random() < 0.45 and self.rng.choice(reachable)
        unhit = [point for point in CRASH_POINTS if point in reachable and not self.crashes[point]]
        return unhit[0] if unhit else random_draw or None

    def attempt(self, *, may_crash: bool = True) -> str:
        self.pending = None
        crash_at = self.crash_point(CRASH_POINTS) if may_crash else None
        read = self.world.live_rows("customers")
        try:
            if crash_at == "between_writes":
                with crash_after_first_batch_write():
                    sync.extract_to_bronze(self.spark, self.settings, TABLES)
            manifest = sync.extract_to_bronze(self.spark, self.settings, TABLES)
        except Crash:
            self.crashes["between_writes"] += 1
            return "sync, died between the bronze and staging writes"
        return self._continue("extracted", manifest, read, crash_at)

    def _continue(self, step: str, manifest: dict, read: list[dict], crash_at: str | None) -> str:
        steps = [
            ("extracted", "after_extract", lambda m: sync.merge_to_audit(self.spark, self.settings, m)),
            ("merged", "after_merge", lambda m: sync.check_gate(self.spark, self.settings, m, gate=count_gate)),
            ("gated", "before_publish", None),
            ("publishing", None, None),
        ]
        start = next(i for i, (name, _, _) in enumerate(steps) if name == step)
        for name, point, action in steps[start:]:
            if point is not None and crash_at == point:
                self.crashes[point] += 1
                self.pending = (name, manifest, read)
                return f"sync, died {point}"
            if action is not None:
                manifest = action(manifest)
        try:
            if crash_at == "mid_publish":
                with crash_before_watermarks():
                    sync.publish(self.spark, self.settings, manifest)
            sync.publish(self.spark, self.settings, manifest)
        except Crash:
            self.crashes["mid_publish"] += 1
            self.pending = ("publishing", manifest, read)
            return "sync, died publishing before the watermarks moved"
        self.check_published(read)
        return "sync, published"

    def rerun_crashed(self) -> str:
        assert self.pending is not None
        step, manifest, read = self.pending
        if self.rng.random() < 0.3:  # the manifest was lost: rebuilt from ops.sync_runs
            manifest, step = sync.manifest_from_runs(self.spark, self.settings, manifest["run_id"]), "extracted"
        self.reruns += 1
        crash_at = self.crash_point(CRASH_POINTS[CRASH_POINTS.index(REACHED_BY[step]) :])
        return "rerun of the dead run: " + self._continue(step, manifest, read, crash_at)

    # maintenance
    def maintain(self) -> str:
        if self.pending and self.pending[0] == "publishing":
            # Compacting silver moves main off the snapshots the dead publish fast-forwarded to, and its
            # rerun then refuses to go on ("main is not at its snapshot"); the next run publishes instead.
            self.pending = None
        report = maintain_lake(self.spark, self.settings, TABLES, force=True)
        skipped = [t["table"] for t in report["tables"] if t["status"] == "skipped"]
        self._note_layout()
        # a dead run's audit branch makes maintenance skip silver for good: a separate defect
        return "maintain" + (f" (skipped {', '.join(skipped)})" if skipped else "")

    def compact(self) -> str:
        """Every bronze and staging row rewritten into as few files as the partitions allow."""
        catalog = self.settings.catalog_name
        for table in (bronze_table(self.settings, "customers"), restricted_staging_table(self.settings, "customers")):
            relative = catalog_relative(self.settings, table)
            self.spark.sql(
                f"CALL {catalog}.system.rewrite_data_files(table => '{relative}', "
                "options => map('min-input-files', '1', 'rewrite-all', 'true'))"
            )
        self._note_layout()
        return "compact bronze and staging"

    def _note_layout(self) -> None:
        most = max(_batches_per_file(self.spark, bronze_table(self.settings, "customers")), default=0)
        self.most_batches_in_a_file = max(self.most_batches_in_a_file, most)

    # checks
    def check_published(self, read: list[dict]) -> None:
        spark, settings = self.spark, self.settings
        self.publishes += 1
        silver = frame_rows(spark.table(silver_table(settings, "customers")))
        assert silver == expected_silver(self.contract, read, self.key), "silver differs from the source"
        restricted = frame_rows(spark.table(restricted_table(settings, "customers")))
        assert restricted == expected_restricted(self.contract, read, self.key), "restricted differs from the source"
        assert spark.table(restricted_staging_table(settings, "customers")).count() == 0, "clear values left in staging"
        versions = Counter(
            (r["id"], r["updated_at"]) for r in frame_rows(spark.table(bronze_table(settings, "customers")))
        )
        assert not [v for v, n in versions.items() if n > 1], "bronze holds a version twice"

    def covered(self) -> bool:
        return set(self.crashes) == set(CRASH_POINTS) and self.reruns > 0

    def step(self) -> str:
        roll = self.rng.random()
        if roll < 0.3:
            return self.change_source()
        if roll < 0.42:
            return self.maintain()
        if roll < 0.52:
            return self.compact()
        if self.pending and (roll < 0.72 or not self.reruns):  # the first dead run is always rerun
            return self.rerun_crashed()
        return self.attempt()


def test_random_interleavings_of_changes_crashes_reruns_and_compaction(spark, settings, world):
    rng = random.Random(SEED)
    world.seed(customers=6)
    run = Interleaving(spark, settings, world, rng)
    history: list[str] = []
    try:
        run.attempt(may_crash=False)
        # STEPS steps, then more until every crash point was hit and a dead run rerun (a few at most: the
        # crash points are taken in turn)
        while len(history) < STEPS or (not run.covered() and len(history) < 3 * STEPS):
            history.append(run.step())
            print(f"step {len(history)}: {history[-1]}", flush=True)  # shown live with -s
        history.append(run.compact())  # whatever the draw, the last runs go over a compacted bronze
        while run.pending or not history or history[-1] != "sync, published":
            history.append(run.attempt(may_crash=False))  # the platform settles: a clean run publishes everything
    except (Exception, Crash) as exc:
        steps = "\n".join(f"  {i}. {h}" for i, h in enumerate(history, 1))
        pytest.fail(f"seed {SEED} (MO_SYNC_INTERLEAVE_SEED), after:\n{steps}\nfailed: {exc!r}"[:6000])
    assert run.publishes >= 3, history
    assert run.most_batches_in_a_file >= 2, "maintenance never merged several batches into one file"
    assert set(run.crashes) == set(CRASH_POINTS), f"crash points never hit: {set(CRASH_POINTS) - set(run.crashes)}"
    assert run.reruns >= 1, "no dead run was rerun"
    print(f"crashes {dict(run.crashes)}, reruns {run.reruns}, publishes {run.publishes}, {len(history)} steps")
