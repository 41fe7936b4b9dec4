"""Segment insight marts (dbt/models/marts/segments, tag segment_insights) on the shared small world.

The daily order is: dbt builds the marts, the segment refresh (Python) writes membership, then dbt builds
the insight marts on their own. This module does the same: it builds the profile and policy marts, writes
three membership runs of two small dynamic segments with ``refresh_segments`` (2025-11-28, and twice on
2025-12-31 with different rules, so the day's last run must win), runs ``dbt build --select
tag:segment_insights`` (unit tests and data tests included) and checks sizes, distributions, overlap and
trend against a direct computation from the membership, policy and profile tables.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from mo.config import REPO_ROOT

DBT = REPO_ROOT / "dbt"
OWN_FOLDERS = (DBT / "models" / "staging" / "segments", DBT / "models" / "marts" / "segments")
MARTS = ("seg_segment_size", "seg_segment_distribution", "seg_segment_overlap", "seg_segment_trend")
DIMENSIONS = (
    "gender",
    "age_band",
    "acquisition_channel",
    "province",
    "content_preference",
    "preferred_channel",
    "customer_tier",
)

NOVEMBER = dt.date(2025, 11, 28)
DECEMBER = dt.date(2025, 12, 31)
AUTO = "auto-holders-test"
WOMEN = "women-test"


def definition(segment_id: str, rule: dict):
    from mo.segments.definitions import parse_definition

    return parse_definition(
        {
            "id": segment_id,
            "name": f"Test {segment_id}",
            "description": "A small dynamic segment for the insight mart tests.",
            "owner": "tests",
            "kind": "dynamic",
            "rule": rule,
        }
    )


HAS_AUTO = {"attr": "has_auto", "op": "eq", "value": True}
WOMAN = {"attr": "gender", "op": "eq", "value": "F"}
OVER_40 = {"attr": "age", "op": "gte", "value": 40}
# (run id, as-of date, rules); the runs are written in this order, so "dec-final" is 2025-12-31's last run.
RUNS = (
    ("nov", NOVEMBER, {AUTO: {"all": [HAS_AUTO, OVER_40]}, WOMEN: WOMAN}),
    ("dec-early", DECEMBER, {AUTO: {"all": [HAS_AUTO, WOMAN]}, WOMEN: {"all": [WOMAN, OVER_40]}}),
    ("dec-final", DECEMBER, {AUTO: HAS_AUTO, WOMEN: WOMAN}),
)


def mart(settings, name: str) -> str:
    return f"{settings.catalog_name}.marts.{name}"


# --- project layout (no Spark) ---------------------------------------------------------------------------------


def _models_in(folder: Path) -> list[dict]:
    return yaml.safe_load((folder / "_segments__models.yml").read_text(encoding="utf-8"))["models"]


def test_every_segment_model_is_tagged_and_documented():
    for folder in OWN_FOLDERS:
        declared = {m["name"]: m for m in _models_in(folder)}
        files = {p.stem for p in folder.glob("*.sql")}
        assert files == set(declared), folder
        for name, model in declared.items():
            assert "segment_insights" in model["config"]["tags"], name
    staging = {m["name"]: m for m in _models_in(OWN_FOLDERS[0])}
    # the segments tables appear only after the first refresh: staging over them must create nothing
    assert {m["config"]["materialized"] for m in staging.values()} == {"ephemeral"}
    marts = {m["name"]: m for m in _models_in(OWN_FOLDERS[1])}
    for name in MARTS:
        assert marts[name]["config"]["contract"]["enforced"] is True, name
        assert all(c.get("data_type") for c in marts[name]["columns"]), name


def test_nothing_outside_the_segment_folders_depends_on_them():
    """The first dbt pass runs before the segment refresh: it must not need any of these models. The dashboards'
    analytics marts (tag analytics, built last by build_profiles) are not in that pass and may read them."""
    names = {p.stem for folder in OWN_FOLDERS for p in folder.glob("*.sql")}
    pattern = re.compile(r"ref\(\s*['\"](" + "|".join(map(re.escape, names)) + r")['\"]")
    for sql in (DBT / "models").rglob("*.sql"):
        if sql.parent in OWN_FOLDERS or sql.parent == DBT / "models" / "marts" / "analytics":
            continue
        assert not pattern.search(sql.read_text(encoding="utf-8")), f"{sql} refs a segment insight model"


# --- built on the world ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def insights(dbt_world, dbt_as_of):
    """Marts built, three membership runs written, insight marts built; returns (settings, dbt node statuses)."""
    from mo.marts.dbt import build_vars, run_dbt
    from mo.segments.membership import refresh_segments

    settings, spark = dbt_world
    variables = build_vars(settings, as_of_date=dbt_as_of)
    upstream = ["+customer_profile", "+customer_event_daily", "+fct_policies"]
    run_dbt(settings, ["run", "--select", *upstream], vars=variables)
    for run_id, as_of, rules in RUNS:
        refresh_segments(
            spark, settings, [definition(s, rule) for s, rule in rules.items()], as_of=as_of, run_id=run_id
        )
    result = run_dbt(settings, ["build", "--select", "tag:segment_insights"], vars=variables)
    return settings, {str(r.node.unique_id): str(r.status).lower() for r in result.results}


@pytest.fixture(scope="module")
def members(insights, dbt_world) -> dict[tuple[str, dt.date], set[int]]:
    """(segment, as-of date) -> customer ids of that day's last run, read straight from the lake."""
    settings, spark = dbt_world
    table = f"{settings.catalog_name}.segments"
    last_runs: dict[tuple[str, dt.date], tuple] = {}
    for r in spark.table(f"{table}.runs").collect():
        key = (r.segment_id, r.as_of_date)
        if key not in last_runs or (r.computed_at, r.run_id) > last_runs[key]:
            last_runs[key] = (r.computed_at, r.run_id)
    out: dict[tuple[str, dt.date], set[int]] = {key: set() for key in last_runs}
    for r in spark.table(f"{table}.membership").collect():
        key = (r.segment_id, r.as_of_date)
        if last_runs[key][1] == r.run_id:
            out[key].add(r.customer_id)
    return out


