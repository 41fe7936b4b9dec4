"""The bulk Redis writer: one JSON array per profile, protocol built with Arrow, byte for byte what redis-py
would send."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
import redis

from mo.serving_store.redis_store import (
    ProfileKeys,
    _send,
    get_profile,
    profile_values,
    read_profile,
    read_profiles,
    set_commands,
    switch_current,
    write_profiles,
)

TRICKY = 'a "quoted" \\ back\nnew\ttab\x01\x1f 张三 \u2028'


def _batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "customer_id": pa.array([1, 2, 3], pa.int64()),
            "name_masked": ["张**", None, TRICKY],
            "age": pa.array([45, None, 0], pa.int32()),
            "birth_date": pa.array([dt.date(1980, 2, 29), None, dt.date(2001, 1, 1)], pa.date32()),
            "updated_at": pa.array(
                [dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), None, None], pa.timestamp("us", tz="UTC")
            ),
            "has_auto": [True, False, None],
            "total_premium": pa.array([1234.5, float("nan"), 0.1 + 0.2], pa.float64()),
            "custom_tags": ['{"vip":"yes","note":"\\"x\\""}', None, "{}"],
            "segments": ["a,b", "", "c"],
        }
    )


EXPECTED = {
    1: [1, "张**", 45, "1980-02-29", "2026-01-02T03:04:05.000000Z", True, 1234.5, {"vip": "yes", "note": '"x"'}, "a,b"],
    # NaN has no JSON form: null (the serving database keeps the value)
    2: [2, None, None, None, None, False, None, None, ""],
    3: [3, TRICKY, 0, "2001-01-01", None, None, 0.1 + 0.2, {}, "c"],
}


def test_each_row_is_a_json_array_of_typed_values():
    values = profile_values(_batch(), json_columns={"custom_tags"}).to_pylist()
    assert [json.loads(v) for v in values] == list(EXPECTED.values())
    # strict JSON: no NaN literal, control characters escaped
    for v in values:
        json.loads(v, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
        assert "\x01" not in v and "\n" not in v


def test_without_json_columns_json_text_stays_a_string():
    first = json.loads(profile_values(_batch()).to_pylist()[0])
    assert first[7] == '{"vip":"yes","note":"\\"x\\""}'


def test_commands_match_redis_py_packing():
    commands = set_commands("p:profile:r1:", _batch(), json_columns={"custom_tags"}).to_pylist()
    values = profile_values(_batch(), json_columns={"custom_tags"}).to_pylist()
    packer = redis.Connection()
    for command, customer_id, value in zip(commands, EXPECTED, values, strict=True):
        packed = b"".join(packer.pack_command("SET", f"p:profile:r1:{customer_id}", value))
        assert command.encode() == packed


def test_bulk_write_round_trips_through_redis(redis_client: redis.Redis, redis_prefix: str):
    batch = _batch()
    # two batches, the second sliced, so the buffer offsets of sliced arrays are exercised
    written = write_profiles(
        redis_client, "r1", [batch.slice(0, 1), batch.slice(1)], prefix=redis_prefix, json_columns={"custom_tags"}
    )
    assert written == 3
    assert get_profile(redis_client, 2, prefix=redis_prefix) is None  # not current yet
    switch_current(redis_client, "r1", prefix=redis_prefix)
    names = batch.schema.names
    for customer_id, expected in EXPECTED.items():
        assert get_profile(redis_client, customer_id, prefix=redis_prefix) == dict(zip(names, expected, strict=True))
    assert get_profile(redis_client, 4, prefix=redis_prefix) is None
    keys = ProfileKeys(redis_prefix)
    assert json.loads(redis_client.get(keys.fields("r1"))) == names
    assert redis_client.sismember(keys.refreshes, "r1")


def test_read_profiles_is_read_profile_for_each_customer_in_one_round_trip(redis_client: redis.Redis,
                                                                          redis_prefix: str):  # fmt: skip
    ids = [3, 1, 4, 1]  # 4 is not in the refresh; repeats read once
    assert read_profiles(redis_client, ids, prefix=redis_prefix) == {}  # nothing published
    write_profiles(redis_client, "r1", [_batch()], prefix=redis_prefix, json_columns={"custom_tags"})
    switch_current(redis_client, "r1", prefix=redis_prefix)
    one_by_one = {c: read_profile(redis_client, c, prefix=redis_prefix) for c in ids}
    assert read_profiles(redis_client, ids, prefix=redis_prefix) == {c: p for c, p in one_by_one.items() if p}
    assert set(read_profiles(redis_client, ids, prefix=redis_prefix)) == {1, 3}


def test_batches_must_share_their_columns(redis_client: redis.Redis, redis_prefix: str):
    batch = _batch()
    with pytest.raises(ValueError, match="differ from the first batch"):
        write_profiles(redis_client, "r1", [batch, batch.drop_columns(["age"])], prefix=redis_prefix)


def test_an_error_reply_is_raised_and_the_connection_is_not_reused_dirty(redis_client: redis.Redis, redis_prefix: str):
    key = f"{redis_prefix}:counter"
    good = b"".join(redis.Connection().pack_command("SET", key, "not a number")).decode()
    bad = b"".join(redis.Connection().pack_command("INCR", key)).decode()
    commands = pa.array([good, bad, good])
    with pytest.raises(redis.ResponseError, match="not an integer"):
        _send(redis_client, commands)
    assert redis_client.ping()
    assert redis_client.get(key) == b"not a number"


def test_rows_without_customer_id_are_refused_before_anything_is_sent():
    batch = pa.RecordBatch.from_pydict({"customer_id": pa.array([1, None], pa.int64()), "segments": ["", ""]})
    with pytest.raises(ValueError, match="1 profile row"):
        set_commands("p:", batch)


def test_a_column_without_an_encoding_is_named():
    batch = pa.RecordBatch.from_pydict({"customer_id": [1], "lines": pa.array([["auto"]], pa.list_(pa.string()))})
    with pytest.raises(ValueError, match="'lines'"):
        set_commands("p:", batch)
