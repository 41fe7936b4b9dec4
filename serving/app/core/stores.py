"""The stores the API talks to, opened once per process in the lifespan.

- the core systems' database (``source``): the platform's own engine factory and models (mo.oltp), with a
  statement timeout on every connection;
- the serving store: the platform's ``SqlServingStore`` (mo.serving_store), read-only here;
- Redis: the platform's profile store, plus the API's hot records and rate-limit counters.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from sqlalchemy import Engine, event

from app.core.config import Settings
from mo.oltp.db import make_engine
from mo.serving_store import redis_store
from mo.serving_store.store import SqlServingStore, open_store


def source_engine(settings: Settings) -> Engine:
    engine = make_engine(settings.resolved_source_url)
    timeout = settings.statement_timeout_seconds
    dialect = engine.dialect.name

    @event.listens_for(engine, "connect")
    def _statement_timeout(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_conn.cursor()
        if dialect == "postgresql":
            cursor.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            cursor.execute(f"SET lock_timeout = {int(timeout * 1000)}")
        elif dialect in ("mysql", "mariadb"):
            cursor.execute(f"SET SESSION max_statement_time = {timeout:.3f}")
            cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {max(1, int(timeout))}")
        elif dialect == "sqlite":
            cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        cursor.close()
        if dialect == "postgresql":
            dbapi_conn.commit()

    return engine


def serving_store(settings: Settings) -> SqlServingStore:
    return open_store(settings.platform, url=settings.resolved_database_url)


def connect_redis(settings: Settings) -> redis.Redis:
    url = settings.resolved_redis_url
    if url:
        return redis.Redis.from_url(
            url,
            socket_connect_timeout=settings.probe_timeout_seconds,
            socket_timeout=settings.probe_timeout_seconds,
            health_check_interval=30,
        )
    return redis_store.connect_redis(settings.platform)


@dataclass
class Stores:
    source: Engine
    store: SqlServingStore
    redis: redis.Redis

    def close(self) -> None:
        self.source.dispose()
        self.store.dispose()
        redis_store.close_redis(self.redis)


def open_stores(settings: Settings) -> Stores:
    return Stores(source=source_engine(settings), store=serving_store(settings), redis=connect_redis(settings))
