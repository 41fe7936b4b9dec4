"""A second world on the machine's PostgreSQL or MariaDB for the consent, complaint and erasure tests.

Tokens are checked by signature only, so the session's accounts work against this world's app too.
``build_world`` points the MO_* variables at the world it builds; they are put back afterwards so the
session's own world keeps its settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from conftest import MACHINE_REDIS_URL, ApiWorld, build_world, create_database
from fastapi.testclient import TestClient


@contextmanager
def database_world(kind: str, name: str, home: Path, session_world: ApiWorld) -> Iterator[tuple[ApiWorld, TestClient]]:
    from app.main import create_app

    _ = session_world.settings.platform  # the session's settings are fixed before the environment moves
    saved = {k: v for k, v in os.environ.items() if k.startswith("MO_")}
    try:
        built = build_world(home, source_url=create_database(kind, name), customers=40)
        _ = built.settings.platform  # read while the environment names this world
    finally:
        for key in [k for k in os.environ if k.startswith("MO_")]:
            del os.environ[key]
        os.environ.update(saved)
    try:
        with TestClient(create_app(built.settings), raise_server_exceptions=False) as client:
            yield built, client
    finally:
        client_redis = redis.Redis.from_url(MACHINE_REDIS_URL)
        for key in client_redis.scan_iter(f"{built.redis_prefix}:*", count=1000):
            client_redis.unlink(key)
        client_redis.close()
        built.source.dispose()
