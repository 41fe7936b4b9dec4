"""What a rule may hold: size limits checked before any recursive walk (each violation with its JSON pointer),
rules at every limit compile and answer exactly on SQLite, PostgreSQL and DuckDB, values no engine binds the
same way are refused, dates in the documented format only, event types and windows from the contracts."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import uuid

import pytest
import yaml
from sqlalchemy import create_engine, text

from mo.config import SCHEMAS_DIR
from mo.segments import rules
from mo.segments.compiler import compile_rule, member_query
from mo.segments.definitions import DefinitionError, parse_definition
from mo.segments.rules import RuleError, rule_problems, validate_rule
from mo.serving_store.contract import load_serving_contract
from tests.segments.profile_data import AS_OF, load_sql, make_world
from tests.segments.reference import expected_members
from tests.segments.test_compiler import TAGS

EVENTS = ("message_open", "app_page_view", "claim_filed")


def _problems(rule) -> dict[str, str]:
    return {p.path: p.reason for p in rule_problems(rule, custom_tags=TAGS)}


def _leaf(i: int) -> dict:
    """A cheap leaf of one of several kinds, varied by ``i``."""
    return [
        {"attr": "age", "op": "eq", "value": 18 + i % 60},
        {"tag": "engagement_status", "op": "eq", "value": "dormant"},
        {"attr": "last_active_at", "op": "lte", "value": {"days_from_as_of": -(i % 100)}},
        {"attr": "city", "op": "contains", "value": f"x{i}"},
        {"attr": "total_premium", "op": "gt", "value": 100.5 * i},
    ][i % 5]


def _event(i: int) -> dict:
    return {"event": EVENTS[i % 3], "within_days": 1 + (7 * i) % 90, "count": {"op": "gte", "value": 1 + i % 4}}


def _nested(levels: int) -> dict:
    """A rule exactly ``levels`` levels deep, alternating not / all / any, with a second leaf at each level."""
    node: dict = {"attr": "age", "op": "gt", "value": 40}
    for level in range(levels - 1):
        kind = level % 3
        node = {"not": node} if kind == 0 else {"all" if kind == 1 else "any": [node, _leaf(level)]}
    return node


# Rules at each limit: every engine must compile and answer them exactly.
AT_LIMITS = {
    "depth": _nested(rules.MAX_RULE_DEPTH),
    "leaves": {
        "all": [
            {"attr": "gender", "op": "eq", "value": "F"},
            {
                "any": [_leaf(i) for i in range(rules.MAX_RULE_LEAVES - rules.MAX_RULE_EVENT_CONDITIONS - 1)]
                + [_event(i) for i in range(rules.MAX_RULE_EVENT_CONDITIONS)]
            },
        ]
    },
    "values": {
        "any": [{"attr": "age", "op": "in", "value": [*range(18, 50), *range(10_000, 10_968)]}]
        + [
            {"attr": "age", "op": "in", "value": list(range(j * 1000, (j + 1) * 1000))}
            for j in range(1, rules.MAX_RULE_VALUES // 1000)
        ]
    },
}


def test_the_rules_at_the_limits_are_valid_and_fit_the_byte_limit():
    for name, rule in AT_LIMITS.items():
        assert _problems(rule) == {}, name
        assert len(json.dumps(rule, separators=(",", ":")).encode()) <= rules.MAX_RULE_BYTES, name


def test_a_rule_nested_past_the_depth_limit_is_refused_at_the_first_node_too_deep():
    too_deep = _nested(rules.MAX_RULE_DEPTH + 1)
    (path, reason), *more = _problems(too_deep).items()
    assert not more and "MAX_RULE_DEPTH" in reason
    assert path.count("/") >= rules.MAX_RULE_DEPTH  # the pointer of the node at level MAX_RULE_DEPTH + 1
    # 100,000 levels: no RecursionError, the same one problem (the pointer of the first node past the limit)
    node: dict = {"attr": "age", "op": "gt", "value": 1}
    for _ in range(100_000):
        node = {"not": node}
    assert _problems(node) == {"/not" * rules.MAX_RULE_DEPTH: reason}


def test_a_value_nested_past_the_json_depth_is_refused_without_recursion():
    value: list = [1]
    for _ in range(100_000):
        value = [value]
    problems = _problems({"all": [{"attr": "age", "op": "in", "value": value}]})
    assert len(problems) == 1 and next(iter(problems)).startswith("/all/0/value/0/0/0")


def test_too_many_leaves_event_conditions_or_values_are_refused_with_the_first_one_past_the_limit():
    leaves = {"any": [_leaf(i) for i in range(rules.MAX_RULE_LEAVES + 1)]}
    assert _problems(leaves) == {
        f"/any/{rules.MAX_RULE_LEAVES}": f"more than {rules.MAX_RULE_LEAVES} conditions (MAX_RULE_LEAVES)"
    }
    events = {"all": [_leaf(0), {"any": [_event(i) for i in range(rules.MAX_RULE_EVENT_CONDITIONS + 1)]}]}
    assert list(_problems(events)) == [f"/all/1/any/{rules.MAX_RULE_EVENT_CONDITIONS}"]
    values = {"all": [{"attr": "age", "op": "in", "value": list(range(1000))} for _ in range(11)]}
    assert _problems(values) == {"/all/10/value/0": f"more than {rules.MAX_RULE_VALUES} values (MAX_RULE_VALUES)"}


def test_a_huge_rule_is_refused_by_its_size_before_anything_else_walks_it():
    huge = {"any": [{"attr": "city", "op": "eq", "value": f"city-{i}"} for i in range(100_000)]}  # ~5 MB
    assert _problems(huge) == {"": f"the rule is larger than {rules.MAX_RULE_BYTES} bytes of JSON (MAX_RULE_BYTES)"}
    with pytest.raises(RuleError, match=r"^invalid segment rule: /: the rule is larger than 65536 bytes"):
        compile_rule(huge, dialect="sqlite", as_of=AS_OF)


def test_a_definition_with_an_oversized_rule_names_the_rule_and_still_checks_the_rest():
    node: dict = {"attr": "age", "op": "gt", "value": 1}
    for _ in range(5_000):
        node = {"not": node}
    with pytest.raises(DefinitionError) as caught:
        parse_definition(
            {"id": "deep", "name": "Deep", "description": "", "owner": "x", "kind": "dynamic", "rule": node}
        )
    got = {p.path: p.reason for p in caught.value.problems}
    assert got == {
        "/description": "'' should be non-empty",
        "/rule" + "/not" * rules.MAX_RULE_DEPTH: got["/rule" + "/not" * rules.MAX_RULE_DEPTH],
    }


@pytest.mark.parametrize(
    ("leaf", "reason"),
    [
        ({"attr": "total_premium", "op": "gt", "value": math.nan}, "NaN and Infinity are not numbers"),
        ({"attr": "total_premium", "op": "lt", "value": math.inf}, "NaN and Infinity are not numbers"),
        ({"attr": "claims_ratio", "op": "between", "value": [-math.inf, 1]}, "NaN and Infinity are not numbers"),
        ({"attr": "age", "op": "gt", "value": 10**20}, "outside the 64-bit range"),
        ({"attr": "total_premium", "op": "gt", "value": 10**400}, "outside the 64-bit range"),
        ({"attr": "age", "op": "in", "value": [1, -(2**63) - 1]}, "outside the 64-bit range"),
        ({"event": "claim_filed", "within_days": 7, "count": {"op": "lt", "value": 2**64}}, "outside the 64-bit"),
        ({"attr": "city", "op": "eq", "value": "Shen\x00zhen"}, "NUL character"),
        ({"attr": "city", "op": "contains", "value": "\ud800"}, "lone surrogate"),
        ({"tag": "high_value_family", "op": "in", "value": ["true", "x\udfff"]}, "lone surrogate"),
        ({"attr": "city", "op": "eq", "value": "x" * 1001}, "longer than 1000 (MAX_STRING_LENGTH)"),
    ],
)
def test_values_no_engine_binds_the_same_way_are_refused_with_their_pointer(leaf, reason):
    rule = {"all": [{"attr": "age", "op": "gte", "value": 18}, leaf]}
    problems = _problems(rule)
    assert len(problems) == 1, problems
    ((path, got),) = problems.items()
    assert path.startswith("/all/1/") and reason in got
    with pytest.raises(RuleError) as caught:
        compile_rule(rule, dialect="postgresql", as_of=AS_OF, custom_tags=TAGS)
    str(caught.value).encode("utf-8")  # the message itself is printable text


def test_64_bit_extremes_and_finite_doubles_stay_valid():
    assert _problems({"attr": "customer_id", "op": "in", "value": [-(2**63), 2**63 - 1]}) == {}
    assert _problems({"attr": "total_premium", "op": "lt", "value": 1.7e308}) == {}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("customer_since_date", "20260110"),
        ("customer_since_date", "2026-1-10"),
        ("customer_since_date", "2026-01-10T00:00:00"),
        ("last_active_at", "20260110"),
        ("last_active_at", "20260110T101500"),
        ("last_active_at", "2026-01-10 10:15:00"),
        ("last_active_at", "2026-01-10T10:15"),
    ],
)
def test_dates_and_timestamps_must_have_the_documented_format(column, value):
    problems = _problems({"attr": column, "op": "gte", "value": value})
    assert list(problems) == ["/value"] and "YYYY-MM-DD" in problems["/value"]


@pytest.mark.parametrize(
    "value", ["2026-01-10", "2026-01-10T10:15:00", "2026-01-10T10:15:00.123456", "2026-01-10T10:15:00Z",
              "2026-01-10T18:15:00+08:00"]
)  # fmt: skip
def test_documented_timestamp_forms_are_accepted(value):
    assert _problems({"attr": "last_active_at", "op": "gte", "value": value}) == {}


# --- event types and windows -------------------------------------------------------------------------------


def _generated_event_types() -> set[str]:
    """Every event type the synthetic world's generator emits on the stream."""
    from mo.generator import events as generator

    rng, types = random.Random(3), set()
    for day in range(200):
        for openid, app_user in (("o1", "u1"), ("o1", None), (None, "u1"), (None, None)):
            found = generator.behaviour_events(
                rng, day=dt.date(2026, 1, 1) + dt.timedelta(days=day % 30), customer_id=1, openid=openid,
                app_user_id=app_user, key=b"k",
            )  # fmt: skip
            types |= {e["event_type"] for e in found}
    ts = dt.datetime(2026, 1, 1, 9)
    claim = generator.claim_filed(
        rng, ts=ts, customer_id=1, claim_no="C", policy_no="P", incident_type="x", amount_claimed=1.0
    )
    renewal = generator.policy_near_renewal(
        rng, ts=ts, customer_id=1, policy_no="P", product_code="X", end_date=ts.date(), today=ts.date()
    )
    types |= {claim["event_type"], renewal["event_type"]}
    return types


