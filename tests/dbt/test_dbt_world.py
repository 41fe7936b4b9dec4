"""The shared dbt world holds silver tables and contract-valid stream events (what the marts read)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.spark


def test_world_has_silver_and_stream_events(dbt_world):
    settings, spark = dbt_world
    catalog = settings.catalog_name
    assert spark.table(f"{catalog}.silver.customers").count() > 0
    assert spark.table(f"{catalog}.silver.policies").count() > 0
    types = {r["event_type"] for r in spark.table(f"{catalog}.bronze.events").select("event_type").collect()}
    assert {"app_page_view", "wechat_follow", "form_submit", "coupon_claim", "message_open"} <= types
