"""The analytics marts built by dbt in the lake (schemas/serving/analytics.yaml tables with ``model:``): published
from ``<catalog>.marts.<model>`` at the snapshot current when the publish starts, in the contract's columns, in
the same atomic refresh as the platform's own figures; and every such table's columns are its dbt model's
enforced contract, column for column."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text

from mo.analytics import analytics_url, lake_tables, publish_analytics
from mo.config import REPO_ROOT, Settings
from mo.serving_store.contract import load_analytics_contract
from mo.serving_store.store import ServingStoreError

DBT_MODELS = REPO_ROOT / "dbt" / "models"
STATUS = {"generated_at": "2026-12-01T10:00:00Z", "tables": {}, "events": {}, "outbox": {}, "serving": {},
          "problems": []}  # fmt: skip


def _dbt_model_columns() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for path in DBT_MODELS.rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models") or []:
            found[model["name"]] = [(c["name"], c.get("data_type", "")) for c in model.get("columns") or []]
    return found


def test_every_lake_table_is_its_dbt_models_enforced_contract():
    contract = load_analytics_contract()
    models = _dbt_model_columns()
    for name, table in contract.tables.items():
        if not table.model:
            continue
        assert table.model in models, f"analytics table {name}: no dbt model {table.model} under dbt/models"
        assert (DBT_MODELS / "marts" / "analytics" / f"{table.model}.sql").exists(), table.model
        declared = [(c.name, c.mart_type) for c in table.columns]
        assert models[table.model] == declared, f"analytics table {name}: columns differ from dbt {table.model}"


def _contract(tmp_path: Path, model: str) -> Path:
    raw = {
        "schema": "analytics",
        "tables": {
            "lake_sizes": {
                "model": model,
                "description": "a test copy of a lake mart",
                "primary_key": ["day", "segment_id"],
                "columns": [
                    {"name": "day", "type": "date", "nullable": False},
                    {"name": "segment_id", "type": "string", "nullable": False},
                    {"name": "members", "type": "bigint", "nullable": False},
                ],
            },
            "platform_metrics": yaml.safe_load(
                (REPO_ROOT / "schemas" / "serving" / "analytics.yaml").read_text(encoding="utf-8")
            )["tables"]["platform_metrics"],
        },
    }
    path = tmp_path / "analytics.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.spark
def test_lake_tables_are_published_at_their_snapshot_beside_the_computed_ones(spark, tmp_path, monkeypatch):
    from mo.generator.world import generate_world
    from mo.oltp.db import make_engine, migrate
    from mo.serving_store.contract import load_analytics_contract as load

    settings = Settings(home=tmp_path / "home", catalog_name=f"lake_ana_{uuid.uuid4().hex[:8]}")
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    generate_world(engine, customers=50, seed=3, batch_size=50)
    engine.dispose()
    from spark_jobs.session import get_spark

    get_spark(settings)  # registers the test's catalog on the shared session
    model = f"ana_test_{uuid.uuid4().hex[:6]}"
    table = f"{settings.catalog_name}.marts.{model}"
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.marts")
    spark.sql(
        f"CREATE TABLE {table} (members BIGINT, segment_id STRING, day DATE, extra STRING) USING iceberg"
    )  # columns in another order and one more: the contract's columns are taken, in its order
    spark.sql(f"INSERT INTO {table} VALUES (10, 's_a', DATE'2026-12-01', 'x'), (4, 's_b', DATE'2026-12-01', 'y')")
    contract = load(_contract(tmp_path, model))

    # Pinned before a build commits more rows: the publish reads the snapshot current when it started.
    batches, snapshots = lake_tables(settings, contract, spark)
    spark.sql(f"INSERT INTO {table} VALUES (99, 's_c', DATE'2026-12-02', 'z')")
    assert list(snapshots) == [table] and snapshots[table] is not None
    rows = sorted(r for b in batches["lake_sizes"] for r in zip(*b.to_pydict().values(), strict=True))
    assert rows == [(spark.sql("SELECT DATE'2026-12-01'").first()[0], "s_a", 10),
                    (spark.sql("SELECT DATE'2026-12-01'").first()[0], "s_b", 4)]  # fmt: skip

    result = publish_analytics(settings, status_report=STATUS, spark=spark, contract=contract)
    assert result.row_counts["lake_sizes"] == 3 and result.row_counts["platform_metrics"] > 0
    with create_engine(analytics_url(settings)).connect() as conn:
        got = conn.execute(text("SELECT segment_id, members FROM lake_sizes ORDER BY segment_id")).all()
        source = conn.execute(
            text("SELECT source FROM refreshes WHERE refresh_id = :r"), {"r": result.refresh_id}
        ).scalar()
    assert [tuple(r) for r in got] == [("s_a", 10), ("s_b", 4), ("s_c", 99)]
    assert table in source  # the audit row names the snapshot it published

    # A mart that lacks a contract column stops the publish, naming it; the published refresh stays.
    spark.sql(f"DROP TABLE {table}")
    spark.sql(f"CREATE TABLE {table} (segment_id STRING, day DATE) USING iceberg")
    spark.sql(f"INSERT INTO {table} VALUES ('s_a', DATE'2026-12-01')")
    with pytest.raises(ServingStoreError, match="lake_sizes: input lacks contract column"):
        publish_analytics(settings, status_report=STATUS, spark=spark, contract=contract)
    with create_engine(analytics_url(settings)).connect() as conn:
        assert conn.execute(text("SELECT SUM(members) FROM lake_sizes")).scalar() == 113

    # A model not built yet is published empty; without the lake Spark is not asked at all.
    spark.sql(f"DROP TABLE {table}")
    missing = publish_analytics(settings, status_report=STATUS, spark=spark, contract=contract)
    assert missing.row_counts["lake_sizes"] == 0
    offline = publish_analytics(settings, status_report=STATUS, with_lake=False, spark=None, contract=contract)
    assert offline.row_counts["lake_sizes"] == 0