def test_every_event_type_the_generator_emits_is_accepted():
    emitted = _generated_event_types()
    assert len(emitted) >= 9
    for event_type in sorted(emitted):
        assert _problems({"event": event_type, "within_days": 30}) == {}, event_type


def test_event_types_derived_from_silver_are_accepted_and_come_from_the_timeline_contract():
    silver_derived = [
        "customer_created", "policy_quoted", "policy_issued", "policy_started", "policy_expired", "policy_lapsed",
        "policy_surrendered", "claim_filed", "claim_docs_requested", "claim_approved", "claim_rejected",
        "claim_paid", "recording_made", "recording_approved", "recording_rejected", "complaint_opened",
        "complaint_resolved",
    ]  # fmt: skip
    consents = yaml.safe_load((SCHEMAS_DIR / "sources" / "consents.yaml").read_text())
    status = next(c for c in consents["columns"] if c["name"] == "status")
    silver_derived += [f"consent_{s}" for s in status["enum"]]  # concat('consent_', status) in the timeline
    for event_type in silver_derived:
        assert _problems({"event": event_type, "within_days": 30}) == {}, event_type
    timeline = yaml.safe_load((SCHEMAS_DIR / "marts" / "fct_customer_events.yaml").read_text())
    enum = next(c for c in timeline["columns"] if c["name"] == "event_type")["enum"]
    assert rules.known_event_types() == frozenset(enum)
    contracts = [json.loads(p.read_text()) for p in (SCHEMAS_DIR / "events").glob("*.schema.json")]
    stream = {c["title"] for c in contracts if c.get("x-subject", "customer") == "customer"}
    assert stream <= set(enum), "every stream event contract about a customer must be a timeline type"
    assert _problems({"event": "opened_mail", "within_days": 3})["/event"].startswith("'opened_mail' is not a known")


