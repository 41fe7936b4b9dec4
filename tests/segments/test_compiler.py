"""The rule compiler: every operator in every dialect, the same members from Spark, SQLite and PostgreSQL on the
same data (and the same as a plain-Python reading of the rule), injection attempts, and errors naming the node."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import create_engine, text

from mo.errors import MoError
from mo.segments.compiler import compile_rule, member_query
from mo.segments.rules import RuleError
from tests.segments.profile_data import AS_OF, load_sql, make_world, spark_frames
from tests.segments.reference import expected_members

TAGS = {"engagement_status": ("never_active", "dormant", "occasional", "engaged"), "high_value_family": None}

# One leaf per operator (attribute, custom tag and event count operators), each over a column type it applies to.
OPERATOR_RULES = {
    "eq_string": {"attr": "gender", "op": "eq", "value": "F"},
    "eq_bool": {"attr": "has_auto", "op": "eq", "value": True},
    "ne_nullable": {"attr": "vehicle_value_band", "op": "ne", "value": "<100k"},
    "gt_double": {"attr": "total_premium", "op": "gt", "value": 5000.5},
    "gte_int": {"attr": "claims_12m", "op": "gte", "value": 2},
    "lt_timestamp_relative": {"attr": "last_active_at", "op": "lt", "value": {"days_from_as_of": -60}},
    "lte_int_nullable": {"attr": "days_to_renewal", "op": "lte", "value": 30},
    "in_enum": {"attr": "city_tier", "op": "in", "value": ["tier1", "new_tier1"]},
    "not_in_enum": {"attr": "customer_tier", "op": "not_in", "value": ["bronze", "silver"]},
    "between_int": {"attr": "age", "op": "between", "value": [25, 34]},
    "between_relative_dates": {
        "attr": "next_renewal_date",
        "op": "between",
        "value": [{"days_from_as_of": 0}, {"days_from_as_of": 30}],
    },
    "gte_date_literal": {"attr": "customer_since_date", "op": "gte", "value": "2020-01-01"},
    "gte_timestamp_literal": {"attr": "last_active_at", "op": "gte", "value": "2026-03-30T06:00:00"},
    # A day on a timestamp column is the whole day (the comparison is on the date).
    "lte_timestamp_day_relative": {"attr": "last_active_at", "op": "lte", "value": {"days_from_as_of": -1}},
    "eq_timestamp_day": {"attr": "last_active_at", "op": "eq", "value": {"days_from_as_of": -2}},
    "ne_timestamp_day": {"attr": "last_active_at", "op": "ne", "value": "2026-03-30"},
    "gt_timestamp_day": {"attr": "last_active_at", "op": "gt", "value": "2026-03-20"},
    "lt_timestamp_day": {"attr": "last_active_at", "op": "lt", "value": {"days_from_as_of": -3}},
    "between_timestamp_days": {
        "attr": "last_active_at",
        "op": "between",
        "value": ["2026-02-01", {"days_from_as_of": -10}],
    },
    "between_timestamp_day_and_instant": {
        "attr": "last_active_at",
        "op": "between",
        "value": ["2026-03-01T12:00:00Z", "2026-03-29"],
    },
    "in_timestamp_days": {"attr": "last_active_at", "op": "in", "value": ["2026-03-29", "2026-03-30"]},
    "not_in_timestamp_days": {"attr": "last_active_at", "op": "not_in", "value": ["2026-03-31"]},
    "is_null": {"attr": "lines_held", "op": "is_null"},
    "not_null": {"attr": "preferred_channel", "op": "not_null"},
    "contains": {"attr": "lines_held", "op": "contains", "value": "health"},
    "tag_eq": {"tag": "engagement_status", "op": "eq", "value": "dormant"},
    "tag_ne": {"tag": "engagement_status", "op": "ne", "value": "engaged"},
    "tag_in": {"tag": "engagement_status", "op": "in", "value": ["engaged", "occasional"]},
    "tag_is_null": {"tag": "high_value_family", "op": "is_null"},
    "tag_not_null": {"tag": "high_value_family", "op": "not_null"},
    "event_default": {"event": "claim_filed", "within_days": 30},
    "event_gte": {"event": "message_open", "within_days": 14, "count": {"op": "gte", "value": 2}},
    "event_gt": {"event": "message_open", "within_days": 14, "count": {"op": "gt", "value": 2}},
    "event_eq_zero": {"event": "app_page_view", "within_days": 7, "count": {"op": "eq", "value": 0}},
    "event_lte": {"event": "app_page_view", "within_days": 30, "count": {"op": "lte", "value": 3}},
    "event_lt": {"event": "message_open", "within_days": 60, "count": {"op": "lt", "value": 5}},
}

VARIED_RULES = {
    "renewal_push": {
        "all": [
            {"attr": "has_auto", "op": "eq", "value": True},
            {"attr": "days_to_renewal", "op": "between", "value": [0, 30]},
            {"attr": "consent_app_push", "op": "eq", "value": True},
        ]
    },
    "not_prefers_app_includes_unknown": {"not": {"attr": "preferred_channel", "op": "eq", "value": "app"}},
    "claimants_or_open_claim": {
        "any": [{"event": "claim_filed", "within_days": 30}, {"attr": "has_open_claim", "op": "eq", "value": True}]
    },
    "young_urban": {
        "all": [
            {"attr": "age", "op": "lt", "value": 30},
            {"attr": "city_tier", "op": "in", "value": ["tier1", "new_tier1"]},
        ]
    },
    "dormant_app": {
        "all": [
            {
                "any": [
                    {"attr": "acquisition_channel", "op": "eq", "value": "app"},
                    {"tag": "engagement_status", "op": "eq", "value": "dormant"},
                ]
            },
            {"not": {"event": "app_page_view", "within_days": 60}},
        ]
    },
    "high_value_no_health": {
        "all": [
            {"attr": "customer_tier", "op": "in", "value": ["platinum", "gold"]},
            {"attr": "has_health", "op": "eq", "value": False},
            {
                "not": {
                    "any": [
                        {"attr": "age_band", "op": "eq", "value": "<25"},
                        {"attr": "age_band", "op": "eq", "value": "65+"},
                    ]
                }
            },
        ]
    },
    "double_negation": {
        "not": {"not": {"event": "message_open", "within_days": 14, "count": {"op": "gte", "value": 2}}}
    },
    "nested_any_all_not": {
        "any": [
            {
                "all": [
                    {"attr": "gender", "op": "eq", "value": "M"},
                    {"not": {"attr": "lines_held", "op": "contains", "value": "auto"}},
                ]
            },
            {
                "all": [
                    {"tag": "high_value_family", "op": "eq", "value": "true"},
                    {"attr": "claims_ratio", "op": "lt", "value": 0.5},
                ]
            },
        ]
    },
    "inactive_or_never": {
        "any": [
            {"attr": "last_active_at", "op": "lt", "value": {"days_from_as_of": -30}},
            {"attr": "last_active_at", "op": "is_null"},
        ]
    },
    "vehicle_old_expensive": {
        "all": [
            {"attr": "vehicle_age_years", "op": "gte", "value": 8},
            {"attr": "vehicle_value_band", "op": "in", "value": ["200k-400k", "400k+"]},
        ]
    },
    "no_message_but_app": {
        "all": [
            {"event": "message_open", "within_days": 30, "count": {"op": "eq", "value": 0}},
            {"event": "app_page_view", "within_days": 30, "count": {"op": "gte", "value": 3}},
        ]
    },
    "not_tag_in": {"not": {"tag": "engagement_status", "op": "in", "value": ["engaged", "occasional"]}},
    "premium_and_tenure": {
        "all": [
            {"attr": "total_premium", "op": "between", "value": [1000, 9000.75]},
            {"attr": "tenure_years", "op": "gte", "value": 3},
            {"attr": "risk_rating", "op": "not_in", "value": ["R5"]},
        ]
    },
    "renewal_window_dates": {
        "all": [
            {"attr": "next_renewal_date", "op": "gte", "value": "2026-04-01"},
            {"attr": "next_renewal_date", "op": "lt", "value": {"days_from_as_of": 45}},
        ]
    },
    "consented_any_channel_not_complaining": {
        "all": [
            {
                "any": [
                    {"attr": "consent_sms", "op": "eq", "value": True},
                    {"attr": "consent_wechat", "op": "eq", "value": True},
                ]
            },
            {"attr": "has_open_complaint", "op": "ne", "value": True},
            {"attr": "content_preference", "op": "ne", "value": "wealth"},
        ]
    },
    "city_with_quote": {"attr": "city", "op": "eq", "value": "O'Town"},
}

INJECTION_RULES = {
    "or_true_string": {"attr": "city", "op": "eq", "value": "x' OR '1'='1"},
    "drop_table_contains": {"attr": "province", "op": "contains", "value": "'); DROP TABLE customer_profile; --"},
    "drop_table_in": {"attr": "city", "op": "in", "value": ["'); DROP TABLE customer_profile; --", "Chengdu"]},
    "tag_value": {"tag": "high_value_family", "op": "eq", "value": "true' OR 1=1 --"},
    "tag_name_quote_free": {"tag": "high_value_family", "op": "ne", "value": '"); DROP TABLE customer_event_daily; --'},
}


@pytest.fixture(scope="module")
def world():
    return make_world(300)


def _sqlite_members(conn, rule: dict) -> set[int]:
    compiled = compile_rule(rule, dialect="sqlite", as_of=AS_OF, custom_tags=TAGS)
    return {r[0] for r in conn.execute(text(member_query(compiled)), compiled.params)}


@pytest.fixture(scope="module")
def sqlite_conn(world, tmp_path_factory):
    engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('seg') / 'serving.db'}")
    with engine.begin() as conn:
        load_sql(conn, *world, dialect="sqlite")
    with engine.connect() as conn:
        yield conn
    engine.dispose()


@pytest.mark.parametrize("name", sorted(OPERATOR_RULES))
def test_each_operator_on_sqlite_means_what_it_says(name, world, sqlite_conn):
    rule = OPERATOR_RULES[name]
    expected = expected_members(rule, *world, AS_OF)
    assert 0 < len(expected) < len(world[0]), f"{name}: test data must split the customers"
    assert _sqlite_members(sqlite_conn, rule) == expected


@pytest.mark.parametrize("dialect", ["spark", "postgresql", "sqlite"])
@pytest.mark.parametrize("name", sorted(OPERATOR_RULES))
def test_each_operator_binds_every_value(name, dialect):
    rule = OPERATOR_RULES[name]
    compiled = compile_rule(rule, dialect=dialect, as_of=AS_OF, custom_tags=TAGS)
    null_test = "attr" in rule and rule["op"] in ("is_null", "not_null")
    assert bool(compiled.params) != null_test, "values (and tag names) are parameters"
    for marker in compiled.params:
        assert f":{marker}" in compiled.where_sql
    literals = [v for v in compiled.params.values() if isinstance(v, str) and len(v) > 1]
    for literal in literals:
        assert literal not in compiled.where_sql.replace(f"`{literal}`", "").replace(f'"{literal}"', "")
    assert [c.path for c in compiled.clauses] == [""]
    assert compiled.clauses[0].sql == compiled.where_sql


def test_clauses_carry_paths_labels_and_negation():
    compiled = compile_rule(VARIED_RULES["dormant_app"], dialect="spark", as_of=AS_OF, custom_tags=TAGS)
    assert [(c.path, c.label, c.negated) for c in compiled.clauses] == [
        ("/all/0/any/0", "acquisition_channel = 'app'", False),
        ("/all/0/any/1", "tag engagement_status = 'dormant'", False),
        ("/all/1/not", "app_page_view in last 60 days", True),
    ]
    assert compiled.clauses[2].reason == "/all/1/not: not app_page_view in last 60 days"
    window = sorted(v for v in compiled.params.values() if isinstance(v, dt.date))
    assert window == [dt.date(2026, 1, 31), AS_OF]  # 60 calendar days ending on the as-of date


def _spark_members_by_projection(spark, rules: dict[str, dict], profile_view: str, events_view: str) -> dict:
    """Members of many rules from one Spark query (one column per rule), to keep the shared JVM's time low."""
    columns, args = [], {}
    for i, rule in enumerate(rules.values()):
        compiled = compile_rule(
            rule, dialect="spark", as_of=AS_OF, profile=profile_view, events=events_view, custom_tags=TAGS
        )
        columns.append(re.sub(r":(p\d+)\b", rf":r{i}_\1", compiled.where_sql) + f" AS r{i}")
        args.update({f"r{i}_{name}": value for name, value in compiled.params.items()})
    rows = spark.sql(f"SELECT p.customer_id, {', '.join(columns)} FROM {profile_view} p", args=args).collect()
    return {name: {r[0] for r in rows if r[i + 1]} for i, name in enumerate(rules)}


