"""SQL Lab on the lake: the Spark Thrift server `make dashboards` starts over the dashboards world's catalog, read
through PyHive with the dialect fix (dashboards/lake_sql_dialect.py), and through Superset's SQL Lab as analysts;
first the endpoint's configuration, the bundle's Lake database and the read-only guard without any server.

One Thrift server for the session: the one the shared ``dashboards`` fixture's `make dashboards` starts (the world
has a lake), stopped by its `make dashboards-stop`. The small Iceberg table the dialect is checked on is written
by the tests' shared SparkSession into the same catalog, in a namespace of its own, its second snapshot committed
while the server runs.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from io import BytesIO

import pytest
import requests

from mo.config import REPO_ROOT, Settings

SUPERSET_PYTHON = REPO_ROOT / "dashboards" / ".venv" / "bin" / "python"


def over_the_world(test):
    """Marks of a test over the session's dashboards world and its endpoint; it may be the first to wait for the
    world's build and `make dashboards` (minutes on a busy machine)."""
    for mark in (pytest.mark.spark, pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(2400)):
        test = mark(test)
    return test


PROBE_NAMESPACE = "lake_sql_probe"

# Run with Superset's Python (PyHive lives only there): the fixed dialect's metadata calls and some queries, as JSON.
PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import lake_sql_dialect
lake_sql_dialect.register()
from sqlalchemy import create_engine, inspect, text

url, namespace, table, queries = sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
engine = create_engine(url)
out = {}
if namespace:
    inspector = inspect(engine)
    out["schemas"] = inspector.get_schema_names()
    out["tables"] = inspector.get_table_names(namespace)
    out["views"] = inspector.get_view_names(namespace)
    out["columns"] = [[c["name"], type(c["type"]).__name__] for c in inspector.get_columns(table, namespace)]
    out["indexes"] = inspector.get_indexes(table, namespace)
    with engine.connect() as conn:
        out["has_table"] = engine.dialect.has_table(conn, table, schema=namespace)
        out["has_missing_table"] = engine.dialect.has_table(conn, "no_such_table", schema=namespace)
with engine.connect() as conn:
    out["queries"] = [[[str(v) for v in row] for row in conn.execute(text(q)).fetchall()] for q in queries]
print(json.dumps(out))
"""


def test_the_endpoint_serves_the_jobs_catalog_read_only_on_loopback(tmp_path, monkeypatch):
    from mo.lake_sql import LakeSqlError, lake_url, server_command, server_conf, start, status
    from spark_jobs.session import catalog_conf

    settings = Settings(home=tmp_path, catalog_name="lake_x", lake_sql_port=20399)
    conf = server_conf(settings)
    jobs = catalog_conf(settings)
    uri_key = "spark.sql.catalog.lake_x.uri"
    same = {k: v for k, v in jobs.items() if k != uri_key}
    assert {k: v for k, v in conf.items() if k in same} == same
    assert conf[uri_key] == jobs[uri_key] + "?open_mode=1"  # SQLite read-only: never the builds' write lock
    assert conf["spark.sql.defaultCatalog"] == "lake_x" and conf["spark.sql.catalog.lake_x.cache-enabled"] == "false"
    assert conf["spark.sql.hive.thriftServer.singleSession"] == "true" and conf["spark.sql.runSQLOnFiles"] == "false"
    command = server_command(settings)
    assert "hive.server2.thrift.bind.host=127.0.0.1" in command and "hive.server2.thrift.port=20399" in command
    assert lake_url(settings) == "hive://superset@127.0.0.1:20399/silver"
    with pytest.raises(LakeSqlError, match="no lake under"):
        start(settings)
    external = Settings(home=tmp_path, lake_sql_url="trino://mo@trino.internal:8080/iceberg/silver")
    assert lake_url(external) == external.lake_sql_url and status(external).external
    with pytest.raises(LakeSqlError, match="runs elsewhere"):
        start(external)


def test_the_lake_database_is_rendered_without_its_password_or_left_out():
    from mo.dashboards import analytics_connection, lake_connection, read_bundle, render_steps

    analytics = analytics_connection("sqlite:////tmp/analytics.db")
    lake = lake_connection("trino://mo:s3cret-pw@trino.internal:8080/iceberg/silver")
    for _, archive, passwords in render_steps(read_bundle(), analytics, lake):
        with zipfile.ZipFile(BytesIO(archive)) as zf:
            assert not any(b"s3cret" in zf.read(n) for n in zf.namelist())
            assert b"trino://mo:XXXXXXXXXX@trino.internal:8080" in zf.read("bundle/databases/Lake.yaml")
        assert passwords == {"bundle/databases/Lake.yaml": "s3cret-pw"}
    for _, archive, _ in render_steps(read_bundle(), analytics):  # no lake URL: Superset keeps its Lake
        assert "bundle/databases/Lake.yaml" not in zipfile.ZipFile(BytesIO(archive)).namelist()


GUARD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from sql_lab_guard import refused_statement
print(json.dumps({sql: refused_statement(sql, "hive") for sql in json.loads(sys.argv[2])}))
"""


