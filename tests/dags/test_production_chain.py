"""The production-like configuration end to end, set by ``MO_*`` environment variables alone.

A MariaDB source, the Iceberg JDBC catalog and the serving store on PostgreSQL (a private database each),
the machine's Redis (a private key prefix), the tests' Kafka-protocol broker and a Spark standalone master
and worker on 127.0.0.1. The DAGs run through Airflow (``dag.test()``) in a process of their own that gets
nothing but its environment: source_sync -> events_ingest -> build_profiles (marts, segments, gate, publish),
then ``mo status --check`` must be clean, and the content is checked where it lands. Finally the sync is
submitted to the same cluster with spark-submit (the cluster's own entry point) after a day of changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, create_engine, text

from mo.config import REPO_ROOT, Settings
from tests.conftest import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, _create_database, _drop_database, unique
from tests.spark_cluster import SparkCluster, cluster_spark_conf

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.spark,
    pytest.mark.slow,
    pytest.mark.mariadb,
    pytest.mark.postgres,
    pytest.mark.kafka,
    pytest.mark.timeout(2400),
]

CUSTOMERS = 200
EVENTS = 60
REDIS_URL = os.environ.get("MO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PII_KEY = "production-like-test-key-not-a-secret-0123456789"  # production refuses keys under 32 characters
CONTENT_CHECKED = ["organizations", "agents", "customers"]  # row by row after the submitted sync


@dataclass
class Production:
    env: dict[str, str]  # the whole environment of every platform process
    settings: Settings  # the same settings, for this process's own checks
    source: Engine
    catalog_db_url: str
    serving_db_url: str
    cluster: SparkCluster


def _run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def _tail(done: subprocess.CompletedProcess, chars: int = 6000) -> str:
    return f"exit {done.returncode}\n--- stdout ---\n{done.stdout[-chars:]}\n--- stderr ---\n{done.stderr[-chars:]}"


@pytest.fixture(scope="module")
def production(tmp_path_factory, kafka_broker, spark_cluster):
    names = {"source": unique("mo_source"), "catalog": unique("mo_catalog"), "serving": unique("mo_serving")}
    source_url = _create_database(MARIADB_ADMIN_URL, names["source"])
    catalog_db_url = _create_database(POSTGRES_ADMIN_URL, names["catalog"])
    serving_db_url = _create_database(POSTGRES_ADMIN_URL, names["serving"])
    home = tmp_path_factory.mktemp("production")
    redis_prefix = unique("moprod")
    mo_env = {
        "MO_ENV": "production",
        "MO_HOME": str(home),
        "MO_PII_KEY": PII_KEY,
        "MO_SOURCE_URL": source_url,
        "MO_CATALOG_NAME": unique("lake"),  # private on the shared test session, where content is checked
        "MO_CATALOG_URI": f"jdbc:postgresql://127.0.0.1:5432/{names['catalog']}",
        "MO_CATALOG_USER": "postgres",
        "MO_WAREHOUSE": f"file://{home / 'warehouse'}",  # one host: executors see the driver's paths
        "MO_SPARK_MASTER": spark_cluster.master_url,
        "MO_SPARK_DRIVER_MEMORY": "1g",
        "MO_SPARK_EXTRA_CONF": cluster_spark_conf(),
        "MO_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "MO_KAFKA_TOPIC_PREFIX": unique("prod"),
        "MO_SERVING_DB_URL": serving_db_url,
        "MO_REDIS_URL": REDIS_URL,
        "MO_REDIS_PREFIX": redis_prefix,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("MO_")} | mo_env
    settings = Settings(**{k.removeprefix("MO_").lower(): v for k, v in mo_env.items()})
    from mo.oltp.db import make_engine

    source = make_engine(source_url)
    try:
        yield Production(env, settings, source, catalog_db_url, serving_db_url, spark_cluster)
    finally:
        source.dispose()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{redis_prefix}:*", count=1000))
        if keys:
            client.unlink(*keys)
        client.close()
        _drop_database(MARIADB_ADMIN_URL, names["source"])
        _drop_database(POSTGRES_ADMIN_URL, names["catalog"])
        _drop_database(POSTGRES_ADMIN_URL, names["serving"])


@pytest.fixture(scope="module")
def chain(production: Production) -> dict[str, Any]:
    """A world, events on the broker, the DAGs in order, then `mo status --check --json`."""
    from mo.events.producer import EventPublisher, publish_raw
    from mo.events.samples import sample_stream
    from mo.generator.storage import read_clock

    generated = _run([sys.executable, "-m", "mo", "generate", "--customers", str(CUSTOMERS), "--seed", "5"],
                     production.env, 600)  # fmt: skip
    assert generated.returncode == 0, _tail(generated)

    publisher = EventPublisher(production.settings)
    for event in sample_stream(EVENTS):
        publisher.publish({**event, "customer_id": event["customer_id"] % CUSTOMERS + 1})
    publisher.close()
    publish_raw(production.settings, f"{production.settings.kafka_topic_prefix}.behaviour", b"{not json", None)

    with production.source.connect() as conn:
        clock = read_clock(conn)
    assert clock is not None
    as_of = clock.current_date.isoformat()
    runs = [
        "source_sync",
        "events_ingest",
        f"build_profiles={json.dumps({'as_of': as_of, 'force': True})}",
        f"build_profiles={json.dumps({'as_of': as_of})}",  # the same day again: not due
    ]
    dags = _run([sys.executable, "-m", "tests.dags.run_dags", *runs], production.env, 1800)
    results = [json.loads(line.split(" ", 1)[1]) for line in dags.stdout.splitlines() if line.startswith("DAG_RUN ")]
    assert dags.returncode == 0, _tail(dags)

    status = _run([sys.executable, "-m", "mo", "status", "--check", "--json"], production.env, 600)
    return {"as_of": as_of, "runs": results, "status": status}


def test_every_dag_succeeds_on_the_cluster_and_status_is_clean(production: Production, chain):
    source_sync, events_ingest, build_profiles, rerun = chain["runs"]
    for run in (source_sync, events_ingest, build_profiles):
        assert run["state"] == "success", run
        assert all(state == "success" for state in run["tasks"].values()), run
    assert rerun["state"] == "success" and rerun["tasks"]["dbt_build"] == "skipped", rerun
    assert production.cluster.executor_logs(), "no executor ran on the worker"

    status = chain["status"]
    assert status.returncode == 0, _tail(status)
    assert json.loads(status.stdout)["problems"] == []


def test_content_landed_in_every_store(production: Production, chain, spark):
    from mo.contracts import load_source_contracts
    from mo.serving_store import open_store
    from mo.serving_store.redis_store import current_refresh, get_profile
    from spark_jobs.session import register_catalog
    from tests.spark_jobs.sync_world import SourceWorld, expected_silver

    report = json.loads(chain["status"].stdout)
    for name, row in report["tables"].items():
        assert row["source"] and row["silver"] == row["source"], (name, row)  # every table, by live count
    assert report["tables"]["customers"]["source"] == CUSTOMERS
    assert (report["events"]["events"], report["events"]["dead_letter"]) == (EVENTS, 1)
    assert report["marts"]["customer_profile"] == CUSTOMERS

    store = open_store(production.settings)
    try:
        current = store.current_refresh()
    finally:
        store.dispose()
    assert current is not None and str(current.as_of_date) == chain["as_of"]
    assert current.row_counts["customer_profile"] == CUSTOMERS
    assert current.row_counts["segments"] >= 6  # the example definitions, empty ones included
    assert report["serving"]["refresh"]["refresh_id"] == current.refresh_id

    # one known customer from source to serving store and Redis: its phone token is recomputed from the source
    customers = SourceWorld(production.source).live_rows("customers")
    known = expected_silver(load_source_contracts()["customers"], customers[:1], PII_KEY.encode())[0]
    serving = create_engine(production.serving_db_url)
    with serving.connect() as conn:
        served = conn.execute(
            text("select customer_id, phone_token from serving.customer_profile where customer_id = :id"),
            {"id": known["id"]},
        ).one()
    serving.dispose()
    assert (served.customer_id, served.phone_token) == (known["id"], known["phone_token"])
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert current_refresh(client, prefix=production.settings.redis_prefix) == current.refresh_id
        profile = get_profile(client, known["id"], prefix=production.settings.redis_prefix)
        assert profile is not None and profile["phone_token"] == known["phone_token"]
        assert client.get("mo:profile:current") != current.refresh_id.encode()  # nothing under the default prefix
    finally:
        client.close()

    # the catalog lives in PostgreSQL, views (dbt's staging models) included
    catalog_db = create_engine(production.catalog_db_url)
    with catalog_db.connect() as conn:
        registered = conn.execute(
            text(
                "select table_namespace || '.' || table_name, iceberg_type from iceberg_tables where catalog_name = :c"
            ),
            {"c": production.settings.catalog_name},
        ).all()
    catalog_db.dispose()
    assert {"silver.customers", "bronze.policies", "ops.watermarks", "marts.customer_profile"} <= {
        name for name, _ in registered
    }
    assert "staging.stg_silver__customers" in {name for name, kind in registered if kind == "VIEW"}
    register_catalog(spark, production.settings)
    assert spark.table(f"{production.settings.catalog_name}.marts.customer_profile").count() == CUSTOMERS


def test_the_dags_tasks_record_the_builds_step_times_under_its_run_id(production: Production, chain, spark):
    """Each build_profiles task records its steps (ops.build_steps) as it ends: the Data platform health
    dashboard shows the scheduled builds' step times, not only those run by hand."""
    from mo.step_times import BUILD_STEPS, build_step_rows
    from spark_jobs.session import register_catalog

    register_catalog(spark, production.settings)
    build = chain["runs"][2]
    rows = [r for r in build_step_rows(spark, production.settings) if r["run_id"] == build["run_id"]]
    assert [(r["step"], r["step_no"], r["status"]) for r in sorted(rows, key=lambda r: r["step_no"])] == [
        (name, number, "ok") for number, name in enumerate(BUILD_STEPS, start=1)
    ]
    assert all(r["seconds"] >= 0 for r in rows)


