"""A sync run's life in the ops tables: recorded from its first step, holding a lease, cleaned up after when
it dies, and judged per table by `mo status`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sync_world import Failure, SourceWorld, Verdict, count_gate, expected_silver, frame_rows

from mo.errors import QualityGateFailed
from mo.oltp.db import make_engine, migrate
from mo.status import health_problems
from spark_jobs.lake import restricted_table, silver_table
from spark_jobs.maintenance import maintain_lake
from spark_jobs.sync import (
    RunAbandoned,
    check_gate,
    extract_to_bronze,
    layer_counts,
    merge_to_audit,
    publish,
    run_sync,
)
from spark_jobs.watermarks import read_runs

pytestmark = pytest.mark.spark

SMALL = ["organizations", "agents", "customers"]


@pytest.fixture
def world(settings) -> SourceWorld:
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    yield SourceWorld(engine)
    engine.dispose()


def problems(spark, settings) -> list[str]:
    """`mo status`'s problem lines about the sync (silver tables), from the lake as it is now."""
    report = {"tables": {name: {"source": None, **row} for name, row in layer_counts(spark, settings).items()}}
    lines = health_problems(report, now=datetime.now(UTC), max_sync_age_hours=3, max_waiting=0)
    return [line for line in lines if not line.startswith("never synced")]


def line_time(spark, settings, table: str) -> str:
    return layer_counts(spark, settings)[table]["last_run"]["at"]


def audit_branches(spark, settings, tables) -> dict[str, list[str]]:
    out = {}
    for name in tables:
        targets = [silver_table(settings, name)]
        if name == "customers":
            targets.append(restricted_table(settings, name))
        for target in targets:
            refs = spark.sql(f"SELECT name FROM {target}.refs WHERE name LIKE 'audit_%'").collect()
            if refs:
                out[target] = [r["name"] for r in refs]
    return out


def assert_silver_matches_source(spark, settings, world: SourceWorld, tables) -> None:
    key = settings.require_pii_key()
    for name in tables:
        expected = expected_silver(world.contracts[name], world.live_rows(name), key)
        assert frame_rows(spark.table(silver_table(settings, name))) == expected, f"silver.{name} differs"


def test_a_dead_runs_branches_are_removed_by_the_next_run_or_by_maintenance(spark, settings, world):
    world.seed(customers=6)
    run_sync(spark, settings, SMALL, gate=count_gate)
    dying = settings.model_copy(update={"sync_lease_minutes": 1e-4})  # its lease runs out at once

    # killed after the merge: audit branches on silver and restricted tables, no end record
    world.update("customers", 1, risk_rating="R3")
    crashed = merge_to_audit(spark, dying, extract_to_bronze(spark, dying, SMALL))
    assert set(audit_branches(spark, settings, SMALL)) == {
        silver_table(settings, "customers"),
        restricted_table(settings, "customers"),
    }
    [line] = problems(spark, settings)
    assert line.startswith(
        f"sync run {crashed['run_id']} died after step merged (organizations, agents, customers): "
        "no end record and its lease expired at "
    )

    # the next run removes what it left, records it abandoned and publishes; the dead run cannot go on
    world.update("customers", 2, risk_rating="R4")
    run_sync(spark, settings, SMALL, gate=count_gate)
    assert audit_branches(spark, settings, SMALL) == {}
    assert {r["status"] for r in read_runs(spark, settings, crashed["run_id"])} == {"abandoned"}
    assert_silver_matches_source(spark, settings, world, SMALL)
    assert problems(spark, settings) == []  # each table's latest attempt published
    with pytest.raises(RunAbandoned, match=f"sync run {crashed['run_id']} was abandoned"):
        check_gate(spark, settings, crashed, gate=count_gate)

    # a second run dies; maintenance tells it from a live run: it removes the dead run's branches and
    # compacts those tables, and skips only the table a live run holds a branch on
    world.update("organizations", 1)
    live = merge_to_audit(spark, settings, extract_to_bronze(spark, settings, ["organizations"]))
    world.update("customers", 3, risk_rating="R2")
    dead = merge_to_audit(spark, dying, extract_to_bronze(spark, dying, SMALL))
    report = maintain_lake(spark, settings, SMALL, force=True)

    assert report["abandoned_runs"] == [dead["run_id"]]
    outcome = {t["table"]: t for t in report["tables"]}
    assert outcome[silver_table(settings, "customers")]["status"] == "maintained"
    assert outcome[restricted_table(settings, "customers")]["status"] == "maintained"
    held = outcome[silver_table(settings, "organizations")]
    assert held["status"] == "skipped" and live["audit_branch"] in held["detail"] and "live" in held["detail"]
    assert audit_branches(spark, settings, SMALL) == {silver_table(settings, "organizations"): [live["audit_branch"]]}
    assert {r["status"] for r in read_runs(spark, settings, dead["run_id"])} == {"abandoned"}
    # the live run was left intact: it still publishes
    publish(spark, settings, check_gate(spark, settings, live, gate=count_gate))
    assert_silver_matches_source(spark, settings, world, ["organizations"])
    assert problems(spark, settings) == [
        f"sync run {dead['run_id']} abandoned at {line_time(spark, settings, 'customers')} UTC (agents, customers): "
        f"crashed: no end record and its lease expired at {dead['lease_expires_at'][:19]} UTC (last step merged); "
        "maintenance removed what it left"
    ]


