"""The `mo` CLI: bad configuration gives one line that names the problem and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_mo(*args: str, env: dict[str, str] | None = None, home: Path) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MO_")}
    full_env.update({"MO_HOME": str(home), "MO_PII_KEY": "test-key"})
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mo", *args], capture_output=True, text=True, env=full_env, timeout=300
    )


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_help_lists_every_job(tmp_path):
    result = run_mo("--help", home=tmp_path)
    assert result.returncode == 0
    for command in ("generate", "advance-day", "sync", "ingest-events", "status", "broker", "db", "outbox"):
        assert command in result.stdout


def test_unknown_source_scheme(tmp_path):
    line = _one_error_line(run_mo("db", "migrate", env={"MO_SOURCE_URL": "oracle://x/y"}, home=tmp_path))
    assert "unknown source URL scheme 'oracle'" in line


@pytest.mark.postgres
def test_unreachable_source_database(tmp_path):
    line = _one_error_line(
        run_mo("db", "migrate", env={"MO_SOURCE_URL": "postgresql://nobody@127.0.0.1:1/none"}, home=tmp_path)
    )
    assert "source database unreachable at postgresql" in line


def test_unreachable_broker(tmp_path):
    result = run_mo("advance-day", env={"MO_KAFKA_BOOTSTRAP": "127.0.0.1:1"}, home=tmp_path)
    assert "Kafka broker unreachable at 127.0.0.1:1" in _one_error_line(result)


def test_missing_java(tmp_path):
    python_dir = str(Path(sys.executable).parent)
    env = {"PATH": python_dir, "JAVA_HOME": str(tmp_path / "no-java")}
    line = _one_error_line(run_mo("sync", env=env, home=tmp_path))
    assert "Java not found" in line
    assert not (tmp_path / "lake").exists(), "nothing may be half-written when Java is missing"


def _recording_java(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A JAVA_HOME whose `java` only leaves a mark: any attempt to start a JVM (Spark) shows."""
    marker = tmp_path / "jvm-started"
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho started >> {marker}\nexit 1\n")
    java.chmod(0o755)
    return {"JAVA_HOME": str(java.parent.parent), "PATH": f"{java.parent}:{os.environ['PATH']}"}, marker


BAD_SYNC_CONFIG = {
    "unreachable source": ({"MO_SOURCE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "source database unreachable"),
    "unknown scheme": ({"MO_SOURCE_URL": "oracle://scott@db/orcl"}, "unknown source URL scheme 'oracle'"),
    "missing PII key": ({"MO_PII_KEY": ""}, "MO_PII_KEY is not set"),
}


@pytest.mark.parametrize("case", list(BAD_SYNC_CONFIG))
def test_sync_checks_configuration_before_starting_spark(tmp_path, case):
    env, message = BAD_SYNC_CONFIG[case]
    java_env, marker = _recording_java(tmp_path)
    line = _one_error_line(run_mo("sync", env={**java_env, **env}, home=tmp_path))
    assert message in line
    assert not marker.exists(), "a JVM was started before the configuration was checked"
    # the DAG's extract task checks the same way before its session
    code = "from mo.pipelines import sync_extract; sync_extract()"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MO_")}
    full_env.update({"MO_HOME": str(tmp_path), "MO_PII_KEY": "test-key", **java_env, **env})
    task = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300)
    assert task.returncode != 0 and message in task.stderr.strip().splitlines()[-1]
    assert not marker.exists(), "the extract task started a JVM before the configuration was checked"


def test_missing_pii_key_is_named(tmp_path):
    from mo.config import Settings
    from mo.errors import ConfigError

    with pytest.raises(ConfigError, match="MO_PII_KEY is not set"):
        Settings(home=tmp_path, pii_key=None).require_pii_key()


@pytest.mark.spark
def test_status_check_exits_non_zero_and_names_the_problems(tmp_path):
    # an invalid source is one problem of a full report, not an error instead of the report
    env = {"MO_KAFKA_BOOTSTRAP": "127.0.0.1:1", "MO_SOURCE_URL": "oracle://scott@db/orcl"}
    result = run_mo("status", "--check", "--json", env=env, home=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    report = json.loads(result.stdout)
    problems = report["problems"]
    assert problems[0] == (
        "source oracle://db/orcl unreachable: unknown source URL scheme 'oracle' in MO_SOURCE_URL; "
        "expected one of sqlite, mysql, mariadb, postgresql"
    )
    assert problems[1].startswith("never synced to silver: organizations, agents, customers")
    assert problems[2].startswith("broker 127.0.0.1:1 unreachable: ")
    assert len(problems) == 3, problems
    assert report["tables"]["customers"]["source"] is None and report["serving"]["reachable"] is True


def test_an_invalid_setting_is_named(tmp_path):
    line = _one_error_line(run_mo("status", env={"MO_EVENTS_MAX_WAITING": "many"}, home=tmp_path))
    assert line.startswith("error: invalid setting: MO_EVENTS_MAX_WAITING: ")
