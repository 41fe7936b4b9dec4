"""Readers see the old or the new refresh, never a mix: reader threads query the serving views and the
Redis pointer continuously while publishes of two different refreshes alternate."""

from __future__ import annotations

import threading
import time

import redis
from sqlalchemy import text

from mo.serving_store import get_profile, publish_batches
from mo.serving_store.store import SqlServingStore
from tests.serving_store.world import AS_OF, make_world

PUBLISHES = 6


def _signature_sql(store: SqlServingStore) -> str:
    """One statement over every view: one snapshot, so a half-swapped store would show a foreign tuple."""
    q = store.qualified
    return (
        f"SELECT (SELECT count(*) FROM {q('customer_profile')}), "
        f"(SELECT min(name_masked) FROM {q('customer_profile')}), "
        f"(SELECT count(*) FROM {q('customer_event_daily')}), "
        f"(SELECT min(segment_id) FROM {q('segments')}), "
        f"(SELECT count(*) FROM {q('segment_members')}), "
        f"(SELECT refresh_id FROM {q('refreshes')} WHERE status = 'current')"
    )


def test_readers_never_see_a_mix(store: SqlServingStore, redis_client: redis.Redis, redis_prefix: str):
    worlds = {"a": make_world("a", 50, seed=31), "b": make_world("b", 80, seed=32)}
    # Precompute each world's batches once; publishing them repeatedly gives distinct refresh ids.
    expected: dict[str, tuple] = {}
    for tag, world in worlds.items():
        members = world.published_members()
        expected[tag] = (50 if tag == "a" else 80, f"{tag}-1", len(world.recent_events()), f"{tag}_loyal", len(members))

    first = publish_batches(
        store,
        as_of=AS_OF,
        tables=worlds["a"].batches(),
        redis_profiles=worlds["a"].redis_batches(),
        redis_client=redis_client,
        redis_prefix=redis_prefix,
    )
    current = {"refresh_ids": {first.refresh_id: "a"}}
    seen: list[tuple] = []
    redis_seen: list[str | None] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_views() -> None:
        sql = text(_signature_sql(store))
        try:
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                while not stop.is_set():
                    seen.append(tuple(conn.execute(sql).one()))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    def read_redis() -> None:
        client = redis.Redis(connection_pool=redis_client.connection_pool)
        try:
            while not stop.is_set():
                profile = get_profile(client, 1, prefix=redis_prefix)
                redis_seen.append(None if profile is None else profile["name_masked"] + "|" + profile["segments"])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=read_views), threading.Thread(target=read_redis)]
    for t in readers:
        t.start()
    try:
        for i in range(PUBLISHES):
            tag = "b" if i % 2 == 0 else "a"
            result = publish_batches(
                store,
                as_of=AS_OF,
                tables=worlds[tag].batches(),
                redis_profiles=worlds[tag].redis_batches(),
                redis_client=redis_client,
                redis_prefix=redis_prefix,
            )
            current["refresh_ids"][result.refresh_id] = tag
            time.sleep(0.05)
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=60)

    assert not errors, errors
    assert len(seen) > 20, "the reader must have overlapped the publishes"
    for row in seen:
        tag = current["refresh_ids"].get(row[5])
        assert tag is not None, f"current refresh {row[5]} unknown"
        assert row[:5] == expected[tag], f"mix: views show {row[:5]} while refresh {row[5]} is world {tag}"
    assert {current["refresh_ids"][r[5]] for r in seen} == {"a", "b"}, "both refreshes should have been seen"

    # Redis: customer 1 exists in both worlds, so a reader always finds a complete hash of one of them.
    def redis_expected(tag: str) -> str:
        members = sorted(m["segment_id"] for m in worlds[tag].published_members() if m["customer_id"] == 1)
        return f"{tag}-1|{','.join(members)}"

    assert None not in redis_seen
    assert set(redis_seen) <= {redis_expected("a"), redis_expected("b")}
    assert len(redis_seen) > 20
