"""`mo status` shows the latest content reconciliation per table; an unrepaired difference is a problem."""

from __future__ import annotations

from datetime import UTC, datetime

from mo.status import PROBLEM_CHECKS, format_status, reconcile_problems

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LIMITS = {"max_sync_age_hours": 3, "max_waiting": 100000}


def _problems(report: dict) -> list[str]:
    return reconcile_problems(report, NOW, LIMITS)


def _report(**reconciled) -> dict:
    tables = {
        name: {"source": 10, "bronze": 10, "silver": 10, "last_sync_at": "2026-03-02T08:00:00", "in_sync": True}
        for name in ("customers", "policies", "products")
    }
    for name, last in reconciled.items():
        tables[name]["reconcile"] = {"rows_pending": 0, "reconciled_at": "2026-03-02T09:00:00", "detail": None, **last}
    return {"source": "sqlite", "catalog": {"name": "lake", "warehouse": "file:///w"}, "tables": tables}


def test_an_unrepaired_difference_is_a_problem_naming_table_rows_and_the_repair():
    report = _report(
        customers={"status": "differs", "rows_differing": 2},
        policies={"status": "repaired", "rows_differing": 1},
        products={"status": "in_sync", "rows_differing": 0},
    )
    assert _problems(report) == [
        "customers: 2 rows differ from the source by content (reconciled 2026-03-02T09:00:00 UTC, not repaired); "
        "run mo reconcile --table customers --repair"
    ]
    failed = _report(customers={"status": "repair_failed", "rows_differing": 3, "detail": "quality gate failed"})
    assert "repair failed: quality gate failed" in _problems(failed)[0]
    assert _problems(_report()) == []
    assert reconcile_problems in PROBLEM_CHECKS  # what mo status --check reports


def test_status_lists_rows_differing_and_last_reconciled_per_table():
    text = format_status(_report(customers={"status": "differs", "rows_differing": 2, "rows_pending": 1}))
    line = next(line for line in text.splitlines() if line.startswith("customers") and "differs" in line)
    assert line.split() == ["customers", "2", "1", "2026-03-02T09:00:00", "differs"]
