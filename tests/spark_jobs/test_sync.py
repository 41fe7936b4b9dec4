"""The sync on a SQLite source: silver equals the source's live rows after every run, whatever happened.

Most tests pass ``count_gate`` (candidate silver must reconcile with the source's live counts) so they
exercise the sync itself; tests at the end run the real Great Expectations gate.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sync_world import (
    Failure,
    SourceWorld,
    Verdict,
    count_gate,
    expected_silver,
    frame_rows,
    writes_while_extracting,
)

from mo.config import get_settings
from mo.errors import ConfigError, MoError, QualityGateFailed
from mo.oltp.db import make_engine, migrate
from mo.status import format_status, health_problems
from spark_jobs.lake import bronze_table, ops_table, restricted_staging_table, restricted_table, silver_table
from spark_jobs.pii import token
from spark_jobs.sync import (
    check_gate,
    extract_to_bronze,
    layer_counts,
    manifest_from_runs,
    merge_to_audit,
    publish,
    run_sync,
)
from spark_jobs.watermarks import read_runs, read_watermarks

pytestmark = pytest.mark.spark

SMALL = ["organizations", "agents", "customers"]


def failing_gate(spark, settings, tables, source_counts, scopes=None, pending=None) -> Verdict:
    return Verdict(False, [Failure("customers", "expect_column_values_to_be_in_set(risk_rating)", "1 unexpected")])


@pytest.fixture
def world(settings) -> SourceWorld:
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    yield SourceWorld(engine)
    engine.dispose()


def assert_silver_matches_source(spark, settings, world: SourceWorld, tables=None) -> None:
    key = settings.require_pii_key()
    for name in tables or world.contracts:
        expected = expected_silver(world.contracts[name], world.live_rows(name), key)
        actual = frame_rows(spark.table(silver_table(settings, name)))
        assert actual == expected, f"silver.{name} differs from the source's live rows"


def assert_bronze_has_no_duplicate_versions(spark, settings, tables) -> None:
    for name in tables:
        versions = Counter((r["id"], r["updated_at"]) for r in frame_rows(spark.table(bronze_table(settings, name))))
        dupes = [v for v, n in versions.items() if n > 1]
        assert not dupes, f"bronze.{name} holds versions twice: {dupes[:3]}"


def silver_state(spark, settings, tables) -> dict:
    return {name: frame_rows(spark.table(silver_table(settings, name))) for name in tables}


def main_snapshots(spark, settings, tables) -> dict:
    return {
        name: spark.sql(f"SELECT snapshot_id FROM {silver_table(settings, name)}.refs WHERE name = 'main'").collect()
        for name in tables
    }


def test_full_load_then_incremental_changes_match_the_source(spark, settings, world, monkeypatch):
    monkeypatch.setenv("MO_JDBC_PARTITION_ROWS", "5")  # big tables read as parallel id ranges
    settings = get_settings()
    world.seed(customers=12)
    first = run_sync(spark, settings, gate=count_gate)
    assert first["step"] == "published"
    assert_silver_matches_source(spark, settings, world)
    watermark = read_watermarks(spark, settings)["consents"]

    world.update("customers", 1)
    world.update("customers", 2, risk_rating="R5")
    world.update("policies", 3)
    world.soft_delete("customers", 4)
    new_customer, doomed = world.insert("customers", 2)
    world.insert("policies", 1, customer_id=new_customer)
    world.update("customers", new_customer)  # inserted and changed between two runs: only the latest lands
    world.soft_delete("customers", doomed)  # inserted and deleted between two runs: never in silver
    world.soft_delete("complaints", 1)
    # committed late: its updated_at is before the last watermark, but within the look-back window
    late = world.insert("consents", 1, at=watermark - timedelta(minutes=30))[0]
    second = run_sync(spark, settings, gate=count_gate)

    assert_silver_matches_source(spark, settings, world)
    assert late in {r["id"] for r in frame_rows(spark.table(silver_table(settings, "consents")))}
    assert_bronze_has_no_duplicate_versions(spark, settings, world.contracts)
    customers = second["tables"]["customers"]
    assert customers["rows_bronze"] == 5  # 3 updates/deletes of old rows + the two new ones' latest versions
    assert customers["source_live_count"] == 12 + 2 - 2
    operations = {
        (r["id"], r["_operation"])
        for r in frame_rows(spark.table(bronze_table(settings, "customers")))
        if r["_batch_id"] == customers["batch_id"]
    }
    assert {(4, "delete"), (doomed, "delete"), (new_customer, "update"), (1, "update")} <= operations
    assert read_watermarks(spark, settings)["customers"] == max(r["updated_at"] for r in _all_rows(world, "customers"))
    statuses = {r["table"]: r["status"] for r in read_runs(spark, settings, second["run_id"])}
    assert set(statuses.values()) == {"published"} and set(statuses) == set(world.contracts)


def _all_rows(world: SourceWorld, table: str) -> list[dict]:
    from sqlalchemy import select

    from mo.oltp.models import Base

    with world.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(Base.metadata.tables[table])).mappings()]


def test_pii_is_only_in_clear_in_the_restricted_tables(spark, settings, world):
    world.seed(customers=6)
    run_sync(spark, settings, tables=SMALL + ["products", "policies"], gate=count_gate)
    key = settings.require_pii_key()
    live = world.live_rows("customers")
    clear_values = {v for r in live for v in (r["name"], r["id_number"], r["phone"], r["wechat_openid"]) if v}
    for table in (bronze_table(settings, "customers"), silver_table(settings, "customers")):
        frame = spark.table(table)
        assert not {"name", "id_number", "phone", "wechat_openid", "app_user_id"} & set(frame.columns)
        cells = {v for r in frame.collect() for v in r.asDict().values() if isinstance(v, str)}
        assert not clear_values & cells, f"clear PII found in {table}"
    restricted = {r["id"]: r for r in frame_rows(spark.table(restricted_table(settings, "customers")))}
    assert set(restricted) == {r["id"] for r in live}
    for row in live:
        kept = restricted[row["id"]]
        assert (kept["name"], kept["id_number"], kept["phone"]) == (row["name"], row["id_number"], row["phone"])
        assert kept["phone_token"] == token(key, "phone", row["phone"])
    silver = {r["id"]: r for r in frame_rows(spark.table(silver_table(settings, "customers")))}
    assert {silver[i]["phone_token"] for i in silver} == {restricted[i]["phone_token"] for i in silver}
    # published batches leave no clear values behind in staging
    assert spark.table(restricted_staging_table(settings, "customers")).count() == 0
    policies = frame_rows(spark.table(silver_table(settings, "policies")))
    assert {"vehicle_plate_token", "vehicle_plate_masked", "property_address_masked"} <= set(policies[0])
    # tokens keep counts but no min/max in the file metrics (hashes never prune a file); other columns keep both
    customer_tables = (bronze_table(settings, "customers"), silver_table(settings, "customers"))
    for table in (*customer_tables, restricted_table(settings, "customers")):
        metrics = spark.sql(f"SELECT readable_metrics AS m FROM {table}.files").collect()
        assert metrics, f"{table} has no data files"
        for row in metrics:
            token_metrics, id_metrics = row["m"]["phone_token"], row["m"]["id"]
            assert token_metrics["value_count"] > 0 and token_metrics["lower_bound"] is None, table
            assert id_metrics["lower_bound"] is not None and id_metrics["upper_bound"] is not None, table


def test_rerun_without_changes_and_rerun_of_a_batch_change_nothing(spark, settings, world):
    world.seed(customers=8)
    run_sync(spark, settings, tables=SMALL, gate=count_gate)
    before, snapshots = silver_state(spark, settings, SMALL), main_snapshots(spark, settings, SMALL)
    bronze_rows = {t: spark.table(bronze_table(settings, t)).count() for t in SMALL}

    again = run_sync(spark, settings, tables=SMALL, gate=count_gate)  # the look-back re-reads everything
    assert {t: e["rows_bronze"] for t, e in again["tables"].items()} == dict.fromkeys(SMALL, 0)
    assert silver_state(spark, settings, SMALL) == before
    assert main_snapshots(spark, settings, SMALL) == snapshots
    assert {t: spark.table(bronze_table(settings, t)).count() for t in SMALL} == bronze_rows

    # the same batch extracted twice and every step run twice with the same manifest
    world.update("customers", 2)
    world.soft_delete("agents", 1)
    first = extract_to_bronze(spark, settings, SMALL)
    manifest = extract_to_bronze(spark, settings, SMALL)
    assert manifest["tables"]["customers"]["batch_id"] == first["tables"]["customers"]["batch_id"]
    manifest = merge_to_audit(spark, settings, merge_to_audit(spark, settings, manifest))
    manifest = check_gate(spark, settings, manifest, gate=count_gate)
    published = publish(spark, settings, manifest)
    state = silver_state(spark, settings, SMALL)
    publish(spark, settings, published)
    assert silver_state(spark, settings, SMALL) == state
    assert_silver_matches_source(spark, settings, world, SMALL)
    assert_bronze_has_no_duplicate_versions(spark, settings, SMALL)


def test_crash_between_bronze_and_silver_then_rerun_is_exact(spark, settings, world):
    world.seed(customers=8)
    run_sync(spark, settings, tables=SMALL, gate=count_gate)
    world.update("customers", 1)
    world.insert("customers", 2)
    crashed = extract_to_bronze(spark, settings, SMALL)  # the run dies here: bronze written, silver not
    world.update("customers", 3)
    world.soft_delete("customers", 1)
    rerun = run_sync(spark, settings, tables=SMALL, gate=count_gate)

    assert rerun["tables"]["customers"]["batch_id"] == crashed["tables"]["customers"]["batch_id"]
    assert_silver_matches_source(spark, settings, world, SMALL)
    assert_bronze_has_no_duplicate_versions(spark, settings, SMALL)
    batch = spark.table(bronze_table(settings, "customers")).where(
        f"_batch_id = '{rerun['tables']['customers']['batch_id']}'"
    )
    # the rerun appended only what changed since the crash (3, and 1's delete); 1's earlier version stays
    # history, and the merge took each id's latest version
    assert sorted((r["id"], r["_operation"]) for r in batch.collect()) == sorted(
        [(1, "update"), (1, "delete"), (3, "update"), (9, "insert"), (10, "insert")]
    )


def test_failed_gate_publishes_nothing_and_keeps_watermarks(spark, settings, world):
    world.seed(customers=8)
    run_sync(spark, settings, tables=SMALL, gate=count_gate)
    before, snapshots = silver_state(spark, settings, SMALL), main_snapshots(spark, settings, SMALL)
    watermarks = read_watermarks(spark, settings)
    world.update("customers", 1)
    world.soft_delete("customers", 2)

    with pytest.raises(QualityGateFailed, match=r"silver\.customers: expect_column_values_to_be_in_set\(risk_rating\)"):
        run_sync(spark, settings, tables=SMALL, gate=failing_gate)

    assert silver_state(spark, settings, SMALL) == before
    assert main_snapshots(spark, settings, SMALL) == snapshots
    assert read_watermarks(spark, settings) == watermarks
    latest = {r["table"]: r for r in read_runs(spark, settings)}
    # the table the gate failed on, and the others held back by it
    assert {t: r["status"] for t, r in latest.items()} == {
        "organizations": "blocked",
        "agents": "blocked",
        "customers": "gate_failed",
    }
    assert "risk_rating" in latest["customers"]["detail"]
    assert latest["agents"]["detail"] == "not published: the gate failed on customers"
    for name in SMALL:
        refs = {r["name"] for r in spark.sql(f"SELECT name FROM {silver_table(settings, name)}.refs").collect()}
        assert refs == {"main"}, f"audit branch left on {name}"
    stopped = layer_counts(spark, settings)["customers"]  # what `mo status` shows
    assert stopped["last_run"]["status"] == "gate_failed" and "risk_rating" in stopped["last_run"]["detail"]
    report = {"tables": {"customers": {"source": 8, "in_sync": True, **stopped}}}
    report["problems"] = health_problems(report, now=datetime.now(UTC), max_sync_age_hours=3, max_waiting=0)
    text = format_status({"source": "s", "catalog": {"name": "c", "warehouse": "w"}, **report})
    assert " gate_failed at " in text and "(customers): silver.customers: expect_" in text

    run_sync(spark, settings, tables=SMALL, gate=count_gate)  # fixed: the next run publishes it all
    assert_silver_matches_source(spark, settings, world, SMALL)
    assert layer_counts(spark, settings)["customers"]["last_run"]["status"] == "published"


def test_steps_run_separately_with_a_rebuilt_manifest(spark, settings, world):
    world.seed(customers=6)
    extract_to_bronze(spark, settings, SMALL)
    manifest = manifest_from_runs(spark, settings)  # the XCom was lost: rebuild from ops.sync_runs
    manifest = merge_to_audit(spark, settings, manifest)
    assert spark.table(silver_table(settings, "customers")).count() == 0  # main untouched until publish
    with pytest.raises(MoError, match="has not passed the quality gate"):
        publish(spark, settings, manifest)
    publish(spark, settings, check_gate(spark, settings, manifest, gate=count_gate))
    assert_silver_matches_source(spark, settings, world, SMALL)

    counts = layer_counts(spark, settings)
    assert counts["customers"]["bronze"] == counts["customers"]["silver"] == 6
    assert counts["customers"]["last_sync_at"] is not None
    assert counts["claims"] == dict.fromkeys(("bronze", "silver", "last_sync_at", "last_run", "in_flight"))
    assert counts["customers"]["last_run"]["status"] == "published"


def test_real_gate_stops_an_enum_violation_and_passes_clean_data(spark, settings, world):
    world.seed(customers=6)
    run_sync(spark, settings, tables=SMALL)  # the default gate: quality.gates.run_silver_gate
    assert_silver_matches_source(spark, settings, world, SMALL)
    before = silver_state(spark, settings, SMALL)
    watermarks = read_watermarks(spark, settings)

    world.update("customers", 3, risk_rating="R9")
    with pytest.raises(QualityGateFailed, match=r"silver\.customers: expect_column_values_to_be_in_set\(risk_rating\)"):
        run_sync(spark, settings, tables=SMALL)
    assert silver_state(spark, settings, SMALL) == before
    assert read_watermarks(spark, settings) == watermarks
    watermark_rows = spark.table(ops_table(settings, "watermarks")).count()
    assert watermark_rows == len(SMALL)


def test_after_the_first_load_the_gate_checks_what_changed_and_what_refers_to_it(spark, settings, world):
    from quality.gates import run_silver_gate

    seen: list[dict[str, str]] = []

    def recording_gate(*args, **kwargs):
        result = run_silver_gate(*args, **kwargs)
        seen.append(result.modes)
        return result

    world.seed(customers=10)
    first = run_sync(spark, settings, tables=SMALL, gate=recording_gate)
    assert first["gate"]["modes"] == dict.fromkeys(SMALL, "whole")  # a first load: nothing checked before

    world.update("customers", 2)
    second = run_sync(spark, settings, tables=SMALL, gate=recording_gate)
    assert second["gate"]["modes"] == {"organizations": "unchanged", "agents": "unchanged", "customers": "scoped"}
    assert second["gate"]["scope_rows"] == {"customers": 1}
    assert_silver_matches_source(spark, settings, world, SMALL)

    # An organization is deleted; its agents did not change, but they are in scope as its children.
    orphaned_org = world.live_rows("agents")[0]["org_id"]
    world.soft_delete("organizations", orphaned_org)
    before = silver_state(spark, settings, SMALL)
    with pytest.raises(
        QualityGateFailed, match=r"silver\.agents: referential_integrity\(org_id -> organizations\.id\)"
    ):
        run_sync(spark, settings, tables=SMALL, gate=recording_gate)
    assert seen[-1]["agents"] == "scoped"
    assert silver_state(spark, settings, SMALL) == before

    # A bad value in a changed row is caught in scope too; --full-gate validates every table whole.
    world.update("organizations", orphaned_org, deleted_at=None)
    world.update("customers", 3, risk_rating="R9")
    with pytest.raises(QualityGateFailed, match=r"silver\.customers: expect_column_values_to_be_in_set\(risk_rating\)"):
        run_sync(spark, settings, tables=SMALL, gate=recording_gate)
    assert seen[-1]["customers"] == "scoped"
    world.update("customers", 3, risk_rating="R1")
    full = run_sync(spark, settings, tables=SMALL, gate=recording_gate, full_gate=True)
    assert full["gate"]["modes"] == dict.fromkeys(SMALL, "whole")
    assert_silver_matches_source(spark, settings, world, SMALL)


def _behind_the_watermark(world: SourceWorld, deleted: int, changed: int, **values) -> None:
    """What an incremental sync cannot see: a hard delete, and a change that keeps updated_at."""
    from sqlalchemy import delete, update

    from mo.oltp.models import Base

    customers = Base.metadata.tables["customers"]
    with world.engine.begin() as conn:
        conn.execute(delete(customers).where(customers.c.id == deleted))
        conn.execute(update(customers).where(customers.c.id == changed).values(**values))


def test_full_refresh_reconciles_what_the_watermark_cannot_see(spark, settings, world):
    world.seed(customers=8)
    gone = world.insert("customers", 1)[0]  # nothing refers to it: the source lets it be deleted
    run_sync(spark, settings, tables=SMALL)  # the real gate
    watermarks = read_watermarks(spark, settings)
    _behind_the_watermark(world, deleted=gone, changed=2, risk_rating="R5", phone="13900001111")

    # the incremental run sees nothing new, and the count reconciliation says what to do
    with pytest.raises(
        QualityGateFailed,
        match=r"silver\.customers: .*row count 9 != source 8.*`mo sync --table customers --full-refresh`",
    ):
        run_sync(spark, settings, tables=SMALL)
    with pytest.raises(ConfigError, match="full refresh of claims: not among the tables"):
        run_sync(spark, settings, tables=SMALL, full_refresh=["claims"])

    refreshed = run_sync(spark, settings, tables=SMALL, gate=count_gate, full_refresh=["customers"])
    assert_silver_matches_source(spark, settings, world, SMALL)
    entry = refreshed["tables"]["customers"]
    assert entry["full_refresh"] and entry["rows_gone"] == 1 and entry["rows_bronze"] == 2
    assert "organizations" not in {n for n, e in refreshed["tables"].items() if e.get("full_refresh")}
    batch = spark.table(bronze_table(settings, "customers")).where(f"_batch_id = '{entry['batch_id']}'")
    assert {(r["id"], r["_operation"]) for r in batch.collect()} == {(gone, "delete"), (2, "update")}
    restricted = {r["id"]: r for r in frame_rows(spark.table(restricted_table(settings, "customers")))}
    assert gone not in restricted and restricted[2]["phone"] == "13900001111"
    assert restricted[2]["phone_token"] == token(settings.require_pii_key(), "phone", "13900001111")
    assert spark.table(restricted_staging_table(settings, "customers")).count() == 0
    assert read_watermarks(spark, settings)["customers"] == watermarks["customers"]  # nothing moved it
    detail = {r["table"]: r["detail"] for r in read_runs(spark, settings, refreshed["run_id"])}["customers"]
    assert detail == "full refresh: 1 new versions, 1 ids gone from the source"

    # the same refresh again finds nothing to add and changes nothing; the hourly run goes on from there
    before, bronze_rows = silver_state(spark, settings, SMALL), spark.table(bronze_table(settings, "customers")).count()
    again = run_sync(spark, settings, tables=SMALL, gate=count_gate, full_refresh=["customers"])
    assert (again["tables"]["customers"]["rows_bronze"], again["tables"]["customers"]["rows_gone"]) == (0, 0)
    assert silver_state(spark, settings, SMALL) == before
    assert spark.table(bronze_table(settings, "customers")).count() == bronze_rows
    rebuilt = manifest_from_runs(spark, settings, again["run_id"])
    assert rebuilt["tables"]["customers"].get("full_refresh") and not rebuilt["tables"]["agents"].get("full_refresh")
    world.update("customers", 3)
    run_sync(spark, settings, tables=SMALL)
    assert_silver_matches_source(spark, settings, world, SMALL)

    # a row the application changes while the refresh reads is still held by the source: not a delete
    with writes_while_extracting("customers", lambda: world.update("customers", 4, risk_rating="R1")):
        during = run_sync(spark, settings, tables=SMALL, full_refresh=["customers"])
    assert (during["tables"]["customers"]["rows_gone"], during["tables"]["customers"]["pending_ids"]) == (0, [4])
    assert 4 in {r["id"] for r in frame_rows(spark.table(silver_table(settings, "customers")))}
    run_sync(spark, settings, tables=SMALL)
    assert_silver_matches_source(spark, settings, world, SMALL)


def test_a_run_overtaken_by_another_publishes_nothing_and_the_next_run_syncs_it(spark, settings, world):
    world.seed(customers=6)
    run_sync(spark, settings, tables=SMALL, gate=count_gate)
    world.update("agents", 2)
    world.update("customers", 1, risk_rating="R2")
    # a manual run starts beside the scheduled one; the other publishes customers first (agents are the
    # slow run's alone: published on their own they would leave the run half out)
    slow = merge_to_audit(spark, settings, extract_to_bronze(spark, settings, SMALL))
    world.update("customers", 3, risk_rating="R3")
    run_sync(spark, settings, tables=["customers"], gate=count_gate)
    published = main_snapshots(spark, settings, SMALL)
    watermarks = read_watermarks(spark, settings)

    slow = check_gate(spark, settings, slow, gate=count_gate)  # its own branch still passes ...
    with pytest.raises(MoError, match=r"not published: lake_\w+\.silver\.\w+ changed after the run branched"):
        publish(spark, settings, slow)  # ... but main moved under it
    assert main_snapshots(spark, settings, SMALL) == published  # nothing of it went out
    assert read_watermarks(spark, settings) == watermarks
    assert {r["status"] for r in read_runs(spark, settings, slow["run_id"])} == {"failed"}
    for name in SMALL:
        refs = {r["name"] for r in spark.sql(f"SELECT name FROM {silver_table(settings, name)}.refs").collect()}
        assert refs == {"main"}, f"audit branch left on {name}"
    world.update("customers", 4)
    run_sync(spark, settings, tables=SMALL, gate=count_gate)
    assert_silver_matches_source(spark, settings, world, SMALL)


WITH_POLICIES = ["organizations", "agents", "products", "customers", "policies"]


def test_writes_during_the_sync_do_not_fail_the_gate_and_land_in_the_next_run(spark, settings, world):
    world.seed(customers=8)
    run_sync(spark, settings, tables=WITH_POLICIES)  # the real gate, first load
    fresh = world.insert("customers", 1)[0]
    born = {}

    def application_writes():
        # a customer of this run's window changes again while customers are read (the read sees the
        # newer version, outside the window), and new business arrives: a customer and their policy
        world.update("customers", fresh, risk_rating="R4")
        born["customer"] = world.insert("customers", 1)[0]
        born["policy"] = world.insert("policies", 1, customer_id=born["customer"])[0]

    with writes_while_extracting("customers", application_writes):
        during = run_sync(spark, settings, tables=WITH_POLICIES)  # the real gate: count and references

    silver_customers = {r["id"] for r in frame_rows(spark.table(silver_table(settings, "customers")))}
    silver_policies = {r["id"] for r in frame_rows(spark.table(silver_table(settings, "policies")))}
    assert fresh not in silver_customers and born["customer"] not in silver_customers  # after the run's view
    assert born["policy"] in silver_policies  # inside the policies' view; its customer comes next run
    assert set(during["tables"]["customers"]["pending_ids"]) == {fresh, born["customer"]}
    rebuilt = manifest_from_runs(spark, settings, during["run_id"])
    assert rebuilt["tables"]["customers"]["pending_ids"] == during["tables"]["customers"]["pending_ids"]
    run_sync(spark, settings, tables=WITH_POLICIES)
    assert_silver_matches_source(spark, settings, world, WITH_POLICIES)