def subject_key(p) -> str:
    if p.subject_type == "vehicle":
        return f"vehicle:{p.vehicle_plate_token}" if p.vehicle_plate_token else f"policy:{p.policy_id}"
    if p.subject_type == "property":
        return ":".join(x for x in ("property", str(p.customer_id), p.property_address_masked) if x is not None)
    return f"person:{p.customer_id}"


def test_the_insight_build_ran_the_unit_tests_and_built_every_mart(insights):
    _, statuses = insights
    unit_tests = {node.rsplit(".", 1)[-1]: status for node, status in statuses.items() if node.startswith("unit_test.")}
    assert unit_tests == {
        "segment_runs_last_run_of_the_day_wins": "pass",
        "segment_overlap_pairs_on_the_latest_date": "pass",
        "segment_trend_last_run_per_period_and_calendar_previous": "pass",
    }
    for name in ("int_segment_runs_deduplicated", *MARTS):
        assert statuses[f"model.mo.{name}"] == "success", name
    assert any(node.startswith("test.mo.tags_unique_combination_seg_segment_overlap") for node in statuses)


def test_the_days_last_run_is_the_one_counted(insights, dbt_world, members):
    settings, spark = dbt_world
    rows = {(r.segment_id, r.as_of_date): r for r in spark.table(mart(settings, "seg_segment_size")).collect()}
    assert set(rows) == {(s, d) for s in (AUTO, WOMEN) for d in (NOVEMBER, DECEMBER)}
    assert {r.run_id for (_, d), r in rows.items() if d == DECEMBER} == {"dec-final"}
    # the superseded run of the same day had other sizes, so counting it would show
    early = {
        r.segment_id: r.member_count
        for r in spark.table(f"{settings.catalog_name}.segments.runs").where("run_id = 'dec-early'").collect()
    }
    assert early == {AUTO: early[AUTO], WOMEN: early[WOMEN]}
    assert all(early[s] != rows[(s, DECEMBER)].customers for s in (AUTO, WOMEN)), early
    assert rows[(AUTO, DECEMBER)].segment_name == f"Test {AUTO}"
    assert rows[(AUTO, DECEMBER)].is_latest_for_segment and not rows[(AUTO, NOVEMBER)].is_latest_for_segment