@pytest.mark.spark
@pytest.mark.postgres
def test_spark_sqlite_and_postgresql_agree_on_the_same_data(spark, world, sqlite_conn, postgres_url):
    profiles, events = world
    suffix = uuid.uuid4().hex[:8]
    profile_df, events_df = (df.cache() for df in spark_frames(spark, profiles, events))
    profile_view, events_view = f"seg_profile_{suffix}", f"seg_events_{suffix}"
    profile_df.createOrReplaceTempView(profile_view)
    events_df.createOrReplaceTempView(events_view)

    schema = f"seg_{suffix}"
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        load_sql(conn, profiles, events, dialect="postgresql", schema=schema)
    mismatches = []
    try:
        # Operator leaves in one projection; the varied and injection rules each as the documented WHERE query.
        spark_by_projection = _spark_members_by_projection(spark, OPERATOR_RULES, profile_view, events_view)
        with engine.connect() as pg:
            for name, rule in {**OPERATOR_RULES, **VARIED_RULES, **INJECTION_RULES}.items():
                expected = expected_members(rule, profiles, events, AS_OF)
                if name in OPERATOR_RULES:
                    got_spark = spark_by_projection[name]
                else:
                    spark_rule = compile_rule(
                        rule, dialect="spark", as_of=AS_OF, profile=profile_view, events=events_view, custom_tags=TAGS
                    )
                    query = member_query(spark_rule, profile_view)
                    got_spark = {r[0] for r in spark.sql(query, args=spark_rule.params).collect()}
                pg_rule = compile_rule(
                    rule,
                    dialect="postgresql",
                    as_of=AS_OF,
                    profile=f"{schema}.customer_profile",
                    events=f"{schema}.customer_event_daily",
                    custom_tags=TAGS,
                )
                query = member_query(pg_rule, f"{schema}.customer_profile")
                got_pg = {r[0] for r in pg.execute(text(query), pg_rule.params)}
                got_sqlite = _sqlite_members(sqlite_conn, rule)
                if not (got_spark == got_pg == got_sqlite == expected):
                    mismatches.append(
                        f"{name}: expected {len(expected)}, spark {len(got_spark)}, postgresql {len(got_pg)}, "
                        f"sqlite {len(got_sqlite)}"
                    )
                if name in VARIED_RULES and not 0 < len(expected) < len(profiles):
                    mismatches.append(f"{name}: test data must split the customers, {len(expected)} match")
            assert not mismatches, "\n".join(mismatches)
            # The injection attempts were plain values: tables intact, all rows still there.
            assert pg.execute(text(f'SELECT count(*) FROM "{schema}".customer_profile')).scalar() == len(profiles)
            assert pg.execute(text(f'SELECT count(*) FROM "{schema}".customer_event_daily')).scalar() == len(events)
        assert sqlite_conn.execute(text("SELECT count(*) FROM customer_profile")).scalar() == len(profiles)
        assert sqlite_conn.execute(text("SELECT count(*) FROM customer_event_daily")).scalar() == len(events)
        assert spark.table(profile_view).count() == len(profiles)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
        spark.catalog.dropTempView(profile_view)
        spark.catalog.dropTempView(events_view)
        profile_df.unpersist()
        events_df.unpersist()


