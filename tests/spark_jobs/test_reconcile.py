"""`mo reconcile`: silver compared with the source by content; differences found exactly, repaired, gone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    insert,
    text,
)
from sqlalchemy.dialects import mysql
from sync_world import SourceWorld, count_gate, expected_silver, frame_rows

from mo.config import get_settings
from mo.contracts import ColumnContract, TableContract
from mo.oltp.db import make_engine, migrate
from spark_jobs.extract import jdbc_source, plan_window, read_window
from spark_jobs.lake import restricted_table, silver_table
from spark_jobs.reconcile import (
    Range,
    _silver_digests,
    _source_digests,
    differing_ids,
    hashed_rows_sql,
    reconcile,
    reconcile_history,
    source_engine,
    source_row_hash,
    spark_row_hash,
    transform_row_hashes,
)
from spark_jobs.sync import layer_counts, run_sync

# --- the id ranges (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(("lo", "hi", "parts"), [(1, 101, 8), (5, 9, 8), (0, 1, 2), (10, 1_000_003, 64)])
def test_range_parts_match_the_sql_part_index(lo, hi, parts):
    """Range.part(k) holds exactly the ids whose index (id - lo) * parts div width is k, as both SQL and
    Spark compute it, and the parts tile the range."""
    r = Range(lo, hi)
    pieces = r.split(parts)
    assert pieces[0].lo == lo and pieces[-1].hi == hi
    assert all(a.hi == b.lo for a, b in zip(pieces, pieces[1:], strict=False))
    for i in list(range(lo, min(hi, lo + 500))) + list(range(max(lo, hi - 500), hi)):
        k = (i - lo) * parts // r.width
        part = r.part(parts, k)
        assert part.lo <= i < part.hi


# --- the canonical encoding: SQL and Spark agree -------------------------------------------------------

TRICKY = TableContract(
    table="mo_tricky",
    description="values whose text form differs between engines",
    primary_key="id",
    watermark="updated_at",
    soft_delete="deleted_at",
    partitioned_read=False,
    schema_evolution="strict",
    columns=(
        ColumnContract("id", "bigint", nullable=False),
        ColumnContract("label", "string", pii="name"),  # hashed in the PII part
        ColumnContract("amount", "decimal(18,2)"),
        ColumnContract("ratio", "decimal(5,4)"),
        ColumnContract("flag", "boolean"),
        ColumnContract("quantity", "int"),
        ColumnContract("born_on", "date"),
        ColumnContract("seen_at", "timestamp"),
        ColumnContract("updated_at", "timestamp", nullable=False),
        ColumnContract("deleted_at", "timestamp"),
    ),
)
T = datetime(2026, 3, 2, 8, 0, 0)
TRICKY_ROWS = [
    {"label": None, "amount": None, "ratio": None, "flag": None, "quantity": None, "born_on": None, "seen_at": None},
    {"label": "", "amount": Decimal("0"), "ratio": Decimal("0"), "flag": False, "quantity": 0},
    {"label": "N", "amount": Decimal("-1.05"), "ratio": Decimal("0.0001"), "flag": True, "quantity": -7},
    {"label": "1:N", "amount": Decimal("12345678.90"), "ratio": Decimal("1.5"), "quantity": 2147483647},
    {"label": "张三丰 😀 é", "amount": Decimal("0.10"), "seen_at": T + timedelta(microseconds=1)},
    {"label": " trailing ", "amount": Decimal("99999.99"), "seen_at": T + timedelta(microseconds=500_000)},
    {"label": "a'b\\c\n", "seen_at": T, "born_on": date(1970, 1, 1)},
    {"label": "NN", "born_on": date(2026, 12, 31), "seen_at": datetime(1999, 12, 31, 23, 59, 59, 999_999)},
]


def _tricky_table(metadata: MetaData) -> Table:
    ts = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    return Table(
        TRICKY.table,
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("label", String(64)),
        Column("amount", Numeric(18, 2)),
        Column("ratio", Numeric(5, 4)),
        Column("flag", Boolean),
        Column("quantity", Integer),
        Column("born_on", Date),
        Column("seen_at", ts),
        Column("updated_at", ts, nullable=False),
        Column("deleted_at", ts),
        mysql_charset="utf8mb4",
    )


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'tricky.db'}"


@pytest.mark.spark
@pytest.mark.parametrize(
    "url_fixture",
    [
        "sqlite_url",
        pytest.param("mariadb_url", marks=pytest.mark.mariadb),
        pytest.param("postgres_url", marks=pytest.mark.postgres),
    ],
)
def test_sql_and_spark_encode_rows_alike(spark, settings, request, url_fixture):
    """Each row's hash computed in the source's SQL equals the hash Spark computes from the same row read
    the way the sync reads it (JDBC, contract types): NULL vs empty string, decimals, fractions of seconds,
    unicode."""
    url = request.getfixturevalue(url_fixture)
    engine = make_engine(url)
    metadata = MetaData()
    table = _tricky_table(metadata)
    metadata.create_all(engine)
    blank = dict.fromkeys(TRICKY.column_names)
    rows = [{**blank, "id": i + 1, "updated_at": T, **row} for i, row in enumerate(TRICKY_ROWS)]
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
    dialect = jdbc_source(url).dialect
    hashing = source_engine(url)
    with hashing.connect() as conn:
        hashed = conn.execute(text(hashed_rows_sql(TRICKY, dialect, "1 = 1")))
        in_sql = {int(i): source_row_hash(h, hp) for i, h, hp in hashed}
    frame = read_window(spark, settings, jdbc_source(url), TRICKY, plan_window(engine, TRICKY, None))
    in_spark = {r["id"]: spark_row_hash(r) for r in transform_row_hashes(frame, TRICKY).collect()}
    # and per range, the sums modulo 2^64 agree too (PostgreSQL's hashes are signed, MariaDB's unsigned)
    ranges = [Range(1, len(rows) + 1)]
    in_sql_ranges = _source_digests(hashing, TRICKY, dialect, T, ranges, 2)
    in_spark_ranges = _silver_digests(transform_row_hashes(frame, TRICKY), ranges, 2)
    hashing.dispose()
    engine.dispose()
    assert len(in_sql) == len(TRICKY_ROWS)
    assert differing_ids(in_sql, in_spark) == []
    assert any(h >= 2**63 for h in in_sql.values())  # a hash that is negative as a signed 64-bit integer
    assert in_sql_ranges == in_spark_ranges and sum(n for n, _ in in_sql_ranges.values()) == len(TRICKY_ROWS)
    # and the encoding tells the tricky values apart: NULL, '', 'N', 'NN' give different rows' hashes
    assert len(set(in_sql.values())) == len(TRICKY_ROWS)


# --- find and repair ---------------------------------------------------------------------------------


# the tables the world changes behind the watermark (synced alone: the count gate needs no parents)
TABLES = ["customers", "policies", "consents"]


def _assert_silver_is_source(spark, settings, world: SourceWorld, key: bytes) -> None:
    for name in TABLES:
        contract = world.contracts[name]
        expected = expected_silver(contract, world.live_rows(name), key)
        assert frame_rows(spark.table(silver_table(settings, name))) == expected, name
        if contract.pii_columns:
            clear = frame_rows(spark.table(restricted_table(settings, name)))
            live = world.live_rows(name)
            assert [r["id"] for r in clear] == [r["id"] for r in live], name
            for column in contract.pii_columns:
                assert [r[column.name] for r in clear] == [r[column.name] for r in live], (name, column.name)


def _behind_the_watermark(settings, spark, url: str) -> None:
    """A synced world, then changes the watermark cannot see; reconcile finds exactly them and repairs them."""
    engine = make_engine(url)
    migrate(engine)
    world = SourceWorld(engine)
    world.seed(customers=12)
    key = settings.require_pii_key()
    run_sync(spark, settings, TABLES, gate=count_gate)
    synced_at = world.clock
    world.tick(60 * 24 * 3)  # three days on: the look-back no longer reaches the seeded rows

    with engine.begin() as conn:
        # changed without a new updated_at: a plain column, a PII column, a decimal
        conn.execute(text("UPDATE customers SET city = 'Lhasa' WHERE id = 3"))
        conn.execute(text("UPDATE customers SET phone = '13900000000' WHERE id = 7"))
        conn.execute(text("UPDATE policies SET premium = premium + 0.01 WHERE id = 5"))
        # deleted outside the soft delete
        conn.execute(text("DELETE FROM consents WHERE id = 2"))
    # inserted with an updated_at older than the look-back (the count stays equal: one gone, one new)
    late = world.insert("consents", 1, at=synced_at - timedelta(days=2))[0]
    # an ordinary change after the sync: the next sync's, not a difference
    world.update("customers", 9)

    # an incremental sync does not see them, and the counts agree: nothing tells them apart but content
    run_sync(spark, settings, TABLES, gate=count_gate)
    layer = layer_counts(spark, settings)
    with engine.connect() as conn:
        for name in TABLES:
            contract = world.contracts[name]
            live = conn.execute(text(f"SELECT count(*) FROM {name} WHERE {contract.soft_delete} IS NULL")).scalar()
            assert layer[name]["silver"] == live, name
    world.update("customers", 10)  # changed after this sync: pending, not different

    found = reconcile(spark, settings, TABLES, gate=count_gate)
    differing = {name: t["differing_ids"] for name, t in found["tables"].items() if t["differing_ids"]}
    assert differing == {"customers": [3, 7], "consents": [2, late], "policies": [5]}
    assert found["tables"]["customers"]["rows_pending"] == 1
    assert found["tables"]["customers"]["status"] == "differs"
    assert found["repair"] is None
    history = reconcile_history(spark, settings)
    assert history["customers"]["rows_differing"] == 2 and history["customers"]["status"] == "differs"
    assert history["policies"]["rows_differing"] == 1

    repaired = reconcile(spark, settings, TABLES, gate=count_gate, repair=True)
    assert {n: t["ids_repaired"] for n, t in repaired["tables"].items() if t["ids_repaired"]} == {
        "customers": 2,
        "consents": 2,
        "policies": 1,
    }
    run_sync(spark, settings, TABLES, gate=count_gate)  # the pending change, as the next hourly sync takes it
    _assert_silver_is_source(spark, settings, world, key)
    again = reconcile(spark, settings, TABLES, gate=count_gate)
    assert {n: t["rows_differing"] + t["rows_pending"] for n, t in again["tables"].items()} == dict.fromkeys(TABLES, 0)
    assert reconcile_history(spark, settings)["customers"]["status"] == "in_sync"
    engine.dispose()


@pytest.mark.spark
def test_reconcile_finds_and_repairs_sqlite(spark, settings, monkeypatch):
    monkeypatch.setenv("MO_RECONCILE_PARTS", "4")  # small ranges: the world is small, bisection still runs
    monkeypatch.setenv("MO_RECONCILE_LEAF_ROWS", "2")
    settings = get_settings()
    _behind_the_watermark(settings, spark, settings.resolved_source_url)


@pytest.mark.spark
@pytest.mark.mariadb
def test_reconcile_finds_and_repairs_mariadb(spark, settings, mariadb_url, monkeypatch):
    monkeypatch.setenv("MO_SOURCE_URL", mariadb_url)
    monkeypatch.setenv("MO_RECONCILE_PARTS", "3")
    monkeypatch.setenv("MO_RECONCILE_LEAF_ROWS", "4")
    settings = get_settings()
    _behind_the_watermark(settings, spark, mariadb_url)


def _silver_damaged_by_hand(settings, spark) -> None:
    """Silver changed by hand (as a rollback or a stray UPDATE would) while bronze holds the source's
    version: the repair re-sends the listed ids whatever bronze holds (``force`` in the full-refresh
    comparison), so silver comes back; a comparison with bronze alone would find nothing to write."""
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    world = SourceWorld(engine)
    world.seed(customers=6)
    run_sync(spark, settings, ["customers"], gate=count_gate)
    spark.sql(f"UPDATE {silver_table(settings, 'customers')} SET city = 'Nowhere' WHERE id = 4")
    damaged = reconcile(spark, settings, ["customers"], gate=count_gate, repair=True)
    assert damaged["tables"]["customers"]["differing_ids"] == [4]
    live = world.live_rows("customers")
    expected = expected_silver(world.contracts["customers"], live, settings.require_pii_key())
    assert frame_rows(spark.table(silver_table(settings, "customers"))) == expected
    engine.dispose()


@pytest.mark.spark
def test_repair_brings_back_silver_damaged_by_hand(spark, settings):
    _silver_damaged_by_hand(settings, spark)