def test_sync_submitted_to_the_cluster_after_a_day_of_changes(production: Production, chain, spark):
    """spark-submit runs the sync as the cluster's own application: silver then equals the source again,
    every table by live count and the PII-carrying ones row by row (tokens recomputed)."""
    from mo.generator.advance import advance_day
    from mo.status import source_live_counts
    from spark_jobs.lake import silver_table
    from spark_jobs.submit_sync import submit_command
    from spark_jobs.sync import layer_counts
    from tests.spark_jobs.sync_world import SourceWorld, expected_silver, frame_rows

    changes = advance_day(production.source, pii_key=PII_KEY.encode())
    assert changes
    # spark-submit starts the driver's Python itself: name this environment's interpreter
    env = production.env | {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    submitted = _run(submit_command(production.settings), env, 1200)
    assert submitted.returncode == 0, _tail(submitted)
    report = json.loads(submitted.stdout.strip().splitlines()[-1])
    world = SourceWorld(production.source)
    assert set(report["tables"]) == set(world.contracts)

    lake = layer_counts(spark, production.settings)  # registers the catalog on this process's session
    assert {name: lake[name]["silver"] for name in world.contracts} == source_live_counts(production.settings)
    for name in CONTENT_CHECKED:
        expected = expected_silver(world.contracts[name], world.live_rows(name), PII_KEY.encode())
        assert frame_rows(spark.table(silver_table(production.settings, name))) == expected, name
