"""`mo status` health: which states of the platform are problems, and how the report shows them."""

from __future__ import annotations

from datetime import UTC, datetime

from mo.status import format_status, health_problems

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMITS = {"max_sync_age_hours": 3, "max_waiting": 1000}


def _table(
    synced: str | None,
    status: str = "published",
    detail: str | None = None,
    run_id: str = "r2",
    lease: str | None = None,
) -> dict:
    run = (
        None
        if synced is None
        else {
            "run_id": run_id,
            "status": status,
            "at": "2026-03-01T11:00:00",
            "detail": detail,
            "lease_expires_at": lease,
        }
    )
    return {"source": 5, "bronze": 5, "silver": 5, "in_sync": True, "last_sync_at": synced, "last_run": run}


def _report(tables: dict, **parts) -> dict:
    broker = {"bootstrap": "b:9092", "reachable": True, "ingest_lag": {"waiting": 0}}
    serving = {"store": "sqlite:///s.db", "reachable": True, "refresh": None}
    return {"tables": tables, "broker": broker, "serving": serving} | parts


def test_a_fresh_platform_with_everything_answering_is_healthy():
    report = _report({"customers": _table("2026-03-01T11:30:00"), "policies": _table("2026-03-01T10:00:00")})
    assert health_problems(report, now=NOW, **LIMITS) == []
    report["problems"] = []
    assert format_status({"source": "s", "catalog": {"name": "c", "warehouse": "w"}, **report}).endswith("health   ok")


def test_stale_and_never_synced_tables_are_named():
    report = _report(
        {
            "customers": _table("2026-03-01T08:30:00"),  # 3.5 h old
            "claims": _table("2026-03-01T08:30:00"),
            "policies": _table("2026-03-01T09:30:00"),  # 2.5 h: within the limit
            "complaints": _table(None),
        }
    )
    assert health_problems(report, now=NOW, **LIMITS) == [
        "never synced to silver: complaints",
        "silver is stale: last sync 2026-03-01T08:30:00 UTC, 3.5 h ago (limit 3 h): customers, claims",
    ]


def test_a_run_that_did_not_publish_is_one_problem_naming_its_tables():
    failed = {"status": "gate_failed", "detail": "silver.policies: expect_column_values_to_be_in_set(status)"}
    report = _report(
        {"policies": _table("2026-03-01T11:00:00", **failed), "claims": _table("2026-03-01T11:00:00", **failed)}
    )
    assert health_problems(report, now=NOW, **LIMITS) == [
        "sync run r2 gate_failed at 2026-03-01T11:00:00 UTC (policies, claims): "
        "silver.policies: expect_column_values_to_be_in_set(status)"
    ]
    # a run between its steps is not a problem while its lease is valid; once it expired the run died
    report = _report({"policies": _table("2026-03-01T11:00:00", status="merged", lease="2026-03-01T12:30:00")})
    assert health_problems(report, now=NOW, **LIMITS) == []
    report = _report({"policies": _table("2026-03-01T11:00:00", status="started", lease="2026-03-01T11:50:00")})
    assert health_problems(report, now=NOW, **LIMITS) == [
        "sync run r2 died after step started (policies): no end record and its lease expired at 2026-03-01T11:50:00 UTC"
    ]


def test_each_table_is_judged_on_its_own_latest_attempt():
    drift = "schema drift: source column customers.vip_level (VARCHAR(8)) is not in the contract"
    report = _report(
        {
            "customers": _table("2026-03-01T11:00:00", status="failed", detail=drift),
            # held back by another table's failure: that table's line names the cause
            "policies": _table("2026-03-01T11:00:00", status="blocked", detail="not extracted: refers to customers"),
            "agents": _table("2026-03-01T11:00:00", run_id="r3"),  # its later attempt published
            "claims": _table("2026-03-01T11:00:00", status="abandoned", detail="crashed: no end record", run_id="r1"),
        }
    )
    assert health_problems(report, now=NOW, **LIMITS) == [
        f"sync run r2 failed at 2026-03-01T11:00:00 UTC (customers): {drift}",
        "sync run r1 abandoned at 2026-03-01T11:00:00 UTC (claims): crashed: no end record",
    ]