def test_event_windows_are_at_most_what_the_serving_store_keeps():
    kept = load_serving_contract().event_retention_days
    assert rules.event_retention_days() == kept == 180
    assert _problems({"event": "claim_filed", "within_days": kept}) == {}
    rule = {"all": [{"attr": "age", "op": "gt", "value": 1}, {"event": "claim_filed", "within_days": 365}]}
    assert _problems(rule) == {
        "/all/1/within_days": "365 days is longer than the 180 days of events the serving store keeps "
        "(event_retention_days in schemas/serving/serving.yaml)"
    }
    with pytest.raises(RuleError, match="/all/1/within_days: 365 days is longer"):
        validate_rule(rule, custom_tags=TAGS)


# --- every engine at the limits and on whole days ----------------------------------------------------------


@pytest.fixture(scope="module")
def world():
    profiles, events = make_world(150, seed=11)
    # Activity at the edges of the as-of date (its first and last instant, the instant before it, the next day).
    midnight = dt.datetime.combine(AS_OF, dt.time())
    edges = [
        midnight,
        midnight + dt.timedelta(hours=9, minutes=15),
        midnight + dt.timedelta(days=1, microseconds=-1),
        midnight - dt.timedelta(seconds=1),
        midnight + dt.timedelta(days=1),
    ]
    for profile, instant in zip(profiles, edges, strict=False):
        profile["last_active_at"] = instant
    return profiles, events


