"""The Customer 360 marts built by `dbt build` on a small synthetic world, checked against silver with Spark.

One build per test session (the `customer_360_build` fixture); `dbt build` itself runs the unit tests and
the data tests, so the first test only has to show it did and that they passed.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
import yaml

from mo.config import SCHEMAS_DIR

pytestmark = pytest.mark.spark

SILVER_DOMAINS = {
    "customers": "lifecycle",
    "policies": "policy",
    "claims": "claim",
    "sales_recordings": "recording",
    "consents": "consent",
    "complaints": "complaint",
}
STREAM_DOMAINS = {
    "app_page_view": "app",
    "wechat_follow": "wechat",
    "wechat_click": "wechat",
    "form_submit": "form",
    "coupon_claim": "coupon",
    "coupon_redeem": "coupon",
    "message_open": "message",
    "policy_near_renewal": "policy",
    "claim_status_changed": "claim",
    "claim_document_attached": "claim",
    "consent_changed": "consent",
    "customer_erased": "lifecycle",
}
# Business events restating a silver row: the timeline takes them from silver only.
RESTATED_FROM_SILVER = ("claim_filed", "complaint_opened", "complaint_resolved")


def mart(settings, name: str) -> str:
    return f"{settings.catalog_name}.marts.{name}"


def silver(settings, name: str) -> str:
    return f"{settings.catalog_name}.silver.{name}"


def working_days(start: date, end: date) -> int:
    """Weekdays after start up to and including end (numpy's business-day count, independent of the macro)."""
    return max(int(np.busday_count(start + timedelta(days=1), end + timedelta(days=1))), 0)


def test_dbt_build_ran_models_unit_tests_and_data_tests(customer_360_build):
    by_kind: dict[str, list[str]] = {}
    for node_result in customer_360_build.results:
        kind = node_result.node.unique_id.split(".")[0]
        by_kind.setdefault(kind, []).append(str(node_result.status))
    assert len(by_kind["unit_test"]) >= 4 and set(by_kind["unit_test"]) == {"pass"}
    assert len(by_kind["test"]) >= 50 and set(by_kind["test"]) == {"pass"}
    models = {r.node.name for r in customer_360_build.results if r.node.unique_id.startswith("model.")}
    assert {"dim_customer", "fct_policies", "fct_claims", "fct_sales_recordings", "fct_customer_events"} <= models


@pytest.mark.parametrize(
    ("mart_name", "silver_name"),
    [
        ("dim_customer", "customers"),
        ("fct_policies", "policies"),
        ("fct_claims", "claims"),
        ("fct_sales_recordings", "sales_recordings"),
    ],
)
def test_marts_hold_one_row_per_silver_row(dbt_world, customer_360_build, mart_name, silver_name):
    settings, spark = dbt_world
    expected = spark.table(silver(settings, silver_name)).count()
    assert expected > 0
    assert spark.table(mart(settings, mart_name)).count() == expected


def test_claim_sla_matches_an_independent_working_day_count(dbt_world, dbt_as_of, customer_360_build):
    settings, spark = dbt_world
    claims = {r["id"]: r for r in spark.table(silver(settings, "claims")).collect()}
    facts = {r["claim_id"]: r for r in spark.table(mart(settings, "fct_claims")).collect()}
    assert facts.keys() == claims.keys()
    assert claims
    for claim_id, c in claims.items():
        review_at = c["under_review_at"] or c["docs_requested_at"] or c["approved_at"] or c["rejected_at"]
        review_days = working_days(c["reported_at"].date(), review_at.date() if review_at else dbt_as_of)
        f = facts[claim_id]
        assert f["review_working_days"] == review_days, claim_id
        assert f["is_review_sla_breached"] == (review_days > 3), claim_id
        if c["approved_at"] is None:
            assert f["payment_working_days"] is None and f["is_payment_sla_breached"] is None, claim_id
            payment_late = False
        else:
            paid = c["paid_at"].date() if c["paid_at"] else dbt_as_of
            payment_days = working_days(c["approved_at"].date(), paid)
            assert f["payment_working_days"] == payment_days, claim_id
            payment_late = payment_days > 5
            assert f["is_payment_sla_breached"] == payment_late, claim_id
        assert f["is_sla_breached"] == (review_days > 3 or payment_late), claim_id


def test_policies_days_to_end_and_in_force_on_the_as_of_date(dbt_world, dbt_as_of, customer_360_build):
    settings, spark = dbt_world
    policies = {r["id"]: r for r in spark.table(silver(settings, "policies")).collect()}
    for f in spark.table(mart(settings, "fct_policies")).collect():
        p = policies[f["policy_id"]]
        assert f["days_to_end"] == (p["end_date"] - dbt_as_of).days
        assert f["is_in_force"] == (p["status"] == "in_force" and p["start_date"] <= dbt_as_of <= p["end_date"])
        assert f["renewal_of_policy_id"] == p["renewal_of"]
        if f["renewed_by_policy_id"] is not None:
            assert policies[f["renewed_by_policy_id"]]["renewal_of"] == f["policy_id"]
    assert any(f["is_in_force"] for f in spark.table(mart(settings, "fct_policies")).collect())


def test_timeline_has_every_domain_present_in_the_data(dbt_world, dbt_as_of, customer_360_build):
    settings, spark = dbt_world
    events = spark.table(mart(settings, "fct_customer_events"))
    domains = {r["domain"] for r in events.select("domain").distinct().collect()}
    expected = {d for t, d in SILVER_DOMAINS.items() if spark.table(silver(settings, t)).count() > 0}
    stream_types = {
        r["event_type"]
        for r in spark.table(f"{settings.catalog_name}.bronze.events").select("event_type").distinct().collect()
    }
    expected |= {STREAM_DOMAINS[t] for t in stream_types if t in STREAM_DOMAINS}
    assert expected <= domains, f"missing domains: {expected - domains}"
    assert {"app", "wechat", "form", "coupon", "message"} <= domains
    # Every type the timeline holds is one the contract lists, hence one a segment rule may count.
    from mo.segments.rules import known_event_types

    types = {r["event_type"] for r in events.select("event_type").distinct().collect()}
    assert types <= known_event_types(), f"not in the contract: {types - known_event_types()}"

    customers = spark.table(silver(settings, "customers")).count()
    assert events.where("event_type = 'customer_created'").count() == customers
    filed = spark.table(silver(settings, "claims")).where(f"cast(reported_at as date) <= date'{dbt_as_of}'").count()
    assert events.where("event_type = 'claim_filed'").count() == filed  # the stream's claim_filed is not added
    assert events.where(f"event_date > date'{dbt_as_of}'").count() == 0
    stream_ids = {
        r["event_id"]
        for r in spark.table(f"{settings.catalog_name}.bronze.events")
        .where(f"event_type not in {RESTATED_FROM_SILVER}")
        .select("event_id")
        .collect()
    }
    timeline_ids = {r["event_id"] for r in events.where("source like 'mo.%'").select("event_id").collect()}
    assert timeline_ids == stream_ids


def test_an_event_relayed_twice_is_counted_once(dbt_world, customer_360_build):
    """bronze keeps both copies of an event the outbox relay sent twice; the timeline holds it once."""
    from tests.dbt.conftest import RELAYED_TWICE

    settings, spark = dbt_world
    bronze = spark.table(f"{settings.catalog_name}.bronze.events")
    timeline = spark.table(mart(settings, "fct_customer_events"))
    relayed = bronze.where(f"event_type in {RELAYED_TWICE}").select("event_id").distinct()
    twice = [r["event_id"] for r in relayed.collect()]
    assert len(twice) == len(RELAYED_TWICE)
    for event_id in twice:
        assert bronze.where(f"event_id = '{event_id}'").count() == 2
        assert timeline.where(f"event_id = '{event_id}'").count() == 1
    assert timeline.groupBy("event_id").count().where("count > 1").count() == 0


def test_timeline_table_has_the_contract_columns_and_types(dbt_world, customer_360_build):
    settings, spark = dbt_world
    contract = yaml.safe_load((SCHEMAS_DIR / "marts" / "fct_customer_events.yaml").read_text())
    schema = spark.table(mart(settings, "fct_customer_events")).schema
    assert [(f.name, f.dataType.simpleString()) for f in schema.fields] == [
        (c["name"], c["type"]) for c in contract["columns"]
    ]


def test_dim_customer_holds_no_clear_pii(dbt_world, customer_360_build):
    settings, spark = dbt_world
    restricted = spark.table(f"{settings.catalog_name}.silver_restricted.customers_pii").collect()
    clear_values = {
        str(r[c])
        for r in restricted
        for c in ("name", "id_number", "phone", "wechat_openid", "app_user_id")
        if r[c] is not None
    }
    assert len(clear_values) > 100
    dim = spark.table(mart(settings, "dim_customer"))
    for row in dim.collect():
        for column, value in row.asDict().items():
            assert value is None or str(value) not in clear_values, f"dim_customer.{column} holds a clear PII value"
    plain = [c for c in dim.columns if not c.endswith(("_masked", "_token"))]
    assert not {"name", "phone", "id_number", "wechat_openid", "app_user_id"} & set(plain)
