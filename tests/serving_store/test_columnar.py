"""The columnar preview: the DuckDB dialect means what the rule says, the columnar preview answers exactly
like the SQL store's (SQLite and PostgreSQL) on the same refresh, and it switches refreshes with the SQL
store's swap, never showing a refresh whose columnar copy is half written."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from mo.segments.compiler import compile_rule
from mo.serving_store import preview_segment, publish_batches
from mo.serving_store.columnar import (
    ColumnarCopyMissing,
    ColumnarPreviewStore,
    filter_sql,
    refresh_path,
    write_refresh_batches,
)
from mo.serving_store.contract import load_serving_contract
from mo.serving_store.store import ServingStoreError, SqlServingStore
from tests.segments.profile_data import AS_OF, make_world
from tests.segments.reference import expected_members
from tests.segments.test_compiler import INJECTION_RULES, OPERATOR_RULES, TAGS, VARIED_RULES
from tests.serving_store.world import to_arrow

duckdb = pytest.importorskip("duckdb")

# Previews compared between the SQL store and the columnar copy: every kind of leaf, nesting, NOT over
# missing values, event windows with zero counts, custom tags, and a value that tries an injection.
PREVIEW_RULES = {
    name: VARIED_RULES[name]
    for name in (
        "renewal_push",
        "not_prefers_app_includes_unknown",
        "claimants_or_open_claim",
        "dormant_app",
        "high_value_no_health",
        "double_negation",
        "nested_any_all_not",
        "inactive_or_never",
        "no_message_but_app",
        "not_tag_in",
        "renewal_window_dates",
    )
} | {
    "contains_and_ranges": {
        "all": [
            {"attr": "lines_held", "op": "contains", "value": "health"},
            {"attr": "total_premium", "op": "between", "value": [1000, 15000]},
            {"attr": "last_active_at", "op": "gte", "value": "2026-03-01T06:00:00"},
        ]
    },
    "injection": INJECTION_RULES["or_true_string"],
}


def _batches(profiles: list[dict], events: list[dict]) -> dict:
    contract = load_serving_contract()
    return {
        "customer_profile": [
            to_arrow(contract.tables["customer_profile"], profiles[: len(profiles) // 2]),
            to_arrow(contract.tables["customer_profile"], profiles[len(profiles) // 2 :]),
        ],
        "customer_event_daily": [to_arrow(contract.tables["customer_event_daily"], events)],
    }


@pytest.fixture(scope="module")
def world():
    return make_world(300)  # the segment compiler tests' world: every operator splits it


@pytest.fixture(scope="module")
def duck(world, tmp_path_factory):
    path = write_refresh_batches(tmp_path_factory.mktemp("columnar"), "20260331000000000000abcdef", _batches(*world))
    conn = duckdb.connect(str(path), read_only=True)
    yield conn
    conn.close()


def _duck_members(conn, rule: dict, *, filtered: bool) -> set[int]:
    compiled = compile_rule(rule, dialect="duckdb", as_of=AS_OF, custom_tags=TAGS)
    where = filter_sql(compiled) if filtered else compiled.where_sql
    rows = conn.execute(f"SELECT p.customer_id FROM customer_profile p WHERE {where}", compiled.params).fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize("name", sorted(OPERATOR_RULES) + sorted(VARIED_RULES) + sorted(INJECTION_RULES))
@pytest.mark.parametrize("filtered", [False, True], ids=["as_compiled", "filter_sql"])
def test_duckdb_dialect_means_what_the_rule_says(name, filtered, world, duck):
    rule = {**OPERATOR_RULES, **VARIED_RULES, **INJECTION_RULES}[name]
    expected = expected_members(rule, *world, AS_OF)
    assert _duck_members(duck, rule, filtered=filtered) == expected
    if name in OPERATOR_RULES:
        assert 0 < len(expected) < len(world[0]), f"{name}: test data must split the customers"


@pytest.mark.parametrize("name", sorted(OPERATOR_RULES))
def test_duckdb_dialect_binds_every_value(name):
    compiled = compile_rule(OPERATOR_RULES[name], dialect="duckdb", as_of=AS_OF, custom_tags=TAGS)
    for marker in compiled.params:
        assert f"${marker}" in compiled.where_sql
    assert ":p" not in compiled.where_sql
    for literal in [v for v in compiled.params.values() if isinstance(v, str) and len(v) > 1]:
        assert literal not in compiled.where_sql.replace(f'"{literal}"', "")


def test_filter_sql_unwraps_only_leaves_outside_an_odd_number_of_nots():
    rule = {
        "all": [
            {"attr": "gender", "op": "eq", "value": "F"},
            {"not": {"attr": "preferred_channel", "op": "eq", "value": "app"}},
            {"not": {"not": {"attr": "has_auto", "op": "eq", "value": True}}},
        ]
    }
    compiled = compile_rule(rule, dialect="postgresql", as_of=AS_OF)
    where = filter_sql(compiled)
    assert where.count("COALESCE(") == 1 and 'COALESCE((p."preferred_channel" = :p1), FALSE)' in where
    assert '((p."gender" = :p0))' in where and '(NOT (NOT ((p."has_auto" = :p2))))' in where
    assert compiled.where_sql.count("COALESCE(") == 3  # the compiled rule itself is unchanged


def _publish(store: SqlServingStore, world, directory: Path | None, **kwargs):
    return publish_batches(store, as_of=AS_OF, tables=_batches(*world), columnar_dir=directory, **kwargs)


def test_columnar_preview_equals_the_sql_preview(store: SqlServingStore, world, tmp_path: Path):
    result = _publish(store, world, tmp_path / "columnar")
    assert refresh_path(tmp_path / "columnar", result.refresh_id).exists()
    columnar = ColumnarPreviewStore(store, tmp_path / "columnar", fallback=False)
    try:
        counts = set()
        for name, rule in PREVIEW_RULES.items():
            sql = preview_segment(rule, store=store, sample_size=15)
            fast = preview_segment(rule, store=columnar, sample_size=15)
            assert fast == sql, (name, store.dialect)
            assert fast.refresh_id == result.refresh_id and fast.as_of == AS_OF
            assert columnar.count(rule) == sql.count
            assert preview_segment(rule, store=columnar, sample_size=0).sample_ids == []
            counts.add(sql.count)
        assert len(counts) > 5, "the rules must select different customers"
        assert preview_segment(PREVIEW_RULES["injection"], store=columnar).count == 0
        everyone = {"attr": "customer_id", "op": "gte", "value": 0}
        full = preview_segment(everyone, store=columnar)
        assert full.count == 300 and None in full.distributions["preferred_channel"]
        assert full.sample_ids == list(range(1000, 1020))
    finally:
        columnar.close()


def test_the_switch_follows_the_sql_swap_and_old_copies_are_removed(
    sqlite_store: SqlServingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    directory = tmp_path / "columnar"
    worlds = [make_world(n, seed=n) for n in (40, 50, 60, 70)]
    columnar = ColumnarPreviewStore(sqlite_store, directory, fallback=False)
    everyone = {"attr": "customer_id", "op": "gte", "value": 0}
    try:
        first = _publish(sqlite_store, worlds[0], directory)
        assert columnar.count(everyone) == 40

        # A publish that fails at the swap: its columnar copy is written, but readers stay on the first refresh.
        def broken_swap(*args, **kwargs):
            raise RuntimeError("swap failed")

        with monkeypatch.context() as patch:
            patch.setattr(sqlite_store, "swap", broken_swap)
            with pytest.raises(RuntimeError):
                _publish(sqlite_store, worlds[1], directory)
        (failed,) = [r["refresh_id"] for r in sqlite_store.refreshes() if r["status"] == "failed"]
        assert refresh_path(directory, failed).exists()
        assert columnar.count(everyone) == 40
        assert preview_segment(everyone, store=columnar).refresh_id == first.refresh_id

        second = _publish(sqlite_store, worlds[2], directory)
        assert columnar.count(everyone) == 60
        assert preview_segment(everyone, store=columnar).refresh_id == second.refresh_id
        # The failed refresh's copy is gone, the previous one is kept for readers that resolved it just before.
        assert sorted(p.name for p in directory.iterdir()) == sorted(
            refresh_path(directory, r).name for r in (first.refresh_id, second.refresh_id)
        )

        third = _publish(sqlite_store, worlds[3], directory)
        assert columnar.count(everyone) == 70
        assert sorted(p.name for p in directory.iterdir()) == sorted(
            refresh_path(directory, r).name for r in (second.refresh_id, third.refresh_id)
        )
        assert set(columnar._open) == {third.refresh_id}  # connections to replaced refreshes are closed
    finally:
        columnar.close()


def test_readers_always_see_one_whole_refresh_during_publishes(sqlite_store: SqlServingStore, tmp_path: Path):
    directory = tmp_path / "columnar"
    small, large = make_world(80, seed=1), make_world(120, seed=2)
    rule = VARIED_RULES["claimants_or_open_claim"]
    expected = {
        len(small[0]): len(expected_members(rule, *small, AS_OF)),
        len(large[0]): len(expected_members(rule, *large, AS_OF)),
    }
    everyone = {"any": [rule, {"not": rule}]}
    _publish(sqlite_store, small, directory)
    columnar = ColumnarPreviewStore(sqlite_store, directory, fallback=False)
    problems: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                total = preview_segment(everyone, store=columnar, sample_size=0)
                matched = preview_segment(rule, store=columnar, sample_size=0)
                seen.add(total.refresh_id or "")
                # Within one preview: count and distributions describe the same refresh.
                if sum(total.distributions["gender"].values()) != total.count:
                    problems.append(f"distributions of {total.refresh_id} disagree with its count")
                if total.refresh_id == matched.refresh_id and expected[total.count] != matched.count:
                    problems.append(f"refresh {total.refresh_id}: {matched.count} matched, not {expected[total.count]}")
            except Exception as exc:  # noqa: BLE001 - any error is a finding
                problems.append(repr(exc))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for world in (large, small, large, small):
            _publish(sqlite_store, world, directory)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
        columnar.close()
    assert not problems, problems[:5]
    assert len(seen) >= 2


def test_a_refresh_without_a_copy_falls_back_to_sql_or_raises(sqlite_store: SqlServingStore, world, tmp_path: Path):
    _publish(sqlite_store, world, None)
    rule = PREVIEW_RULES["renewal_push"]
    strict = ColumnarPreviewStore(sqlite_store, tmp_path / "columnar", fallback=False)
    with pytest.raises(ColumnarCopyMissing, match="has no columnar copy"):
        preview_segment(rule, store=strict)
    lenient = ColumnarPreviewStore(sqlite_store, tmp_path / "columnar")
    assert preview_segment(rule, store=lenient) == preview_segment(rule, store=sqlite_store)


def test_a_failed_write_leaves_no_file(tmp_path: Path, world):
    batches = _batches(*world)
    broken = [b.drop_columns(["province"]) for b in batches["customer_profile"]]
    with pytest.raises(ServingStoreError, match="customer_profile: batch lacks contract column"):
        write_refresh_batches(tmp_path, "20260331000000000000abcdef", {**batches, "customer_profile": broken})
    assert list(tmp_path.iterdir()) == []


def test_custom_tags_keep_their_json_text(tmp_path: Path, world):
    path = write_refresh_batches(tmp_path, "20260331000000000000abcdef", _batches(*world))
    conn = duckdb.connect(str(path), read_only=True)
    try:
        stored = dict(conn.execute("SELECT customer_id, custom_tags FROM customer_profile").fetchall())
    finally:
        conn.close()
    assert {cid: json.loads(text) for cid, text in stored.items()} == {
        p["customer_id"]: p["custom_tags"] for p in world[0]
    }
