"""The one SparkSession factory: master, catalog and jars come from configuration.

Local mode (``local[2]``) and a standalone/YARN/Kubernetes master run the same code; only
``MO_SPARK_MASTER`` and the catalog settings change. The Iceberg catalog is registered under
``settings.catalog_name``; more catalogs can be registered on a running session (tests use one
catalog per test to stay isolated).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from mo.config import Settings
from mo.errors import ConfigError

JDBC_JARS = (
    "/usr/share/java/mariadb-java-client.jar",
    "/usr/share/java/postgresql.jar",
    "/usr/share/java/sqlite-jdbc.jar",
)
ICEBERG_JAR_NAME = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"


def iceberg_jar() -> str:
    import snowpark_connect_deps_iceberg

    base = Path(snowpark_connect_deps_iceberg.__file__).parent
    matches = glob.glob(str(base / "**" / ICEBERG_JAR_NAME), recursive=True)
    if not matches:
        raise ConfigError(f"Iceberg runtime jar {ICEBERG_JAR_NAME} not found under {base}")
    return matches[0]


def spark_jars() -> list[str]:
    missing = [j for j in JDBC_JARS if not os.path.exists(j)]
    if missing:
        raise ConfigError(f"JDBC driver jar missing: {missing[0]} (run `make jars`)")
    return [iceberg_jar(), *JDBC_JARS]


def check_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise ConfigError("Java not found: Spark needs Java 17 on PATH or JAVA_HOME")


def catalog_conf(settings: Settings) -> dict[str, str]:
    """Spark conf keys that define the Iceberg catalog named ``settings.catalog_name``."""
    prefix = f"spark.sql.catalog.{settings.catalog_name}"
    conf = {prefix: "org.apache.iceberg.spark.SparkCatalog", f"{prefix}.warehouse": settings.resolved_warehouse}
    if settings.catalog_type == "jdbc":
        uri = settings.resolved_catalog_uri
        # Schema V1 is the one with views (dbt's staging models are views): without it every CREATE VIEW fails
        # with "initialized without view support", whatever database holds the catalog. On start Iceberg adds
        # V1's column to catalog tables an older set-up created at V0.
        conf.update({f"{prefix}.type": "jdbc", f"{prefix}.uri": uri, f"{prefix}.jdbc.schema-version": "V1"})
        if uri.startswith("jdbc:sqlite:"):
            # the tables are made by prepare_sqlite_catalog (see there why Iceberg must not make them)
            conf[f"{prefix}.jdbc.init-catalog-tables"] = "false"
        if settings.catalog_user:
            conf[f"{prefix}.jdbc.user"] = settings.catalog_user
        if settings.catalog_password:
            conf[f"{prefix}.jdbc.password"] = settings.catalog_password
    else:
        conf[f"{prefix}.type"] = settings.catalog_type
        if settings.catalog_uri:
            conf[f"{prefix}.uri"] = settings.catalog_uri
    return conf


# Iceberg's own DDL for its JDBC catalog tables (JdbcUtil, schema V0 plus the V1 column for views).
SQLITE_CATALOG_DDL = (
    "CREATE TABLE IF NOT EXISTS iceberg_tables(catalog_name VARCHAR(255) NOT NULL,"
    "table_namespace VARCHAR(255) NOT NULL,table_name VARCHAR(255) NOT NULL,metadata_location VARCHAR(1000),"
    "previous_metadata_location VARCHAR(1000),PRIMARY KEY (catalog_name, table_namespace, table_name))",
    "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties(catalog_name VARCHAR(255) NOT NULL,"
    "namespace VARCHAR(255) NOT NULL,property_key VARCHAR(255),property_value VARCHAR(1000),"
    "PRIMARY KEY (catalog_name, namespace, property_key))",
)
SQLITE_CATALOG_V1_COLUMN = "ALTER TABLE iceberg_tables ADD COLUMN iceberg_type VARCHAR(5)"


def prepare_sqlite_catalog(path: Path) -> None:
    """Create the embedded catalog's tables in the SQLite file ``path`` (idempotent, safe to race).

    Iceberg's JDBC catalog can create them itself on start, but doing so leaves a metadata query open on
    its connection: on SQLite that read lock makes the commits of every other catalog instance on the
    file fail with SQLITE_BUSY, whether another process (an Airflow task of another DAG, ``mo status``
    during a sync) or a second catalog name in the same session. So they are created here, before Spark
    touches the file, and :func:`catalog_conf` tells Iceberg not to.
    """
    import sqlite3
    from contextlib import closing

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as conn:
            conn.execute("BEGIN IMMEDIATE")  # one process at a time decides what is missing
            try:
                for ddl in SQLITE_CATALOG_DDL:
                    conn.execute(ddl)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(iceberg_tables)")}
                if "iceberg_type" not in columns:
                    conn.execute(SQLITE_CATALOG_V1_COLUMN)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"embedded Iceberg catalog {path} cannot be used: {exc}") from None


def prepare_local_dirs(settings: Settings) -> None:
    """Local directories of the lake and the embedded catalog's tables, where the settings use them."""
    if settings.catalog_uri is None or settings.resolved_warehouse.startswith("file://"):
        settings.lake_dir.mkdir(parents=True, exist_ok=True)
    if settings.resolved_warehouse.startswith("file://"):
        Path(settings.resolved_warehouse.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    uri = settings.resolved_catalog_uri
    if settings.catalog_type == "jdbc" and uri.startswith("jdbc:sqlite:"):
        prepare_sqlite_catalog(Path(uri.removeprefix("jdbc:sqlite:").split("?", 1)[0]))


def session_conf(settings: Settings) -> dict[str, str]:
    conf = {
        "spark.jars": ",".join(spark_jars()),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.session.timeZone": "UTC",
        # JDBC drivers convert timestamps with the JVM zone: keep every JVM on UTC.
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.catalogImplementation": "in-memory",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.adaptive.enabled": "true",
        # Python <-> JVM row hand-off through Arrow (event batches, GX); falls back on unsupported types.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "true",
    }
    if settings.spark_master.startswith("local"):
        # Local mode talks only to itself: keep the driver on loopback, whatever the host's interfaces.
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
        # Python workers run this interpreter (the project's environment), not whatever python3 is on PATH.
        conf["spark.pyspark.python"] = sys.executable
    conf.update(catalog_conf(settings))
    for item in filter(None, (p.strip() for p in settings.spark_extra_conf.split(","))):
        key, _, value = item.partition("=")
        conf[key.strip()] = value.strip()
    return conf


def get_spark(settings: Settings, app_name: str = "middle-office"):
    """Return the process's SparkSession, creating it on first use, with the settings' catalog registered."""
    from pyspark.sql import SparkSession

    check_java()
    active = SparkSession.getActiveSession()
    if active is not None:
        register_catalog(active, settings)
        return active
    prepare_local_dirs(settings)
    builder = SparkSession.builder.appName(app_name).master(settings.spark_master)
    for key, value in session_conf(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def register_catalog(spark, settings: Settings) -> None:
    """Add (or re-point) an Iceberg catalog on a running session; catalogs load lazily on first use.

    The local directories and the embedded catalog's tables are prepared when the session does not know
    the catalog as configured yet (each sync step registers its catalog again: that costs nothing).
    """
    changed = {key: value for key, value in catalog_conf(settings).items() if spark.conf.get(key, None) != value}
    if not changed:
        return
    prepare_local_dirs(settings)
    for key, value in changed.items():
        spark.conf.set(key, value)


@contextmanager
def temporary_conf(spark, values: Mapping[str, str]) -> Iterator[None]:
    """Set runtime SQL settings for a block; the previous values (or their absence) come back after it."""
    previous = {key: spark.conf.get(key, None) for key in values}
    for key, value in values.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def sql_over_frames(spark, query: str, **frames):
    """``spark.sql(query, **frames)`` that leaves the frames' caches alone.

    PySpark registers each frame as a temporary view for the query and drops the views afterwards, and
    dropping a view uncaches its plan: the plan of a cached frame passed in, so the caller's cache would
    silently go. Each frame goes in under a projection of its columns instead, a plan of its own that
    still reads the cache underneath.
    """
    return spark.sql(query, **{name: frame.select("*") for name, frame in frames.items()})