def test_an_unreachable_source_is_a_problem_in_a_full_report():
    report = _report(
        {"customers": _table("2026-03-01T11:30:00")},
        source="postgresql://127.0.0.1:1/none",
        source_check={"reachable": False, "error": "source database unreachable at postgresql://..."},
    )
    report["problems"] = health_problems(report, now=NOW, **LIMITS)
    assert report["problems"] == [
        "source postgresql://127.0.0.1:1/none unreachable: source database unreachable at postgresql://..."
    ]
    text = format_status({"catalog": {"name": "c", "warehouse": "w"}, **report})
    assert text.startswith("source   postgresql://127.0.0.1:1/none unreachable: ")
    assert "customers" in text and text.endswith("  - " + report["problems"][0])


def test_broker_down_lagging_ingest_and_serving_store_down():
    tables = {"customers": _table("2026-03-01T11:30:00")}
    down = _report(tables, broker={"bootstrap": "b:9092", "reachable": False, "error": "connection refused"})
    assert health_problems(down, now=NOW, **LIMITS) == ["broker b:9092 unreachable: connection refused"]

    lagging = _report(tables, broker={"bootstrap": "b:9092", "reachable": True, "ingest_lag": {"waiting": 1001}})
    assert health_problems(lagging, now=NOW, **LIMITS) == ["1001 events wait on the broker for the ingest (limit 1000)"]
    at_limit = _report(tables, broker={"bootstrap": "b:9092", "reachable": True, "ingest_lag": {"waiting": 1000}})
    assert health_problems(at_limit, now=NOW, **LIMITS) == []

    serving = _report(tables, serving={"store": "postgresql://h/db", "reachable": False, "error": "timeout"})
    assert health_problems(serving, now=NOW, **LIMITS) == ["serving store postgresql://h/db unreachable: timeout"]
    serving["problems"] = health_problems(serving, now=NOW, **LIMITS)
    text = format_status({"source": "s", "catalog": {"name": "c", "warehouse": "w"}, **serving})
    assert text.endswith("problems:\n  - serving store postgresql://h/db unreachable: timeout")


def test_api_events_stuck_in_the_outbox_past_the_limit_are_a_problem():
    tables = {"customers": _table("2026-03-01T11:30:00")}
    fresh = _report(tables, outbox={"pending": 3, "lag_seconds": 60.0, "last_error": None})
    assert health_problems(fresh, now=NOW, **LIMITS, max_outbox_lag_minutes=15) == []
    stuck = _report(tables, outbox={"pending": 40, "lag_seconds": 16 * 60.0, "last_error": "NoBrokersAvailable"})
    (problem,) = health_problems(stuck, now=NOW, **LIMITS, max_outbox_lag_minutes=15)
    assert problem.startswith("outbox: 40 API events wait for the relay, the oldest for 16 min (limit 15)")
    assert "mo outbox relay" in problem and problem.endswith("last error: NoBrokersAvailable")
    text = format_status({"source": "s", "catalog": {"name": "c", "warehouse": "w"}, **stuck})
    assert "outbox   pending 40   oldest waiting 960 s" in text


def test_outbox_report_reads_the_sources_outbox(settings):
    from mo.oltp.db import make_engine, migrate
    from mo.oltp.outbox import add_event, new_event
    from mo.status import outbox_report

    assert outbox_report(settings) is None  # no source yet: the source check reports that
    engine = make_engine(settings.resolved_source_url)
    migrate(engine)
    assert outbox_report(settings)["pending"] == 0
    with engine.begin() as conn:
        event = new_event(
            "complaint_opened",
            customer_id=1,
            payload={"complaint_no": "CP1", "channel": "app", "category": "service", "policy_no": None},
            source="app",
        )
        add_event(conn, event, settings=settings)
    report = outbox_report(settings)
    engine.dispose()
    assert report["pending"] == 1 and report["lag_seconds"] >= 0
