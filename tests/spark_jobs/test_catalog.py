"""The embedded SQLite catalog: its tables are made before Spark opens it, so catalog instances never lock
each other out (Iceberg making them itself leaves a read lock that fails other instances' commits)."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from mo.config import Settings
from mo.errors import ConfigError
from spark_jobs.session import SQLITE_CATALOG_DDL, catalog_conf, prepare_sqlite_catalog, register_catalog


@pytest.mark.spark
def test_two_catalog_instances_on_one_sqlite_file_both_commit(spark, tmp_path):
    names = ("lake_left", "lake_right")  # two instances of one file: what two processes are too
    for name in names:
        register_catalog(spark, Settings(home=tmp_path, catalog_name=name))
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {name}.ns")
        spark.sql(f"CREATE TABLE {name}.ns.t (id bigint) USING iceberg")
    for i in range(2):
        for name in names:
            spark.sql(f"INSERT INTO {name}.ns.t VALUES ({i})")
    for name in names:
        assert sorted(r["id"] for r in spark.table(f"{name}.ns.t").collect()) == [0, 1]


def test_prepare_is_idempotent_and_upgrades_a_catalog_without_the_view_column(tmp_path):
    path = tmp_path / "catalog.db"
    with closing(sqlite3.connect(path)) as conn:  # a catalog as Iceberg made it with schema V0
        for ddl in SQLITE_CATALOG_DDL:
            conn.execute(ddl)
        conn.execute("INSERT INTO iceberg_tables VALUES ('lake', 'silver', 'customers', '/m/1.json', NULL)")
        conn.commit()
    prepare_sqlite_catalog(path)
    prepare_sqlite_catalog(path)
    with closing(sqlite3.connect(path)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(iceberg_tables)")]
        rows = conn.execute("SELECT table_name, metadata_location, iceberg_type FROM iceberg_tables").fetchall()
    assert columns[-1] == "iceberg_type" and columns.count("iceberg_type") == 1
    assert rows == [("customers", "/m/1.json", None)]


def test_a_catalog_file_that_is_not_a_database_is_named(tmp_path):
    path = tmp_path / "catalog.db"
    path.write_text("not a database, " * 100)
    with pytest.raises(
        ConfigError, match=r"embedded Iceberg catalog .*catalog\.db cannot be used: file is not a database"
    ):
        prepare_sqlite_catalog(path)
    assert path.read_text() == "not a database, " * 100  # left as it was


@pytest.mark.parametrize(
    "uri", ["jdbc:sqlite:/data/lake/catalog.db", "jdbc:postgresql://catalog-db:5432/iceberg_catalog"]
)
def test_every_jdbc_catalog_is_opened_with_view_support(tmp_path, uri):
    """Schema V1 is the JDBC catalog's schema with views; dbt's staging models are views."""
    conf = catalog_conf(Settings(home=tmp_path, catalog_name="lake", catalog_uri=uri))
    assert conf["spark.sql.catalog.lake.jdbc.schema-version"] == "V1"


@pytest.mark.spark
@pytest.mark.postgres
def test_a_postgres_catalog_made_without_views_is_upgraded_and_takes_views(spark, tmp_path, postgres_url):
    """A catalog whose tables were created at schema V0 (the platform's conf before views) takes views once
    opened with the platform's conf: Iceberg adds V1's column to the existing tables."""
    from sqlalchemy import create_engine, text

    uri = f"jdbc:postgresql://127.0.0.1:5432/{postgres_url.rsplit('/', 1)[1]}"
    old = "lake_v0"
    for key, value in {"": "org.apache.iceberg.spark.SparkCatalog", ".type": "jdbc", ".uri": uri,
                       ".jdbc.user": "postgres", ".warehouse": f"file://{tmp_path}/warehouse"}.items():  # fmt: skip
        spark.conf.set(f"spark.sql.catalog.{old}{key}", value)
    spark.sql(f"CREATE NAMESPACE {old}.ns")
    spark.sql(f"CREATE TABLE {old}.ns.t (id bigint) USING iceberg")
    catalog_db = create_engine(postgres_url)
    with catalog_db.connect() as conn:
        columns = set(conn.execute(text("select column_name from information_schema.columns "
                                        "where table_name = 'iceberg_tables'")).scalars())  # fmt: skip
    assert "iceberg_type" not in columns  # really a V0 catalog

    settings = Settings(home=tmp_path, catalog_name="lake_v1", catalog_uri=uri, catalog_user="postgres")
    register_catalog(spark, settings)
    spark.sql("CREATE NAMESPACE lake_v1.ns")
    spark.sql("CREATE TABLE lake_v1.ns.t (id bigint) USING iceberg")
    spark.sql("INSERT INTO lake_v1.ns.t VALUES (1), (2)")
    spark.sql("CREATE VIEW lake_v1.ns.v AS SELECT id FROM lake_v1.ns.t WHERE id > 1")
    assert [r["id"] for r in spark.table("lake_v1.ns.v").collect()] == [2]
    assert spark.table(f"{old}.ns.t").count() == 0  # the V0-era table still opens
    catalog_db.dispose()
