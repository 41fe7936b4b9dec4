"""Membership per run in Iceberg: dynamic segments with the clauses each member matched, idempotent re-runs,
point-in-time read-back across definition versions, static snapshots from CSV, and explanations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mo.segments.compiler import compile_rule
from mo.segments.definitions import SegmentNotFound, load_definitions, parse_definition
from mo.segments.membership import (
    StaticListError,
    explain,
    members_at,
    parse_static_csv,
    refresh_segments,
    upload_static,
)
from tests.segments.profile_data import AS_OF, make_world, spark_frames
from tests.segments.reference import expected_members, holds

BASE = {"name": "n", "description": "d", "owner": "crm"}
WHY = parse_definition(
    {
        **BASE,
        "id": "why-test",
        "kind": "dynamic",
        "rule": {
            "all": [
                {"any": [{"attr": "gender", "op": "eq", "value": "F"}, {"attr": "age", "op": "lt", "value": 40}]},
                {"not": {"attr": "customer_tier", "op": "eq", "value": "bronze"}},
                {"not": {"event": "message_open", "within_days": 30, "count": {"op": "gte", "value": 3}}},
            ]
        },
    }
)


@pytest.fixture
def lake(spark, settings):
    from spark_jobs.session import get_spark

    return get_spark(settings)


def write_marts(lake, settings, profiles, events) -> None:
    profile_df, events_df = spark_frames(lake, profiles, events)
    lake.sql(f"CREATE NAMESPACE IF NOT EXISTS {settings.catalog_name}.marts")
    profile_df.writeTo(f"{settings.catalog_name}.marts.customer_profile").using("iceberg").createOrReplace()
    events_df.writeTo(f"{settings.catalog_name}.marts.customer_event_daily").using("iceberg").createOrReplace()


def _node(rule: dict, path: str) -> dict:
    node = rule
    for part in path.split("/")[1:]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def expected_reasons(rule: dict, profile: dict, events: list[dict], as_of: dt.date) -> list[str]:
    """'<path>: <label>' of the leaves holding in the rule's direction, the leaf truth taken from the reference."""
    index: dict = {}
    for e in events:
        index.setdefault((e["customer_id"], e["event_type"]), []).append((e["event_date"], e["event_count"]))
    reasons = []
    for clause in compile_rule(rule, dialect="spark", as_of=as_of).clauses:
        if holds(_node(rule, clause.path), profile, index, as_of) != clause.negated:
            reasons.append(clause.reason)
    return reasons


@pytest.mark.spark
def test_refresh_writes_members_with_matched_clauses_and_reruns_replace_the_run(lake, settings):
    profiles, events = make_world(80, seed=11)
    write_marts(lake, settings, profiles, events)
    definitions = [*(d for d in load_definitions() if d.rule), WHY]  # rule segments (smart ones need a model)

    report = refresh_segments(lake, settings, definitions, as_of=AS_OF, run_id="daily-2026-03-31")
    expected = {d.id: expected_members(d.rule, profiles, events, AS_OF) for d in definitions}
    assert report.sizes == {k: len(v) for k, v in expected.items()}
    assert {s.version for s in report.segments} == {1}
    assert 0 < len(expected["why-test"]) < 80

    table = f"{settings.catalog_name}.segments.membership"
    rows = lake.sql(f"SELECT * FROM {table}").collect()
    assert len(rows) == sum(len(v) for v in expected.values())
    by_id = {p["customer_id"]: p for p in profiles}
    why_rows = {r.customer_id: r for r in rows if r.segment_id == "why-test"}
    assert set(why_rows) == expected["why-test"]
    for customer_id, row in why_rows.items():
        assert row.run_id == "daily-2026-03-31" and row.as_of_date == AS_OF and row.segment_version == 1
        assert list(row.matched_clauses) == expected_reasons(WHY.rule, by_id[customer_id], events, AS_OF)
    some = next(iter(sorted(why_rows)))
    assert any(r.startswith("/all/1/not: not customer_tier = 'bronze'") for r in why_rows[some].matched_clauses)

    # The same run again (after the profile lost half its customers) replaces the run's rows: no duplicates.
    write_marts(lake, settings, profiles[:40], events)
    again = refresh_segments(lake, settings, definitions, as_of=AS_OF, run_id="daily-2026-03-31")
    expected_again = {d.id: expected_members(d.rule, profiles[:40], events, AS_OF) for d in definitions}
    assert again.sizes == {k: len(v) for k, v in expected_again.items()}
    assert lake.sql(f"SELECT count(*) FROM {table}").collect()[0][0] == sum(len(v) for v in expected_again.values())
    runs = lake.sql(f"SELECT * FROM {settings.catalog_name}.segments.runs").collect()
    assert sorted((r.segment_id, r.member_count) for r in runs) == sorted(
        (k, len(v)) for k, v in expected_again.items()
    ), "one runs row per segment, empty segments included"


