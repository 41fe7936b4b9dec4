"""Serving-store fixtures: a private schema on the machine's PostgreSQL, a SQLite file, and a private key
prefix on the machine's Redis, each removed afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from mo.serving_store.store import SqlServingStore
from tests.conftest import unique

POSTGRES_URL = os.environ.get("MO_TEST_SERVING_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def pg_schema() -> Iterator[str]:
    schema = unique("serving")
    yield schema
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def pg_store(pg_schema: str) -> Iterator[SqlServingStore]:
    store = SqlServingStore(POSTGRES_URL, schema=pg_schema)
    yield store
    store.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlServingStore]:
    store = SqlServingStore(f"sqlite:///{tmp_path / 'serving' / 'serving.db'}")
    yield store
    store.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> SqlServingStore:
    """Each test that takes ``store`` runs on both serving databases."""
    return request.getfixturevalue("sqlite_store" if request.param == "sqlite" else "pg_store")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix private to the test on the machine's Redis; its keys are removed afterwards."""
    prefix = unique("motest")
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture
def redis_client(redis_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()
