"""`mo dashboards sync` (mo/dashboards_sync.py): the audit copy and the user sync on their periods in one process;
a failed round is logged and the next one runs; SIGTERM stops it. Against real databases: a SQLite audit database
(the platform's audit_log) and a SQLite Superset metadata database with the tables the audit copy reads."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mo.dashboards_audit import AUDIT
from mo.dashboards_sync import Job, run_loop

REPO = Path(__file__).resolve().parents[2]

# The columns of Superset's tables the audit copy reads (Superset's own migrations create them in production).
SUPERSET_TABLES = (
    "CREATE TABLE ab_user (id INTEGER PRIMARY KEY, username TEXT)",
    "CREATE TABLE ab_role (id INTEGER PRIMARY KEY, name TEXT)",
    "CREATE TABLE ab_user_role (id INTEGER PRIMARY KEY, user_id INTEGER, role_id INTEGER)",
    "CREATE TABLE dashboards (id INTEGER PRIMARY KEY, dashboard_title TEXT)",
    "CREATE TABLE slices (id INTEGER PRIMARY KEY, slice_name TEXT)",
    "CREATE TABLE dbs (id INTEGER PRIMARY KEY, database_name TEXT)",
    "CREATE TABLE logs (id INTEGER PRIMARY KEY, action TEXT, user_id INTEGER, dashboard_id INTEGER, "
    "slice_id INTEGER, json TEXT, dttm DATETIME)",
    'CREATE TABLE "query" (id INTEGER PRIMARY KEY, user_id INTEGER, database_id INTEGER, schema TEXT, sql TEXT, '
    "status TEXT, rows INTEGER, error_message TEXT, start_time NUMERIC)",
)


def make_superset(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for statement in SUPERSET_TABLES:
            conn.execute(text(statement))
        conn.execute(text("INSERT INTO ab_user VALUES (1, 'analyst_a')"))
        conn.execute(text("INSERT INTO ab_role VALUES (1, 'mo_analyst')"))
        conn.execute(text("INSERT INTO ab_user_role VALUES (1, 1, 1)"))
        conn.execute(text("INSERT INTO dashboards VALUES (3, 'Claims')"))
    engine.dispose()


def view(url: str, log_id: int) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO logs VALUES (:id, 'DashboardRestApi.get', 1, 3, NULL, '{}', '2026-12-01 10:00:00')"),
            {"id": log_id},
        )
    engine.dispose()


def make_audit(url: str) -> None:
    engine = create_engine(url)
    AUDIT.create(engine)
    engine.dispose()


def copied(url: str) -> list[tuple[str, str, str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT request_id, actor, resource FROM audit_log WHERE action = 'dashboards.view' ORDER BY id")
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_a_failed_round_is_logged_and_the_next_round_runs_until_stopped(tmp_path, caplog):
    """In-process: the audit copy's first round fails on a Superset database not migrated yet (no `logs`), the
    loop logs it and keeps going; once the tables exist the next round copies the view; a second job on its own
    period runs beside it; setting stop returns the loop."""
    from mo.dashboards_audit import sync_audit

    audit_url, superset_url = f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'superset.db'}"
    make_audit(audit_url)
    audit, superset = create_engine(audit_url), create_engine(superset_url)
    stop = threading.Event()
    rounds: list[str] = []

    def audit_round():  # type: ignore[no-untyped-def]
        rounds.append("audit")
        if len(rounds) == 2:  # Superset's start migrated its tables between the first round and the second
            make_superset(superset_url)
            view(superset_url, 41)
        result = sync_audit(audit, superset)
        if result.copied["logs"]:
            stop.set()
        return result

    other = Job("user sync", 100.0, lambda: {"changes": []})
    audit_job = Job("audit sync", 0.05, audit_round)
    caplog.set_level(logging.INFO, logger="mo.dashboards_sync")
    runner = threading.Thread(target=run_loop, args=([audit_job, other], stop))
    runner.start()
    runner.join(timeout=30)
    try:
        assert not runner.is_alive(), "the loop did not return once stopped"
        assert audit_job.runs == 2 and audit_job.failures == 1 and audit_job.last_error is None
        assert other.runs == 1, "the other job runs on its own period (first at once, next in 100 s)"
        failed = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(failed) == 1 and "audit sync failed (retrying in 0 s)" in failed[0].getMessage()
        assert "no such table: ab_user" in failed[0].getMessage()
        assert copied(audit_url) == [("superset:logs:41", "user:analyst_a", "dashboard 3 Claims")]
        summaries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit sync: ")]
        assert json.loads(summaries[-1].removeprefix("audit sync: "))["copied"] == {"logs": 1, "query": 0}
    finally:
        stop.set()
        audit.dispose()
        superset.dispose()


def test_the_cli_loop_recovers_from_a_failed_round_and_stops_cleanly_on_sigterm(tmp_path):
    """`mo dashboards sync` as the compose service runs it, in its own process, with the audit and Superset
    databases from the environment (MO_SOURCE_URL, SUPERSET_DATABASE_URL): Superset's tables are missing at first
    (each round fails, logged, the process lives on), then appear; the view is copied once; SIGTERM ends it with
    exit code 0."""
    audit_url, superset_url = f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'superset.db'}"
    make_audit(audit_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MO_", "SUPERSET_"))}
    env.update(MO_HOME=str(tmp_path / "home"), MO_SOURCE_URL=audit_url, SUPERSET_DATABASE_URL=superset_url)
    log_path = tmp_path / "sync.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mo.cli", "dashboards", "sync", "--audit-every", "1", "--users-every", "0"],
            env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while log_path.read_text().count("audit sync failed") < 2:
            assert proc.poll() is None, f"the loop died on a failed round:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        make_superset(superset_url)
        view(superset_url, 7)
        while not copied(audit_url):
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        time.sleep(2.5)  # two more rounds: nothing copied twice
        assert copied(audit_url) == [("superset:logs:7", "user:analyst_a", "dashboard 3 Claims")]
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log_path.read_text()
    assert "Traceback" not in output, output
    assert '"copied": {"logs": 1, "query": 0}' in output and '"copied": {"logs": 0, "query": 0}' in output


def test_nothing_to_run_is_refused() -> None:
    from click.testing import CliRunner

    from mo.cli import cli

    result = CliRunner().invoke(cli, ["dashboards", "sync", "--audit-every", "0", "--users-every", "0"])
    assert result.exit_code == 2 and "nothing to run" in result.output


def test_a_job_that_keeps_failing_never_stops_the_loop() -> None:
    stop = threading.Event()
    calls: list[float] = []

    def broken():  # type: ignore[no-untyped-def]
        calls.append(time.monotonic())
        if len(calls) == 5:
            stop.set()
        raise ConnectionError("audit database unreachable\nsecond line not logged")

    job = Job("audit sync", 0.02, broken)
    run_loop([job], stop)
    assert job.runs == 5 and job.failures == 5
    assert job.last_error == "ConnectionError: audit database unreachable"


def test_the_health_check_fails_until_both_databases_answer_with_the_audits_tables(tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    from mo.dashboards_sync import check_access

    audit_url, superset_url = f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'superset.db'}"
    monkeypatch.setenv("SUPERSET_DATABASE_URL", superset_url)
    settings = SimpleNamespace(home=tmp_path, resolved_source_url=audit_url)
    make_audit(audit_url)
    with pytest.raises(Exception, match="no such table: logs"):
        check_access(settings)
    make_superset(superset_url)
    check_access(settings)