@pytest.mark.spark
def test_membership_reads_back_at_any_past_date_with_its_definition_version(lake, settings):
    profiles, events = make_world(60, seed=5)
    write_marts(lake, settings, profiles, events)
    first = refresh_segments(lake, settings, [WHY], as_of=AS_OF, run_id="r1")
    members_1 = expected_members(WHY.rule, profiles, events, AS_OF)

    # A week later: customers changed and the marketer narrowed the rule (version 2).
    later = AS_OF + dt.timedelta(days=7)
    for p in profiles[:30]:
        p["gender"] = "M" if p["gender"] == "F" else "F"
    write_marts(lake, settings, profiles, events)
    narrowed = parse_definition(
        {**WHY.to_dict(), "rule": {"all": [*WHY.rule["all"], {"attr": "has_open_claim", "op": "eq", "value": False}]}}
    )
    second = refresh_segments(lake, settings, [narrowed], as_of=later, run_id="r2")
    members_2 = expected_members(narrowed.rule, profiles, events, later)
    assert first.segments[0].version == 1 and second.segments[0].version == 2
    assert members_1 != members_2

    at_first = members_at(lake, settings, "why-test", AS_OF)
    assert (at_first.run_id, at_first.segment_version, set(at_first.customer_ids)) == ("r1", 1, members_1)
    assert set(members_at(lake, settings, "why-test", AS_OF + dt.timedelta(days=3)).customer_ids) == members_1
    at_second = members_at(lake, settings, "why-test", later + dt.timedelta(days=30))
    assert (at_second.run_id, at_second.segment_version, set(at_second.customer_ids)) == ("r2", 2, members_2)
    with pytest.raises(SegmentNotFound, match=r"'why-test' has no membership run on or before 2026-03-30"):
        members_at(lake, settings, "why-test", AS_OF - dt.timedelta(days=1))

    # Why is this customer in the segment (then and now), and why is another not.
    by_id = {p["customer_id"]: p for p in profiles}
    member = sorted(members_2)[0]
    now = explain(lake, settings, "why-test", member)
    assert (now.is_member, now.run_id, now.segment_version) == (True, "r2", 2)
    assert [f"{m.path}: {m.label}" for m in now.matched] == expected_reasons(
        narrowed.rule, by_id[member], events, later
    )
    assert any(m.path == "/all/3" and m.label == "has_open_claim = false" for m in now.matched)
    outsider = min(set(by_id) - members_1)
    then = explain(lake, settings, "why-test", outsider, at=AS_OF)
    assert (then.is_member, then.run_id, then.matched) == (False, "r1", [])
    assert "is not in why-test (v1, run r1" in str(then)


def test_static_csv_bad_lines_are_reported_by_number():
    text = "customer_id\n1001\nabc\n\n1002,1003\n-5\n1001\n0\n 1004 \n"
    with pytest.raises(StaticListError) as caught:
        parse_static_csv(text, "vip.csv")
    assert str(caught.value) == (
        "vip.csv: 4 bad lines: line 3: 'abc' is not a customer id (a positive integer); "
        "line 5: expected one value, found 2; line 6: '-5' is not a customer id (a positive integer); "
        "line 8: '0' is not a customer id (a positive integer)"
    )
    with pytest.raises(StaticListError, match=r"vip.csv: line 1: the header must be the single column customer_id"):
        parse_static_csv("id\n1\n", "vip.csv")
    with pytest.raises(StaticListError, match="no customer ids after the header"):
        parse_static_csv("customer_id\n\n", "vip.csv")
    assert parse_static_csv("\ufeffcustomer_id\r\n7\r\n8\r\n7\r\n 9 \r\n", "x.csv") == ([7, 8, 9], 1)


@pytest.mark.spark
def test_static_segment_is_a_frozen_snapshot_that_later_runs_carry(lake, settings, tmp_path: Path):
    profiles, events = make_world(40, seed=3)
    write_marts(lake, settings, profiles, events)
    ids = [p["customer_id"] for p in profiles]
    static = parse_definition({**BASE, "id": "event-guests", "kind": "static", "static": {"source": "upload"}})

    skipped = refresh_segments(lake, settings, [static], as_of=AS_OF, run_id="r0")
    assert skipped.sizes == {} and "no static list uploaded" in skipped.skipped[0].note

    first_csv = tmp_path / "guests.csv"
    first_csv.write_text("customer_id\n" + "\n".join(str(i) for i in [*ids[:5], 999999, ids[0]]) + "\n")
    upload = upload_static(lake, settings, "event-guests", first_csv)
    assert (upload.members, upload.unknown_ids, upload.duplicates) == (5, [999999], 1)

    refresh_segments(lake, settings, [static], as_of=AS_OF, run_id="r1")
    # The profile changes completely; the frozen list does not.
    write_marts(lake, settings, profiles[20:], events)
    refresh_segments(lake, settings, [static], as_of=AS_OF + dt.timedelta(days=1), run_id="r2")
    assert members_at(lake, settings, "event-guests", AS_OF + dt.timedelta(days=1)).customer_ids == sorted(ids[:5])

    second_csv = tmp_path / "guests-v2.csv"
    second_csv.write_text("customer_id\n" + "\n".join(str(i) for i in ids[30:33]) + "\n")
    upload_static(lake, settings, "event-guests", second_csv)
    refresh_segments(lake, settings, [static], as_of=AS_OF + dt.timedelta(days=2), run_id="r3")

    assert members_at(lake, settings, "event-guests", AS_OF).customer_ids == sorted(ids[:5])
    latest = members_at(lake, settings, "event-guests", AS_OF + dt.timedelta(days=9))
    assert (latest.run_id, latest.customer_ids) == ("r3", sorted(ids[30:33]))
    why = explain(lake, settings, "event-guests", ids[31])
    assert why.is_member and why.matched[0].path == "static"
    assert why.matched[0].label.startswith("snapshot ") and why.matched[0].label.endswith("from guests-v2.csv")

    with pytest.raises(StaticListError, match="line 2"):
        upload_static(lake, settings, "event-guests", _write(tmp_path / "bad.csv", "customer_id\nx1\n"))
    refresh_segments(lake, settings, [WHY], as_of=AS_OF, run_id="r4")
    with pytest.raises(Exception, match="'why-test' is dynamic, not static"):
        upload_static(lake, settings, "why-test", second_csv)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
