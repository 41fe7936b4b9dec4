"""The serving store: what the serving API and campaigns read, published atomically from the lakehouse.

- :func:`publish` copies customer_profile, customer_event_daily and customer_events (last 180 days),
  segments, segment members and the membership history of the same 180 days into PostgreSQL schema
  ``serving`` (a SQLite file under MO_HOME by default) and one Redis key per customer, and swaps them in
  atomically (see docs/serving-store.md).
- :func:`get_profile` reads a customer's profile from the current Redis refresh.
- :func:`preview_segment` counts, samples and profiles the customers a segment rule selects.
"""

from mo.serving_store.preview import Preview, PreviewBackend, SqlPreviewBackend, preview_segment
from mo.serving_store.publish import PublishResult, publish, publish_batches
from mo.serving_store.redis_store import connect_redis, get_profile
from mo.serving_store.store import (
    NothingPublished,
    PublishInProgress,
    ServingStoreError,
    SqlServingStore,
    open_store,
)

__all__ = [
    "NothingPublished",
    "Preview",
    "PreviewBackend",
    "PublishInProgress",
    "PublishResult",
    "ServingStoreError",
    "SqlPreviewBackend",
    "SqlServingStore",
    "connect_redis",
    "get_profile",
    "open_store",
    "preview_segment",
    "publish",
    "publish_batches",
]
