"""Publishing from Iceberg tables through Spark (the real path), and the segment preview over the published
store checked against the same rule compiled for Spark and run on the lakehouse tables."""

from __future__ import annotations

import datetime as dt

import pytest
import redis
from sqlalchemy import text

from mo.serving_store import get_profile, preview_segment, publish
from mo.serving_store.extract import PublishInputs
from mo.serving_store.preview import DISTRIBUTION_COLUMNS
from mo.serving_store.store import SqlServingStore, open_store
from tests.serving_store.conftest import POSTGRES_URL, REDIS_URL
from tests.serving_store.world import AS_OF, World, make_world, mart_columns

pytestmark = pytest.mark.spark

RUNS_DDL = (
    "run_id string, as_of_date date, segment_id string, segment_version int, kind string, member_count bigint, "
    "computed_at timestamp"
)
MEMBERSHIP_DDL = (
    "run_id string, as_of_date date, segment_id string, segment_version int, customer_id bigint, "
    "matched_clauses array<string>, computed_at timestamp"
)
DEFINITIONS_DDL = "segment_id string, version int, name string, kind string, rule string"

RULES = {
    "attributes": {
        "all": [
            {"attr": "gender", "op": "eq", "value": "F"},
            {"attr": "age_band", "op": "in", "value": ["25-34", "35-44", "45-54"]},
        ]
    },
    "nested_not_and_tag": {
        "any": [
            {"not": {"attr": "preferred_channel", "op": "eq", "value": "app"}},
            {"tag": "renewal_focus", "op": "eq", "value": "true"},
        ]
    },
    "events_and_dates": {
        "all": [
            {"event": "message_open", "within_days": 90, "count": {"op": "gte", "value": 2}},
            {"attr": "next_renewal_date", "op": "lte", "value": {"days_from_as_of": 60}},
            {"attr": "total_premium", "op": "gt", "value": 2000},
        ]
    },
    "injection": {"attr": "province", "op": "eq", "value": "x' OR '1'='1"},
}


def _ddl(mart: str) -> str:
    return ", ".join(f"{c['name']} {c['type']}" for c in mart_columns(mart))


def _write(spark, table: str, ddl: str, rows: list[dict]) -> None:
    names = [part.strip().split(" ")[0] for part in ddl.split(", ")]
    df = spark.createDataFrame([tuple(r[n] for n in names) for r in rows], ddl)
    df.writeTo(table).using("iceberg").createOrReplace()


@pytest.fixture
def lake(spark, settings) -> tuple[PublishInputs, World]:
    from spark_jobs.session import prepare_local_dirs, register_catalog

    prepare_local_dirs(settings)
    register_catalog(spark, settings)
    catalog = settings.catalog_name
    for namespace in ("marts", "segments"):
        spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {catalog}.{namespace}")
    world = make_world("s", 120, seed=41)
    inputs = PublishInputs.for_catalog(catalog)
    _write(spark, inputs.profile, _ddl("customer_profile"), world.profiles)
    _write(spark, inputs.events, _ddl("customer_event_daily"), world.events)
    _write(spark, inputs.timeline, _ddl("fct_customer_events"), world.timeline())
    _write(spark, inputs.membership, MEMBERSHIP_DDL, world.membership)
    _write(spark, inputs.definitions, DEFINITIONS_DDL, world.definitions)
    spark.sql(f"DROP TABLE IF EXISTS {inputs.runs}")  # a test adds it when it needs it
    return inputs, world


