"""Previews and counts are bounded: every statement runs under a timeout that the database itself enforces
(PostgreSQL, SQLite, DuckDB: genuinely slow statements, tiny timeouts), and a preview never counts an event
window that starts before the days the refresh holds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text

from mo.segments.rules import MAX_RULE_EVENT_CONDITIONS, MAX_RULE_LEAVES, RuleError
from mo.serving_store import preview_segment
from mo.serving_store.columnar import ColumnarPreviewStore
from mo.serving_store.preview import PreviewTimeout, SqlPreviewBackend, statement_timeout
from mo.serving_store.store import SqlServingStore
from tests.segments.profile_data import AS_OF, make_world
from tests.serving_store.test_columnar import _publish

# Counts to a billion one row at a time: minutes in PostgreSQL and SQLite.
SLOW_SQL = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000000) SELECT count(*) FROM c"
DUCKDB_SLOW_SQL = "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b"


def test_the_statement_timeout_stops_a_slow_statement_in_the_database(store: SqlServingStore):
    with store.read_transaction() as conn:
        default = conn.execute(text("SHOW statement_timeout")).scalar() if store.dialect == "postgresql" else None
    with pytest.raises(PreviewTimeout, match=r"took longer than 0.2 s and was stopped \(statement timeout\)"):
        with store.read_transaction() as conn, statement_timeout(conn, 0.2):
            conn.execute(text(SLOW_SQL)).scalar()
    with store.read_transaction() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1  # the connection is usable again
        if store.dialect == "postgresql":
            # The timeout was local to the preview's transaction, and the server stopped the statement itself.
            assert conn.execute(text("SHOW statement_timeout")).scalar() == default
            running = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = :q"), {"q": SLOW_SQL}
            ).scalar()
            assert running == 0


def test_the_columnar_timeout_interrupts_a_slow_duckdb_statement(sqlite_store: SqlServingStore, tmp_path: Path):
    import duckdb

    columnar = ColumnarPreviewStore(sqlite_store, tmp_path, timeout=0.2)
    conn = duckdb.connect()
    try:
        with pytest.raises(PreviewTimeout):
            columnar._fetch(conn.cursor(), DUCKDB_SLOW_SQL, {})
        assert columnar._fetch(conn.cursor(), "SELECT 42", {}) == [(42,)]
    finally:
        conn.close()


@pytest.mark.parametrize("timeout", [0, -1])
def test_a_timeout_must_be_positive(sqlite_store: SqlServingStore, timeout):
    with pytest.raises(ValueError, match="positive"):
        SqlPreviewBackend(sqlite_store, timeout=timeout)
    with pytest.raises(ValueError, match="positive"):
        ColumnarPreviewStore(sqlite_store, Path("."), timeout=timeout)


def test_previews_are_bounded_in_time_and_to_the_days_the_refresh_holds(store: SqlServingStore, tmp_path: Path):
    world = make_world(150, seed=11)
    _publish(store, world, tmp_path / "columnar")
    columnar = ColumnarPreviewStore(store, tmp_path / "columnar", fallback=False)
    try:
        # The heaviest rule validation lets through (as many conditions and event conditions as it allows, all
        # true, so no engine can stop evaluating early) is stopped by a tiny timeout in each engine.
        heaviest = {
            "all": [
                {"attr": "age", "op": "gte", "value": -i} for i in range(MAX_RULE_LEAVES - MAX_RULE_EVENT_CONDITIONS)
            ]
            + [
                {"event": "message_open", "within_days": 1 + 9 * i, "count": {"op": "gte", "value": 0}}
                for i in range(MAX_RULE_EVENT_CONDITIONS)
            ]
        }
        assert preview_segment(heaviest, store=columnar, sample_size=0).count == len(world[0])
        tiny = 0.001
        for backend in (
            SqlPreviewBackend(store, timeout=tiny),
            ColumnarPreviewStore(store, tmp_path / "columnar", fallback=False, timeout=tiny),
        ):
            with pytest.raises(PreviewTimeout):
                preview_segment(heaviest, store=backend)
        # The store holds event_retention_days (180) days up to the refresh's as-of date: a 180-day window on
        # that date is fine, the same window ending a day earlier would start before the first day held.
        rule = {"any": [{"attr": "age", "op": "lt", "value": 30}, {"event": "claim_filed", "within_days": 180}]}
        earlier = AS_OF - dt.timedelta(days=1)
        for backend in (store, columnar):
            preview_segment(rule, store=backend)
            preview_segment({"event": "claim_filed", "within_days": 179}, store=backend, as_of=earlier)
            with pytest.raises(RuleError) as caught:
                preview_segment(rule, store=backend, as_of=earlier)
            ((path, reason),) = [(p.path, p.reason) for p in caught.value.problems]
            assert path == "/any/1/within_days"
            assert reason.startswith("the 180-day window ending 2026-03-30 starts on 2025-10-02, before 2025-10-03, ")
            assert reason.endswith("(event_retention_days 180 up to its as-of date 2026-03-31)")
        with pytest.raises(RuleError, match="/any/1/within_days: the 180-day window"):
            columnar.count(rule, as_of=earlier)
    finally:
        columnar.close()