@pytest.fixture(scope="module")
def engines(world, tmp_path_factory):
    """(dialect, members(rule)) for SQLite, PostgreSQL and DuckDB loaded with the same world."""
    import duckdb

    from mo.serving_store.columnar import write_refresh_batches
    from tests.serving_store.test_columnar import _batches

    sqlite = create_engine(f"sqlite:///{tmp_path_factory.mktemp('limits') / 'serving.db'}")
    with sqlite.begin() as conn:
        load_sql(conn, *world, dialect="sqlite")
    pg_url = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
    schema = f"seg_limits_{uuid.uuid4().hex[:8]}"
    pg = create_engine(pg_url)
    with pg.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        load_sql(conn, *world, dialect="postgresql", schema=schema)
    path = write_refresh_batches(tmp_path_factory.mktemp("duck"), "20260331000000000000abcdef", _batches(*world))
    duck = duckdb.connect(str(path), read_only=True)

    def run_sql(engine, dialect: str, prefix: str):
        def members(rule: dict) -> set[int]:
            compiled = compile_rule(
                rule,
                dialect=dialect,  # type: ignore[arg-type]
                as_of=AS_OF,
                profile=f"{prefix}customer_profile",
                events=f"{prefix}customer_event_daily",
                custom_tags=TAGS,
            )
            with engine.connect() as conn:
                query = text(member_query(compiled, f"{prefix}customer_profile"))
                return {r[0] for r in conn.execute(query, compiled.params)}

        return members

    def run_duck(rule: dict) -> set[int]:
        compiled = compile_rule(rule, dialect="duckdb", as_of=AS_OF, custom_tags=TAGS)
        return {r[0] for r in duck.execute(member_query(compiled), compiled.params).fetchall()}

    yield {
        "sqlite": run_sql(sqlite, "sqlite", ""),
        "postgresql": run_sql(pg, "postgresql", f"{schema}."),
        "duckdb": run_duck,
    }
    duck.close()
    with pg.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    pg.dispose()
    sqlite.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("name", sorted(AT_LIMITS))
def test_rules_at_every_limit_answer_exactly_on_every_engine(name, world, engines):
    rule = AT_LIMITS[name]
    expected = expected_members(rule, *world, AS_OF)
    assert 0 < len(expected) < len(world[0])
    for dialect, members in engines.items():
        assert members(rule) == expected, dialect


@pytest.mark.postgres
def test_a_day_on_a_timestamp_column_means_the_whole_day_on_every_engine(world, engines):
    profiles, _ = world
    active_on = {p["customer_id"]: p["last_active_at"].date() for p in profiles if p["last_active_at"]}

    def on(test) -> set[int]:
        return {c for c, day in active_on.items() if test(day)}

    assert len(on(lambda day: day == AS_OF)) >= 3, "the world must have customers active on the as-of date"
    today = {"days_from_as_of": 0}
    cases = {
        "lte": (today, on(lambda day: day <= AS_OF)),
        "lt": (today, on(lambda day: day < AS_OF)),
        "gte": (today, on(lambda day: day >= AS_OF)),
        "eq": (AS_OF.isoformat(), on(lambda day: day == AS_OF)),
        "gt": ({"days_from_as_of": -1}, on(lambda day: day >= AS_OF)),
        "ne": (today, on(lambda day: day != AS_OF)),
    }
    for op, (value, expected) in cases.items():
        rule = {"attr": "last_active_at", "op": op, "value": value}
        assert expected_members(rule, *world, AS_OF) == expected, op  # the reference reads it the same way
        for dialect, members in engines.items():
            assert members(rule) == expected, (op, dialect)


def test_rule_and_definition_files_too_large_or_too_deep_to_read_are_refused(tmp_path):
    from mo.segments.definitions import check_path

    # (YAML nested as deeply fails the same way, after seconds in PyYAML's pure-Python parser.)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RuleError, match=r"deep\.json#: nested too deeply to read as JSON"):
        check_path(deep)
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "deep.json").write_text(deep.read_text())
    with pytest.raises(DefinitionError, match="nested too deeply to read"):
        check_path(folder)
    for suffix in (".json", ".yaml"):
        large = tmp_path / f"large{suffix}"
        large.write_text(json.dumps({"any": [{"attr": "city", "op": "eq", "value": f"c{i}"} for i in range(20_000)]}))
        with pytest.raises(RuleError, match=rf"large\{suffix}#: the file is \d+ bytes, more than 262144"):
            check_path(large)