def test_publish_from_the_lakehouse(spark, settings, lake, pg_schema: str, redis_prefix: str):
    inputs, world = lake
    # Embedded default: SQLite under MO_HOME; Redis here is the machine's server (private prefix).
    result = publish(settings, spark=spark, as_of=AS_OF, redis_url=REDIS_URL, redis_prefix=redis_prefix)

    events_in_window = spark.sql(
        f"SELECT count(*) FROM {inputs.events} WHERE event_date BETWEEN DATE'{AS_OF - dt.timedelta(days=179)}' "
        f"AND DATE'{AS_OF}'"
    ).first()[0]
    members = world.published_members()
    assert result.row_counts == {
        "customer_profile": 120,
        "customer_event_daily": events_in_window,
        "customer_events": len(world.recent_timeline()),
        "segments": 2,
        "segment_members": len(members),
        "segment_member_history": len(world.published_history()),
        "campaign_results": 0,  # no campaign results marts in this lake: published empty
        "campaign_uplift": 0,
    }
    assert result.redis_keys == 120

    store = open_store(settings)
    try:
        assert store.url.endswith(str(settings.home / "serving" / "serving.db"))
        with store.engine.connect() as conn:
            segments = {r.segment_id: r for r in conn.execute(text(f"SELECT * FROM {store.qualified('segments')}"))}
            published = {
                (r[0], r[1])
                for r in conn.execute(text(f"SELECT segment_id, customer_id FROM {store.qualified('segment_members')}"))
            }
        # The latest run on or before as_of (run1), not the later run2 nor the older run0.
        assert segments["s_loyal"].run_id == "run1" and segments["s_loyal"].name == "s loyal"
        assert segments["s_loyal"].size == sum(1 for m in members if m["segment_id"] == "s_loyal")
        assert segments["s_static"].run_id == "upload1" and segments["s_static"].size == 5
        assert published == {(m["segment_id"], m["customer_id"]) for m in members}
        # Membership history: Spark's stretches equal the plain-Python reference's.
        with store.engine.connect() as conn:
            history = {
                (r.segment_id, r.customer_id, str(r.valid_from), r.valid_to and str(r.valid_to), r.segment_version,
                 r.matched_clauses)
                for r in conn.execute(text(f"SELECT * FROM {store.qualified('segment_member_history')}"))
            }  # fmt: skip
        expected_history = {
            (h["segment_id"], h["customer_id"], str(h["valid_from"]), h["valid_to"] and str(h["valid_to"]),
             h["segment_version"], h["matched_clauses"])
            for h in world.published_history()
        }  # fmt: skip
        assert history == expected_history and any(h[3] is not None for h in history)
        assert str(segments["s_loyal"].history_from) == str(AS_OF - dt.timedelta(days=1))
        audit = store.refreshes()[0]
        snapshots = audit["source"]
        for table in (inputs.profile, inputs.events, inputs.membership, inputs.definitions):
            current = spark.sql(f"SELECT snapshot_id FROM {table}.refs WHERE name = 'main'").first()[0]
            assert f'"{table}": {current}' in snapshots
    finally:
        store.dispose()

    client = redis.Redis.from_url(REDIS_URL)
    try:
        profile = get_profile(client, 7, prefix=redis_prefix)
        assert profile["name_masked"] == "s-7"
        expected_segments = sorted(m["segment_id"] for m in members if m["customer_id"] == 7)
        assert profile["segments"] == ",".join(expected_segments)
    finally:
        client.close()

    # The same publish to a PostgreSQL schema, database only.
    pg = publish(settings, spark=spark, as_of=AS_OF, db_url=POSTGRES_URL, schema=pg_schema, use_redis=False)
    assert pg.row_counts == result.row_counts and pg.redis_keys is None

    # Previews on both published stores agree with the rule run by Spark on the lakehouse tables (one test
    # with the publish above: publishing is the expensive part).
    _check_previews(spark, inputs, [open_store(settings), SqlServingStore(POSTGRES_URL, schema=pg_schema)])


def _spark_preview(spark, inputs: PublishInputs, rule: dict) -> tuple[int, list[int], dict]:
    from mo.segments.compiler import compile_rule

    compiled = compile_rule(rule, dialect="spark", as_of=AS_OF, profile=inputs.profile, events=inputs.events)
    columns = ", ".join(f"p.{c}" for c in DISTRIBUTION_COLUMNS)
    rows = spark.sql(
        f"SELECT p.customer_id, {columns} FROM {inputs.profile} p WHERE {compiled.where_sql}", args=compiled.params
    ).collect()
    distributions: dict[str, dict] = {c: {} for c in DISTRIBUTION_COLUMNS}
    for row in rows:
        for c in DISTRIBUTION_COLUMNS:
            distributions[c][row[c]] = distributions[c].get(row[c], 0) + 1
    ids = sorted(r.customer_id for r in rows)
    return len(rows), ids[:20], distributions


