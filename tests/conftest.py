"""Shared fixtures: isolated settings per test, one SparkSession per run, throwaway databases on the
machine's MariaDB and PostgreSQL, and a local Kafka-protocol broker started by the tests themselves."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MO_PII_KEY", "test-key")
os.environ.setdefault("JAVA_TOOL_OPTIONS", "-Duser.timezone=UTC")

MARIADB_ADMIN_URL = os.environ.get("MO_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
POSTGRES_ADMIN_URL = os.environ.get("MO_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def mo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private MO_HOME (source DB, lake, state) for one test."""
    home = tmp_path / "mo_home"
    home.mkdir()
    monkeypatch.setenv("MO_HOME", str(home))
    for var in ("MO_SOURCE_URL", "MO_CATALOG_URI", "MO_WAREHOUSE", "MO_CATALOG_NAME"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def settings(mo_home: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings for one test, with its own Iceberg catalog name so tests sharing the session stay apart."""
    from mo.config import get_settings

    monkeypatch.setenv("MO_CATALOG_NAME", unique("lake"))
    return get_settings()


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """The one SparkSession of the test run (JVM start is the dominant cost)."""
    from mo.config import Settings
    from spark_jobs.session import get_spark

    home = tmp_path_factory.mktemp("spark_home")
    session = get_spark(Settings(home=home, catalog_name="lake_session"), app_name="mo-tests")
    yield session
    session.stop()


def _create_database(admin_url: str, name: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def _drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    engine.dispose()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh database on the machine's MariaDB, dropped afterwards."""
    name = unique("mo_test")
    url = _create_database(MARIADB_ADMIN_URL, name)
    yield url
    _drop_database(MARIADB_ADMIN_URL, name)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards."""
    name = unique("mo_test")
    url = _create_database(POSTGRES_ADMIN_URL, name)
    yield url
    _drop_database(POSTGRES_ADMIN_URL, name)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory):
    """A Kafka-protocol broker (Tansu) on a free local port for the whole run."""
    from mo.events.broker import start_embedded

    handle = start_embedded(port=free_port(), log_dir=tmp_path_factory.mktemp("broker"))
    yield handle
    handle.stop()


@pytest.fixture
def kafka_settings(settings, kafka_broker, monkeypatch: pytest.MonkeyPatch):
    """Settings pointing at the test broker, with topic names private to the test."""
    from mo.config import get_settings

    monkeypatch.setenv("MO_KAFKA_BOOTSTRAP", kafka_broker.bootstrap)
    monkeypatch.setenv("MO_KAFKA_TOPIC_PREFIX", unique("t"))
    return get_settings()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A Spark standalone master and a 1-core/1g worker on 127.0.0.1 for the whole run (tests/spark_cluster.py)."""
    from tests.spark_cluster import start_cluster, stop

    cluster, processes = start_cluster(tmp_path_factory.mktemp("spark_cluster"))
    yield cluster
    for proc in reversed(processes):
        stop(proc)


CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by `make browser`


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium (the machine's, driven by Playwright's sync API) for the whole run: the sync API runs
    an event loop of its own, so a second one started while the first lives fails; every browser test shares this."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def dashboards_world(spark, tmp_path_factory: pytest.TempPathFactory):
    """The world every dashboard test reads, built through build_profiles once (tests/dashboards_world.py)."""
    from tests.dashboards_world import build_dashboards_world

    return build_dashboards_world(spark, tmp_path_factory.mktemp("dashboards_home"))


@pytest.fixture(scope="session")
def dashboards(dashboards_world, tmp_path_factory: pytest.TempPathFactory):
    """Superset started by `make dashboards` over the dashboards world, stopped by `make dashboards-stop`."""
    from tests.dashboards_world import start_dashboards, stop_dashboards

    started = start_dashboards(dashboards_world, free_port(), tmp_path_factory.mktemp("dashboards_users"))
    try:
        yield started
    finally:
        stop_dashboards(started)


# The shared dashboards world is built in the setup of the first test that asks for it (build_profiles, then
# `make dashboards`): pytest-timeout counts that setup against that test, so any test using it gets room for it.
WORLD_FIXTURES = {"dashboards_world", "dashboards"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if WORLD_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.timeout(2400))
