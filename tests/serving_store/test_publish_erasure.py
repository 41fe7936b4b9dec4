"""A publish leaves out customers whose marketing data was erased: no profile in Redis or the store, no
event counts, no segment memberships; everyone else is published as before."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import redis
from sqlalchemy import insert, text

from mo.oltp.db import make_engine, migrate
from mo.oltp.privacy import ErasureRequest
from mo.serving_store import get_profile, publish
from mo.serving_store.extract import PublishInputs
from mo.serving_store.store import open_store
from tests.serving_store.conftest import REDIS_URL
from tests.serving_store.test_publish_spark import DEFINITIONS_DDL, MEMBERSHIP_DDL, _ddl, _write
from tests.serving_store.world import AS_OF, make_world

pytestmark = pytest.mark.spark


def test_erased_customers_are_not_published(spark, settings, redis_prefix: str):
    from spark_jobs.session import prepare_local_dirs, register_catalog

    prepare_local_dirs(settings)
    register_catalog(spark, settings)
    for namespace in ("marts", "segments"):
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.{namespace}")
    world = make_world("e", 40, seed=43)
    inputs = PublishInputs.for_catalog(settings.catalog_name)
    _write(spark, inputs.profile, _ddl("customer_profile"), world.profiles)
    _write(spark, inputs.events, _ddl("customer_event_daily"), world.events)
    _write(spark, inputs.membership, MEMBERSHIP_DDL, world.membership)
    _write(spark, inputs.definitions, DEFINITIONS_DDL, world.definitions)
    erased = world.published_members()[0]["customer_id"]  # in a segment, with a profile and events
    other = next(p["customer_id"] for p in world.profiles if p["customer_id"] != erased)

    source = make_engine(settings.resolved_source_url)  # the core systems, with one erasure done
    migrate(source)
    now = datetime(2026, 12, 6, 10, 0)
    with source.begin() as conn:
        conn.execute(
            insert(ErasureRequest.__table__).values(
                request_no=str(uuid.uuid4()), customer_id=erased, basis="customer_request", status="completed",
                erased="[]", kept="[]", requested_by="user:admin", request_id="t", requested_at=now, completed_at=now,
            )
        )  # fmt: skip
    source.dispose()

    result = publish(settings, spark=spark, as_of=AS_OF, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    assert result.row_counts["customer_profile"] == 39 and result.redis_keys == 39
    members = [m for m in world.published_members() if m["customer_id"] != erased]
    assert result.row_counts["segment_members"] == len(members)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert get_profile(client, erased, prefix=redis_prefix) is None
        assert get_profile(client, other, prefix=redis_prefix) is not None
    finally:
        client.close()
    store = open_store(settings)
    try:
        with store.engine.connect() as conn:
            for table in ("customer_profile", "customer_event_daily", "segment_members"):
                found = conn.execute(
                    text(f"SELECT count(*) FROM {store.qualified(table)} WHERE customer_id = :c"), {"c": erased}
                ).scalar()
                assert found == 0, table
    finally:
        store.dispose()
