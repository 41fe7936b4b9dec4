"""customer_profile and customer_event_daily built by dbt on the shared small world.

One ``dbt build`` of the marketing marts and everything upstream (its unit tests and data tests included)
with the shipped registry plus one extra custom tag whose value holds a quote and a backslash; then the
marts are read back. A registry entry naming an unknown column must fail the compile, naming the tag.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.spark

ESCAPE_TAG = {
    "name": "escape_check",
    "value_type": "string",
    "rule": {"cases": [{"when": {"attr": "policy_count", "op": "gte", "value": 0}, "value": "it's a \\ test"}]},
}


def mart(settings, name: str) -> str:
    return f"{settings.catalog_name}.marts.{name}"


@pytest.fixture(scope="module")
def marketing_build(dbt_world, dbt_as_of):
    from mo.marts.dbt import build_vars, run_dbt

    settings, _ = dbt_world
    variables = build_vars(settings, as_of_date=dbt_as_of)
    variables["tag_registry"] = [*variables["tag_registry"], ESCAPE_TAG]
    run_dbt(
        settings,
        ["build", "--select", "+customer_profile", "+customer_event_daily", "--indirect-selection", "cautious"],
        vars=variables,
    )
    return settings


def test_one_profile_row_per_live_customer(marketing_build, dbt_world):
    settings, spark = dbt_world
    profile = spark.table(mart(settings, "customer_profile"))
    customers = spark.table(f"{settings.catalog_name}.silver.customers")
    assert profile.count() == customers.count() > 0
    assert profile.select("customer_id").distinct().count() == profile.count()
    ids = {r.customer_id for r in profile.select("customer_id").collect()}
    assert ids == {r.id for r in customers.select("id").collect()}


def test_profile_columns_follow_the_contract(marketing_build, dbt_world):
    import yaml

    from mo.config import SCHEMAS_DIR

    settings, spark = dbt_world
    contract = yaml.safe_load((SCHEMAS_DIR / "marts" / "customer_profile.yaml").read_text(encoding="utf-8"))
    fields = spark.table(mart(settings, "customer_profile")).schema.fields
    assert [(f.name, f.dataType.simpleString()) for f in fields] == [
        (c["name"], c["type"]) for c in contract["columns"]
    ]


def test_tags_are_plausible_on_the_world(marketing_build, dbt_world):
    settings, spark = dbt_world
    profile = spark.table(mart(settings, "customer_profile"))
    holders = profile.where("policy_count > 0").count()
    assert holders > 0
    # every in-force holder has lines, and the has_* flags agree with lines_held
    assert profile.where("policy_count > 0 and lines_held is null").count() == 0
    assert profile.where("has_auto <> coalesce(array_contains(split(lines_held, ','), 'auto'), false)").count() == 0
    assert profile.where("days_to_renewal < 0").count() == 0
    assert profile.where("age < 0 or age > 120").count() == 0


def test_custom_tags_from_the_registry(marketing_build, dbt_world):
    settings, spark = dbt_world
    rows = spark.table(mart(settings, "customer_profile")).select("customer_id", "custom_tags", "has_auto").collect()
    for row in rows:
        # renewal_focus has an else: every customer carries it; the escape tag survived quoting
        assert row.custom_tags["renewal_focus"] in ("true", "false")
        assert row.custom_tags["escape_check"] == "it's a \\ test"
        if not row.has_auto:
            assert row.custom_tags["renewal_focus"] == "false"
        assert row.custom_tags["engagement_status"] in ("never_active", "dormant", "occasional", "engaged")


def test_stream_activity_reaches_behaviour_tags(marketing_build, dbt_world, dbt_as_of):
    settings, spark = dbt_world
    # conftest writes an app_page_view for customer 1 an hour before midnight of the as-of date
    row = spark.table(mart(settings, "customer_profile")).where("customer_id = 1").collect()[0]
    assert row.active_days_30d >= 1
    assert row.last_active_at is not None


def test_event_daily_matches_timeline(marketing_build, dbt_world, dbt_as_of):
    settings, spark = dbt_world
    daily = spark.table(mart(settings, "customer_event_daily"))
    timeline = spark.table(mart(settings, "fct_customer_events")).where(f"event_date <= date'{dbt_as_of}'")
    assert daily.count() > 0
    assert daily.groupBy().sum("event_count").collect()[0][0] == timeline.count()


def test_unknown_column_in_registry_fails_compile_naming_the_tag(marketing_build, dbt_world, dbt_as_of):
    from mo.marts.dbt import DbtFailed, run_dbt

    settings, _ = dbt_world
    bad = {
        "name": "typo_tag",
        "value_type": "boolean",
        "rule": {"cases": [{"when": {"attr": "days_to_renewl", "op": "lte", "value": 30}, "value": True}]},
    }
    with pytest.raises(DbtFailed) as info:
        run_dbt(
            settings,
            ["compile", "--select", "int_customer_custom_tags"],
            vars={"as_of_date": dbt_as_of.isoformat(), "tag_registry": [bad]},
        )
    message = str(info.value)
    assert "typo_tag" in message and "days_to_renewl" in message
