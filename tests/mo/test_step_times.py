"""build_profiles' step records (mo.step_times.BuildSteps): what each step writes, in both ways it runs.

The records' writes to the lake are checked where they land: the dashboards' world (one process) and the
production-like chain (the Airflow DAG, tests/dags/test_production_chain.py)."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from mo import step_times
from mo.config import Settings
from mo.step_times import BUILD_STEPS, BuildSteps

DAY = date(2026, 1, 1)


@pytest.fixture
def written(monkeypatch) -> list[list[dict]]:
    commits: list[list[dict]] = []
    monkeypatch.setattr(step_times, "record_build_steps", lambda _spark, _settings, rows: commits.append(list(rows)))
    monkeypatch.setattr("spark_jobs.session.get_spark", lambda _settings: None)
    return commits


def test_each_step_is_recorded_as_it_ends_with_its_number_in_the_builds_order(written):
    steps = BuildSteps(Settings(), "scheduled__2026-01-01", DAY)
    with steps.step("insights"):
        pass
    with pytest.raises(ValueError), steps.step("gate"):
        raise ValueError("expect_column_values_to_not_be_null failed\nsecond line")
    assert [[(r["step"], r["step_no"], r["status"], r["detail"]) for r in rows] for rows in written] == [
        [("insights", BUILD_STEPS.index("insights") + 1, "ok", None)],
        [("gate", 7, "failed", "expect_column_values_to_not_be_null failed")],
    ]
    for (row,) in written:
        assert row["run_id"] == "scheduled__2026-01-01" and row["as_of"] == DAY
        assert row["started_at"] <= row["finished_at"]


def test_deferred_steps_are_written_together_once(written):
    steps = BuildSteps(Settings(), "build-1", DAY, deferred=True)
    for name in ("marts", "models"):
        with steps.step(name):
            pass
    assert written == []
    steps.flush()
    steps.flush()  # nothing left: no empty commit
    assert [[r["step"] for r in rows] for rows in written] == [["marts", "models"]]


def test_a_record_that_cannot_be_written_never_hides_the_steps_outcome(monkeypatch, caplog):
    def refuse(*_args):
        raise RuntimeError("catalog unavailable")

    monkeypatch.setattr(step_times, "record_build_steps", refuse)
    monkeypatch.setattr("spark_jobs.session.get_spark", lambda _settings: None)
    steps = BuildSteps(Settings(), "run-1", DAY)
    with caplog.at_level(logging.ERROR, logger="mo.step_times"):
        with steps.step("publish"):
            done = True
        with pytest.raises(KeyError), steps.step("publish_dashboards"):
            raise KeyError("the step's own error")
    assert done
    assert caplog.text.count("the step times could not be recorded") == 2


def test_an_unknown_step_is_refused_before_it_runs(written):
    ran = []
    with pytest.raises(ValueError), BuildSteps(Settings(), "run-1", DAY).step("marts_typo"):
        ran.append(True)
    assert ran == [] and written == []