def test_sizes_match_a_direct_count(insights, dbt_world, members):
    settings, spark = dbt_world
    policies = spark.table(mart(settings, "fct_policies")).collect()
    rows = {(r.segment_id, r.as_of_date): r for r in spark.table(mart(settings, "seg_segment_size")).collect()}
    for (segment_id, as_of), ids in members.items():
        in_force = [
            p
            for p in policies
            if p.customer_id in ids and p.status in ("in_force", "expired") and p.start_date <= as_of <= p.end_date
        ]
        row = rows[(segment_id, as_of)]
        keys = {subject_key(p) for p in in_force}
        assert row.customers == len(ids) > 0, (segment_id, as_of)
        assert row.policies == len(in_force), (segment_id, as_of)
        assert row.insured_subjects == len(keys), (segment_id, as_of)
        assert row.insured_vehicles + row.insured_properties + row.insured_persons == row.insured_subjects
        assert row.premium_total == sum((p.premium for p in in_force), Decimal("0.00")), (segment_id, as_of)
    # on the build's own as-of date "in force" is exactly fct_policies.is_in_force
    auto = members[(AUTO, DECEMBER)]
    assert rows[(AUTO, DECEMBER)].policies == sum(1 for p in policies if p.customer_id in auto and p.is_in_force) > 0


def test_distribution_counts_the_latest_members_by_profile(insights, dbt_world, members):
    settings, spark = dbt_world
    profiles = {r.customer_id: r for r in spark.table(mart(settings, "customer_profile")).collect()}
    rows = spark.table(mart(settings, "seg_segment_distribution")).collect()
    assert {r.as_of_date for r in rows} == {DECEMBER}
    assert {r.dimension for r in rows} == set(DIMENSIONS)
    for segment_id in (AUTO, WOMEN):
        ids = members[(segment_id, DECEMBER)]
        for dimension in DIMENSIONS:
            expected = Counter(getattr(profiles[i], dimension) or "unknown" for i in ids)
            got = {r.value: r.customers for r in rows if r.segment_id == segment_id and r.dimension == dimension}
            assert got == dict(expected), (segment_id, dimension)
            shares = [r.share for r in rows if r.segment_id == segment_id and r.dimension == dimension]
            assert sum(shares) == pytest.approx(1.0)
    women_by_gender = {r.value: r.customers for r in rows if r.segment_id == WOMEN and r.dimension == "gender"}
    assert women_by_gender == {"F": len(members[(WOMEN, DECEMBER)])}


def test_overlap_matches_the_member_sets(insights, dbt_world, members):
    settings, spark = dbt_world
    rows = {(r.segment_id, r.other_segment_id): r for r in spark.table(mart(settings, "seg_segment_overlap")).collect()}
    assert set(rows) == {(AUTO, WOMEN), (WOMEN, AUTO)}
    auto, women = members[(AUTO, DECEMBER)], members[(WOMEN, DECEMBER)]
    both, either = auto & women, auto | women
    assert both, "the world should have women with an auto policy"
    for (a, _), row in rows.items():
        size_a = len(auto if a == AUTO else women)
        assert row.as_of_date == DECEMBER
        assert row.customers_in_both == len(both)
        assert row.customers_in_either == len(either)
        assert row.jaccard == pytest.approx(len(both) / len(either))
        assert row.share_of_segment_in_other == pytest.approx(len(both) / size_a)


def test_trend_reports_each_periods_last_run_and_the_change(insights, dbt_world, members):
    settings, spark = dbt_world
    trend = spark.table(mart(settings, "seg_segment_trend")).collect()
    rows = {(r.segment_id, r.grain, r.period_start_date): r for r in trend}
    for segment_id in (AUTO, WOMEN):
        november, december = len(members[(segment_id, NOVEMBER)]), len(members[(segment_id, DECEMBER)])
        month_nov = rows[(segment_id, "month", dt.date(2025, 11, 1))]
        month_dec = rows[(segment_id, "month", dt.date(2025, 12, 1))]
        assert (month_nov.customers, month_nov.previous_customers) == (november, None)
        assert month_dec.run_id == "dec-final"
        assert (month_dec.customers, month_dec.previous_customers) == (december, november)
        assert month_dec.customers_change == december - november
        assert month_dec.customers_change_ratio == pytest.approx((december - november) / november)
        # weeks of 2025-11-24 and 2025-12-29: the week before each had no run, so no change is claimed
        for monday, size in ((dt.date(2025, 11, 24), november), (dt.date(2025, 12, 29), december)):
            week = rows[(segment_id, "week", monday)]
            assert week.period_end_date == monday + dt.timedelta(days=6)
            assert (week.customers, week.previous_customers, week.customers_change) == (size, None, None)
    assert len(rows) == 2 * 4