def _check_previews(spark, inputs: PublishInputs, stores: list[SqlServingStore]) -> None:
    try:
        for name, rule in RULES.items():
            count, sample, distributions = _spark_preview(spark, inputs, rule)
            if name != "injection":
                assert 0 < count < 120, f"rule {name} should select some but not all customers"
            for store in stores:
                preview = preview_segment(rule, store=store)
                assert preview.as_of == AS_OF
                assert preview.count == count, (name, store.dialect)
                assert preview.sample_ids == sample, (name, store.dialect)
                expected = {c: distributions[c] for c in DISTRIBUTION_COLUMNS}
                assert preview.distributions == expected, (name, store.dialect)
                assert preview.clauses
        # The injection attempt is a plain value that matches nobody.
        assert preview_segment(RULES["injection"], store=stores[0]).count == 0
        everyone = {"attr": "customer_id", "op": "gte", "value": 0}
        assert preview_segment(everyone, store=stores[1], sample_size=3).sample_ids == [1, 2, 3]
    finally:
        for store in stores:
            store.dispose()


def test_a_run_that_matched_nobody_ends_every_stretch(spark, settings, lake, tmp_path):
    """segments.runs lists runs without members: the day's later, empty run of s_loyal empties that day."""
    inputs, world = lake
    empty = {
        "run_id": "run0-empty",
        "as_of_date": AS_OF - dt.timedelta(days=1),
        "segment_id": "s_loyal",
        "segment_version": 2,
        "kind": "dynamic",
        "member_count": 0,
        "computed_at": dt.datetime.combine(AS_OF - dt.timedelta(days=1), dt.time(5), tzinfo=dt.UTC),
    }
    _write(spark, inputs.runs, RUNS_DDL, [empty])
    result = publish(settings, spark=spark, as_of=AS_OF, db_url=f"sqlite:///{tmp_path / 's.db'}", use_redis=False)
    expected = world.published_history(runs_table=[empty])
    assert result.row_counts["segment_member_history"] == len(expected)
    loyal = [h for h in expected if h["segment_id"] == "s_loyal"]
    assert loyal and all(h["valid_from"] == AS_OF and h["valid_to"] is None for h in loyal)
    assert len(loyal) < len(world.published_history()), "without the empty run, run0's members would stretch back"


def test_a_latest_run_that_matched_nobody_publishes_an_empty_segment(spark, settings, lake, tmp_path):
    """The segment's newest run found no one: it is published with size 0 and no members, not with the
    members of the run before it."""
    import sqlite3

    inputs, world = lake
    empty = {
        "run_id": "run-latest-empty",
        "as_of_date": AS_OF,
        "segment_id": "s_loyal",
        "segment_version": 2,
        "kind": "dynamic",
        "member_count": 0,
        "computed_at": dt.datetime.combine(AS_OF, dt.time(23, 59), tzinfo=dt.UTC),
    }
    assert any(m["segment_id"] == "s_loyal" for m in world.published_members()), "the run before has members"
    _write(spark, inputs.runs, RUNS_DDL, [empty])
    db = tmp_path / "s.db"
    publish(settings, spark=spark, as_of=AS_OF, db_url=f"sqlite:///{db}", use_redis=False)
    with sqlite3.connect(db) as conn:
        size, run_id = conn.execute("SELECT size, run_id FROM segments WHERE segment_id = 's_loyal'").fetchone()
        members = conn.execute("SELECT count(*) FROM segment_members WHERE segment_id = 's_loyal'").fetchone()[0]
        others = conn.execute("SELECT count(*) FROM segment_members WHERE segment_id <> 's_loyal'").fetchone()[0]
    assert (size, run_id, members) == (0, "run-latest-empty", 0)
    assert others == sum(1 for m in world.published_members() if m["segment_id"] != "s_loyal")