def test_every_attempt_is_recorded_and_each_table_clears_when_repaired(spark, settings, world, monkeypatch):
    import spark_jobs.sync as sync

    world.seed(customers=6)
    run_sync(spark, settings, SMALL, gate=count_gate)
    planned = sync.plan_window

    def failing_on(table: str, error: BaseException):
        def plan(engine, contract, lower, **kwargs):
            if contract.table == table:
                raise error
            return planned(engine, contract, lower, **kwargs)

        return plan

    # an error while extracting a table: recorded against it, the tables extracted before it held back
    world.update("customers", 1)
    monkeypatch.setattr(sync, "plan_window", failing_on("customers", RuntimeError("JDBC read failed: timeout")))
    with pytest.raises(RuntimeError, match="JDBC read failed"):
        run_sync(spark, settings, SMALL, gate=count_gate)
    statuses = {r["table"]: r["status"] for r in read_runs(spark, settings)}
    assert statuses == {"organizations": "blocked", "agents": "blocked", "customers": "failed"}
    [line] = problems(spark, settings)
    assert line.endswith("UTC (customers): extraction failed: JDBC read failed: timeout"), line

    # killed while extracting: only the `started` records; once its lease expired the run is a problem
    dying = settings.model_copy(update={"sync_lease_minutes": 1e-4})
    monkeypatch.setattr(sync, "plan_window", failing_on("agents", KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run_sync(spark, dying, SMALL, gate=count_gate)
    killed = read_runs(spark, settings)
    assert {r["status"] for r in killed} == {"started"}
    [line] = problems(spark, settings)
    assert f"sync run {killed[0]['run_id']} died after step started (organizations, agents, customers)" in line
    monkeypatch.setattr(sync, "plan_window", planned)

    # the gate fails on customers: that table is the problem; the others are held back, not failed
    def failing_gate(spark, settings, tables, source_counts, scopes=None, pending=None) -> Verdict:
        return Verdict(False, [Failure("customers", "expect_column_values_to_be_in_set(risk_rating)", "1 value")])

    with pytest.raises(QualityGateFailed):
        run_sync(spark, settings, SMALL, gate=failing_gate)
    assert {r["table"]: r["status"] for r in read_runs(spark, settings)} == {
        "organizations": "blocked",
        "agents": "blocked",
        "customers": "gate_failed",
    }
    [line] = problems(spark, settings)
    assert "gate_failed" in line and "(customers): silver.customers: expect_column_values_to_be_in_set" in line

    # repairing that one table clears the problem: each table is judged on its own latest attempt
    run_sync(spark, settings, ["customers"], gate=count_gate, full_refresh=["customers"])
    assert problems(spark, settings) == []
    assert_silver_matches_source(spark, settings, world, SMALL)
