"""Schema drift: a strict contract stops its table's sync naming the column (the other tables publish);
additive ones carry new columns to silver."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, text
from sync_world import SourceWorld, count_gate, expected_silver, frame_rows

from mo.config import SCHEMAS_DIR
from mo.contracts import load_source_contracts
from mo.errors import ContractViolation
from mo.oltp.db import make_engine, migrate
from mo.oltp.models import Base
from mo.status import health_problems
from spark_jobs.lake import bronze_table, silver_table
from spark_jobs.schema_drift import check_source_schema
from spark_jobs.sync import layer_counts, run_sync
from spark_jobs.watermarks import read_runs, read_watermarks


def _policies_table(tmp_path: Path, *, premium_type=None, drop: str | None = None):
    """A SQLite `policies` table like the real one except for one changed or missing column."""
    engine = make_engine(f"sqlite:///{tmp_path / 'drift.db'}")
    columns = [
        Column(c.name, premium_type if (c.name == "premium" and premium_type is not None) else c.type)
        for c in Base.metadata.tables["policies"].columns
        if c.name != drop
    ]
    Table("policies", MetaData(), *columns).create(engine)
    return engine


def test_incompatible_type_names_table_column_and_both_types(tmp_path):
    engine = _policies_table(tmp_path, premium_type=String(20))
    with pytest.raises(
        ContractViolation,
        match=r"source column policies\.premium: contract says decimal\(18,2\), "
        r"source has VARCHAR\(20\)",
    ):
        check_source_schema(engine, load_source_contracts()["policies"])


def test_missing_column_is_named(tmp_path):
    engine = _policies_table(tmp_path, drop="sum_insured")
    with pytest.raises(ContractViolation, match=r"source column policies\.sum_insured is missing"):
        check_source_schema(engine, load_source_contracts()["policies"])


def test_matching_schema_passes_on_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'ok.db'}")
    migrate(engine)
    for contract in load_source_contracts().values():
        assert check_source_schema(engine, contract) is contract


@pytest.mark.spark
def test_drift_stops_its_table_and_those_referring_to_it_and_the_rest_is_published(spark, settings):
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    world = SourceWorld(engine)
    world.seed(customers=3)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE customers ADD COLUMN vip_level VARCHAR(8)"))
    tables = ["organizations", "agents", "products", "customers", "policies"]
    with pytest.raises(ContractViolation) as stopped:
        run_sync(spark, settings, tables, gate=count_gate)

    message = str(stopped.value)
    assert "\n" not in message
    assert (
        message.startswith("sync run ")
        and ("stopped customers: schema drift: source column customers.vip_level (VARCHAR(8)) is not in the contract")
        in message
    )
    assert message.endswith("; policies refer to it and wait; published: organizations, agents, products")
    for name in ("organizations", "agents", "products"):
        assert frame_rows(spark.table(silver_table(settings, name))) == expected_silver(
            world.contracts[name], world.live_rows(name), settings.require_pii_key()
        )
    assert set(read_watermarks(spark, settings)) == {"organizations", "agents", "products"}
    runs = {r["table"]: r for r in read_runs(spark, settings)}
    assert runs["customers"]["status"] == "failed" and "customers.vip_level" in runs["customers"]["detail"]
    assert runs["policies"]["status"] == "blocked" and "refers to customers" in runs["policies"]["detail"]
    report = {"tables": layer_counts(spark, settings)}
    assert health_problems(report, now=datetime.now(UTC), max_sync_age_hours=3, max_waiting=0) == [
        "never synced to silver: customers, policies, claims, complaints, consents, sales_recordings",
        f"sync run {runs['customers']['run_id']} failed at {report['tables']['customers']['last_run']['at']} UTC "
        f"(customers): {runs['customers']['detail']}",
    ]
    engine.dispose()


@pytest.mark.spark
def test_additive_table_carries_a_new_column_into_bronze_and_silver(spark, settings, tmp_path):
    contracts_dir = tmp_path / "contracts"
    shutil.copytree(SCHEMAS_DIR / "sources", contracts_dir)
    path = contracts_dir / "customers.yaml"
    path.write_text(path.read_text().replace("schema_evolution: strict", "schema_evolution: additive"))
    tables = ["organizations", "agents", "customers"]

    def gate(spark, settings, frames, source_counts, scopes=None, pending=None):
        class Passed:
            passed, failures = True, []

            def summary(self):
                return "passed"

        assert all(frames[t].count() == n for t, n in source_counts.items())
        return Passed()

    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    world = SourceWorld(engine)
    world.seed(customers=4)
    run_sync(spark, settings, tables, contracts_dir=contracts_dir, gate=gate)

    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE customers ADD COLUMN vip_level VARCHAR(8)"))
        conn.execute(text("UPDATE customers SET vip_level = 'gold' WHERE id = 2"))
    world.update("customers", 2)  # bumps updated_at
    manifest = run_sync(spark, settings, tables, contracts_dir=contracts_dir, gate=gate)

    assert manifest["tables"]["customers"]["columns_added"] == ["vip_level"]
    silver = {r["id"]: r for r in frame_rows(spark.table(silver_table(settings, "customers")))}
    assert silver[2]["vip_level"] == "gold"
    assert silver[1]["vip_level"] is None
    assert "vip_level" in spark.table(bronze_table(settings, "customers")).columns
    with pytest.raises(ContractViolation, match="vip_level"):  # the strict contracts still refuse it
        run_sync(spark, settings, tables, gate=gate)
    engine.dispose()