def test_quote_in_a_value_is_compared_not_executed(world, sqlite_conn):
    profiles, events = world
    got = _sqlite_members(sqlite_conn, VARIED_RULES["city_with_quote"])
    assert got == {p["customer_id"] for p in profiles if p["city"] == "O'Town"} != set()
    assert _sqlite_members(sqlite_conn, INJECTION_RULES["or_true_string"]) == set()


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({"attr": "gender' OR '1'='1", "op": "eq", "value": "M"}, "/attr"),
        ({"attr": 'gender"; DROP TABLE customer_profile; --', "op": "eq", "value": "M"}, "/attr"),
        ({"tag": "vip'); DROP TABLE x; --", "op": "eq", "value": "x"}, "/tag"),
        ({"event": "claim_filed' OR 1=1 --", "within_days": 3}, "/event"),
        ({"all": [{"attr": "age", "op": "gt", "value": "1; DROP TABLE customer_profile"}]}, "/all/0/value"),
    ],
)
def test_identifiers_with_quotes_are_rejected(rule, path):
    with pytest.raises(RuleError) as caught:
        compile_rule(rule, dialect="sqlite", as_of=AS_OF, custom_tags=TAGS)
    assert [p.path for p in caught.value.problems] == [path]


@pytest.mark.parametrize("table", ['customer_profile"; DROP TABLE x; --', "a.b.c.d", "x y", "`t`"])
def test_unsafe_table_names_are_refused(table):
    with pytest.raises(MoError, match="table name"):
        compile_rule({"attr": "age", "op": "gt", "value": 1}, dialect="postgresql", as_of=AS_OF, profile=table)
    with pytest.raises(MoError, match="table name"):
        compile_rule({"event": "claim_filed", "within_days": 3}, dialect="spark", as_of=AS_OF, events=table)