def test_the_read_only_guard_lets_reads_through_and_names_anything_else():
    reads = [
        "SELECT * FROM silver.policies VERSION AS OF 1", "WITH a AS (SELECT 1) SELECT * FROM a",
        "SELECT 1 UNION ALL SELECT 2", "SHOW TABLES IN marts", "DESCRIBE silver.policies", "EXPLAIN SELECT 1",
    ]  # fmt: skip
    others = {
        "CALL lake.system.rollback_to_snapshot('silver.policies', 1)": "CALL",
        "SET spark.sql.runSQLOnFiles=true": "SET",
        "CACHE TABLE silver.policies": "CACHE",
        "USE bronze": "USE",
        "ADD JAR /tmp/x.jar": "ADD JAR",
        "LOAD DATA INPATH '/tmp/x' INTO TABLE silver.policies": "LOAD DATA",
        "SELECT * INTO copy FROM silver.policies": "COPY",
        "SELECT 1; DROP TABLE silver.policies": "DROP TABLE",
    }
    run = subprocess.run(
        [str(SUPERSET_PYTHON), "-c", GUARD, str(REPO_ROOT / "dashboards"), json.dumps([*reads, *others])],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    refused = json.loads(run.stdout.strip().splitlines()[-1])
    assert {sql: refused[sql] for sql in reads} == dict.fromkeys(reads)
    for sql, word in others.items():
        assert refused[sql] is not None and word in refused[sql].upper(), (sql, refused[sql])


def _probe(url: str, queries: list[str], namespace: str = "", table: str = "") -> dict:
    run = subprocess.run(
        [str(SUPERSET_PYTHON), "-c", PROBE, str(REPO_ROOT / "dashboards"), url, namespace, table, json.dumps(queries)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def _rows(frame) -> list[list[str]]:
    return [[str(v) for v in row] for row in frame.collect()]


@pytest.fixture(scope="module")
def lake(dashboards, spark):
    """The dashboards world's lake behind `make dashboards`'s Thrift server, plus a small partitioned table with two
    snapshots written by the tests' SparkSession (the second one while the server runs and has read the first)."""
    from mo.lake_sql import lake_url, status

    settings = dashboards.world.settings
    state = status(settings)
    assert state.running, f"`make dashboards` did not start the lake's SQL endpoint: {state}"
    catalog = settings.catalog_name
    table = f"{catalog}.{PROBE_NAMESPACE}.policies"
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {catalog}.{PROBE_NAMESPACE}")
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    spark.sql(
        f"CREATE TABLE {table} (id bigint, product string, premium decimal(12,2), tags array<string>, "
        "issued_at timestamp) USING iceberg PARTITIONED BY (days(issued_at), bucket(4, id))"
    )
    spark.sql(
        f"INSERT INTO {table} VALUES (1, 'auto', 100.50, array('a'), timestamp'2026-01-01 10:00:00'), "
        "(2, 'health', 200.00, array('b', 'c'), timestamp'2026-01-02 11:00:00')"
    )
    url = lake_url(settings)
    first = _probe(url, [f"SELECT count(*) FROM {PROBE_NAMESPACE}.policies"])
    assert first["queries"] == [[["2"]]]
    # The build commits while the endpoint is up and has read the table: the commit goes through, readers see it.
    spark.sql(f"UPDATE {table} SET premium = premium + 1 WHERE id = 1")
    spark.sql(f"INSERT INTO {table} VALUES (3, 'life', 300.00, array(), timestamp'2026-01-03 12:00:00')")
    snapshots = spark.sql(f"SELECT snapshot_id, committed_at FROM {table}.snapshots ORDER BY committed_at").collect()
    return {"settings": settings, "url": url, "table": table, "snapshots": snapshots}


@over_the_world
def test_the_fixed_dialect_reads_spark_listings_partitioned_iceberg_columns_and_time_travel(lake, spark):
    table = lake["table"]
    first = lake["snapshots"][0]
    stamp = first.committed_at.strftime("%Y-%m-%d %H:%M:%S.%f")
    queries = {
        "current": f"SELECT id, product, premium, issued_at FROM {PROBE_NAMESPACE}.policies ORDER BY id",
        "version": f"SELECT id, premium FROM {PROBE_NAMESPACE}.policies VERSION AS OF {first.snapshot_id} ORDER BY id",
        "timestamp": f"SELECT id, premium FROM {PROBE_NAMESPACE}.policies TIMESTAMP AS OF '{stamp}' ORDER BY id",
        "snapshots": f"SELECT count(*) FROM {PROBE_NAMESPACE}.policies.snapshots",
    }
    out = _probe(lake["url"], list(queries.values()), PROBE_NAMESPACE, "policies")
    assert {"silver", "marts", PROBE_NAMESPACE} <= set(out["schemas"])
    assert out["tables"] == ["policies"]  # stock PyHive answered the namespace's name here
    assert out["views"] == []
    # stock PyHive raised on the `# Partitioning` rows of a partitioned Iceberg table
    assert out["columns"] == [
        ["id", "BigInteger"], ["product", "String"], ["premium", "HiveDecimal"], ["tags", "String"],
        ["issued_at", "HiveTimestamp"],
    ]  # fmt: skip
    assert out["indexes"] == []  # transforms (days, bucket) are not partition columns to SHOW PARTITIONS on
    assert out["has_table"] is True and out["has_missing_table"] is False
    current, version, timestamp, snapshot_count = out["queries"]
    assert current == _rows(spark.sql(f"SELECT id, product, premium, issued_at FROM {table} ORDER BY id"))
    assert current[0][2] == "101.50" and len(current) == 3
    assert version == timestamp == [["1", "100.50"], ["2", "200.00"]]
    assert snapshot_count == [[str(len(lake["snapshots"]))]] and len(lake["snapshots"]) == 3


# --- through Superset's SQL Lab --------------------------------------------------------------------------------


def _lake_id(client) -> int:
    return next(d["id"] for d in client.list_all("database") if d["database_name"] == "Lake")


def _sql(client, database_id: int, sql: str, schema: str = "silver") -> requests.Response:
    return client.http.post(
        f"{client.url}/api/v1/sqllab/execute/",
        json={"database_id": database_id, "sql": sql, "runAsync": False, "schema": schema},
        timeout=120,
    )


@over_the_world
def test_a_head_office_analyst_reads_the_lake_in_sql_lab_as_spark_does(lake, dashboards, spark):
    analyst = dashboards.client(dashboards.head_analyst)
    lake_id = _lake_id(dashboards.client())
    schemas = analyst.get(f"/api/v1/database/{lake_id}/schemas/")["result"]
    assert sorted(schemas) == ["marts", "segments", "silver"]  # not bronze, silver_restricted, ops, staging, ...
    catalog = lake["settings"].catalog_name
    sql = (
        "SELECT p.subject_type, count(*) AS policies, count(DISTINCT p.customer_id) AS customers, "
        "CAST(sum(p.sum_insured) AS STRING) AS insured FROM silver.policies p GROUP BY p.subject_type "
        "ORDER BY p.subject_type"
    )
    answer = _sql(analyst, lake_id, sql)
    assert answer.status_code == 200, answer.text
    expected = spark.sql(sql.replace("silver.", f"{catalog}.silver.")).collect()
    assert [[r["subject_type"], r["policies"], r["customers"], r["insured"]] for r in answer.json()["data"]] == [
        list(r) for r in expected
    ]
    assert len(expected) == 3
    # time travel on segments' membership: its first snapshot with rows, as Spark reads it
    members = f"{catalog}.segments.membership"
    first = spark.sql(
        f"SELECT snapshot_id FROM {members}.snapshots WHERE CAST(summary['total-records'] AS BIGINT) > 0 "
        "ORDER BY committed_at LIMIT 1"
    ).first()
    travel = f"SELECT count(*) AS n FROM segments.membership VERSION AS OF {first.snapshot_id}"
    answer = _sql(analyst, lake_id, travel)
    assert answer.status_code == 200, answer.text
    n = spark.sql(f"SELECT count(*) AS n FROM {members} VERSION AS OF {first.snapshot_id}").first().n
    assert answer.json()["data"] == [{"n": n}] and n > 0


@over_the_world
def test_sql_lab_refuses_writes_and_restricted_tables_on_the_lake_naming_them(lake, dashboards, spark):
    analyst = dashboards.client(dashboards.head_analyst)
    lake_id = _lake_id(dashboards.client())
    catalog = lake["settings"].catalog_name
    table = f"{catalog}.silver.policies"
    snapshots_before = spark.sql(f"SELECT count(*) FROM {table}.snapshots").first()[0]
    rows_before = spark.sql(f"SELECT count(*) FROM {table}").first()[0]

    insert = _sql(analyst, lake_id, "INSERT INTO silver.policies SELECT * FROM silver.policies LIMIT 1")
    assert insert.status_code >= 400 and "DML" in insert.text, insert.text
    # Superset's own DML check lets CALL through (its parser does not classify it): the read-only guard refuses it
    first = spark.sql(f"SELECT snapshot_id FROM {table}.snapshots ORDER BY committed_at LIMIT 1").first().snapshot_id
    call = _sql(analyst, lake_id, f"CALL {catalog}.system.rollback_to_snapshot('silver.policies', {first})")
    assert call.status_code >= 400 and "read-only" in call.text and "CALL" in call.text, call.text
    setting = _sql(analyst, lake_id, "SET spark.sql.runSQLOnFiles=true")
    assert setting.status_code >= 400 and "SET" in setting.text, setting.text
    assert spark.sql(f"SELECT count(*) FROM {table}.snapshots").first()[0] == snapshots_before  # nothing written
    assert spark.sql(f"SELECT count(*) FROM {table}").first()[0] == rows_before

    restricted = _sql(analyst, lake_id, "SELECT * FROM silver_restricted.customers_pii LIMIT 5")
    assert restricted.status_code >= 400 and "silver_restricted.customers_pii" in restricted.text, restricted.text
    raw = _sql(analyst, lake_id, "SELECT count(*) FROM silver.customers c JOIN bronze.events e ON e.customer_id = c.id")
    assert raw.status_code >= 400 and "bronze.events" in raw.text, raw.text
    files = _sql(analyst, lake_id, "SELECT * FROM parquet.`/etc`")
    assert files.status_code >= 400, files.text


@over_the_world
def test_the_lake_is_for_head_office_analysts_only(lake, dashboards):
    lake_id = _lake_id(dashboards.client())
    # an organisation's analyst: row-level security cannot follow into the lake's tables
    analyst = dashboards.client(dashboards.analyst)
    assert [d["database_name"] for d in analyst.list_all("database")] == ["Analytics"]
    answer = _sql(analyst, lake_id, "SELECT count(*) FROM silver.customers")
    assert answer.status_code >= 400 and '"success"' not in answer.text, answer.text
    answer = _sql(dashboards.client(dashboards.marketer), lake_id, "SELECT count(*) FROM silver.customers")
    assert answer.status_code == 403, answer.text
