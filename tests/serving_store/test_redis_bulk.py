"""The bulk Redis writer: protocol built with Arrow, byte for byte what redis-py would send."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import redis

from mo.serving_store.redis_store import ProfileKeys, get_profile, hset_commands, switch_current, write_profiles


def _batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "customer_id": pa.array([1, 2, 3], pa.int64()),
            "name_masked": ["张**", None, "李**"],
            "birth_date": pa.array([dt.date(1980, 2, 29), None, dt.date(2001, 1, 1)], pa.date32()),
            "updated_at": pa.array(
                [dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), None, None], pa.timestamp("us", tz="UTC")
            ),
            "has_auto": [True, False, None],
            "total_premium": pa.array([1234.5, None, 0.0], pa.float64()),
            "segments": ["a,b", "", "c"],
        }
    )


def test_commands_match_redis_py_packing():
    batch = _batch()
    commands = hset_commands("p:profile:r1:", batch).to_pylist()
    packer = redis.Connection()
    expected = {
        1: {
            "customer_id": "1",
            "name_masked": "张**",
            "birth_date": "1980-02-29",
            "updated_at": "2026-01-02T03:04:05.000000Z",
            "has_auto": "true",
            "total_premium": "1234.5",
            "segments": "a,b",
        },
        2: {"customer_id": "2", "has_auto": "false", "segments": ""},
        3: {
            "customer_id": "3",
            "name_masked": "李**",
            "birth_date": "2001-01-01",
            "total_premium": "0",
            "segments": "c",
        },
    }
    for command, (customer_id, fields) in zip(commands, expected.items(), strict=True):
        args = [x for pair in fields.items() for x in pair]
        packed = b"".join(packer.pack_command("HSET", f"p:profile:r1:{customer_id}", *args))
        assert command.encode() == packed


def test_bulk_write_round_trips_through_redis(redis_client: redis.Redis, redis_prefix: str):
    batch = _batch()
    # two batches, the second sliced, so the buffer offsets of sliced arrays are exercised
    written = write_profiles(redis_client, "r1", [batch.slice(0, 1), batch.slice(1)], prefix=redis_prefix)
    assert written == 3
    switch_current(redis_client, "r1", prefix=redis_prefix)
    assert get_profile(redis_client, 2, prefix=redis_prefix) == {
        "customer_id": "2",
        "has_auto": "false",
        "segments": "",
    }
    assert get_profile(redis_client, 3, prefix=redis_prefix)["name_masked"] == "李**"
    assert redis_client.sismember(ProfileKeys(redis_prefix).refreshes, "r1")


def test_an_error_reply_is_raised_and_the_connection_is_not_reused_dirty(redis_client: redis.Redis, redis_prefix: str):
    key = ProfileKeys(redis_prefix).profile("r1", 1)
    redis_client.set(key, "not a hash")  # HSET on a string key is a WRONGTYPE error
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        write_profiles(redis_client, "r1", [_batch()], prefix=redis_prefix)
    assert redis_client.ping()
    assert redis_client.get(key) == b"not a hash"


def test_rows_without_customer_id_are_refused_before_anything_is_sent():
    batch = pa.RecordBatch.from_pydict({"customer_id": pa.array([1, None], pa.int64()), "segments": ["", ""]})
    with pytest.raises(ValueError, match="1 profile row"):
        hset_commands("p:", batch)