def test_errors_name_every_bad_node_with_the_reason():
    rule = {
        "all": [
            {"attr": "age", "op": "gte", "value": 30},
            {"attr": "nationality", "op": "eq", "value": "CN"},
            {"attr": "gender", "op": "eq", "value": "X"},
            {
                "any": [
                    {"attr": "has_auto", "op": "gt", "value": True},
                    {"not": {"event": "opened_mail", "within_days": 7}},
                ]
            },
            {"attr": "age", "op": "between", "value": [40, 30]},
            {"tag": "engagement_status", "op": "eq", "value": "asleep"},
            {"attr": "phone_token", "op": "eq", "value": "abc"},
            {"attr": "days_to_renewal", "op": "lte", "value": "30"},
            {"event": "message_open", "within_days": 0},
            {"attr": "lines_held", "op": "is_null", "value": None},
            {"whatever": 1},
            {"attr": "next_renewal_date", "op": "lt", "value": "31/12/2026"},
            {"attr": "gender", "op": "contains", "value": "M"},
        ]
    }
    with pytest.raises(RuleError) as caught:
        compile_rule(rule, dialect="spark", as_of=AS_OF, custom_tags=TAGS)
    got = {p.path: p.reason for p in caught.value.problems}
    assert got == {
        "/all/1/attr": "'nationality' is not a column of customer_profile",
        "/all/2/value": "'X' is not one of the values of gender (M, F)",
        "/all/3/any/0/op": "gt does not apply to boolean column has_auto; use eq or ne",
        "/all/3/any/1/not/event": got["/all/3/any/1/not/event"],
        "/all/4/value": "between needs low <= high, got 40 > 30",
        "/all/5/value": "'asleep' is not one of the values of tag engagement_status "
        "(never_active, dormant, occasional, engaged)",
        "/all/6/attr": "phone_token is not segmentable (see schemas/marts/customer_profile.yaml)",
        "/all/7/value": "'30' is not an integer (days_to_renewal is int)",
        "/all/8/within_days": "0 is less than the minimum of 1",
        "/all/9/value": "is_null takes no value",
        "/all/10": "not a rule node (keys: whatever); expected one of all, any, not, attr, tag, event",
        "/all/11/value": got["/all/11/value"],
        "/all/12/op": "contains does not apply to gender, which has fixed values; use eq or in",
    }
    assert got["/all/3/any/1/not/event"].startswith("'opened_mail' is not a known event type (app_page_view, ")
    assert "'31/12/2026' is not a date (YYYY-MM-DD)" in got["/all/11/value"]
    message = str(caught.value)
    assert message.startswith("invalid segment rule (13 problems): /all/1/attr: 'nationality' is not a column")
    assert "/all/2/value: 'X' is not one of the values of gender (M, F)" in message


def test_rule_that_is_not_an_object_names_the_root():
    with pytest.raises(RuleError, match=r"invalid segment rule: /: \[\] is not of type 'object'"):
        compile_rule([], dialect="sqlite", as_of=AS_OF)  # type: ignore[arg-type]


def test_unknown_custom_tag_is_named_when_the_registry_is_known():
    with pytest.raises(RuleError, match=r"/any/1/tag: 'vip' is not a custom tag in the tag registry"):
        compile_rule(
            {"any": [{"attr": "age", "op": "gt", "value": 1}, {"tag": "vip", "op": "eq", "value": "yes"}]},
            dialect="sqlite",
            as_of=AS_OF,
            custom_tags=TAGS,
        )
    # Without a registry any well-formed tag name compiles.
    compile_rule({"tag": "vip", "op": "eq", "value": "yes"}, dialect="sqlite", as_of=AS_OF, custom_tags=None)
